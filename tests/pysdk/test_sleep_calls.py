"""ctx.sleep, calls and sends: journaled when called, completed later,
suspension and replay, target checks, cancellation at await points."""
from __future__ import annotations

import time
from datetime import timedelta

import pydantic
import pytest

from .fakes import FakeBackend, drive, logged, run
from pysdk import (
    Context,
    ObjectContext,
    RestateDurableCallFuture,
    RestateDurableSleepFuture,
    RunOptions,
    Saga,
    SendHandle,
    Service,
    TerminalError,
    VirtualObject,
    app,
)
from pysdk._entries import CALL, CANCEL, CANCEL_INVOCATION, COMBINATOR, RUN, SEND, SET_STATE, SLEEP
from pysdk._errors import NonDeterminismError, ReplayRequested, Suspended
from pysdk._ids import child_invocation_id


class Quote(pydantic.BaseModel):
    sku: str
    price: float


def build() -> tuple[Service, VirtualObject, Service]:
    pricing = Service("Pricing")

    @pricing.handler()
    async def quote(ctx: Context, sku: str) -> Quote:
        return Quote(sku=sku, price=1.5)

    @pricing.handler()
    async def ping(ctx: Context) -> None:
        return None

    stock = VirtualObject("Stock")

    @stock.handler()
    async def reserve(ctx: ObjectContext, qty: int) -> bool:
        return True

    shop = Service("Shop")
    return pricing, stock, shop


# -- sleep --------------------------------------------------------------------------------


def test_sleep_journals_fire_time_suspends_then_replays_without_waiting_again() -> None:
    svc = Service("S")
    steps: list[str] = []

    @svc.handler()
    async def h(ctx: Context) -> str:
        fut = ctx.sleep(timedelta(seconds=30), name="nap")
        assert isinstance(fut, RestateDurableSleepFuture)
        assert await fut is None  # type: ignore[func-returns-value]
        return await ctx.run_typed("after", logged(steps, "ran", "done"))

    b = FakeBackend()
    before = int(time.time() * 1000)
    with pytest.raises(Suspended):
        run(drive(svc.handlers["h"], b"", b))
    after = int(time.time() * 1000)
    assert len(b.journal) == 1 and b.journal[0][:2] == (SLEEP, "nap")
    fire = int.from_bytes(b.journal[0][2], "big")  # type: ignore[arg-type]
    assert before + 30_000 <= fire <= after + 30_000
    assert b.waits == [[0]], "the SLEEP was durable before the machine waited on it"

    b.deliver(0, b"")  # the timer fired; the runtime resumes by replay
    assert run(drive(svc.handlers["h"], b"", b)) == b'"done"'
    assert steps == ["ran"]
    assert b.journal[0][2] == fire.to_bytes(8, "big") and len(b.journal) == 2


def test_sleep_completed_live_while_waiting(backend: FakeBackend) -> None:
    backend.script = [(0, (b"", 0, None))]
    ctx = Context(backend.machine(kind="service"))

    async def body() -> None:
        await ctx.sleep(timedelta(milliseconds=5))

    run(body())
    assert backend.journal == [backend.journal[0]] and backend.journal[0][0] == SLEEP
    assert backend.journal[0][1] is None


def test_sleep_of_another_name_on_replay_is_non_determinism() -> None:
    b = FakeBackend(journal=[(SLEEP, "a", (0).to_bytes(8, "big"), 0, None)])
    with pytest.raises(NonDeterminismError, match=r"SLEEP\('a'\).*SLEEP\('b'\)"):
        Context(b.machine()).sleep(timedelta(seconds=1), name="b")


def test_sleep_in_always_replay_mode_converges(backend: FakeBackend) -> None:
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> int:
        await ctx.sleep(timedelta(seconds=1))
        return 7

    backend.script = [(0, (b"", 0, None))]
    assert run(drive(svc.handlers["h"], b"", backend, always_replay=True)) == b"7"
    assert [e[0] for e in backend.journal] == [SLEEP]


# -- calls ------------------------------------------------------------------------------------


