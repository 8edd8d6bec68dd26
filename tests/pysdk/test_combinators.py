"""Combinators: journaled COMBINATOR entries make the winners stable on replay."""
from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from .fakes import FakeBackend, drive, logged, run
from pysdk import (
    Context,
    Service,
    TerminalError,
    as_completed,
    gather,
    select,
    wait_completed,
)
from pysdk._entries import CALL, CANCEL, COMBINATOR, RUN, SLEEP
from pysdk._errors import NonDeterminismError, Suspended


def race_service(log: list[str]) -> Service:
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> Any:
        call = ctx.generic_call("P", "q", b"")
        timeout = ctx.sleep(timedelta(seconds=10))
        match await select(result=call, timeout=timeout):
            case ["result", value]:
                return await ctx.run_typed("use", logged(log, "use", value.decode()))
            case ["timeout", _]:
                return await ctx.run_typed("timed_out", logged(log, "timeout", "late"))
        return None

    return svc


def test_select_winner_is_journaled_and_stable_when_completions_arrive_in_another_order() -> None:
    log: list[str] = []
    svc = race_service(log)
    b = FakeBackend()
    b.script = [(1, (b"", 0, None))]  # the timer wins live
    assert run(drive(svc.handlers["h"], b"", b)) == b'"late"'
    assert [e[0] for e in b.journal] == [CALL, SLEEP, COMBINATOR, RUN]
    assert b.journal[2][2] == b"[1]"

    # on replay the call has completed too, and its completion comes first: the timer still wins
    b2 = FakeBackend(journal=b.journal)
    b2.completions = {0: (b"fast", 0, None), 1: (b"", 0, None)}
    assert run(drive(svc.handlers["h"], b"", b2)) == b'"late"'
    assert log == ["timeout"]


def test_select_with_both_completed_picks_the_first_completed(backend: FakeBackend) -> None:
    log: list[str] = []
    svc = race_service(log)
    backend.script = [[(0, (b"v", 0, None)), (1, (b"", 0, None))]]
    assert run(drive(svc.handlers["h"], b"", backend)) == b'"v"'
    assert backend.journal[2] == (COMBINATOR, None, b"[0,1]", 0, None)


def test_wait_completed_returns_done_in_completion_order_and_pending_in_argument_order(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    backend.script = [[(2, (b"c", 0, None)), (0, (b"a", 0, None))]]

    async def body() -> None:
        a, b, c = (ctx.generic_call("P", n, b"") for n in "abc")
        assert await wait_completed() == ([], [])
        done, pending = await wait_completed(a, b, c)
        assert done == [c, a] and pending == [b]
        assert [await f for f in done] == [b"c", b"a"]

    run(body())
    assert ctx._m.take_pending() == [(COMBINATOR, None, b"[2,0]", 0, None)]  # flushed at the next durable point


def test_already_completed_futures_resolve_at_once_but_are_journaled(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))

    async def body() -> None:
        f = ctx.generic_call("P", "q", b"")
        ctx._m.complete(0, b"x", 0, None)
        ctx._m.complete(0, b"ignored", 0, None)  # a second delivery is ignored
        done, pending = await wait_completed(f, ctx.sleep(timedelta(hours=1)))
        assert done == [f] and len(pending) == 1
        assert await f == b"x"

    run(body())
    assert backend.waits == []
    assert ctx._m.take_pending()[-1] == (COMBINATOR, None, b"[0]", 0, None)


def test_gather_waits_for_all_and_replays(backend: FakeBackend) -> None:
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> list[str]:
        futures = [ctx.generic_call("P", str(i), b"") for i in range(3)]
        done = await gather(*futures)
        assert done == futures
        return [(await f).decode() for f in done]

    backend.script = [(1, (b"b", 0, None)), [(0, (b"a", 0, None)), (2, (b"c", 0, None))]]
    assert run(drive(svc.handlers["h"], b"", backend)) == b'["a","b","c"]'
    combos = [e[2] for e in backend.journal if e[0] == COMBINATOR]
    assert combos == [b"[1]", b"[0,2]"]
    replay = FakeBackend(journal=backend.journal)
    replay.completions = {2: (b"c", 0, None), 0: (b"a", 0, None), 1: (b"b", 0, None)}
    assert run(drive(svc.handlers["h"], b"", replay)) == b'["a","b","c"]'
    assert replay.journal == backend.journal and replay.waits == []


def test_as_completed_yields_in_completion_order(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    backend.script = [(1, (b"2", 0, None)), (2, (b"3", 0, None)), (0, (b"1", 0, None))]

    async def body() -> list[bytes]:
        fs = [ctx.generic_call("P", "q", b"") for _ in range(3)]
        return [await f async for f in as_completed(*fs)]

    assert run(body()) == [b"2", b"3", b"1"]


def test_replay_that_reaches_a_combinator_with_a_different_entry_is_non_determinism() -> None:
    b = FakeBackend(journal=[(SLEEP, None, bytes(8), 0, None), (RUN, "x", b"1", 0, None)])
    ctx = Context(b.machine(kind="service"))

    async def body() -> None:
        await wait_completed(ctx.sleep(timedelta(seconds=1)))

    with pytest.raises(NonDeterminismError, match="COMBINATOR"):
        run(body())


def test_combinator_over_foreign_futures_is_terminal(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    other = Context(FakeBackend().machine(kind="service"))

    async def body() -> None:
        with pytest.raises(TerminalError, match="durable futures"):
            await wait_completed(asyncio.Future())  # type: ignore[arg-type]
        with pytest.raises(TerminalError, match="same context"):
            await wait_completed(ctx.sleep(timedelta(seconds=1)), other.sleep(timedelta(seconds=1)))
        with pytest.raises(ValueError):
            await select()

    run(body())


def test_cancellation_while_in_a_combinator(backend: FakeBackend) -> None:
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> None:
        await select(a=ctx.sleep(timedelta(seconds=1)), b=ctx.sleep(timedelta(seconds=2)))

    backend.script = ["cancel"]
    with pytest.raises(TerminalError, match="cancelled"):
        run(drive(svc.handlers["h"], b"", backend))
    assert [e[0] for e in backend.journal] == [SLEEP, SLEEP, CANCEL]
    with pytest.raises(TerminalError, match="cancelled"):
        run(drive(svc.handlers["h"], b"", FakeBackend(journal=backend.journal)))


def test_combinator_suspends_then_resumes_by_replay() -> None:
    log: list[str] = []
    svc = race_service(log)
    b = FakeBackend()
    with pytest.raises(Suspended):
        run(drive(svc.handlers["h"], b"", b))
    assert b.waits == [[0, 1]]
    b.deliver(0, b"ok")
    assert run(drive(svc.handlers["h"], b"", b)) == b'"ok"'
    assert [e[0] for e in b.journal] == [CALL, SLEEP, COMBINATOR, RUN]
