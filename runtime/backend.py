"""`Attempt`: the runtime side of one attempt of one invocation, as the pysdk
`Machine` sees it (its `Backend`): durable points, waiting for completions,
suspension, target checks and promise peeks.

Waiting: the machine calls `wait()` when its handler awaits a durable future
that is not complete. The invoker delivers completions and cancellations by
calling `machine.complete()` / `machine.cancel()` and then `notify()`. A wait
longer than the suspension threshold (at once in forced-replay mode) drops the
coroutine: the store marks the invocation suspended unless a completion is
already on its way, and `Suspended` unwinds the handler; the next completion
resumes it by replay.

The durability barrier: every read an attempt makes of data that may not be
durable yet (the cached state of its key, a promise peek) tells the commit it
depends on, and the attempt remembers the highest (`observe`). Before anything
leaves the process on its behalf (the body of a `ctx.run`: `barrier`) it waits
for that commit; its own durable points and its completion come later in
commit order, so their waits cover it too. Waiting costs nothing once durable.

Closing: when the attempt is suspended, killed, paused or must replay, its machine
is closed first (`Machine.close`), so nothing the handler does while it unwinds
is journaled, and it leaves `Invoker.live` at once, so a wake-up for it that
arrives meanwhile starts the next attempt instead of being dropped. A store
that refuses the attempt's progress (it is no longer running) closes it too.

Pausing (Restate's pause, `Store.pause`): the store marks the invocation paused at
once and the invoker closes its attempt when the WAKE_PAUSE arrives (`pause`), like
a suspension. Until then the store refuses the attempt's writes, and a step whose
body is about to run checks the status first (`barrier`): a paused invocation runs
nothing more. A resume replays it from its journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, NoReturn, Optional

from pysdk._errors import AttemptClosed, Suspended, TerminalError
from pysdk._machine import Child, Machine
from runtime import _core
from runtime.ids import now_ms
from runtime.watchdog import NO_LIMITS, Limits

if TYPE_CHECKING:
    from runtime.invoker import Invoker
    from runtime.metrics import HandlerStats
    from runtime.tracing import AttemptTrace

log = logging.getLogger("stead.invoker")

WRITERS = (_core.KIND_EXCLUSIVE, _core.KIND_WORKFLOW)
# pysdk handler kinds -> the core's invocation kinds.
KINDS = {"service": _core.KIND_SERVICE, "exclusive": _core.KIND_EXCLUSIVE,
         "shared": _core.KIND_SHARED, "workflow": _core.KIND_WORKFLOW}


class Killed(AttemptClosed):
    """The invocation was killed while running: stop at once, write nothing more."""


class Refused(AttemptClosed):
    """The store refused the attempt's progress: the invocation is no longer running
    (killed, completed) in the store. The attempt stops and writes nothing more."""


class Paused(AttemptClosed):
    """The invocation was paused (`Store.pause`, admin PATCH /invocations/{id}/pause): the
    attempt stops and writes nothing more, like a suspended one; a resume replays it."""


def refusal(inv: _core.Invocation) -> type[AttemptClosed]:
    """Why the store refused an attempt of `inv`: paused, or no longer running otherwise."""
    return Paused if inv.status == _core.STATUS_PAUSED else Refused


class Attempt:
    __slots__ = ("invoker", "inv", "machine", "killed", "observed", "limits", "last_progress", "aborting_since",
                 "task", "ended", "_workflow_runs", "_waiter", "started", "trace", "stats")

    def __init__(self, invoker: "Invoker", inv: _core.Invocation, limits: Limits = NO_LIMITS) -> None:
        self.invoker = invoker
        self.inv = inv
        self.machine: Optional[Machine] = None
        self.killed = False
        # The highest commit whose data this attempt has seen (see the module docstring).
        self.observed = 0
        # Inactivity and abort timeouts (runtime/watchdog.py): when it last made progress,
        # since when it is asked to stop, and the task to cancel if it does not.
        self.limits = limits
        self.started = self.last_progress = time.monotonic()  # started: for runtime/metrics.py
        self.aborting_since: Optional[float] = None
        self.task: Optional[asyncio.Task[Any]] = None
        self.ended = False
        # Workflow keys whose run this attempt has started (see check_target).
        self._workflow_runs: set[tuple[str, str]] = set()
        self._waiter: Optional[asyncio.Future[None]] = None
        # Its spans, when tracing is on (runtime/tracing.py); its handler's counters (runtime/metrics.py).
        self.trace: Optional["AttemptTrace"] = None
        self.stats: Optional["HandlerStats"] = None

    @property
    def waiting(self) -> bool:
        """Whether it waits for a completion (see `wait`)."""
        return self._waiter is not None

    def waiting_remotely(self) -> None:
        """Its handler, in a deployment, waits for a completion (runtime/remote.py): the
        attempt counts as waiting, as in `wait`, so the watchdog leaves it to the suspension
        rule; `notify` and `kill` resolve the marker."""
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        marker.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody awaits it
        self._waiter = marker

    def resumed_remotely(self) -> None:
        """Its remote handler goes on: no longer waiting, and the inactivity clock restarts."""
        if self._waiter is not None:
            self._waiter = None
            self.last_progress = time.monotonic()

    def observe(self, seq: int) -> None:
        if seq > self.observed:
            self.observed = seq

    def close(self, reason: type[BaseException]) -> None:
        """End this attempt: its machine journals nothing more, and the invocation is no
        longer in memory as far as wakes are concerned."""
        if self.machine is not None:
            self.machine.close(reason)
        live = self.invoker.live
        if live.get(self.inv.id) is self:
            del live[self.inv.id]

    # ---- Backend ----------------------------------------------------------------------

    async def flush(self, machine: Machine) -> None:
        if self.killed:
            raise Killed()
        invoker = self.invoker
        inv = self.inv
        children = machine.take_children()
        entries = machine.take_pending()
        trace = self.trace
        if trace is not None:
            trace.journaled(entries)
        for entry in entries:
            if entry[0] == _core.ENTRY_ATTACH_INVOCATION and entry[1]:
                invoker.persist_live(entry[1])  # a target not yet persisted is unknown to the store
        try:
            seq = invoker.store.progress(inv, entries, self.build_children(children) if children else None)
        except _core.NotRunningError as exc:
            reason = refusal(inv)
            if reason is Paused:  # paused before its WAKE_PAUSE arrived: expected, not a warning
                log.info("invocation %s: paused, its progress is not journaled", inv.id)
            else:
                log.warning("invocation %s: the store refused its progress: %s", inv.id, exc)
            self.close(reason)
            raise reason() from None
        except _core.StorageError as exc:
            self._store_failed(exc)
        if inv.kind in WRITERS:
            invoker.cache.put(inv.service, inv.key, dict(machine.state), seq)
        invoker.after_write()
        await self._durable(seq)
        if trace is not None:
            trace.durable()
        self.last_progress = time.monotonic()

    async def barrier(self, machine: Machine) -> None:
        if self.trace is not None:
            self.trace.step_starting()
        await self._durable(self.observed)
        # A step's body is an external effect: none runs for a paused invocation, even before
        # its WAKE_PAUSE closes this attempt (the status is the store's, queued or durable).
        if self.inv.status == _core.STATUS_PAUSED:
            self.close(Paused)
            raise Paused()

    async def _durable(self, seq: int) -> None:
        try:
            await self.invoker.commits.wait(seq)
        except _core.StorageError as exc:
            self._store_failed(exc)
        if self.killed:
            raise Killed()

    def _store_failed(self, exc: BaseException) -> NoReturn:
        # Not an error the handler may catch: the attempt ends, the server stops.
        self.close(Refused)
        self.invoker.storage_failed(exc)
        raise Refused() from exc

    async def wait(self, machine: Machine) -> None:
        if self.killed:
            raise Killed()
        invoker = self.invoker
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiter = fut
        try:
            suspend_s = self.limits.suspend_s
            timeout = 0.0 if invoker.always_replay else (
                invoker.suspend_after_s if suspend_s is None else suspend_s)
            if timeout > 0:
                done, _ = await asyncio.wait((fut,), timeout=timeout)
                if done:
                    return fut.result()
            try:
                suspended = invoker.store.suspend(self.inv, list(machine.awaiting))
            except _core.NotRunningError:  # killed (its WAKE_KILL is on its way) or paused meanwhile
                reason = refusal(self.inv)
                self.close(reason)
                raise reason() from None
            if suspended:
                self.close(Suspended)
                raise Suspended()
            # A completion is on its way (committed, not yet delivered): keep waiting.
            await fut
        finally:
            self._waiter = None

    def check_target(self, service: str, handler: str, key: Optional[str], is_send: bool) -> None:
        spec = self.invoker.app.lookup(service, handler)
        if spec is None:
            raise TerminalError(f"handler {service}/{handler} not found", 404)
        keyed = self.invoker.app.service_type(service) != "service"
        if keyed and not key:
            raise TerminalError(f"{service} is keyed: a call to {service}/{handler} needs a key", 400)
        if spec.kind == "workflow":
            # One run per workflow key. Attaching a handler's call to an existing run is not
            # supported yet: refuse rather than run the workflow twice. A run this attempt
            # started itself may not be in the store yet (its entry is not flushed).
            run, seq = self.invoker.store.idempotency_lookup(service, key or "", handler, "")
            self.observe(seq)  # what follows depends on it: the run's admission (409), or the purge that freed the key
            if run is not None or (service, key or "") in self._workflow_runs:
                raise TerminalError(f"workflow {service}/{key} has already been started", 409)
            self._workflow_runs.add((service, key or ""))
        inv = self.inv
        if (not is_send and inv.kind in WRITERS and KINDS.get(spec.kind) in WRITERS
                and service == inv.service and key == inv.key):
            raise TerminalError(
                f"{service}/{key}/{handler} is the caller's own key, which the caller holds: "
                "a call would deadlock; use a send", 400)

    async def peek_promise(self, machine: Machine, name: str) -> Optional[tuple[Optional[bytes], int, Optional[str]]]:
        outcome, seq = self.invoker.store.peek_promise(self.inv.service, self.inv.key, name)
        self.observe(seq)
        return outcome

    # ---- driven by the invoker --------------------------------------------------------

    def notify(self) -> None:
        fut = self._waiter
        if fut is not None and not fut.done():
            fut.set_result(None)

    def kill(self) -> None:
        self.killed = True
        self.close(Killed)
        fut = self._waiter
        if fut is not None and not fut.done():
            fut.set_exception(Killed())

    def pause(self) -> None:
        """The invocation was paused (WAKE_PAUSE): end this attempt like a suspension. A
        handler waiting for a completion unwinds at once; one busy elsewhere (its own await)
        stops at its next operation on the context, which raises Paused."""
        self.close(Paused)
        fut = self._waiter
        if fut is not None and not fut.done():
            fut.set_exception(Paused())

    def build_children(self, children: list[Child]) -> list[tuple[_core.Invocation, int]]:
        """Callee invocations of CALL/SEND entries, for the commit that journals them."""
        app = self.invoker.app
        inv = self.inv
        now = now_ms()
        out = []
        for index, callee_id, service, handler, key, arg, headers, idem, fire_ms, is_send in children:
            spec = app.lookup(service, handler)
            kind = KINDS[spec.kind] if spec is not None else _core.KIND_SERVICE
            if idem and self.invoker.store.idempotency_lookup(service, key or "", handler, idem)[0] is not None:
                # Attaching an in-handler call to an earlier invocation with the same key is not
                # supported yet; run it as a plain callee (the journal already makes it run once).
                log.warning("%s: idempotency key %r of a call to %s/%s is already in use; ignored",
                            inv.id, idem, service, handler)
                idem = ""
            if self.trace is not None:
                headers = self.trace.call(callee_id, service, handler, key, is_send, headers)
            callee = _core.Invocation(
                callee_id, service, handler, key or "", kind, arg, headers, now,
                caller_id="" if is_send else inv.id, caller_entry=0 if is_send else index,
                idempotency_key=idem)
            out.append((callee, fire_ms))
        return out

