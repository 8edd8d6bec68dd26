"""The runtime's side of an attempt whose handler runs in a deployment.

`RemoteMachine` stands where pysdk's `Machine` stands for an in-process handler:
the invoker runs it in the same attempt loop, with the same `Attempt` as its
backend, and it answers the invoker and the `Attempt` through the same surface
(`state`, `take_pending`, `take_children`, `complete`, `cancel`, `close`,
`closed`, `awaiting`). Its `run` opens one stream to the deployment (a SubStream of
the deployment's Session, conversed on in the attempt's own task; or an Invoke
stream of its own, in a task of its own, for a deployment that speaks protocol
version 1 only: runtime/sessions.py) and turns what the deployment's machine sends
into what the in-process machine would have done:

    Flush       -> Attempt.flush (one commit: journal, state effects, callees),
                   then Ack once durable
    Await       -> the suspension rule of Attempt.wait: waiting longer than the
                   threshold (at once in forced-replay mode) suspends the
                   invocation in the store and sends Stop(SUSPENDED)
    PeekPromise -> the store's peek, then PeekResult
    End         -> the attempt's outcome (output, TerminalError, or a retryable
                   failure), with the entries and callees of the completing commit

Completions and cancellation reach the deployment as the invoker delivers them.
A stream that breaks, a deployment that does not answer, or a malformed message
fails the attempt with an ordinary error: the retry policy applies and the next
attempt resumes from the journal, which holds only what was committed.

The barrier (DESIGN.md): every message to the deployment leaves through
`_deliver` (Start, and on a Session the conversation's own answers, from the
conversation's task; the rest in order from one sender task, started with the first
of them), which first waits until everything the attempt has observed is durable
(`commits.wait(attempt.observed)`): the eager state of Start, peeked promises,
and, because they are delivered only after their commit is, completions and acks.
So a step body that runs on the deployment never gets ahead of an fsync.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Optional

import betterproto2
import grpclib.exceptions
from pysdk._deployment.convert import (child_from_msg, completion_from_msg, completion_to_msg, entry_from_msg,
                                       entry_to_msg, headers_to_msg)
from pysdk._commands import REFUSED, label
from pysdk._entries import ATTACH_INVOCATION, CALL, CLEAR_ALL, CLEAR_STATE, GET_STATE, RUN, SEND, SET_STATE
from pysdk._ids import child_invocation_id
from pysdk._errors import NonDeterminismError, ReplayRequested, RetryableError, Suspended, TerminalError
from pysdk._machine import Child
from pysdk._proto.stead.deployment import v1 as pb
from runtime import _core
from runtime.backend import Killed, Paused, Refused, refusal
from runtime.deployments import Catalog, Deployment
from runtime.sessions import DeploymentError, MessageTooLarge, SubStream, UndecodableMessage, _refusal

if TYPE_CHECKING:
    from runtime.backend import Attempt
    from runtime.invoker import Invoker

log = logging.getLogger("stead.remote")

# Why an attempt was closed -> what the deployment is told (it drops the coroutine in
# every case; anything else, e.g. an abort timeout or a shutdown, is SHUTDOWN). A paused
# invocation is, for the deployment, a suspended one: resumed later by replay.
_STOP_REASONS = {Suspended: pb.StopReason.SUSPENDED, Killed: pb.StopReason.KILLED, Refused: pb.StopReason.KILLED,
                 Paused: pb.StopReason.SUSPENDED}


# Journal entry kinds a deployment may send (pysdk/_entries.py, stead.v1.EntryKind).
_KINDS = frozenset(range(GET_STATE, ATTACH_INVOCATION + 1))


class RemoteRetryable(RetryableError):
    """The handler raised a retryable error in the deployment; its message is that
    error's repr, which is how the runtime names it (as it does an in-process error)."""

    def __repr__(self) -> str:
        return self.message


class NonDeterminism(NonDeterminismError):
    """The deployment's journal no longer matches its code (retried, logged at error level)."""


