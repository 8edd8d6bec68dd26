"""Fakes for the SDK's unit tests: an in-memory Backend that plays the
runtime's part (durable journal, state effects, completions, children,
promises, awakeables, suspension and cancellation), and a driver that
restarts a handler on ReplayRequested the way the runtime does.

The fake follows the store's rules (runtime/_core.pyi: the effects of each
entry kind, signals and their answers), and tests/pysdk/test_fake_contract.py
holds it to them: it runs the same scenarios through the fake and through the
real runtime and compares results, journals, completions and the answers of
second completions. A rule changed here without the runtime (or the other way
round) fails there.
"""
from __future__ import annotations

import asyncio
from inspect import isawaitable
from typing import Any, Callable, Optional, Union

from pysdk._app import App
from pysdk._entries import (
    AWAKEABLE,
    CANCEL,
    CANCEL_INVOCATION,
    CLEAR_ALL,
    CLEAR_STATE,
    COMPLETE_AWAKEABLE,
    COMPLETE_PROMISE,
    GET_PROMISE,
    SET_STATE,
    SLEEP,
    Completion,
    Entry,
)
from pysdk._errors import ReplayRequested, Suspended, TerminalError
from pysdk._handler import HandlerSpec
from pysdk._ids import parse_awakeable_id
from pysdk._machine import Child, Machine

# What one `wait` delivers: a completion for an entry index, "cancel", or a list of those.
Delivery = Union[tuple[int, Completion], str, list[Any]]

# The answers of signals (`complete_awakeable`, `request_cancel`): the store's SIGNAL_* values.
SIGNAL_APPLIED = 1
SIGNAL_ALREADY_COMPLETED = 0

# The failure message of a second completion of a workflow promise (the store's).
PROMISE_ALREADY_COMPLETED = "promise already completed"

WRITERS = ("exclusive", "workflow")


