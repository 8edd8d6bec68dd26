"""A deployment's trailers-only refusal followed by a reset of the stream (runtime/remote.py
`_refusal`): grpclib cancels the stream's readers when it processes the reset, even when the
refusal's headers arrived in the same packet, so a reader that starts late sees "Stream reset
by remote party". Under load that was every attempt of an unsigned invoke (CI, 2026-11-27):
the attempt's failure must still be the deployment's status. Here the reader starts late on
purpose, against a real deployment server that requires signed requests."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpclib.exceptions
from grpclib.client import Channel
from grpclib.const import Cardinality, Status

from pysdk import Context, Service, app
from pysdk._deployment.server import DeploymentServer
from pysdk._deployment.wire import StrictCodec
from pysdk._proto.stead.deployment import v1 as pb
from runtime.deployments import INVOKE_PATH
from runtime.identity import generate_key
from runtime.remote import _refusal

svc = Service("svc")


@svc.handler()
async def h(ctx: Context) -> int:
    return 1


def test_a_refusal_is_read_even_after_the_reset(tmp_path: Path) -> None:
    public = generate_key(str(tmp_path / "key.pem"))

    async def body() -> None:
        server = DeploymentServer(app([svc]), identity_keys=[public])
        port = await server.start("127.0.0.1", 0)
        channel = Channel("127.0.0.1", port, codec=StrictCodec())
        seen: list[BaseException] = []
        refusal = None
        try:
            async with channel.request(INVOKE_PATH, Cardinality.STREAM_STREAM, pb.RuntimeMessage,
                                       pb.DeploymentMessage) as stream:
                await stream.send_request()  # unsigned: refused
                await asyncio.sleep(0.3)  # the refusal and the reset are both processed by now
                try:
                    await stream.recv_message()
                except grpclib.exceptions.StreamTerminatedError as exc:
                    seen.append(exc)
                refusal = _refusal(stream)
        except Exception:  # noqa: BLE001 - leaving a reset stream fails in grpclib/h2: not the test
            pass
        finally:
            channel.close()
            await server.shutdown(0.1)
        assert seen and "reset" in str(seen[0]), "the reader saw the reset, not the status"
        assert refusal is not None and refusal.status is Status.UNAUTHENTICATED
        assert "not signed" in (refusal.message or "")

    asyncio.run(body())