class Directory:
    """The serialized Directory of the catalog sent in Start (rebuilt when it changes)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._bytes: Optional[bytes] = None

    def invalidate(self) -> None:
        self._bytes = None

    def bytes(self) -> bytes:
        if self._bytes is None:
            services = [pb.DirectoryService(name=svc.name, type=svc.service_type,
                                            handlers={h: spec.kind for h, spec in svc.handlers.items()})
                        for svc in self.catalog.services.values()]
            self._bytes = bytes(pb.Directory(services=services))
        return self._bytes


class RemoteMachine:
    """See the module docstring."""

    def __init__(self, invoker: "Invoker", attempt: "Attempt", dep: Deployment, inv: _core.Invocation,
                 state: dict[str, bytes], journal: list, completions: Optional[dict]) -> None:
        self.invoker = invoker
        self.attempt = attempt
        self.dep = dep
        self.inv = inv
        # The key's state as the handler's committed entries leave it (the cache gets it).
        self.state: dict[str, bytes] = dict(state)
        self.decoded: dict[str, Any] = {}  # nothing is lent to a remote handler
        self.written: dict[str, Any] = {}
        self.awaiting: list[int] = []
        self._journal = journal
        self._next_index = len(journal)  # the journal index of the next entry taken
        self._completions = completions or {}
        self._pending: list[Any] = []
        self._children: list[Child] = []
        self._closed: Optional[type[BaseException]] = None
        self._out: asyncio.Queue[Optional[pb.RuntimeMessage]] = asyncio.Queue()
        self._task: Optional[asyncio.Task[Any]] = None
        self._stream: Any = None  # once Start has gone
        self._sub: Optional[SubStream] = None  # on a Session
        self._sender: Optional[asyncio.Task[None]] = None
        self._suspender: Optional[asyncio.Task[None]] = None

    # ---- what the invoker and the Attempt read and call (pysdk Machine's surface) -----

    @property
    def closed(self) -> Optional[type[BaseException]]:
        return self._closed

    def take_pending(self) -> list[Any]:
        pending, self._pending = self._pending, []
        return pending if self._closed is None else []

    def take_children(self) -> list[Child]:
        children, self._children = self._children, []
        return children if self._closed is None else []

    def complete(self, index: int, value: Optional[bytes], code: int, message: Optional[str]) -> None:
        self._stop_suspender()
        self._send(pb.RuntimeMessage(completion=completion_to_msg(index, (value, code, message))))

    def cancel(self) -> None:
        self._stop_suspender()
        self._send(pb.RuntimeMessage(cancel=pb.Cancel()))

    def close(self, reason: type[BaseException]) -> None:
        if self._closed is not None:
            return
        self._closed = reason
        self._pending, self._children = [], []
        self._stop_suspender()
        stop = _STOP_REASONS.get(reason, pb.StopReason.SHUTDOWN)
        self._send(pb.RuntimeMessage(stop=pb.Stop(reason=stop)))
        self._out.put_nowait(None)  # the sender ends the stream after the Stop
        task = self._task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()  # `_converse` settles `run`'s outcome with `reason`
        sub = self._sub
        if sub is not None:
            sub.deliver(reason())  # `_run_on`'s receive raises it

    def attempt_ended(self) -> None:
        pass

    def _send(self, msg: pb.RuntimeMessage) -> None:
        if self._closed is None or msg.stop is not None:
            self._out.put_nowait(msg)
            self._start_sender()

    # ---- the stream ------------------------------------------------------------------

    async def run(self) -> bytes:
        """The attempt's output; TerminalError, or another exception to retry; the close
        reason if the attempt was closed (suspended, killed).

        On a Session (`_run_on`), in the attempt's own task. On an Invoke stream, the
        stream lives in a task of its own (`_converse`), which settles `outcome` as soon as
        End arrives and then ends the stream (our end, the deployment's trailers) while
        the invoker already commits the outcome: the stream's teardown is not on the
        invocation's path."""
        sub = self.invoker.remote_channels.session_sub(self.dep)
        if sub is not None:
            return await self._run_on(sub)
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[bytes] = loop.create_future()
        task = self._task = self.invoker.remote_channels.spawn(self._converse(outcome))
        try:
            return await outcome
        except asyncio.CancelledError:
            task.cancel()  # the invocation itself was cancelled (shutdown), or the stream
            raise

    async def _run_on(self, sub: SubStream) -> bytes:
        """The conversation on a Session's SubStream, in the attempt's task: no task of its
        own, and nothing to tear down but the SubStream. A close wakes the receive with its
        reason (`close`); a cancellation of the attempt's task (a shutdown, an abort) is
        raised as it is, the invoker telling by `closed` which it was."""
        self._sub = sub
        try:
            # The session opened (the first attempt on it waits for that) before Start is
            # built and passes the barrier, which drops it if the attempt was closed meanwhile.
            await sub.session.opened()
            if self._closed is not None:
                raise self._closed()
            await self._begin(sub)
            try:
                return await self._receive(sub)
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - what `run` raises for it
                failure = self._failure(exc)
                if failure is exc:
                    raise
                raise failure from None
        finally:
            self._stream = None
            self._stop_suspender()
            sender = self._sender
            if sender is not None and not sender.done():
                self._out.put_nowait(None)  # it ends once what is queued (a Stop, say) has gone
            sub.leave()

    async def _converse(self, outcome: "asyncio.Future[bytes]") -> None:
        try:
            async with self.invoker.remote_channels.open(self.dep) as stream:
                await self._begin(stream)
                try:
                    self._settle(outcome, await self._receive(stream))
                except grpclib.exceptions.StreamTerminatedError as exc:
                    self._settle(outcome, None, _refusal(stream) or exc)
                except BaseException as exc:  # noqa: BLE001 - settled here, teardown below
                    self._settle(outcome, None, exc)
                finally:
                    await self._end_stream(stream)
        except BaseException as exc:  # noqa: BLE001 - the outcome, unless settled already
            if outcome.done():
                if not isinstance(exc, asyncio.CancelledError):
                    log.debug("invocation %s: ending the stream failed: %r", self.inv.id, exc)
            else:
                self._settle(outcome, None, exc)
        finally:
            self._stop_suspender()
            sender = self._sender
            if sender is not None and not sender.done():
                sender.cancel()

    async def _begin(self, stream: Any) -> None:
        """Send Start at once (through the barrier, as every message goes); what follows
        it goes through the sender's queue from now on. A failed send is not raised here:
        the receive, next, tells the attempt's failure (the session's, or the status of a
        deployment that refused the call and reset the stream, a trailers-only
        UNAUTHENTICATED say), which is the one that says what happened."""
        try:
            await self._deliver(stream, pb.RuntimeMessage(start=self._start()))
        except _core.StorageError:
            raise  # the barrier's wait failed: nothing was sent
        except Exception as exc:  # noqa: BLE001 - told by the receive
            log.debug("deployment %s: sending Start failed: %r", self.dep.id, exc)
        self._stream = stream
        if not self._out.empty():
            self._start_sender()

    async def _end_stream(self, stream: Any) -> None:
        """End our side of the stream (grpclib requires it of an Invoke stream before the
        call ends) after whatever is queued for it; without a sender (nothing was sent after
        Start, as for most invocations), at once."""
        sender = self._sender
        if sender is None and self._out.empty():
            self._stream = None  # nothing is sent after this (a late close queues its Stop only)
            try:
                await stream.end()
            except Exception:  # noqa: BLE001 - the deployment already closed the stream
                pass
            return
        self._out.put_nowait(None)
        self._start_sender()
        self._stream = None
        sender = self._sender
        assert sender is not None
        if not sender.done():
            await asyncio.wait((sender,), timeout=5.0)
        if sender.done() and not sender.cancelled() and sender.exception() is not None:
            # The stream failed under the sender too (e.g. reset after a refusal):
            # the receiver's error is the one that tells what happened.
            log.debug("deployment %s: sending failed: %r", self.dep.id, sender.exception())

    def _start_sender(self) -> None:
        """The task that sends what follows Start, in order, started with the first of it."""
        if self._sender is None and self._stream is not None:
            self._sender = asyncio.get_running_loop().create_task(self._sending(self._stream))

    def _settle(self, outcome: "asyncio.Future[bytes]", output: Optional[bytes],
                exc: Optional[BaseException] = None) -> None:
        """Give `run` its result, or the exception it raises for `exc` (see `_failure`)."""
        if outcome.done():
            return
        if exc is None:
            assert output is not None
            outcome.set_result(output)
            return
        failure = self._failure(exc)
        if failure is None:
            outcome.cancel()
        else:
            outcome.set_exception(failure)

    def _failure(self, exc: BaseException) -> Optional[BaseException]:
        """What `run` raises for an exception of the stream: the close reason once the
        attempt was closed; a DeploymentError for a failed, broken or unreachable
        stream; None for a cancellation without a close reason."""
        if isinstance(exc, asyncio.CancelledError):
            return None if self._closed is None else self._closed()
        if isinstance(exc, grpclib.exceptions.GRPCError):
            if self._closed is not None:
                return self._closed()
            return DeploymentError(f"deployment {self.dep.id} ({self.dep.uri}) failed the invocation: "
                                   f"{exc.status.name}: {exc.message}")
        if isinstance(exc, (MessageTooLarge, UndecodableMessage)):
            log.error("invocation %s: deployment %s (%s) sent %s", self.inv.id, self.dep.id, self.dep.uri, exc)
            return type(exc)(f"deployment {self.dep.id} sent {exc}")
        if isinstance(exc, (OSError, grpclib.exceptions.StreamTerminatedError, ConnectionError)):
            if self._closed is not None:
                return self._closed()
            return DeploymentError(f"deployment {self.dep.id} ({self.dep.uri}) is unreachable or broke the "
                                   f"stream: {exc or type(exc).__name__}")
        return exc

    def _start(self) -> pb.Start:
        inv = self.inv
        return pb.Start(
            protocol_version=self.dep.protocol_version, invocation_id=inv.id, service=inv.service,
            handler=inv.handler, key=inv.key, input=inv.input, headers=headers_to_msg(inv.headers),
            state=[pb.StateValue(name=k, value=v) for k, v in self.state.items()],
            journal=[entry_to_msg(e) for e in self._journal],
            completions=[completion_to_msg(i, c) for i, c in self._completions.items()],
            retry_count=inv.retry_count, always_replay=self.invoker.always_replay,
            cancelled=inv.cancel_requested, idempotency_key=inv.idempotency_key,
            directory=self.invoker.directory.bytes())

    async def _sending(self, stream: Any) -> None:
        while True:
            msg = await self._out.get()
            if msg is None:
                try:
                    await stream.end()
                except Exception:  # noqa: BLE001 - the deployment already closed the stream
                    pass
                return
            await self._deliver(stream, msg)

    async def _deliver(self, stream: Any, msg: pb.RuntimeMessage) -> None:
        """The one way a message reaches the deployment, through the barrier: nothing
        leaves before what the attempt has seen is durable."""
        await self.invoker.commits.wait(self.attempt.observed)
        if self._closed is not None and msg.stop is None:
            return  # closed while it waited: a closed attempt sends nothing but its Stop
        await stream.send_message(msg)

    async def _reply(self, stream: Any, msg: pb.RuntimeMessage) -> None:
        """An answer of the conversation to the deployment (an Ack, a PeekResult). On a
        Session, sent from the conversation's own task, through the barrier as ever,
        without the sender's turn of the loop: a step's Ack is on the handler's path. It
        may pass what the sender has queued (a Completion, say), which is as good: each
        message waits for its own barrier, and the deployment matches each by its id. A
        failed send is the session's failure, which the receive raises next. On an
        Invoke stream, through the sender, the one writer of the stream."""
        if stream is not self._sub:
            self._send(msg)
            return
        if self._closed is not None:
            return
        try:
            await self._deliver(stream, msg)
        except _core.StorageError:
            raise
        except Exception as exc:  # noqa: BLE001 - told by the receive
            log.debug("deployment %s: a reply was not sent: %r", self.dep.id, exc)

    async def _receive(self, stream: Any) -> bytes:
        attempt = self.attempt
        while True:
            msg = await stream.recv_message()
            if self._closed is not None:
                raise self._closed()
            if msg is None:
                if self.invoker.always_replay:
                    raise ReplayRequested()  # the deployment's machine asked for a replay
                raise DeploymentError(f"deployment {self.dep.id} ended the stream without an outcome")
            self._stop_suspender()
            which, body = betterproto2.which_one_of(msg, "message")
            if which == "flush":
                refused = self._take(body.entries, body.children)
                await attempt.flush(self)  # type: ignore[arg-type]
                if refused:
                    self.close(ReplayRequested)
                    raise ReplayRequested()
                await self._reply(stream, pb.RuntimeMessage(ack=pb.Ack(flush_id=body.flush_id)))
            elif which == "await_":
                self.awaiting = list(body.indexes)
                self._suspender = asyncio.create_task(self._suspend_later())
                self._mark_waiting()
            elif which == "peek_promise":
                outcome, seq = self.invoker.store.peek_promise(self.inv.service, self.inv.key, body.name)
                attempt.observe(seq)
                await self._reply(stream, pb.RuntimeMessage(peek_result=pb.PeekResult(
                    request_id=body.request_id, outcome=None if outcome is None else completion_to_msg(0, outcome))))
            elif which == "end":
                return await self._end(body)
            else:
                raise DeploymentError(f"deployment {self.dep.id} sent an unknown message ({which})")

    def _malformed(self, what: str) -> "DeploymentError":
        """A message that breaks the protocol: the attempt fails (retried) before anything
        of it is written; logged at error level (a deployment bug an operator must see)."""
        log.error("invocation %s: deployment %s (%s) sent a malformed message: %s", self.inv.id, self.dep.id,
                  self.dep.uri, what)
        return DeploymentError(f"deployment {self.dep.id} sent a malformed message: {what}")

    def _take(self, entries: list[pb.Entry], children: list[pb.Child]) -> bool:
        """Entries and callees to commit next, checked before anything is written, and
        their effects on the live state view. True if a call was refused (see `_refuse`)."""
        try:
            taken = [entry_from_msg(e) for e in entries]
            kids = [child_from_msg(c) for c in children]
        except (TypeError, ValueError) as exc:
            raise self._malformed(f"an undecodable entry: {exc}") from None
        base = self._next_index
        self._check(taken, kids, base)
        refused = self._refuse(taken, kids, base)
        self._next_index += len(taken)
        state = self.state
        for kind, name, value, _, _ in taken:
            if kind == SET_STATE and name is not None and value is not None:  # `_check`: always
                state[name] = value
            elif kind == CLEAR_STATE and name is not None:
                state.pop(name, None)
            elif kind == CLEAR_ALL:
                state.clear()
        self._pending.extend(taken)
        self._children.extend(kids)
        return refused

    def _check(self, taken: list[Any], kids: list[Child], base: int) -> None:
        """The protocol's rules for the entries and callees of one commit (before any is
        written): known entry kinds, a SET_STATE with its name and value, and each CALL or
        SEND entry of the commit with exactly one callee, whose id is the entry's value and
        the id pysdk derives from the caller and the entry's index (a callee with another
        index or id would start an invocation, or complete an entry, that is not the one
        journaled)."""
        for i, (kind, name, value, _, _) in enumerate(taken):
            if kind not in _KINDS:
                raise self._malformed(f"entry {base + i} has an unknown kind {kind}")
            if kind == SET_STATE and (name is None or value is None):
                raise self._malformed(f"entry {base + i}: SET_STATE without name or value")
        claimed: set[int] = set()
        for child in kids:
            index, callee_id, is_send = child[0], child[1], child[9]
            pos = index - base
            if not 0 <= pos < len(taken):
                raise self._malformed(f"a callee of entry {index}, not among the entries of its flush "
                                      f"({base}..{base + len(taken) - 1})")
            kind, _, value, _, _ = taken[pos]
            if kind != (SEND if is_send else CALL):
                raise self._malformed(f"a callee of entry {index}, which is not a {'SEND' if is_send else 'CALL'}")
            if (index in claimed or value is None or value.decode(errors="replace") != callee_id
                    or callee_id != child_invocation_id(self.inv.id, index)):
                raise self._malformed(f"a callee of entry {index} whose invocation id {callee_id!r} is not "
                                      "that of the entry")
            claimed.add(index)
        for i, (kind, *_rest) in enumerate(taken):
            if kind in (CALL, SEND) and base + i not in claimed:
                raise self._malformed(f"entry {base + i}, a {'CALL' if kind == CALL else 'SEND'}, without its callee")

    def _refuse(self, taken: list[Any], kids: list[Child], base: int) -> bool:
        """The runtime's own check of each callee (Attempt.check_target): the deployment
        checks targets against the Directory it was sent, but whether a workflow key has
        already run is in the store. In-process a refused call raises TerminalError where
        the handler makes it, journaled as a failed RUN; here the call was journaled
        already, so the entries from the refused call on are replaced by that RUN, and the
        attempt is replayed: the handler then meets the refusal where it made the call,
        as in-process. (A step journaled after the call in the same flush has run once.)"""
        for child in kids:
            index, _, service, handler, key, _, _, _, _, is_send = child
            try:
                self.attempt.check_target(service, handler, key, is_send)
            except TerminalError as exc:
                del taken[index - base:]  # among them: `_check` ran first
                taken.append((RUN, REFUSED + label(service, handler, key), None, exc.status_code, exc.message))
                kids[:] = [c for c in kids if c[0] < index]
                return True
        return False

    async def _end(self, end: pb.End) -> bytes:
        if self._take(end.entries, end.children):
            await self.attempt.flush(self)  # type: ignore[arg-type]
            self.close(ReplayRequested)
            raise ReplayRequested()
        which, outcome = betterproto2.which_one_of(end, "outcome")
        if which == "output":
            return bytes(outcome)
        if which == "terminal":
            raise TerminalError(outcome.message, outcome.code or 500)
        if which == "retryable":
            self._pending, self._children = [], []  # a failed attempt commits nothing more
            if outcome.non_determinism:
                raise NonDeterminism(outcome.message)
            exc = RemoteRetryable(outcome.message)
            if outcome.retry_after_ms is not None:
                exc.retry_after = timedelta(milliseconds=outcome.retry_after_ms)
            raise exc
        raise DeploymentError(f"deployment {self.dep.id} ended without an outcome")

    # ---- suspension (Attempt.wait's rule, for a handler that waits remotely) ----------

    def _mark_waiting(self) -> None:
        """While the deployment awaits, the attempt waits as an in-process one does in
        `Attempt.wait`: the watchdog leaves it alone (the inactivity timeout suspends it
        through `_suspend_later`, it does not abort it)."""
        self.attempt.waiting_remotely()

    def _stop_suspender(self) -> None:
        self.attempt.resumed_remotely()
        task = self._suspender
        if task is not None:
            self._suspender = None
            if task is not asyncio.current_task():
                task.cancel()

    async def _suspend_later(self) -> None:
        invoker = self.invoker
        suspend_s = self.attempt.limits.suspend_s
        timeout = 0.0 if invoker.always_replay else (
            invoker.suspend_after_s if suspend_s is None else suspend_s)
        if timeout > 0:
            await asyncio.sleep(timeout)
        if self._closed is not None:
            return
        try:
            suspended = invoker.store.suspend(self.inv, list(self.awaiting))
        except _core.NotRunningError:  # killed (its WAKE_KILL is on its way) or paused meanwhile
            self.attempt.close(refusal(self.inv))
            return
        if suspended:
            self.attempt.close(Suspended)
        # else a completion is on its way (committed, not yet delivered): keep waiting

