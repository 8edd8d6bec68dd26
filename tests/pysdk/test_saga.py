"""Saga: compensations in reverse, each a durable step, resumable mid-way."""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable

import pytest

from .fakes import FakeBackend, drive, run
from pysdk import Context, RunOptions, Saga, Service, TerminalError
from pysdk._entries import CANCEL, RUN, SLEEP
from pysdk._errors import Suspended


def trip_service(log: list[str], fail_at: str = "book_hotel",
                 fail: Callable[[], Exception] = lambda: TerminalError("sold out", 409)) -> Service:
    svc = Service("Trip")

    def step(name: str) -> Callable[..., str]:
        def action(*args: Any, **kwargs: Any) -> str:
            log.append(name)
            if name == fail_at:
                raise fail()
            return f"{name}-id"
        return action

    async def cancel_car(car: str, *, reason: str) -> None:
        log.append(f"cancel_car({car}, {reason})")

    @svc.handler()
    async def book(ctx: Context, trip: str) -> str:
        async with Saga(ctx) as saga:
            flight = await ctx.run_typed("book_flight", step("book_flight"), RunOptions(), trip)
            saga.add("cancel_flight", lambda f: log.append(f"cancel_flight({f})"), flight)
            car = await ctx.run_typed("book_car", step("book_car"), RunOptions(), trip)
            saga.add("cancel_car", cancel_car, car, reason="saga")
            await ctx.run_typed("book_hotel", step("book_hotel"), RunOptions(max_attempts=1), trip)
            return "booked"

    return svc


def test_compensations_run_in_reverse_as_steps_then_the_error_is_raised_again() -> None:
    log: list[str] = []
    svc = trip_service(log)
    b = FakeBackend()
    with pytest.raises(TerminalError) as info:
        run(drive(svc.handlers["book"], b'"rome"', b))
    assert (info.value.message, info.value.status_code) == ("sold out", 409)
    assert log == ["book_flight", "book_car", "book_hotel", "cancel_car(book_car-id, saga)",
                   "cancel_flight(book_flight-id)"]
    assert [(e[0], e[1]) for e in b.journal] == [
        (RUN, "book_flight"), (RUN, "book_car"), (RUN, "book_hotel"), (RUN, "cancel_car"), (RUN, "cancel_flight"),
    ]
    # a full replay runs nothing and fails the same way
    with pytest.raises(TerminalError, match="sold out"):
        run(drive(svc.handlers["book"], b'"rome"', FakeBackend(journal=b.journal)))
    assert len(log) == 5


def test_a_crash_mid_compensation_resumes_the_remaining_ones_only() -> None:
    log: list[str] = []
    svc = trip_service(log)
    b = FakeBackend()
    with pytest.raises(TerminalError):
        run(drive(svc.handlers["book"], b'"rome"', b))
    prefix = b.journal[:4]  # the crash came after cancel_car was durable
    log.clear()
    resumed = FakeBackend(journal=prefix)
    with pytest.raises(TerminalError, match="sold out"):
        run(drive(svc.handlers["book"], b'"rome"', resumed))
    assert log == ["cancel_flight(book_flight-id)"]
    assert resumed.journal == b.journal


def test_success_does_not_compensate(backend: FakeBackend) -> None:
    log: list[str] = []
    svc = trip_service(log, fail_at="none")
    assert run(drive(svc.handlers["book"], b'"rome"', backend)) == b'"booked"'
    assert not any(entry.startswith("cancel") for entry in log)


def test_a_retryable_error_leaves_without_compensating(backend: FakeBackend) -> None:
    log: list[str] = []
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> None:
        async with Saga(ctx) as saga:
            await ctx.run_typed("a", lambda: log.append("a"))
            saga.add("undo_a", lambda: log.append("undo_a"))
            raise ConnectionError("flaky network: the invocation is retried")

    with pytest.raises(ConnectionError):
        run(drive(svc.handlers["h"], b"", backend))
    assert log == ["a"] and [e[1] for e in backend.journal] == ["a"]


def test_cancellation_compensates_and_its_replay_too() -> None:
    log: list[str] = []
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> None:
        async with Saga(ctx) as saga:
            await ctx.run_typed("reserve", lambda: log.append("reserve"))
            saga.add("release", lambda: log.append("release"))
            await ctx.sleep(timedelta(days=1))

    b = FakeBackend()
    with pytest.raises(Suspended):
        run(drive(svc.handlers["h"], b"", b))
    b.request_cancel()
    with pytest.raises(TerminalError) as info:
        run(drive(svc.handlers["h"], b"", b))
    assert info.value.status_code == 409
    assert log == ["reserve", "release"]
    assert [e[0] for e in b.journal] == [RUN, SLEEP, CANCEL, RUN]
    with pytest.raises(TerminalError, match="cancelled"):
        run(drive(svc.handlers["h"], b"", FakeBackend(journal=b.journal)))
    assert log == ["reserve", "release"]


def test_a_compensation_failing_terminally_does_not_stop_the_others(backend: FakeBackend) -> None:
    log: list[str] = []
    svc = Service("S")

    def broken() -> None:
        raise TerminalError("cannot undo", 500)

    @svc.handler()
    async def h(ctx: Context) -> None:
        async with Saga(ctx) as saga:
            saga.add("first", lambda: log.append("first"))
            saga.add("broken", broken)
            assert saga.pending == ["broken", "first"]
            raise TerminalError("boom", 400)

    with pytest.raises(TerminalError) as info:
        run(drive(svc.handlers["h"], b"", backend))
    assert info.value.message == "boom"
    assert isinstance(info.value.__cause__, TerminalError) and info.value.__cause__.message == "cannot undo"
    assert log == ["first"]
    assert [(e[1], e[3]) for e in backend.journal] == [("broken", 500), ("first", 0)]


def test_the_plain_restate_pattern_still_works(backend: FakeBackend) -> None:
    log: list[str] = []
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> None:
        compensations: list[Callable[[], Any]] = []
        try:
            await ctx.run_typed("pay", lambda: log.append("pay"))
            compensations.append(lambda: ctx.run_typed("refund", lambda: log.append("refund")))
            await ctx.run_typed("ship", lambda: (_ for _ in ()).throw(TerminalError("no stock")))
        except TerminalError:
            for compensation in reversed(compensations):
                await compensation()
            raise

    with pytest.raises(TerminalError, match="no stock"):
        run(drive(svc.handlers["h"], b"", backend))
    assert log == ["pay", "refund"]


def test_saga_arguments_are_checked(backend: FakeBackend) -> None:
    with pytest.raises(TypeError):
        Saga(object())  # type: ignore[arg-type]
    saga = Saga(Context(backend.machine()))
    with pytest.raises(TypeError):
        saga.add("", print)
    with pytest.raises(TypeError):
        saga.add("x", 42)  # type: ignore[arg-type]
