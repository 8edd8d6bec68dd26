"""Fakes for the SDK's unit tests: an in-memory Backend that plays the
runtime's part (durable journal + state effects), and a driver that restarts a
handler on ReplayRequested the way the runtime does."""
from __future__ import annotations

import asyncio
from typing import Any, Optional

from pysdk._entries import CLEAR_ALL, CLEAR_STATE, SET_STATE, Entry
from pysdk._errors import ReplayRequested
from pysdk._handler import HandlerSpec
from pysdk._machine import Machine


class FakeBackend:
    """Durable journal and state in memory; `flush` is a durable point."""

    def __init__(self, state: Optional[dict[str, bytes]] = None, journal: Optional[list[Entry]] = None) -> None:
        self.state: dict[str, bytes] = dict(state or {})
        self.journal: list[Entry] = list(journal or [])
        self.flushes = 0

    def persist(self, entries: list[Entry]) -> None:
        for kind, name, value, _code, _msg in entries:
            if kind == SET_STATE:
                self.state[name] = value  # type: ignore[index,assignment]
            elif kind == CLEAR_STATE:
                self.state.pop(name, None)  # type: ignore[arg-type]
            elif kind == CLEAR_ALL:
                self.state.clear()
        self.journal.extend(entries)

    def next_invocation(self) -> "FakeBackend":
        """Same object state, empty journal: the next invocation on this key."""
        return FakeBackend(state=self.state)

    async def flush(self, machine: Machine) -> None:
        self.flushes += 1
        self.persist(machine.take_pending())
        await asyncio.sleep(0)

    def machine(self, *, kind: str = "exclusive", key: str = "k", invocation_id: str = "inv_1",
                always_replay: bool = False, replay: Optional[list[Entry]] = None) -> Machine:
        return Machine(
            invocation_id=invocation_id, key=key, handler_kind=kind, state=self.state,
            replay=list(self.journal if replay is None else replay), backend=self,
            headers=[("x-test", "1")], always_replay=always_replay,
        )


async def drive(spec: HandlerSpec, body: bytes, backend: FakeBackend, *, key: str = "k",
                invocation_id: str = "inv_1", always_replay: bool = False, max_restarts: int = 100) -> bytes:
    """Run an invocation to completion like the runtime: restart from the
    durable journal on ReplayRequested, then commit the remaining entries."""
    for _ in range(max_restarts):
        m = backend.machine(kind=spec.kind, key=key, invocation_id=invocation_id, always_replay=always_replay)
        try:
            out = await spec.invoke(m, spec.parse_input(body))
        except ReplayRequested:
            continue
        backend.persist(m.take_pending())
        return out
    raise AssertionError("too many restarts")


def run(coro: Any) -> Any:
    return asyncio.run(coro)
