"""The deployment's attempts (pysdk/_deployment/stream.py), over a real grpclib server on
a free loopback port, with a real grpclib client playing the runtime: every test runs
on an Invoke stream of its own (protocol version 1) and on a Session (version 2,
pysdk/_deployment/session.py, where the handler runs in the attempt's task)."""
from __future__ import annotations

import asyncio
import collections
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, AsyncIterator, Optional

import betterproto2
import pytest
from grpclib.client import Channel
from grpclib.const import Cardinality

from pysdk import (Context, ObjectContext, RetryableError, Service, TerminalError, VirtualObject, Workflow,
                   WorkflowContext, WorkflowSharedContext, app)
from pysdk._deployment.convert import (completion_to_msg, directory_of_app, directory_to_msg, entry_from_msg,
                                       entry_to_msg)
from pysdk._deployment.server import INVOKE_PATH, SESSION_PATH, DeploymentServer
from pysdk._deployment.wire import StrictCodec, decode
from pysdk._entries import CALL, PEEK_PROMISE, RUN, SET_STATE, SLEEP
from pysdk._proto.stead.deployment import v1 as pb

runs: collections.Counter[str] = collections.Counter()

steps = Service("Steps")


@steps.handler()
async def two_steps(ctx: Context, name: str) -> str:
    async def first() -> str:
        runs["first"] += 1
        return f"hello {name}"

    async def second() -> str:
        runs["second"] += 1
        return "!"

    a = await ctx.run("first", first)
    b = await ctx.run("second", second)
    return a + b


@steps.handler()
async def nap(ctx: Context) -> str:
    runs["nap_before"] += 1
    await ctx.sleep(timedelta(seconds=60))
    runs["nap_after"] += 1
    return "awake"


@steps.handler()
async def fails(ctx: Context, how: str) -> None:
    if how == "terminal":
        raise TerminalError("nope", 422)
    if how == "retry_after":
        raise RetryableError("later", retry_after=timedelta(seconds=2))
    raise ValueError("boom")


@steps.handler()
async def calls(ctx: Context, target: str) -> str:
    service, _, handler = target.partition("/")
    out = await ctx.generic_call(service, handler, b'"x"')
    return out.decode()


counter = VirtualObject("Counter")


@counter.handler()
async def set_then_fail(ctx: ObjectContext, how: str) -> None:
    ctx.set("n", 1)
    if how == "terminal":
        raise TerminalError("refused", 409)
    raise RuntimeError("flaky")


@counter.handler()
async def wait_then_set(ctx: ObjectContext) -> None:
    try:
        await ctx.sleep(timedelta(seconds=60))
    finally:
        runs["finally"] += 1
        ctx.set("after", 1)  # the attempt is closed: this journals nothing


@counter.handler()
async def call_own_key(ctx: ObjectContext) -> None:
    await ctx.generic_call("Counter", "wait_then_set", b"", key=ctx.key())


flow = Workflow("Flow")


@flow.main()
async def run(ctx: WorkflowContext) -> None:
    return None


@flow.handler()
async def peek(ctx: WorkflowSharedContext) -> Optional[int]:
    return await ctx.promise("p").peek()


APP = app([steps, counter, flow])


@pytest.fixture(autouse=True)
def _reset_runs() -> None:
    runs.clear()


PROTOCOL = "invoke"


@pytest.fixture(autouse=True, params=["invoke", "session"])
def _protocol(request: pytest.FixtureRequest) -> Any:
    """Which stream `Runtime` opens: an Invoke stream, or an attempt on a Session."""
    global PROTOCOL
    PROTOCOL = request.param
    yield
    PROTOCOL = "invoke"