def test_service_call_encodes_with_the_callee_codecs_and_replays() -> None:
    pricing, stock, shop = build()

    @shop.handler()
    async def buy(ctx: Context, sku: str) -> float:
        fut = ctx.service_call(pricing.handlers["quote"].fn, sku, idempotency_key="q-1", headers={"a": "b"})
        assert isinstance(fut, RestateDurableCallFuture)
        callee = await fut.invocation_id()
        quote = await fut
        assert isinstance(quote, Quote)
        assert callee == child_invocation_id("inv_1", 0)
        return quote.price

    b = FakeBackend(app=app([pricing, stock, shop]))
    with pytest.raises(Suspended):
        run(drive(shop.handlers["buy"], b'"tea"', b))
    callee = child_invocation_id("inv_1", 0)
    assert b.journal == [(CALL, "Pricing/quote", callee.encode(), 0, None)]
    assert b.children == [(0, callee, "Pricing", "quote", None, b'"tea"', [("a", "b")], "q-1", 0, False)]

    b.deliver(0, b'{"sku":"tea","price":2.5}')
    assert run(drive(shop.handlers["buy"], b'"tea"', b)) == b"2.5"
    assert len(b.children) == 1, "a replayed call does not start its callee again"


def test_object_call_and_send_with_delay() -> None:
    pricing, stock, shop = build()

    @shop.handler()
    async def buy(ctx: Context) -> list[str]:
        ok = await ctx.object_call(stock.handlers["reserve"].fn, "tea", 2)
        handle = ctx.object_send(stock.handlers["reserve"].fn, "milk", 1, send_delay=timedelta(minutes=1))
        assert isinstance(handle, SendHandle)
        ping = ctx.service_send(pricing.handlers["ping"].fn, None)
        return [str(ok), await handle.invocation_id(), await ping.invocation_id()]

    b = FakeBackend(app=app([pricing, stock, shop]))
    b.script = [(0, (b"true", 0, None))]
    now = int(time.time() * 1000)
    out = run(drive(shop.handlers["buy"], b"", b))
    ids = [child_invocation_id("inv_1", i) for i in range(3)]
    assert out == ('["True","%s","%s"]' % (ids[1], ids[2])).encode()
    assert [e[:2] for e in b.journal] == [(CALL, "Stock/tea/reserve"), (SEND, "Stock/milk/reserve"),
                                          (SEND, "Pricing/ping")]
    (_, _, _, _, key0, in0, _, _, fire0, send0), second, third = b.children
    assert (key0, in0, fire0, send0) == ("tea", b"2", 0, False)
    assert second[4:6] == ("milk", b"1") and second[9] is True and now + 60_000 <= second[8] <= now + 61_000
    assert third[5] == b"" and third[8] == 0 and third[9] is True