class FakeBackend:
    """Durable journal, state and completions in memory; `flush` is a durable point.

    `wait` delivers the next item of `script` (a completion, "cancel", or a
    list of them at once) and raises `Suspended` when the script is empty,
    as the runtime drops an invocation that waits with nothing due (or, if
    `on_wait` is set, calls it instead: it may be async). Every delivered
    completion is also recorded in `completions`, the durable rows a replay
    gets, and sets `woken` (a suspended invocation would be resumed).

    The effects of journaled entries are the store's: SET/CLEAR state,
    CANCEL clears the request, COMPLETE_PROMISE (first wins; a second gets
    (None, 409, "promise already completed")) and GET_PROMISE against
    `promises`, COMPLETE_AWAKEABLE and CANCEL_INVOCATION against the
    invocations of the same fake runtime (see `sibling`). An awakeable
    resolved before its entry is journaled (`complete_awakeable` at an index
    past the journal) is delivered when an AWAKEABLE is journaled there, and
    dropped if another entry is. Once finished (`drive` sets `outcome`), an
    invocation's pending entries get no completions and signals to it are
    answered "already completed".
    """

    def __init__(self, state: Optional[dict[str, bytes]] = None, journal: Optional[list[Entry]] = None,
                 *, app: Optional[App] = None, caller: Optional[tuple[str, str]] = None) -> None:
        self.state: dict[str, bytes] = dict(state or {})
        self.journal: list[Entry] = list(journal or [])
        self.completions: dict[int, Completion] = {}
        # Awakeables resolved before their entry was journaled, by index (also rows in `completions`).
        self.early: dict[int, Completion] = {}
        self.children: list[Child] = []
        self.promises: dict[str, Completion] = {}
        self.script: list[Delivery] = []
        self.cancel_requested = False
        self.app = app
        self.caller = caller  # (service, key) of the invocation, for the deadlock check
        self.outcome: Optional[Completion] = None  # set by `drive` when the invocation finished
        self.woken = False  # a completion or a cancellation arrived (set here, reset by whoever drives)
        self.flushes = 0
        self.waits: list[list[int]] = []
        self.on_wait: Optional[Callable[["FakeBackend", Machine], Any]] = None
        self.barriers = 0  # how often a step body waited for what the attempt observed
        self._live: Optional[Machine] = None
        # The fake runtime this invocation is part of: invocations by id, the invocations of
        # this key (one state table and one promise table per key), workflow keys with a run.
        self._peers: dict[str, FakeBackend] = {}
        self._same_key: list[FakeBackend] = [self]
        self._workflows: set[tuple[str, Optional[str]]] = set()

    # -- durable effects ------------------------------------------------------------

    def persist(self, entries: list[Entry], *, finishing: bool = False) -> None:
        """Journal `entries` with their effects. `finishing`: the invocation completes in this
        commit, so nothing starts waiting and its own entries get no completions."""
        for kind, name, value, code, msg in entries:
            index = len(self.journal)
            self.journal.append((kind, name, value, code, msg))
            # An awakeable resolved early: its row was written then. An AWAKEABLE here takes
            # it (handed over below, unless finishing); an entry of another kind drops it.
            early = self.early.pop(index, None)
            if early is not None and kind != AWAKEABLE:
                del self.completions[index]
            if kind == SET_STATE:
                self.state[name] = value  # type: ignore[index,assignment]
            elif kind == CLEAR_STATE:
                self.state.pop(name, None)  # type: ignore[arg-type]
            elif kind == CLEAR_ALL:
                self.state.clear()
            elif kind == CANCEL:
                self.cancel_requested = False
            elif kind == COMPLETE_PROMISE:
                assert name is not None
                if name in self.promises:
                    if not finishing:
                        self.deliver(index, None, 409, PROMISE_ALREADY_COMPLETED)
                else:
                    self.promises[name] = (value, code, msg)
                    if not finishing:
                        self.deliver(index, b"", 0, None)
                    self._settle_waiters(name)
            elif kind == GET_PROMISE and name in self.promises and not finishing:
                self.deliver(index, *self.promises[name])
            elif kind == COMPLETE_AWAKEABLE:
                assert name is not None
                target_id, at = parse_awakeable_id(name)
                target = self._peers.get(target_id)
                if target is not None:  # else unknown to this fake runtime: nothing to do
                    target.complete_awakeable(at, value, code, msg)
            elif kind == CANCEL_INVOCATION:
                assert name is not None
                target = self._peers.get(name)
                if target is not None:
                    target.request_cancel()
            elif kind == AWAKEABLE and early is not None and not finishing:
                self._hand_over(index, early)

    def _settle_waiters(self, name: str) -> None:
        for b in self._same_key:
            if b.outcome is not None:
                continue  # finished: its pending entries wait for nothing any more
            for index, entry in enumerate(b.journal):
                if entry[0] == GET_PROMISE and entry[1] == name and index not in b.completions:
                    b.deliver(index, *self.promises[name])

    def deliver(self, index: int, value: Optional[bytes] = b"", code: int = 0, message: Optional[str] = None) -> None:
        """Record a completion durably, and hand it to the machine running now, if any."""
        if index in self.completions:
            return
        self.completions[index] = (value, code, message)
        self._hand_over(index, (value, code, message))

    def _hand_over(self, index: int, completion: Completion) -> None:
        self.woken = True
        if self._live is not None:
            self._live.complete(index, *completion)

    def request_cancel(self) -> int:
        """Cancel this invocation (the store's `cancel`): SIGNAL_APPLIED, or
        SIGNAL_ALREADY_COMPLETED once it has finished."""
        if self.outcome is not None:
            return SIGNAL_ALREADY_COMPLETED
        self.cancel_requested = True
        self.woken = True
        if self._live is not None:
            self._live.cancel()
        return SIGNAL_APPLIED

    def complete_awakeable(self, index: int, value: Optional[bytes], code: int = 0,
                           message: Optional[str] = None) -> int:
        """Resolve (value) or reject (None, code, message) awakeable entry `index`, as the
        store's `complete_awakeable` does, and return its answer: applied for a pending
        AWAKEABLE entry, and for an index not journaled yet (kept until an entry is
        journaled there); already completed otherwise, and once the invocation finished."""
        if self.outcome is not None or index in self.completions:
            return SIGNAL_ALREADY_COMPLETED
        if index < len(self.journal):
            if self.journal[index][0] != AWAKEABLE:
                return SIGNAL_ALREADY_COMPLETED
            self.deliver(index, value, code, message)
            return SIGNAL_APPLIED
        self.early[index] = self.completions[index] = (value, code, message)  # a row, not handed to the machine
        return SIGNAL_APPLIED

    def fire_timers(self, now_ms: int) -> None:
        """The store's `fire_timers` for this invocation: every pending SLEEP entry due at
        `now_ms` completes (b""), earliest first, at once. A finished invocation has no timers."""
        if self.outcome is not None:
            return
        due = sorted((int.from_bytes(value, "big"), index) for index, (kind, _, value, _, _) in enumerate(self.journal)
                     if kind == SLEEP and value is not None and index not in self.completions)
        for fire_ms, index in due:
            if fire_ms <= now_ms:
                self.deliver(index, b"", 0, None)

    def next_invocation(self) -> "FakeBackend":
        """Same object state, empty journal: the next invocation on this key."""
        return FakeBackend(state=self.state, app=self.app, caller=self.caller)

    def sibling(self, caller: Optional[tuple[str, str]] = None) -> "FakeBackend":
        """Another invocation in the same fake runtime, running alongside this one: it can
        resolve this one's awakeables and cancel it by invocation id; on the same
        (service, key) as this one (`caller`, default this one's) it also shares the key's
        state table and workflow promises, and settles this one's GET_PROMISE entries."""
        caller = self.caller if caller is None else caller
        other = FakeBackend(app=self.app, caller=caller)
        other._peers = self._peers
        other._workflows = self._workflows
        if caller is not None and caller == self.caller:
            other.state = self.state
            other.promises = self.promises
            other._same_key = self._same_key
            self._same_key.append(other)
        return other

    # -- Backend protocol v3 -----------------------------------------------------------

    async def barrier(self, machine: Machine) -> None:
        self.barriers += 1

    async def flush(self, machine: Machine) -> None:
        self.flushes += 1
        self._live = machine
        self.children.extend(machine.take_children())
        self.persist(machine.take_pending())
        await asyncio.sleep(0)

    async def wait(self, machine: Machine) -> None:
        self._live = machine
        self.waits.append(list(machine.awaiting))
        await asyncio.sleep(0)
        if self.on_wait is not None:
            result = self.on_wait(self, machine)
            if isawaitable(result):
                await result
            return
        if not self.script:
            raise Suspended()
        item = self.script.pop(0)
        for event in item if isinstance(item, list) else [item]:
            if isinstance(event, str):
                assert event == "cancel", event
                self.request_cancel()
            else:
                index, (value, code, message) = event
                self.deliver(index, value, code, message)

    def check_target(self, service: str, handler: str, key: Optional[str], is_send: bool) -> None:
        """The runtime's checks (runtime/backend.py `Attempt.check_target`), with its messages."""
        if self.app is None:
            return
        spec = self.app.lookup(service, handler)
        if spec is None:
            raise TerminalError(f"handler {service}/{handler} not found", 404)
        if self.app.service_type(service) != "service" and not key:
            raise TerminalError(f"{service} is keyed: a call to {service}/{handler} needs a key", 400)
        if spec.kind == "workflow" and (service, key) in self._workflows:
            raise TerminalError(f"workflow {service}/{key} has already been started", 409)
        caller_kind = self._live.handler_kind if self._live is not None else "exclusive"
        if (not is_send and caller_kind in WRITERS and spec.kind in WRITERS and self.caller == (service, key)):
            raise TerminalError(
                f"{service}/{key}/{handler} is the caller's own key, which the caller holds: "
                "a call would deadlock; use a send", 400)
        if spec.kind == "workflow":
            # One run per workflow key: from now on, even before this call is durable.
            self._workflows.add((service, key))

    async def peek_promise(self, machine: Machine, name: str) -> Optional[Completion]:
        return self.promises.get(name)

    def machine(self, *, kind: str = "exclusive", key: str = "k", invocation_id: str = "inv_1",
                always_replay: bool = False, replay: Optional[list[Entry]] = None,
                decoded: Optional[dict[str, Any]] = None) -> Machine:
        m = Machine(
            invocation_id=invocation_id, key=key, handler_kind=kind, state=self.state,
            replay=list(self.journal if replay is None else replay), backend=self,
            headers=[("x-test", "1")], always_replay=always_replay,
            completions=self.completions, cancelled=self.cancel_requested, decoded=decoded,
        )
        self._live = m
        self._peers[invocation_id] = self
        if kind == "workflow" and self.caller is not None:
            self._workflows.add(self.caller)
        return m


