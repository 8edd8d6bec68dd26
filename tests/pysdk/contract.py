"""The harness of tests/pysdk/test_fake_contract.py: a scenario (a small handler and a
script of external events) run through the fake backend as the SDK's unit tests run
handlers (`run_fake`), and through the real runtime in-process (`run_real`): a
`_core.Store` on a temporary directory, `Commits` and `Invoker` on the test's event
loop, wired as runtime/server.py wires them, without HTTP and without the timer loop
(the script fires timers). Both report what they saw as an `Observed`.

Modes, alike on both sides:

  live     the invocation waits in memory, events reach its waiting machine
  suspend  every wait suspends; an event that completes something resumes it by replay
  replay   suspend, and a replay after every durable point (always-replay)

The real side applies an event when the runtime is quiet: every commit durable, no
wake, resume or callee task pending, and the main invocation waiting (with nothing
handed to it yet), suspended, backing off or finished. The fake side applies it at
the machine's next wait (live) or between drives (suspend, replay); what is left
when the invocation finished is applied after.

The main invocation and those the script starts carry an idempotency key (workflow
runs have one implicitly), so that the real store writes their records at admission
and keeps their journal rows: an invocation that finishes without ever reaching a
durable point otherwise gets no journal rows at all (its entries' effects apply all
the same), where the fake journals every entry.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Union, cast

from pysdk import app
from pysdk._app import App, ServiceDefinition
from pysdk._entries import CALL, SEND, SLEEP, Completion, Entry
from pysdk._errors import Suspended, TerminalError
from pysdk._handler import HandlerSpec
from runtime import _core
from runtime.backend import KINDS
from runtime.commits import Commits
from runtime.ids import now_ms
from runtime.invoker import Invoker

from .fakes import FakeBackend, drive

MAIN_ID = "inv_" + "c0de" * 8  # the same id on both sides: callee and awakeable ids derive from it

# A callee started by a CALL or SEND entry: (id, service, handler, key, input, headers, idempotency key).
Callee = tuple[str, str, str, str, bytes, list[tuple[str, str]], str]


def other_id(n: int) -> str:
    return f"inv_{n:032x}"


@dataclass(frozen=True)
class Resolve:
    """The ingress resolves (value) or rejects (code, message) awakeable `index` of the main invocation."""
    index: int
    value: Optional[bytes] = None
    code: int = 0
    message: Optional[str] = None


@dataclass(frozen=True)
class Cancel:
    """Cancel the main invocation (the admin API's cancel)."""


@dataclass(frozen=True)
class Fire:
    """Time reaches the fire time of the main invocation's SLEEP entry `index`: the timers
    due then fire (the store's `fire_timers`)."""
    index: int


@dataclass(frozen=True)
class Called:
    """The callee of CALL entry `index` finished with `completion`. The fake is handed it;
    the real runtime runs the callee, and the completions compared must then agree."""
    index: int
    completion: Completion


@dataclass(frozen=True)
class Invoke:
    """Another invocation, run to its end: a handler of the main invocation's key, or of
    another service (key "")."""
    service: str
    handler: str
    key: str = ""
    body: bytes = b""


Event = Union[Resolve, Cancel, Fire, Called, Invoke]


@dataclass
class Observed:
    result: Optional[Completion]  # (value, 0, None) | (None, code, message); None: unfinished
    journal: list[Entry]
    completions: dict[int, Completion]
    signals: list[tuple[str, int]]  # (what, SIGNAL_* answer), in order
    invoked: list[tuple[str, Optional[Completion], list[Entry]]]  # (what, result, journal)
    state: Optional[dict[str, bytes]]
    callees: list[Callee]  # in journal order
    retrying: bool = False  # it failed with a retryable error (backing off) and did not finish


class Ext:
    """An external system a step body talks to: it resolves an awakeable of the main
    invocation, or cancels it, while the handler runs (not at a wait)."""

    signals: list[tuple[str, int]]

    async def resolve(self, index: int, value: bytes) -> None:
        raise NotImplementedError

    async def cancel(self) -> None:
        raise NotImplementedError


@dataclass
class Scenario:
    name: str
    services: Callable[[Ext], list[ServiceDefinition]]
    target: tuple[str, str, str]  # service, handler, key ("" for a service)
    events: list[Event]
    check: Callable[[Observed], None]
    body: bytes = b""
    # (modes, reason): a bug of the runtime or the SDK that makes `check` fail in those modes.
    bug: Optional[tuple[tuple[str, ...], str]] = None
    never_suspends: bool = False  # then the suspend mode is the live one: not run twice


def normalized(journal: list[Entry]) -> list[Entry]:
    """A SLEEP's fire time is the wall clock at the call: equal in shape, not in value."""
    out = []
    for kind, name, value, code, message in journal:
        if kind == SLEEP and value is not None and len(value) == 8:
            value = b"<fire time>"
        out.append((kind, name, value, code, message))
    return out


def fire_time(journal: list[Entry], index: int) -> int:
    kind, _, value, _, _ = journal[index]
    assert kind == SLEEP and value is not None
    return int.from_bytes(value, "big")


def as_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Mode:
    name: str
    live: bool  # waits stay in memory (else every wait suspends)
    always_replay: bool


MODES = [Mode("live", True, False), Mode("suspend", False, False), Mode("replay", False, True)]


# -- the fake side ------------------------------------------------------------------------------


class FakeExt(Ext):
    def __init__(self) -> None:
        self.signals = []
        self.backend: Optional[FakeBackend] = None

    async def resolve(self, index: int, value: bytes) -> None:
        assert self.backend is not None
        self.signals.append((f"step resolves {index}", self.backend.complete_awakeable(index, value)))

    async def cancel(self) -> None:
        assert self.backend is not None
        self.signals.append(("step cancels", self.backend.request_cancel()))


async def _drive_to_end(spec: HandlerSpec, body: bytes, b: FakeBackend, key: str, inv_id: str, mode: Mode,
                        between: Callable[[], Any]) -> bool:
    """Drive until it finishes; after each suspension, `between()` applies events until one
    wakes it (returns False when none is left: it stays suspended). True if it failed with a
    retryable error (the runtime would back off and retry: the script ends there)."""
    while True:
        b.woken = False
        try:
            await drive(spec, body, b, key=key, invocation_id=inv_id, always_replay=mode.always_replay)
            return False
        except TerminalError:
            return False
        except Suspended:
            if not await between():
                return False
        except Exception:  # noqa: BLE001 - the runtime would back off and retry it
            return True


async def run_fake(scenario: Scenario, mode: Mode) -> Observed:
    ext = FakeExt()
    application = app(scenario.services(ext))
    service, handler, key = scenario.target
    spec = application.lookup(service, handler)
    assert spec is not None
    main = FakeBackend(app=application, caller=(service, key) if key else None)
    ext.backend = main
    events = list(scenario.events)
    signals = ext.signals
    invoked: list[tuple[str, Optional[Completion], list[Entry]]] = []
    others = iter(range(2, 100))

    async def apply(event: Event) -> None:
        if isinstance(event, Resolve):
            signals.append((f"resolve {event.index}",
                            main.complete_awakeable(event.index, event.value, event.code, event.message)))
        elif isinstance(event, Cancel):
            signals.append(("cancel", main.request_cancel()))
        elif isinstance(event, Fire):
            main.fire_timers(fire_time(main.journal, event.index))
        elif isinstance(event, Called):
            main.deliver(event.index, *event.completion)
        else:
            other_spec = application.lookup(event.service, event.handler)
            assert other_spec is not None
            other = main.sibling((event.service, event.key) if event.key else None)

            async def nothing_more() -> bool:
                return other.woken

            await _drive_to_end(other_spec, event.body, other, event.key, other_id(next(others)), mode,
                                nothing_more)
            invoked.append((f"{event.service}/{event.handler}", other.outcome, normalized(other.journal)))

    async def next_events() -> bool:
        """Apply events until one wakes the suspended main invocation."""
        while events:
            main.woken = False
            await apply(events.pop(0))
            if main.woken:
                return True
        return False

    if mode.live:
        async def on_wait(b: FakeBackend, m: Any) -> None:
            if not events:
                raise Suspended()  # nothing more will come: it stays waiting
            await apply(events.pop(0))

        main.on_wait = on_wait

        async def stays() -> bool:
            return False

        retrying = await _drive_to_end(spec, scenario.body, main, key, MAIN_ID, mode, stays)
    else:
        retrying = await _drive_to_end(spec, scenario.body, main, key, MAIN_ID, mode, next_events)
    for event in events:  # those for after it finished (or for a suspended one that nothing woke)
        await apply(event)
    callees = [(callee, svc, name, k or "", arg, headers, idem)
               for _, callee, svc, name, k, arg, headers, idem, _, _ in main.children]
    return Observed(result=main.outcome, journal=normalized(main.journal), completions=dict(main.completions),
                    signals=signals, invoked=invoked, state=dict(main.state) if key else None,
                    callees=callees, retrying=retrying)


# -- the real side ------------------------------------------------------------------------------


def cancel(store: _core.Store, inv_id: str) -> tuple[int, int]:
    # runtime/_core.pyi types `Store.cancel` as returning int; it returns (status, seq), as documented.
    return cast("tuple[int, int]", store.cancel(inv_id))


class RealExt(Ext):
    def __init__(self) -> None:
        self.signals = []
        self.world: Optional["RealRuntime"] = None

    async def resolve(self, index: int, value: bytes) -> None:
        assert self.world is not None
        status, seq = self.world.store.complete_awakeable(MAIN_ID, index, value, 0, None)
        self.signals.append((f"step resolves {index}", status))
        await self.world.invoker.signal(seq)

    async def cancel(self) -> None:
        assert self.world is not None
        status, seq = cancel(self.world.store, MAIN_ID)
        self.signals.append(("step cancels", status))
        await self.world.invoker.signal(seq)


class RealRuntime:
    """A store on a temporary directory with its Commits and Invoker on this event loop,
    wired as runtime/server.py wires them, without HTTP and without the timer loop: the
    script fires timers itself."""

    def __init__(self, path: Path, application: App, mode: Mode) -> None:
        loop = asyncio.get_running_loop()
        self.app = application
        self.store = _core.Store(str(path), "wal")
        self.commits = Commits(self.store, loop)
        self.invoker = Invoker(self.store, application, self.commits, always_replay=mode.always_replay,
                               suspend_after_s=60.0 if mode.live else 0.0)
        self.main: Optional[asyncio.Task[Any]] = None

    def invocation(self, spec: HandlerSpec, key: str, body: bytes, inv_id: str) -> _core.Invocation:
        # An idempotency key makes the store keep the record and journal (see the module docstring).
        idem = "" if spec.kind == "workflow" else inv_id
        return _core.Invocation(inv_id, spec.service_name, spec.name, key, KINDS[spec.kind], body, [], now_ms(),
                                idempotency_key=idem)

    def _quiet(self) -> bool:
        store = self.store
        if store.durable_seq() < store.last_seq():
            return False
        if any(not task.done() for task in self.invoker._tasks):
            return False
        assert self.main is not None
        if self.main.done():
            return True
        attempt = self.invoker.live.get(MAIN_ID)
        if attempt is not None:
            waiter = attempt._waiter  # waiting, and not yet handed what it waits for
            return waiter is not None and not waiter.done()
        # Suspended, or backing off after a retryable failure (no timer loop retries it here).
        return self.status() in (_core.STATUS_SUSPENDED, _core.STATUS_BACKING_OFF)

    def callees(self) -> list[Callee]:
        out = []
        for kind, _, value, _, _ in self.store.load_journal(MAIN_ID):
            if kind in (CALL, SEND) and value is not None:
                c = self.store.get_invocation(value.decode())
                assert c is not None, f"the callee of {value!r} was not written with its entry"
                out.append((c.id, c.service, c.handler, c.key, c.input, c.headers, c.idempotency_key))
        return out

    def status(self) -> Optional[int]:
        inv = self.store.get_invocation(MAIN_ID)
        return None if inv is None else inv.status

    async def quiet(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not self._quiet():
            assert loop.time() < deadline, "the runtime did not come to rest"
            await asyncio.sleep(0.001)

    async def close(self) -> None:
        if self.main is not None and not self.main.done():
            self.main.cancel()
            await asyncio.gather(self.main, return_exceptions=True)
        await self.invoker.close(1.0)
        self.commits.close()  # before the store closes its notify fd (runtime/server.py)
        self.store.close()


async def run_real(scenario: Scenario, mode: Mode, path: Path) -> Observed:
    ext = RealExt()
    application = app(scenario.services(ext))
    world = ext.world = RealRuntime(path, application, mode)
    store, invoker = world.store, world.invoker
    signals = ext.signals
    invoked: list[tuple[str, Optional[Completion], list[Entry]]] = []
    others = iter(range(2, 100))

    async def apply(event: Event) -> None:
        if isinstance(event, Resolve):
            status, seq = store.complete_awakeable(MAIN_ID, event.index, event.value, event.code, event.message)
            signals.append((f"resolve {event.index}", status))
            await invoker.signal(seq)
        elif isinstance(event, Cancel):
            status, seq = cancel(store, MAIN_ID)
            signals.append(("cancel", status))
            await invoker.signal(seq)
        elif isinstance(event, Fire):
            store.fire_timers(fire_time(store.load_journal(MAIN_ID), event.index))
            invoker.after_write()
        elif isinstance(event, Called):
            pass  # the runtime runs the callee; its completion is compared at the end
        else:
            other_spec = application.lookup(event.service, event.handler)
            assert other_spec is not None
            inv = world.invocation(other_spec, event.key, event.body, other_id(next(others)))
            result = await asyncio.wait_for(invoker.call(other_spec, inv, other_spec.parse_input(event.body)), 10)
            invoked.append((f"{event.service}/{event.handler}", result, normalized(store.load_journal(inv.id))))

    try:
        service, handler, key = scenario.target
        spec = application.lookup(service, handler)
        assert spec is not None
        inv = world.invocation(spec, key, scenario.body, MAIN_ID)
        world.main = asyncio.create_task(invoker.call(spec, inv, spec.parse_input(scenario.body)))
        for event in scenario.events:
            await world.quiet()
            await apply(event)
        await world.quiet()
        return Observed(
            result=world.main.result() if world.main.done() else None,
            journal=normalized(store.load_journal(MAIN_ID)),
            completions={i: (v, c, m) for i, v, c, m in store.load_completions(MAIN_ID)},
            signals=signals, invoked=invoked,
            state=dict(store.load_state(service, key)[0]) if key else None,
            callees=world.callees(),
            retrying=world.status() == _core.STATUS_BACKING_OFF)
    finally:
        await world.close()
