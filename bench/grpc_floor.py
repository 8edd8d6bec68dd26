"""The gRPC floor of the remote workloads: what one exchange costs with nothing behind
it, on the same grpclib + betterproto2 stack and the same loopback.

A server process answers every Start with an End at once. The client (this process)
runs `--iterations` exchanges in a row, each way the runtime can talk to a deployment,
and prints the latency percentiles of one exchange as a RESULT line for each:

- `grpc_floor`: an Invoke stream per exchange (protocol version 1): open the stream,
  send a Start, read the End, end the stream;
- `grpc_session_floor`: a Start and its End on a Session opened once (version 2, what
  the runtime uses): W1R's floor, since a remote cart add needs one such exchange plus
  the runtime's own work;
- `grpc_steps_floor`: W4R's conversation on that Session, the same eight messages: Start,
  then three times a Flush of one step's entry and its Ack, then End. A remote checkout
  needs all of them in turn (a step's body may not run before the previous step is
  durable, and the deployment learns that only from its Ack), plus the runtime's commits.

So W1 + `grpc_session_floor` and W4 + `grpc_steps_floor` of the same run are what W1R
and W4R would cost if the runtime and the deployment did nothing but cross this stack
(bench/run.py reports them beside W1R and W4R).

`raw_session_floor` and `raw_steps_floor` are the same conversations, messages encoded
and decoded the same way, over a plain TCP connection (each message after its length in
4 bytes, asyncio streams on uvloop): what the exchange costs without HTTP/2 and grpclib,
i.e. how much of the gRPC floors is the Python HTTP/2 stack.

    python bench/grpc_floor.py --iterations 2000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from grpclib.client import Channel  # noqa: E402
from grpclib.const import Cardinality, Handler  # noqa: E402
from grpclib.server import Server, Stream  # noqa: E402

from pysdk._deployment.wire import StrictCodec, decode  # noqa: E402
from pysdk._entries import RUN  # noqa: E402
from pysdk._proto.stead.deployment import v1 as pb  # noqa: E402

INVOKE = "/stead.deployment.v1.Deployment/Invoke"
SESSION = "/stead.deployment.v1.Deployment/Session"
W4_STEPS = 3  # Checkout/pay's steps (../shared/bench/WORKLOADS.md)


class Echo:
    def __mapping__(self) -> dict[str, Handler]:
        return {INVOKE: Handler(self.invoke, Cardinality.STREAM_STREAM, pb.RuntimeMessage, pb.DeploymentMessage),
                SESSION: Handler(self.session, Cardinality.STREAM_STREAM, bytes, bytes)}

    async def invoke(self, stream: Stream) -> None:
        await stream.recv_message()
        await stream.send_message(pb.DeploymentMessage(end=pb.End(output=b"1")))

    async def session(self, stream: Stream) -> None:
        steps: dict[int, int] = {}  # stream_id -> steps left
        while (data := await stream.recv_message()) is not None:
            await stream.send_message(answer(data, steps))


def answer(data: bytes, steps: dict[int, int]) -> bytes:
    """The deployment's next message. A Start with a journal of `n` entries asks for `n`
    steps: one Flush per step, each after the previous one's Ack, then End."""
    msg = decode(data, pb.RuntimeMessage)
    sid = msg.stream_id
    if msg.start is not None:
        steps[sid] = len(msg.start.journal)
    left = steps.pop(sid)
    if left:
        steps[sid] = left - 1
        entry = pb.Entry(kind=RUN, name="charge", value=b'"c-order-17"')
        return bytes(pb.DeploymentMessage(stream_id=sid, flush=pb.Flush(flush_id=left, entries=[entry])))
    return bytes(pb.DeploymentMessage(stream_id=sid, end=pb.End(output=b'"r-o1c-o1s-o1"')))


