"""Fakes for the SDK's unit tests: an in-memory Backend that plays the
runtime's part (durable journal, state effects, completions, children,
promises, suspension and cancellation), and a driver that restarts a handler
on ReplayRequested the way the runtime does."""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional, Union

from pysdk._app import App
from pysdk._entries import (
    CANCEL,
    CLEAR_ALL,
    CLEAR_STATE,
    COMPLETE_PROMISE,
    GET_PROMISE,
    SET_STATE,
    Completion,
    Entry,
)
from pysdk._errors import ReplayRequested, Suspended, TerminalError
from pysdk._handler import HandlerSpec
from pysdk._machine import Child, Machine

# What one `wait` delivers: a completion for an entry index, "cancel", or a list of those.
Delivery = Union[tuple[int, Completion], str, list[Any]]


class FakeBackend:
    """Durable journal, state and completions in memory; `flush` is a durable point.

    `wait` delivers the next item of `script` (a completion, "cancel", or a
    list of them at once) and raises `Suspended` when the script is empty,
    as the runtime drops an invocation that waits with nothing due. Every
    delivered completion is also recorded in `completions`, the durable
    rows a replay gets. Workflow promises live in `promises`: COMPLETE_PROMISE
    and GET_PROMISE are answered at flush when the promise is settled.
    """

    def __init__(self, state: Optional[dict[str, bytes]] = None, journal: Optional[list[Entry]] = None,
                 *, app: Optional[App] = None, caller: Optional[tuple[str, str]] = None) -> None:
        self.state: dict[str, bytes] = dict(state or {})
        self.journal: list[Entry] = list(journal or [])
        self.completions: dict[int, Completion] = {}
        self.children: list[Child] = []
        self.promises: dict[str, Completion] = {}
        self.script: list[Delivery] = []
        self.cancel_requested = False
        self.app = app
        self.caller = caller  # (service, key) of the invocation, for the deadlock check
        self.flushes = 0
        self.waits: list[list[int]] = []
        self.on_wait: Optional[Callable[["FakeBackend", Machine], None]] = None
        self.barriers = 0  # how often a step body waited for what the attempt observed
        self._live: Optional[Machine] = None

    # -- durable effects ------------------------------------------------------------

    def persist(self, entries: list[Entry]) -> None:
        for kind, name, value, code, msg in entries:
            index = len(self.journal)
            self.journal.append((kind, name, value, code, msg))
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
                    self.deliver(index, None, 409, f"promise {name!r} is already completed")
                else:
                    self.promises[name] = (value, code, msg)
                    self.deliver(index, b"", 0, None)
                    self._settle_waiters(name)
            elif kind == GET_PROMISE and name in self.promises:
                self.deliver(index, *self.promises[name])

    def _settle_waiters(self, name: str) -> None:
        for index, entry in enumerate(self.journal):
            if entry[0] == GET_PROMISE and entry[1] == name and index not in self.completions:
                self.deliver(index, *self.promises[name])

    def deliver(self, index: int, value: Optional[bytes] = b"", code: int = 0, message: Optional[str] = None) -> None:
        """Record a completion durably, and hand it to the machine running now, if any."""
        if index in self.completions:
            return
        self.completions[index] = (value, code, message)
        if self._live is not None:
            self._live.complete(index, value, code, message)

    def request_cancel(self) -> None:
        self.cancel_requested = True
        if self._live is not None:
            self._live.cancel()

    def next_invocation(self) -> "FakeBackend":
        """Same object state, empty journal: the next invocation on this key."""
        return FakeBackend(state=self.state, app=self.app, caller=self.caller)

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
            self.on_wait(self, machine)
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
        if self.app is None:
            return
        spec = self.app.lookup(service, handler)
        if spec is None:
            raise TerminalError(f"service or handler not found: {service}/{handler}", 404)
        if (not is_send and self.caller == (service, key) and spec.kind in ("exclusive", "workflow")):
            raise TerminalError(f"a call to {service}/{key}/{handler} from its own key would deadlock", 400)

    def peek_promise(self, machine: Machine, name: str) -> Optional[Completion]:
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
        return m


async def drive(spec: HandlerSpec, body: bytes, backend: FakeBackend, *, key: str = "k",
                invocation_id: str = "inv_1", always_replay: bool = False, max_restarts: int = 100) -> bytes:
    """Run an invocation like the runtime: restart from the durable journal on
    ReplayRequested, then commit the remaining entries (also when it fails
    terminally). Suspended propagates: deliver completions, then drive again."""
    for _ in range(max_restarts):
        m = backend.machine(kind=spec.kind, key=key, invocation_id=invocation_id, always_replay=always_replay)
        try:
            out = await spec.invoke(m, spec.parse_input(body))
        except ReplayRequested:
            continue
        except TerminalError:
            backend.children.extend(m.take_children())
            backend.persist(m.take_pending())
            raise
        backend.children.extend(m.take_children())
        backend.persist(m.take_pending())
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