def test_generic_call_and_send_carry_raw_bytes(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    backend.script = [(0, (b"\x00raw", 0, None))]

    async def body() -> bytes:
        f = ctx.generic_call("Any", "thing", b"\x01in", key="k1")
        ctx.generic_send("Any", "other", b"x", send_delay=timedelta(seconds=0))
        return await f

    assert run(body()) == b"\x00raw"
    assert backend.journal[0][:2] == (CALL, "Any/k1/thing")
    assert backend.children[0][2:6] == ("Any", "thing", "k1", b"\x01in")


def test_failed_call_raises_its_terminal_error(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    backend.script = [(0, (None, 402, "declined"))]

    async def body() -> None:
        await ctx.generic_call("Pay", "charge", b"")

    with pytest.raises(TerminalError) as info:
        run(body())
    assert (info.value.message, info.value.status_code) == ("declined", 402)


def test_unknown_target_is_terminal_404_and_journals_its_refusal() -> None:
    pricing, stock, shop = build()
    b = FakeBackend(app=app([pricing]))
    ctx = Context(b.machine(kind="service"))
    with pytest.raises(TerminalError) as info:
        ctx.generic_call("Nope", "h", b"")
    assert info.value.status_code == 404
    m = ctx._m
    # Journaled as a failed step named after the call, so a replay refuses it again there.
    assert m.take_pending() == [(RUN, "refused call Nope/h", None, 404, info.value.message)]
    assert m.take_children() == [] and m.journal_index == 1
    replayed = Context(b.machine(kind="service", replay=[(RUN, "refused call Nope/h", None, 404, "gone")]))
    with pytest.raises(TerminalError, match="gone"):
        replayed.generic_call("Nope", "h", b"")
    assert replayed._m.journal_index == 1 and replayed._m.take_pending() == []


def test_call_to_own_exclusive_key_is_refused_but_send_is_not() -> None:
    pricing, stock, shop = build()
    b = FakeBackend(app=app([stock]), caller=("Stock", "tea"))
    ctx = ObjectContext(b.machine(key="tea"))
    with pytest.raises(TerminalError, match="deadlock"):
        ctx.object_call(stock.handlers["reserve"].fn, "tea", 1)
    ctx.object_send(stock.handlers["reserve"].fn, "tea", 1)


def test_wrong_call_method_or_non_handler_is_a_type_error(backend: FakeBackend) -> None:
    pricing, stock, shop = build()
    ctx = Context(backend.machine(kind="service"))
    with pytest.raises(TypeError, match="is a handler of a object, call it with object_call"):
        ctx.service_call(stock.handlers["reserve"].fn, 1)
    with pytest.raises(TypeError, match="not a handler"):
        ctx.service_call(lambda c, x: x, 1)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match="takes no input"):
        ctx.service_call(pricing.handlers["ping"].fn, 1)
    assert ctx._m.journal_index == 0


def test_awaiting_a_call_without_completion_while_entries_follow_is_non_determinism() -> None:
    callee = child_invocation_id("inv_1", 0)
    b = FakeBackend(journal=[(CALL, "P/q", callee.encode(), 0, None), (RUN, "next", b"1", 0, None)])
    ctx = Context(b.machine(kind="service"))

    async def body() -> None:
        await ctx.generic_call("P", "q", b"")

    with pytest.raises(NonDeterminismError, match=r"entry 0 \(CALL\('P/q'\)\).*no recorded completion.*RUN"):
        run(body())


def test_cancel_invocation_is_journaled(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))

    async def body() -> None:
        f = ctx.generic_call("P", "q", b"")
        await f.cancel_invocation()
        ctx.cancel_invocation("inv_other")
        await ctx.generic_send("P", "q", b"").cancel_invocation()

    run(body())
    pending = ctx._m.take_pending()
    assert [e[:2] for e in pending] == [
        (CALL, "P/q"), (CANCEL_INVOCATION, child_invocation_id("inv_1", 0)), (CANCEL_INVOCATION, "inv_other"),
        (SEND, "P/q"), (CANCEL_INVOCATION, child_invocation_id("inv_1", 3)),
    ]


# -- cancellation ---------------------------------------------------------------------------


def cancellable_service(log: list[str]) -> Service:
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> str:
        try:
            await ctx.sleep(timedelta(hours=1))
        except TerminalError as exc:
            log.append(f"caught {exc.status_code} {exc.message}")
            await ctx.run_typed("undo", logged(log, "undo", "undone"))
            raise
        return "slept"

    return svc


def test_cancellation_observed_while_waiting_then_replayed() -> None:
    log: list[str] = []
    svc = cancellable_service(log)
    b = FakeBackend()
    b.script = ["cancel"]
    with pytest.raises(TerminalError) as info:
        run(drive(svc.handlers["h"], b"", b))
    assert (info.value.message, info.value.status_code) == ("cancelled", 409)
    assert [e[0] for e in b.journal] == [SLEEP, CANCEL, RUN]
    assert log == ["caught 409 cancelled", "undo"]
    assert not b.cancel_requested

    # a replay of the whole journal raises the same error at the same point, running nothing
    with pytest.raises(TerminalError, match="cancelled"):
        run(drive(svc.handlers["h"], b"", FakeBackend(journal=b.journal)))
    assert log == ["caught 409 cancelled", "undo", "caught 409 cancelled"]


def test_cancellation_requested_before_the_await_and_after_a_crash() -> None:
    log: list[str] = []
    svc = cancellable_service(log)
    b = FakeBackend()
    with pytest.raises(Suspended):
        run(drive(svc.handlers["h"], b"", b))
    b.request_cancel()  # while suspended: the runtime resumes it by replay, cancelled=True
    with pytest.raises(TerminalError, match="cancelled"):
        run(drive(svc.handlers["h"], b"", b))
    assert [e[0] for e in b.journal] == [SLEEP, CANCEL, RUN]