def arun(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


@asynccontextmanager
async def deployment() -> AsyncIterator[tuple[DeploymentServer, Channel]]:
    server = DeploymentServer(APP)
    port = await server.start("127.0.0.1", 0)
    channel = Channel("127.0.0.1", port, codec=StrictCodec())  # Session messages are bytes
    try:
        yield server, channel
    finally:
        channel.close()
        await server.shutdown(grace=1.0)


def Runtime(channel: Channel) -> Any:  # noqa: N802 - stands for either class
    return SessionRuntime(channel) if PROTOCOL == "session" else InvokeRuntime(channel)


class InvokeRuntime:
    """The runtime's end of one Invoke stream; what the deployment sends is queued."""

    PATH, TYPES = INVOKE_PATH, (pb.RuntimeMessage, pb.DeploymentMessage)

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[tuple[Optional[str], Any]] = asyncio.Queue()
        self.status: Any = None

    async def __aenter__(self) -> "InvokeRuntime":
        self._cm = self.channel.request(self.PATH, Cardinality.STREAM_STREAM, *self.TYPES)
        self.stream = await self._cm.__aenter__()
        await self.stream.send_request()
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        try:
            while True:
                msg = await self.stream.recv_message()
                if msg is None:
                    break
                await self.queue.put(betterproto2.which_one_of(msg, "message"))
            await self.stream.recv_trailing_metadata()
            self.status = self.stream.trailing_metadata
        except Exception as exc:  # noqa: BLE001 - reported as the end of the stream
            self.status = exc
        await self.queue.put((None, None))

    async def __aexit__(self, *exc: Any) -> None:
        self._reader.cancel()
        try:
            await self._cm.__aexit__(*exc)
        except Exception:  # noqa: BLE001 - the stream may have been reset
            pass

    async def send(self, **message: Any) -> None:
        await self.stream.send_message(pb.RuntimeMessage(**message))

    async def start(self, service: str, handler: str, input: bytes = b"", **fields: Any) -> None:
        fields.setdefault("directory", directory_of_app(APP))
        await self.send(start=pb.Start(protocol_version=1, invocation_id="inv_1test", service=service,
                                       handler=handler, input=input, **fields))

    async def recv(self, expect: Optional[str] = "any", timeout: float = 5.0) -> Any:
        which, value = await asyncio.wait_for(self.queue.get(), timeout)
        if expect != "any":
            assert which == expect, (which, value)
        return value

    async def ended(self) -> None:
        """The deployment closed the stream without sending anything more."""
        which, value = await asyncio.wait_for(self.queue.get(), 5.0)
        assert which is None, f"expected the end of the stream, got {which}: {value}"

    async def silent(self, seconds: float = 0.3) -> None:
        await asyncio.sleep(seconds)
        assert self.queue.empty(), f"expected nothing, got {self.queue.get_nowait()}"


class SessionRuntime(InvokeRuntime):
    """The runtime's end of one attempt (stream_id 1) on a Session of its own: what the
    deployment sends for it is queued as on an Invoke stream; its end is End, Closed, or
    the end of the session."""

    PATH, TYPES = SESSION_PATH, (bytes, bytes)
    STREAM_ID = 1

    async def _read(self) -> None:
        try:
            while True:
                data = await self.stream.recv_message()
                if data is None:
                    break
                msg = decode(data, pb.DeploymentMessage)
                assert msg.stream_id == self.STREAM_ID, msg
                which, value = betterproto2.which_one_of(msg, "message")
                if which == "closed":
                    self.status = (value.code, value.message)
                    break
                await self.queue.put((which, value))
                if which == "end":
                    break
        except Exception as exc:  # noqa: BLE001 - reported as the end of the attempt
            self.status = exc
        await self.queue.put((None, None))

    async def send(self, **message: Any) -> None:
        await self.stream.send_message(bytes(pb.RuntimeMessage(stream_id=self.STREAM_ID, **message)))


def entries(msgs: list[pb.Entry]) -> list[tuple]:
    return [entry_from_msg(e) for e in msgs]


def test_step_is_acked_before_the_handler_continues() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Steps", "two_steps", b'"ann"')
            flush = await rt.recv("flush")
            assert entries(flush.entries) == [(RUN, "first", b'"hello ann"', 0, None)]
            # Not acked yet: the handler does not get the step's result, so the second
            # step does not run and nothing more is sent.
            await rt.silent(0.3)
            assert runs["second"] == 0
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            flush2 = await rt.recv("flush")
            assert flush2.flush_id != flush.flush_id
            assert entries(flush2.entries) == [(RUN, "second", b'"!"', 0, None)]
            assert runs == {"first": 1, "second": 1}
            await rt.send(ack=pb.Ack(flush_id=flush2.flush_id))
            end = await rt.recv("end")
            assert betterproto2.which_one_of(end, "outcome") == ("output", b'"hello ann!"')
            assert end.entries == [] and end.children == []
            await rt.ended()

    arun(main())


def test_sleep_awaits_then_a_completion_resumes_it() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Steps", "nap")
            flush = await rt.recv("flush")
            assert [e[0] for e in entries(flush.entries)] == [SLEEP]
            await rt.silent(0.1)  # the SLEEP is not durable yet: no Await before the Ack
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            wait = await rt.recv("await_")
            assert wait.indexes == [0]
            await rt.silent(0.2)
            assert runs["nap_after"] == 0
            await rt.send(completion=completion_to_msg(0, (b"", 0, None)))
            end = await rt.recv("end")
            assert end.output == b'"awake"'
            assert runs == {"nap_before": 1, "nap_after": 1}

    arun(main())


def test_stop_suspended_drops_the_coroutine_and_sends_nothing_more() -> None:
    async def main() -> None:
        async with deployment() as (server, channel), Runtime(channel) as rt:
            await rt.start("Counter", "wait_then_set", key="k")
            flush = await rt.recv("flush")
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            await rt.recv("await_")
            await rt.send(stop=pb.Stop(reason=pb.StopReason.SUSPENDED))
            await rt.ended()  # no Flush of the `finally`'s set, no End
            assert runs["finally"] == 1
            assert not server.service.active

    arun(main())


def test_stop_killed_ends_the_attempt_too() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Steps", "nap")
            flush = await rt.recv("flush")
            await rt.send(stop=pb.Stop(reason=pb.StopReason.KILLED))  # while the flush waits for its Ack
            await rt.ended()
            assert runs["nap_after"] == 0

    arun(main())


def test_replay_does_not_run_a_recorded_step_again() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            recorded = entry_to_msg((RUN, "first", b'"hello bob"', 0, None))
            await rt.start("Steps", "two_steps", b'"bob"', journal=[recorded], retry_count=1)
            flush = await rt.recv("flush")
            assert entries(flush.entries) == [(RUN, "second", b'"!"', 0, None)]
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            end = await rt.recv("end")
            assert end.output == b'"hello bob!"'
            assert runs == {"second": 1}  # the first step's body did not run

    arun(main())


def test_replay_with_recorded_completion_does_not_wait() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            sleep = entry_to_msg((SLEEP, None, (0).to_bytes(8, "big"), 0, None))
            await rt.start("Steps", "nap", journal=[sleep], completions=[completion_to_msg(0, (b"", 0, None))])
            end = await rt.recv("end")
            assert end.output == b'"awake"'

    arun(main())


def test_terminal_error_ends_with_terminal_and_the_last_entries() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Counter", "set_then_fail", b'"terminal"', key="k")
            end = await rt.recv("end")
            assert betterproto2.which_one_of(end, "outcome")[0] == "terminal"
            assert (end.terminal.code, end.terminal.message) == (409, "refused")
            assert entries(end.entries) == [(SET_STATE, "n", b"1", 0, None)]

    arun(main())


@pytest.mark.parametrize("how", ["retry_after", "plain"])
def test_retryable_exception_ends_with_retryable(how: str) -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Steps", "fails", f'"{how}"'.encode())
            end = await rt.recv("end")
            assert betterproto2.which_one_of(end, "outcome")[0] == "retryable"
            failure = end.retryable
            assert failure.code == 500 and not failure.non_determinism
            if how == "retry_after":
                assert failure.retry_after_ms == 2000
                assert "later" in failure.message
            else:
                assert failure.retry_after_ms is None
                assert failure.message == "ValueError('boom')"

    arun(main())


def test_retryable_failure_carries_no_entries() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Counter", "set_then_fail", b'"flaky"', key="k")
            end = await rt.recv("end")
            assert end.retryable is not None and end.retryable.message == "RuntimeError('flaky')"
            assert end.entries == []

    arun(main())


def test_non_determinism_is_retryable_and_flagged() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            other = entry_to_msg((RUN, "other", b"1", 0, None))
            await rt.start("Steps", "two_steps", b'"x"', journal=[other])
            end = await rt.recv("end")
            assert end.retryable is not None and end.retryable.non_determinism
            assert runs["first"] == 0

    arun(main())


def test_check_target_404_from_the_directory() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            # Steps/nap exists in the App, but the runtime's Directory does not list it.
            directory = directory_to_msg([("Steps", "service", {"calls": "service"})])
            await rt.start("Steps", "calls", b'"Steps/nap"', directory=directory)
            end = await rt.recv("end")
            assert (end.terminal.code, end.terminal.message) == (404, "handler Steps/nap not found")
            kinds = entries(end.entries)
            assert kinds[0][0] == RUN and kinds[0][3] == 404  # the refusal is journaled
            assert end.children == []

    arun(main())


def test_check_target_keyed_and_own_key() -> None:
    async def main() -> None:
        async with deployment() as (_, channel):
            async with Runtime(channel) as rt:
                await rt.start("Steps", "calls", b'"Counter/wait_then_set"')
                end = await rt.recv("end")
                assert (end.terminal.code, end.terminal.message) == (
                    400, "Counter is keyed: a call to Counter/wait_then_set needs a key")
            async with Runtime(channel) as rt:
                await rt.start("Counter", "call_own_key", key="k")
                end = await rt.recv("end")
                assert (end.terminal.code, end.terminal.message) == (
                    400, "Counter/k/wait_then_set is the caller's own key, which the caller holds: "
                         "a call would deadlock; use a send")

    arun(main())


def test_call_to_a_service_of_another_deployment() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            directory = directory_to_msg([("Steps", "service", {"calls": "service"}),
                                          ("Remote", "service", {"hello": "service"})])
            await rt.start("Steps", "calls", b'"Remote/hello"', directory=directory)
            flush = await rt.recv("flush")
            assert [e[:2] for e in entries(flush.entries)] == [(CALL, "Remote/hello")]
            [child] = flush.children
            assert (child.index, child.service, child.handler, child.key, child.input, child.is_send) == (
                0, "Remote", "hello", None, b'"x"', False)
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            assert (await rt.recv("await_")).indexes == [0]
            await rt.send(completion=completion_to_msg(0, (b'"hi"', 0, None)))
            end = await rt.recv("end")
            assert end.output == b'"\\"hi\\""'

    arun(main())


def test_peek_promise_asks_the_runtime() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Flow", "peek", key="w")
            request = await rt.recv("peek_promise")
            assert request.name == "p"
            await rt.silent(0.1)
            await rt.send(peek_result=pb.PeekResult(request_id=request.request_id,
                                                    outcome=completion_to_msg(0, (b"5", 0, None))))
            end = await rt.recv("end")
            assert end.output == b"5"
            assert entries(end.entries) == [(PEEK_PROMISE, "p", b"5", 0, None)]

    arun(main())


def test_cancel_is_observed_at_the_await() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Steps", "nap")
            flush = await rt.recv("flush")
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            await rt.recv("await_")
            await rt.send(cancel=pb.Cancel())
            flush = await rt.recv("flush")  # CANCEL, made durable before the error is raised
            assert [e[0] for e in entries(flush.entries)] == [15]
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            end = await rt.recv("end")
            assert (end.terminal.code, end.terminal.message) == (409, "cancelled")

    arun(main())


def test_always_replay_ends_without_end_after_the_ack() -> None:
    async def main() -> None:
        async with deployment() as (_, channel), Runtime(channel) as rt:
            await rt.start("Steps", "two_steps", b'"ann"', always_replay=True)
            flush = await rt.recv("flush")
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            await rt.ended()
            assert runs == {"first": 1}

    arun(main())


def test_runtime_going_away_drops_the_attempt() -> None:
    async def main() -> None:
        async with deployment() as (server, channel):
            async with Runtime(channel) as rt:
                await rt.start("Steps", "nap")
                flush = await rt.recv("flush")
                await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
                await rt.recv("await_")
                assert len(server.service.active) == 1
                await rt.stream.end()  # the runtime's side ends
                await rt.ended()
            for _ in range(100):
                if not server.service.active:
                    break
                await asyncio.sleep(0.02)
            assert not server.service.active
            assert runs["nap_after"] == 0

    arun(main())


def test_shutdown_drops_attempts_after_the_grace_period() -> None:
    async def main() -> None:
        server = DeploymentServer(APP)
        port = await server.start("127.0.0.1", 0)
        channel = Channel("127.0.0.1", port, codec=StrictCodec())
        try:
            async with Runtime(channel) as rt:
                await rt.start("Steps", "nap")
                flush = await rt.recv("flush")
                await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
                await rt.recv("await_")
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                await server.shutdown(grace=0.3)
                assert loop.time() - t0 >= 0.3
                await rt.ended()
                assert runs["nap_after"] == 0
                assert not server.service.active
        finally:
            channel.close()

    arun(main())


def test_many_concurrent_invocations() -> None:
    async def one(channel: Channel, i: int) -> bytes:
        async with Runtime(channel) as rt:
            await rt.start("Steps", "nap")
            flush = await rt.recv("flush")
            await rt.send(ack=pb.Ack(flush_id=flush.flush_id))
            await rt.recv("await_")
            await rt.send(completion=completion_to_msg(0, (b"", 0, None)))
            end = await rt.recv("end", timeout=15)
            return end.output

    async def main() -> None:
        async with deployment() as (_, channel):
            outs = await asyncio.gather(*(one(channel, i) for i in range(50)))
            assert outs == [b'"awake"'] * 50
            assert runs["nap_after"] == 50

    arun(main())


@pytest.mark.parametrize("_protocol", ["session"], indirect=True)
def test_a_stopped_attempt_leaves_its_session_serving_the_next(_protocol: Any) -> None:
    """On a Session the handler runs in the attempt's own task, which a Stop cancels while
    the handler waits: the cancellation is the close's, taken back once the handler has
    unwound, so the attempt ends with Closed OK and the session goes on serving."""
    async def main() -> None:
        async with deployment() as (server, channel):
            async with channel.request(SESSION_PATH, Cardinality.STREAM_STREAM, bytes, bytes) as stream:
                await stream.send_request()

                async def send(stream_id: int, **message: Any) -> None:
                    await stream.send_message(bytes(pb.RuntimeMessage(stream_id=stream_id, **message)))

                async def recv() -> tuple[int, str, Any]:
                    msg = decode(await asyncio.wait_for(stream.recv_message(), 5), pb.DeploymentMessage)
                    return (msg.stream_id, *betterproto2.which_one_of(msg, "message"))

                start = dict(protocol_version=2, invocation_id="inv_1test", directory=directory_of_app(APP))
                await send(1, start=pb.Start(service="Steps", handler="nap", **start))
                sid, which, flush = await recv()
                assert (sid, which) == (1, "flush")
                await send(1, ack=pb.Ack(flush_id=flush.flush_id))
                assert (await recv())[:2] == (1, "await_")
                await send(1, stop=pb.Stop(reason=pb.StopReason.SUSPENDED))
                sid, which, closed = await recv()
                assert (sid, which, closed.code) == (1, "closed", 0)
                assert runs["nap_after"] == 0

                await send(2, start=pb.Start(service="Steps", handler="two_steps", input=b'"bo"', **start))
                for _ in range(2):
                    sid, which, flush = await recv()
                    assert (sid, which) == (2, "flush")
                    await send(2, ack=pb.Ack(flush_id=flush.flush_id))
                sid, which, end = await recv()
                assert (sid, which, end.output) == (2, "end", b'"hello bo!"')
                assert not server.service.active
                await stream.end()

    arun(main())