async def drive(spec: HandlerSpec, body: bytes, backend: FakeBackend, *, key: str = "k",
                invocation_id: str = "inv_1", always_replay: bool = False, max_restarts: int = 100) -> bytes:
    """Run an invocation like the runtime: restart from the durable journal on
    ReplayRequested, then commit the remaining entries (also when it fails
    terminally) and set `backend.outcome`. Suspended propagates: deliver
    completions, then drive again."""
    backend.outcome = None
    for _ in range(max_restarts):
        m = backend.machine(kind=spec.kind, key=key, invocation_id=invocation_id, always_replay=always_replay)
        try:
            out = await spec.invoke(m, spec.parse_input(body))
        except ReplayRequested:
            continue
        except TerminalError as exc:
            backend.children.extend(m.take_children())
            backend.persist(m.take_pending(), finishing=True)
            backend.outcome = (None, exc.status_code, exc.message)
            raise
        backend.children.extend(m.take_children())
        backend.persist(m.take_pending(), finishing=True)
        backend.outcome = (out, 0, None)
        return out
    raise AssertionError("too many restarts")


def logged(log: list[str], name: str, result: Any = None) -> Callable[[], Any]:
    """A step action that appends `name` to `log` and returns `result`."""
    def action() -> Any:
        log.append(name)
        return result
    return action


def run(awaitable: Any) -> Any:
    """Run a coroutine or any awaitable (a durable future) to its end."""
    async def main() -> Any:
        return await awaitable
    return asyncio.run(main())