def test_cancellation_is_observed_at_the_start_of_a_step(backend: FakeBackend) -> None:
    backend.request_cancel()
    ctx = Context(backend.machine(kind="service"))
    ran: list[int] = []

    async def body() -> None:
        with pytest.raises(TerminalError, match="cancelled"):
            await ctx.run_typed("a", lambda: ran.append(1))
        await ctx.run_typed("b", lambda: ran.append(2))  # observed once: later steps run

    run(body())
    assert ran == [2]
    assert [e[:2] for e in backend.journal] == [(CANCEL, None), (RUN, "b")]
    # replay: the first step raises again without running, the second is replayed
    ctx2 = Context(FakeBackend(journal=backend.journal).machine(kind="service"))

    async def again() -> None:
        with pytest.raises(TerminalError, match="cancelled"):
            await ctx2.run_typed("a", lambda: ran.append(3))
        await ctx2.run_typed("b", lambda: ran.append(4))

    run(again())
    assert ran == [2]


def test_cancel_pins_which_await_at_one_index_observed_it() -> None:
    """Two awaits at the same journal index: the replay must raise at the
    second one, as the first run did, not at the first."""
    svc = Service("S")
    log: list[str] = []

    @svc.handler()
    async def h(ctx: Context) -> None:
        undo: list[str] = []
        call = ctx.generic_call("P", "q", b"")
        nap = ctx.sleep(timedelta(hours=1))
        try:
            await call
            undo.append("unq")  # not journaled: only a correct replay rebuilds it
            await nap
        except TerminalError:
            for name in reversed(undo):
                await ctx.run_typed(name, lambda: log.append(name))
            raise

    b = FakeBackend()
    b.script = [(0, (b"", 0, None)), "cancel"]
    with pytest.raises(TerminalError, match="cancelled"):
        run(drive(svc.handlers["h"], b"", b))
    assert [e[0] for e in b.journal] == [CALL, SLEEP, COMBINATOR, CANCEL, RUN]
    assert b.journal[2][2] == b"[0]"
    b.deliver(1, b"")  # the sleep fired later: the replay must still raise at `await nap`
    with pytest.raises(TerminalError, match="cancelled"):
        run(drive(svc.handlers["h"], b"", b))
    assert log == ["unq"]


def test_plain_awaits_journal_nothing_when_not_cancelled(backend: FakeBackend) -> None:
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context) -> int:
        a = ctx.generic_call("P", "q", b"")
        nap = ctx.sleep(timedelta(seconds=1))
        await a
        await nap
        return await ctx.run_typed("x", lambda: 1, RunOptions())

    backend.script = [(0, (b"1", 0, None)), (1, (b"", 0, None))]
    assert run(drive(svc.handlers["h"], b"", backend)) == b"1"
    assert [e[0] for e in backend.journal] == [CALL, SLEEP, RUN]


def test_state_entries_are_flushed_before_waiting() -> None:
    obj = VirtualObject("O")

    @obj.handler()
    async def h(ctx: ObjectContext) -> None:
        ctx.set("a", 1)
        await ctx.sleep(timedelta(seconds=1))

    b = FakeBackend()
    with pytest.raises(Suspended):
        run(drive(obj.handlers["h"], b"", b))
    assert [e[0] for e in b.journal] == [SET_STATE, SLEEP] and b.state == {"a": b"1"}


def test_replay_requested_is_not_swallowed_by_the_saga_or_except_exception(backend: FakeBackend) -> None:
    """In always-replay mode each durable point raises ReplayRequested inside the handler.
    A handler that wraps its awaits in `except Exception` and a Saga must not see it: no
    except branch runs, no compensation runs, the body restarts from the journal."""
    svc = Service("S")
    log: list[str] = []
    caught: list[BaseException] = []
    bodies: list[int] = []

    @svc.handler()
    async def h(ctx: Context) -> str:
        bodies.append(len(bodies))
        async with Saga(ctx) as saga:
            try:
                a = await ctx.run_typed("one", logged(log, "one", "a"), RunOptions())
                saga.add("undo_one", logged(log, "undo one"))
                b = await ctx.run_typed("two", logged(log, "two", "b"), RunOptions())
            except Exception as exc:  # what a handler may do; internal control flow passes by
                caught.append(exc)
                return "swallowed"
        return a + b

    assert run(drive(svc.handlers["h"], b"", backend, always_replay=True)) == b'"ab"'
    assert caught == []
    assert log == ["one", "two"]  # each step ran once, no compensation ran
    # Live once, then once more after each step's durable point, by replay.
    assert len(bodies) == 3
    assert [e[:2] for e in backend.journal] == [(RUN, "one"), (RUN, "two")]
    assert not issubclass(ReplayRequested, Exception) and not issubclass(Suspended, Exception)
