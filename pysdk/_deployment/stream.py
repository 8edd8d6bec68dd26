"""One attempt of one invocation over one `Invoke` stream (or a Session's
`SubStream`, which looks like one: session.py): the deployment's side.

The runtime opens the stream with Start; `InvokeStream.run` builds a pysdk
`Machine` exactly as the in-process invoker does (runtime/invoker.py `_run`),
with a `StreamBackend` as its `Backend`, and runs the handler: on an Invoke
stream in a task of its own while the stream's task reads what the runtime sends
meanwhile; on a Session in the attempt's own task, the session's reader handing
the runtime's messages over as they come. Either way they are dispatched so:

    runtime -> deployment             deployment -> runtime
    Start                             Flush{flush_id, entries, children}  (Backend.flush)
    Ack{flush_id}   resolves a Flush  Await{indexes}                      (Backend.wait)
    Completion      machine.complete  PeekPromise{request_id, name}       (Backend.peek_promise)
    Cancel          machine.cancel    End{entries, children, outcome}
    PeekResult      resolves a peek
    Stop            closes the attempt

Outcomes, as in-process:

* the handler returns: End.output, with the last entries (`take_pending`) and
  callees (`take_children`) of the completing commit;
* `TerminalError`: End.terminal (code, message), with those entries and callees;
* any other `Exception`: End.retryable, without entries or callees (the in-process
  runtime does not commit them either): code 500 (a `RetryableError`'s own status
  code), message `repr(exc)` (what the in-process runtime puts in its final
  "failed after N attempts: ..." message), `retry_after_ms` from
  `RetryableError.retry_after`, `non_determinism` for a `NonDeterminismError`;
* the machine was closed (Stop, a lost stream, server shutdown, or
  `ReplayRequested`): nothing more is sent, not even End; the RPC ends with an
  OK status and no End.

ReplayRequested (always_replay mode) happens right after a flush was acked: the
machine closes itself and the handler unwinds. The deployment then sends
nothing more and ends the stream without End; the runtime, seeing the stream
end without End after the last Ack in always_replay mode, reloads the journal
and starts the next attempt by replay (a stream that ends without End in other
circumstances is a lost attempt, which the runtime also resumes by replay).

Stop: SUSPENDED, SHUTDOWN (and an unspecified reason) close the machine with
pysdk's `Suspended`, KILLED with `Killed` (an `AttemptClosed` of this module);
the handler task is cancelled and nothing more is journaled. The same happens
when the runtime's side of the stream ends or breaks (closed with `Suspended`).

`barrier` returns at once: the runtime sends nothing (state, completions,
peeked promises, acks) before the commits carrying it are durable, so whatever
the handler has observed is durable already.

Target checks (`check_target`) use the Directory of Start (cached by its bytes):
unknown target 404, keyed target without key 400, a call from an exclusive or
workflow handler to its own key's exclusive or workflow handler 400, with the
in-process runtime's messages. The in-process check that a workflow key has not
been started already (409) needs the store: on a deployment only the runs this
attempt started itself are refused; the runtime checks the store when it commits
the call.
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Optional

import betterproto2
from grpclib import GRPCError
from grpclib.const import Status

from .._entries import Completion
from .._errors import (AttemptClosed, NonDeterminismError, ReplayRequested, RetryableError, Suspended,
                       TerminalError)
from .._machine import Machine
from .._proto.stead.deployment import v1 as pb
from .convert import (child_to_msg, completion_from_msg, directory_of_app, entry_from_msg, entry_to_msg,
                      headers_from_msg, state_from_msg)
from .discovery import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION
from .wire import MalformedMessage, decode

if TYPE_CHECKING:
    from grpclib.server import Stream

    from .._app import App

__all__ = ["InvokeStream", "Killed", "StreamBackend", "Directory", "ended"]

log = logging.getLogger("stead.deployment")

WRITERS = ("exclusive", "workflow")
_CLOSING = (ReplayRequested, Suspended, AttemptClosed)


class Killed(AttemptClosed):
    """The runtime killed the invocation while this attempt ran (Stop KILLED)."""

    _default_message = "the invocation was killed: this attempt stops and journals nothing more"


class Directory:
    """The services a handler may call: name -> (type, {handler: kind})."""

    __slots__ = ("services",)

    def __init__(self, services: dict[str, tuple[str, dict[str, str]]]) -> None:
        self.services = services

    @classmethod
    def parse(cls, data: bytes) -> "Directory":
        msg = decode(data, pb.Directory)
        return cls({s.name: (s.type, dict(s.handlers)) for s in msg.services})


_DIRECTORIES: "OrderedDict[bytes, Directory]" = OrderedDict()
_DIRECTORIES_MAX = 16


def directory(data: bytes) -> Directory:
    """The parsed Directory of these bytes (a few recent ones are kept: it rarely changes)."""
    d = _DIRECTORIES.get(data)
    if d is None:
        d = _DIRECTORIES[data] = Directory.parse(data)
        while len(_DIRECTORIES) > _DIRECTORIES_MAX:
            _DIRECTORIES.popitem(last=False)
    else:
        _DIRECTORIES.move_to_end(data)
    return d


class StreamBackend:
    """The `Backend` of a machine whose runtime is at the other end of an Invoke stream."""

    def __init__(self, stream: "Stream[pb.RuntimeMessage, pb.DeploymentMessage]", start: pb.Start,
                 directory: Directory, caller_kind: str) -> None:
        self.stream = stream
        self.start = start
        self.directory = directory
        self.caller_kind = caller_kind
        self.machine: Optional[Machine] = None
        self.task: Optional[asyncio.Task[Any]] = None
        self._flush_id = 0
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._peek_id = 0
        self._peeks: dict[int, asyncio.Future[Optional[Completion]]] = {}
        self._waiter: Optional[asyncio.Future[None]] = None
        self._workflow_runs: set[tuple[str, str]] = set()
        self._send_lock = asyncio.Lock()
        self._closed = False  # `close` was called

    # ---- sending --------------------------------------------------------------------

    async def send(self, msg: pb.DeploymentMessage) -> None:
        """Send `msg`; a broken stream closes the attempt (the runtime is gone)."""
        try:
            async with self._send_lock:
                await self.stream.send_message(msg)
        except (asyncio.CancelledError, *_CLOSING):
            raise
        except Exception as exc:  # noqa: BLE001 - any transport failure ends the attempt
            log.info("invocation %s: the stream broke while sending: %r", self.start.invocation_id, exc)
            self.close(Suspended)
            raise Suspended() from exc

    def _raise_if_closed(self) -> None:
        m = self.machine
        if m is not None and m.closed is not None:
            raise m.closed()

    # ---- Backend ----------------------------------------------------------------------

    async def flush(self, machine: Machine) -> None:
        entries = machine.take_pending()
        children = machine.take_children()
        if not entries and not children:
            # Nothing new: durable once the flushes already sent are.
            if self._acks:
                await asyncio.gather(*[asyncio.shield(f) for f in self._acks.values()])
            self._raise_if_closed()
            return
        self._flush_id += 1
        flush_id = self._flush_id
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[flush_id] = fut
        try:
            await self.send(pb.DeploymentMessage(flush=pb.Flush(
                flush_id=flush_id, entries=[entry_to_msg(e) for e in entries],
                children=[child_to_msg(c) for c in children])))
            await fut
        finally:
            self._acks.pop(flush_id, None)
        self._raise_if_closed()

    async def wait(self, machine: Machine) -> None:
        self._raise_if_closed()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            await self.send(pb.DeploymentMessage(await_=pb.Await(indexes=list(machine.awaiting))))
            await fut
        finally:
            self._waiter = None

    async def barrier(self, machine: Machine) -> None:
        # The runtime sends nothing before the commits carrying it are durable (state,
        # completions, peeked promises, acks): what this attempt observed is durable.
        return None

    def check_target(self, service: str, handler: str, key: Optional[str], is_send: bool) -> None:
        # The messages are those of runtime/backend.py `Attempt.check_target`.
        found = self.directory.services.get(service)
        kind = None if found is None else found[1].get(handler)
        if found is None or kind is None:
            raise TerminalError(f"handler {service}/{handler} not found", 404)
        keyed = found[0] != "service"
        if keyed and not key:
            raise TerminalError(f"{service} is keyed: a call to {service}/{handler} needs a key", 400)
        if kind == "workflow":
            # The store's check (a run already admitted) is the runtime's; here only the
            # runs this attempt started itself.
            if (service, key or "") in self._workflow_runs:
                raise TerminalError(f"workflow {service}/{key} has already been started", 409)
            self._workflow_runs.add((service, key or ""))
        start = self.start
        if (not is_send and self.caller_kind in WRITERS and kind in WRITERS
                and service == start.service and key == start.key):
            raise TerminalError(
                f"{service}/{key}/{handler} is the caller's own key, which the caller holds: "
                "a call would deadlock; use a send", 400)

    async def peek_promise(self, machine: Machine, name: str) -> Optional[Completion]:
        self._raise_if_closed()
        self._peek_id += 1
        request_id = self._peek_id
        fut: asyncio.Future[Optional[Completion]] = asyncio.get_running_loop().create_future()
        self._peeks[request_id] = fut
        try:
            await self.send(pb.DeploymentMessage(peek_promise=pb.PeekPromise(request_id=request_id, name=name)))
            return await fut
        finally:
            self._peeks.pop(request_id, None)

    # ---- driven by the reader -------------------------------------------------------

    def close(self, reason: type[BaseException]) -> None:
        """End the attempt: the machine journals nothing more, waits fail with `reason`,
        and the handler task is cancelled. Once closed, closing again does nothing."""
        if self._closed:
            return
        self._closed = True
        m = self.machine
        if m is not None:
            m.close(reason)
        for fut in [*self._acks.values(), *self._peeks.values(), self._waiter]:
            if fut is not None and not fut.done():
                fut.set_exception(reason())
                fut.exception()  # retrieved: nobody may be left to await it
        task = self.task
        # Not the task that is closing it (a send that failed, in the handler's task): that
        # one unwinds with the reason it raises, and a cancellation left pending in it would
        # cancel whatever it awaits next.
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    def deliver(self, msg: pb.RuntimeMessage) -> None:
        """One message of the runtime, after Start."""
        which, value_ = betterproto2.which_one_of(msg, "message")
        value: Any = value_
        m = self.machine
        assert m is not None
        if which == "ack":
            fut = self._acks.get(value.flush_id)
            if fut is None:
                raise GRPCError(Status.INVALID_ARGUMENT, f"Ack of flush {value.flush_id}, which is not pending")
            if not fut.done():
                fut.set_result(None)
        elif which == "completion":
            index, c = completion_from_msg(value)
            m.complete(index, *c)
            self._wake()
        elif which == "cancel":
            m.cancel()
            self._wake()
        elif which == "peek_result":
            pfut = self._peeks.get(value.request_id)
            if pfut is None:
                raise GRPCError(Status.INVALID_ARGUMENT,
                                f"PeekResult of request {value.request_id}, which is not pending")
            outcome = None if value.outcome is None else completion_from_msg(value.outcome)[1]
            if not pfut.done():
                pfut.set_result(outcome)
        elif which == "stop":
            reason = Killed if value.reason == pb.StopReason.KILLED else Suspended
            self.close(reason)
        else:
            raise GRPCError(Status.INVALID_ARGUMENT, f"unexpected message {which!r} after Start")

    def _wake(self) -> None:
        fut = self._waiter
        if fut is not None and not fut.done():
            fut.set_result(None)


class InvokeStream:
    """Runs one attempt: `await InvokeStream(app, stream).run()` is the Invoke RPC's body."""

    def __init__(self, app: "App", stream: "Stream[pb.RuntimeMessage, pb.DeploymentMessage]") -> None:
        self.app = app
        self.stream = stream
        self.backend: Optional[StreamBackend] = None
        self.done = asyncio.Event()

    def abort(self) -> None:
        """Server shutdown: drop the attempt (the runtime resumes it by replay)."""
        if self.backend is not None:
            self.backend.close(Suspended)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self.done.set()

    async def _run(self) -> None:
        stream = self.stream
        # The response's headers go first, while the runtime still encodes Start: it reads
        # them meanwhile instead of together with End.
        await stream.send_initial_metadata()
        first = await stream.recv_message()
        if first is None:
            return
        which, start = betterproto2.which_one_of(first, "message")
        if which != "start":
            raise GRPCError(Status.INVALID_ARGUMENT, f"an Invoke stream starts with Start, got {which!r}")
        assert isinstance(start, pb.Start)
        if not MIN_PROTOCOL_VERSION <= start.protocol_version <= MAX_PROTOCOL_VERSION:
            raise GRPCError(Status.FAILED_PRECONDITION,
                            f"Start speaks protocol version {start.protocol_version}; "
                            f"this deployment speaks {MIN_PROTOCOL_VERSION}..{MAX_PROTOCOL_VERSION}")
        spec = self.app.lookup(start.service, start.handler)
        if spec is None:
            # As in-process (Invoker._resume): fail terminally rather than retry forever.
            await self._end(pb.End(terminal=pb.Failure(
                code=404, message=f"handler {start.service}/{start.handler} is not registered")))
            return
        try:
            value = spec.parse_input(start.input)
        except Exception as exc:  # noqa: BLE001 - an input the handler cannot parse
            # What the runtime's ingress answers for an in-process handler (runtime/ingress.py).
            await self._end(pb.End(terminal=pb.Failure(
                code=400, message=f"invalid input for {start.service}/{start.handler}: {exc}")))
            return
        data = start.directory or directory_of_app(self.app)
        backend = self.backend = StreamBackend(stream, start, directory(data), spec.kind)
        machine = Machine(
            invocation_id=start.invocation_id, key=start.key, handler_kind=spec.kind,
            state=state_from_msg(start.state), replay=[entry_from_msg(e) for e in start.journal],
            backend=backend, headers=headers_from_msg(start.headers), attempt=start.retry_count,
            always_replay=start.always_replay, body=start.input,
            completions=dict(completion_from_msg(c) for c in start.completions),
            cancelled=start.cancelled, idempotency_key=start.idempotency_key,
        )
        backend.machine = machine
        # A Session's SubStream hands the runtime's messages over as they come (`attach`),
        # and the handler runs in this task; an Invoke stream is read by a task of its
        # own, and the handler runs in another.
        attach = getattr(stream, "attach", None)
        if attach is not None:
            end = await self._inline(backend, spec, machine, value, attach)
            if end is not None and machine.closed is None:
                await self._end(end)
            return
        loop = asyncio.get_running_loop()
        task = backend.task = loop.create_task(self._attempt(spec, machine, value))
        reader = loop.create_task(self._read(backend))
        try:
            await asyncio.wait((task,))
        except asyncio.CancelledError:
            # The server is closing (or the RPC was cancelled): drop the attempt.
            backend.close(Suspended)
            await asyncio.wait((task,))
            raise
        finally:
            reader.cancel()
            try:
                await reader
            except BaseException:  # noqa: BLE001 - its end is of no interest any more
                pass
            machine.attempt_ended()
        if task.cancelled():
            return
        end = task.result()
        if end is not None and machine.closed is None:
            await self._end(end)

    async def _inline(self, backend: StreamBackend, spec: Any, machine: Machine, value: Any,
                      attach: Any) -> Optional[pb.End]:
        """Run the handler in this task (a Session's attempt): `_attempt`'s End, or None.

        Closing the attempt (Stop, the session's end, a shutdown) cancels this task while
        the handler runs, as it cancels the handler's own task on an Invoke stream; the
        handler unwinds and `_attempt` returns None. That cancellation is the close's, so
        it is taken back (`uncancel`); a cancellation from elsewhere (the server's, the
        loop's) is not swallowed. Once the handler is done, a close cancels nothing."""
        task = asyncio.current_task()
        assert task is not None
        attach(backend)  # what came while Start was read: a Stop among it closes at once
        if machine.closed is not None:
            machine.attempt_ended()
            return None
        backend.task = task
        try:
            # A cancellation from outside, with the machine open, is raised: `_attempt`
            # closes the machine first.
            end = await self._attempt(spec, machine, value)
        finally:
            backend.task = None
            machine.attempt_ended()
        if machine.closed is not None and task.cancelling():
            # The close's cancellation (one: a closed backend cancels nothing more); if
            # another was asked for besides it, that one is raised.
            if task.uncancel() > 0:
                raise asyncio.CancelledError()
        return end

    async def _end(self, end: pb.End) -> None:
        try:
            await self.stream.send_message(pb.DeploymentMessage(end=end))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the runtime is gone; it resumes by replay
            log.info("the stream broke while sending End: %r", exc)

    async def _attempt(self, spec: Any, machine: Machine, value: Any) -> Optional[pb.End]:
        """Run the handler; the End to send, or None when the attempt ends without one."""
        try:
            output = await spec.invoke(machine, value)
        except BaseException as exc:
            closed = machine.closed or (type(exc) if isinstance(exc, _CLOSING) else None)
            if closed is not None:
                if closed is not machine.closed:
                    machine.close(closed)
                return None
            if isinstance(exc, TerminalError):
                return pb.End(entries=[entry_to_msg(e) for e in machine.take_pending()],
                              children=[child_to_msg(c) for c in machine.take_children()],
                              terminal=pb.Failure(code=exc.status_code, message=exc.message))
            if isinstance(exc, Exception):
                retry_after_ms = None
                code = 500
                if isinstance(exc, RetryableError):
                    code = exc.status_code
                    if exc.retry_after is not None:
                        retry_after_ms = max(0, int(exc.retry_after.total_seconds() * 1000))
                if isinstance(exc, NonDeterminismError):
                    log.error("invocation %s: %s", machine.invocation_id, exc)
                else:
                    log.warning("invocation %s: attempt failed: %r", machine.invocation_id, exc)
                return pb.End(retryable=pb.Failure(code=code, message=repr(exc), retry_after_ms=retry_after_ms,
                                                   non_determinism=isinstance(exc, NonDeterminismError)))
            machine.close(Suspended)
            raise
        return pb.End(entries=[entry_to_msg(e) for e in machine.take_pending()],
                      children=[child_to_msg(c) for c in machine.take_children()],
                      output=output)

    async def _read(self, backend: StreamBackend) -> None:
        """Dispatch the runtime's messages until the stream ends; its end (or a protocol
        error) ends the attempt."""
        try:
            while True:
                msg = await self.stream.recv_message()
                if msg is None:
                    break
                backend.deliver(msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a protocol error or a broken stream
            ended(backend, exc)
            return
        backend.close(Suspended)


def ended(backend: StreamBackend, exc: BaseException) -> None:
    """A protocol error, or a broken stream, ends the attempt (logged)."""
    if isinstance(exc, GRPCError):
        log.warning("invocation %s: %s", backend.start.invocation_id, exc.message)
    elif isinstance(exc, MalformedMessage):
        log.warning("invocation %s: the runtime sent a malformed message: %s", backend.start.invocation_id, exc)
    else:
        log.info("invocation %s: the stream broke: %r", backend.start.invocation_id, exc)
    backend.close(Suspended)
