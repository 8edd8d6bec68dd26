"""runtime/sessions.py against a real deployment server (grpclib, loopback): what one
attempt does on a Session never breaks the others on it."""

from __future__ import annotations

import asyncio

from pysdk._deployment.convert import directory_of_app
from pysdk._deployment.server import DeploymentServer
from pysdk._proto.stead.deployment import v1 as pb
from runtime.deployments import Deployment
from runtime.sessions import Channels
from tests.reliability.test_fuzz_protocol import APP


def _start(size: int = 0) -> pb.RuntimeMessage:
    return pb.RuntimeMessage(start=pb.Start(
        protocol_version=2, invocation_id="inv_1session", service="Shop", handler="buy",
        input=b'"' + b"x" * size + b'"', directory=directory_of_app(APP)))


def test_a_send_cancelled_half_way_leaves_the_session_whole() -> None:
    """A message larger than the stream's flow-control window leaves in several frames,
    waiting for the window in between; the attempt that sends it may be cancelled there
    (killed, shut down). The message must still leave whole (or not at all): half of one
    would make the rest of the stream garbage for every other attempt on the session."""
    async def go() -> bytes:
        server = DeploymentServer(APP)
        port = await server.start("127.0.0.1", 0)
        channels = Channels()
        dep = Deployment(id="dp_test", uri=f"http://127.0.0.1:{port}", created_ms=0, sdk="test",
                         min_protocol_version=1, max_protocol_version=2)
        try:
            async with channels.open(dep) as first:  # the session is open
                await first.send_message(_start())
                assert (await asyncio.wait_for(first.recv_message(), 10)).end is not None
            async with channels.open(dep) as big:
                # Three times grpclib's 4 MiB windows: it waits for the window between frames.
                sending = asyncio.ensure_future(big.send_message(_start(12_000_000)))
                for _ in range(3):
                    await asyncio.sleep(0)  # under way: the first window's worth has left
                assert not sending.done()
                sending.cancel()
                await asyncio.gather(sending, return_exceptions=True)
            async with channels.open(dep) as other:
                await other.send_message(_start())
                answer = await asyncio.wait_for(other.recv_message(), 10)
            assert answer is not None and answer.end is not None, answer
            return answer.end.output
        finally:
            await channels.aclose()
            await server.shutdown(grace=1.0)

    assert asyncio.run(asyncio.wait_for(go(), 30)) == b'""'