class RawStream:
    """Messages on a plain TCP connection, each after its length (4 bytes, big-endian),
    with the two methods of grpclib's stream that `conversations` uses."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send_message(self, data: bytes) -> None:
        self.writer.write(len(data).to_bytes(4, "big") + data)

    async def recv_message(self) -> Optional[bytes]:
        try:
            size = int.from_bytes(await self.reader.readexactly(4), "big")
        except asyncio.IncompleteReadError:
            return None
        return await self.reader.readexactly(size)


async def raw_session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    stream, steps = RawStream(reader, writer), {}
    while (data := await stream.recv_message()) is not None:
        await stream.send_message(answer(data, steps))
    writer.close()


async def serve(port: int, raw_port: int) -> None:
    server = Server([Echo()], codec=StrictCodec())
    await server.start("127.0.0.1", port)
    raw = await asyncio.start_server(raw_session, "127.0.0.1", raw_port)
    print("ready", flush=True)
    async with raw:
        await server.wait_closed()


async def client(port: int, raw_port: int, iterations: int, state_bytes: int) -> list[list[float]]:
    """The latencies of each shape, in the order of SHAPES."""
    channel = Channel("127.0.0.1", port, codec=StrictCodec())
    start = pb.RuntimeMessage(start=pb.Start(
        protocol_version=1, invocation_id="inv_" + "0" * 32, service="Cart", handler="add", key="k1",
        input=b'"item"', state=[pb.StateValue(name="items", value=b"x" * state_bytes)]))
    invoke = await invokes(channel, start, iterations)
    start.start.protocol_version = 2
    checkout = pb.RuntimeMessage(start=pb.Start(
        protocol_version=2, invocation_id="inv_" + "1" * 32, service="Checkout", handler="pay",
        input=b'"o1"', journal=[pb.Entry(kind=RUN, name="step")] * W4_STEPS))
    async with channel.request(SESSION, Cardinality.STREAM_STREAM, bytes, bytes) as stream:
        await stream.send_request()
        session = await conversations(stream, start, iterations, 0)
        steps = await conversations(stream, checkout, iterations, iterations)
        await stream.end()
    channel.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", raw_port)
    raw = RawStream(reader, writer)
    raw_exchange = await conversations(raw, start, iterations, 0)
    raw_steps = await conversations(raw, checkout, iterations, iterations)
    writer.close()
    return [invoke, session, steps, raw_exchange, raw_steps]


SHAPES = ("grpc_floor", "grpc_session_floor", "grpc_steps_floor", "raw_session_floor", "raw_steps_floor")


async def conversations(stream, start: pb.RuntimeMessage, iterations: int, first_id: int) -> list[float]:
    """`iterations` conversations in a row: Start, an Ack for each Flush, until End."""
    out = []
    for i in range(iterations):
        t0 = time.perf_counter()
        start.stream_id = sid = first_id + i + 1
        await stream.send_message(bytes(start))
        while (msg := decode(await stream.recv_message(), pb.DeploymentMessage)).flush is not None:
            await stream.send_message(bytes(pb.RuntimeMessage(stream_id=sid, ack=pb.Ack(flush_id=msg.flush.flush_id))))
        assert msg.end is not None
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def invokes(channel: Channel, start: pb.RuntimeMessage, iterations: int) -> list[float]:
    out = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        async with channel.request(INVOKE, Cardinality.STREAM_STREAM, pb.RuntimeMessage,
                                   pb.DeploymentMessage) as stream:
            await stream.send_request()
            await stream.send_message(start)
            await stream.recv_message()
            await stream.end()
            await stream.recv_trailing_metadata()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--iterations", type=int, default=2000)
    p.add_argument("--state-bytes", type=int, default=500, help="size of the state value in Start")
    p.add_argument("--serve", type=int, nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args()
    import uvloop

    if args.serve:
        uvloop.run(serve(*args.serve))
        return 0
    ports = [free_port(), free_port()]
    proc = subprocess.Popen([sys.executable, __file__, "--serve", *map(str, ports)], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        runs = uvloop.run(client(*ports, args.iterations, args.state_bytes))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    for name, lat in zip(SHAPES, runs):
        lat = lat[len(lat) // 10:]  # the first tenth warms up
        q = statistics.quantiles(lat, n=1000)
        print(f"RESULT {name} p50_ms={statistics.median(lat):.3f} p90_ms={q[899]:.3f} p99_ms={q[989]:.3f} "
              f"max_ms={max(lat):.3f} iterations={len(lat)} pid={os.getpid()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
