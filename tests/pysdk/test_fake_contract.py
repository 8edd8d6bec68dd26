"""The fake backend held to the real runtime.

The SDK's unit tests assert on `tests/pysdk/fakes.py`, which re-implements the
backend's rules: the effects of journal entries, promises, awakeables, completions,
cancellation, the checks of call targets and the answers of second completions.
Each scenario here is a small handler and a script of external events, run through
the fake as the unit tests run handlers and through the real runtime in-process
(`contract.py` says how, in three modes: live, suspend, replay). What the two report
must be equal (`Observed`): the handler's result or TerminalError, its journal, the
completions of its entries, the callees it started, the answers of the signals sent
to it, the results and journals of the other invocations of the script, and its
key's state. Each scenario's `check` also pins, on the real side, the behaviour it is
named for, so that two sides agreeing that nothing happened do not pass.

A scenario the runtime (or the SDK) gets wrong is marked `bug`: strict xfail in the
modes where it fails, with the reason.
"""
from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pysdk import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
    select,
    wait_completed,
)
from pysdk._app import ServiceDefinition
from pysdk._entries import CANCEL, COMBINATOR, RUN, SLEEP
from pysdk._ids import awakeable_id
from runtime import _core

from . import fakes
from .contract import (
    MAIN_ID,
    MODES,
    Called,
    Cancel,
    Ext,
    Fire,
    Invoke,
    Mode,
    Observed,
    Resolve,
    Scenario,
    as_json,
    run_fake,
    run_real,
)

APPLIED = _core.SIGNAL_APPLIED
ALREADY = _core.SIGNAL_ALREADY_COMPLETED


def test_the_fakes_signal_answers_are_the_stores() -> None:
    assert (fakes.SIGNAL_APPLIED, fakes.SIGNAL_ALREADY_COMPLETED) == (APPLIED, ALREADY)


# -- scenarios ------------------------------------------------------------------------------

# ---- state ----


def state_services(ext: Ext) -> list[ServiceDefinition]:
    obj = VirtualObject("Counter")

    @obj.handler()
    async def edit(ctx: ObjectContext) -> list[Any]:
        before = await ctx.get("n")
        ctx.set("n", 1)
        ctx.set("tmp", "x")
        _, fut = ctx.awakeable()  # entry 3: the state entries before it are durable when it waits
        value = await fut
        keys = await ctx.state_keys()
        ctx.clear("tmp")
        ctx.clear_all()
        ctx.set("n", value)
        ctx.set("gone", 0)
        ctx.clear("gone")
        return [before, keys]

    @obj.handler(kind="shared")
    async def read(ctx: ObjectSharedContext) -> list[Any]:
        return [await ctx.get("n"), await ctx.state_keys()]

    return [obj]


def check_state(o: Observed) -> None:
    assert o.result == (b'[null,["n","tmp"]]', 0, None)
    assert [r for _, r, _ in o.invoked] == [(b'[1,["n","tmp"]]', 0, None), (b'[5,["n"]]', 0, None)]
    assert o.state == {"n": b"5"}


# ---- awakeables ----


def two_awakeables(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Waiter")

    @svc.handler()
    async def wait(ctx: Context) -> list[Any]:
        _, a = ctx.awakeable()
        _, b = ctx.awakeable()
        first = await a
        second = await b
        return [first, second]

    return [svc]


def check_awakeable_completed_twice(o: Observed) -> None:
    assert o.result == (None, 410, "gone")
    assert [s for _, s in o.signals] == [APPLIED, ALREADY, APPLIED, ALREADY]
    assert o.completions == {0: (b'"one"', 0, None), 1: (None, 410, "gone")}


def resolved_by_handlers(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Waiter")

    @svc.handler()
    async def wait(ctx: Context) -> str:
        name, fut = ctx.awakeable()
        assert name == awakeable_id(MAIN_ID, 0)
        return str(await fut)

    resolver = Service("Resolver")

    @resolver.handler()
    async def resolve(ctx: Context, name: str) -> str:
        ctx.resolve_awakeable(name, "from a handler")
        return "sent"

    @resolver.handler()
    async def reject(ctx: Context, name: str) -> str:
        ctx.reject_awakeable(name, "too late", 422)
        return "sent"

    return [svc, resolver]


def check_resolved_by_handlers(o: Observed) -> None:
    assert o.result == (b'"from a handler"', 0, None)
    assert o.completions == {0: (b'"from a handler"', 0, None)}
    assert [r for _, r, _ in o.invoked] == [(b'"sent"', 0, None)] * 2


def early_awakeable(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Early")

    @svc.handler()
    async def go(ctx: Context) -> list[Any]:
        async def hand_out_ahead() -> str:
            await ext.resolve(2, b'"early"')  # entry 2 will be the awakeable
            return "a"

        async def hand_out_wrong() -> str:
            await ext.resolve(1, b'"dropped"')  # entry 1 will be this step, not an awakeable
            return "b"

        a = await ctx.run_typed("a", hand_out_ahead)
        b = await ctx.run_typed("b", hand_out_wrong)
        _, fut = ctx.awakeable()
        return [a, b, await fut]

    return [svc]


def check_early_awakeable(o: Observed) -> None:
    assert o.result == (b'["a","b","early"]', 0, None)
    assert o.completions == {2: (b'"early"', 0, None)}, "the early completion of a RUN index is dropped"
    assert [s for _, s in o.signals] == [APPLIED, APPLIED, ALREADY, ALREADY]


def resolved_while_running(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Busy")

    @svc.handler()
    async def go(ctx: Context) -> list[Any]:
        _, fut = ctx.awakeable()

        async def hand_out() -> str:
            await ext.resolve(0, b'"meanwhile"')  # the AWAKEABLE is durable before a step body runs
            return "handed out"

        step = await ctx.run_typed("hand out", hand_out)
        return [step, await fut]

    return [svc]


def check_resolved_while_running(o: Observed) -> None:
    assert o.result == (b'["handed out","meanwhile"]', 0, None)
    assert o.signals == [("step resolves 0", APPLIED)]


# ---- workflow promises ----


def approval_workflow(ext: Ext) -> list[ServiceDefinition]:
    wf = Workflow("Signup")

    @wf.main()
    async def run(ctx: WorkflowContext, email: str) -> str:
        ctx.set("status", "waiting")
        approval = await ctx.promise("approval")
        ctx.set("status", "done")
        return str(approval["by"])

    @wf.handler()
    async def approve(ctx: WorkflowSharedContext, who: str) -> bool:
        await ctx.promise("approval").resolve({"by": who})
        return True

    @wf.handler()
    async def refuse(ctx: WorkflowSharedContext, why: str) -> bool:
        await ctx.promise("approval").reject(why, 451)
        return True

    @wf.handler()
    async def status(ctx: WorkflowSharedContext) -> object:
        return [await ctx.get("status"), await ctx.promise("approval").peek()]

    return [wf]


def check_promise_resolved_twice(o: Observed) -> None:
    assert o.result == (b'"ann"', 0, None)
    assert [r for _, r, _ in o.invoked] == [
        (b'["waiting",null]', 0, None), (b"true", 0, None),
        (None, 409, "promise already completed"), (b'["done",{"by":"ann"}]', 0, None)]
    assert o.state == {"status": b'"done"'}


def check_promise_rejected_then_resolved(o: Observed) -> None:
    assert o.result == (None, 451, "nope")
    assert [r for _, r, _ in o.invoked] == [(b"true", 0, None), (None, 409, "promise already completed")]


def own_promises(ext: Ext) -> list[ServiceDefinition]:
    wf = Workflow("Own")

    @wf.main()
    async def run(ctx: WorkflowContext) -> list[Any]:
        p = ctx.promise("p")
        await p.resolve(1)
        try:
            await p.resolve(2)
            second: Any = "accepted"
        except TerminalError as exc:
            second = [exc.status_code, exc.message]
        peeked = await p.peek()
        value = await p.value()
        ctx.promise("late").value()  # never awaited: waits on the promise from the step's commit
        await ctx.run_typed("step", lambda: "x")
        return [second, peeked, value]

    @wf.handler()
    async def settle_late(ctx: WorkflowSharedContext) -> bool:
        await ctx.promise("late").resolve("too late")
        return True

    return [wf]


def check_own_promises(o: Observed) -> None:
    assert o.result == (b'[[409,"promise already completed"],1,1]', 0, None)
    assert o.completions == {0: (b"", 0, None), 1: (None, 409, "promise already completed"), 3: (b"1", 0, None)}
    assert 4 not in o.completions, "a finished invocation's GET_PROMISE is not completed"
    assert [r for _, r, _ in o.invoked] == [(b"true", 0, None)]


# ---- sleeps, combinators ----


def napper(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Napper")

    @svc.handler()
    async def nap(ctx: Context) -> str:
        await ctx.sleep(timedelta(hours=1), name="nap")
        return await ctx.run_typed("after", lambda: "rested")

    return [svc]


def check_sleep_fired(o: Observed) -> None:
    assert o.result == (b'"rested"', 0, None)
    assert o.completions == {0: (b"", 0, None)}


def race(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Race")

    @svc.handler()
    async def go(ctx: Context) -> str:
        _, approval = ctx.awakeable()
        timeout = ctx.sleep(timedelta(hours=1))
        match await select(approved=approval, timeout=timeout):
            case ["approved", value]:
                return f"approved {value}"
            case _:
                return "timed out"

    return [svc]


def check_timeout_won(o: Observed) -> None:
    assert o.result == (b'"timed out"', 0, None)
    assert o.journal[2][2] == b"[1]"
    assert o.signals == [("resolve 0", ALREADY)], "an awakeable of a finished invocation"


def two_naps(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Naps")

    @svc.handler()
    async def go(ctx: Context) -> list[Any]:
        short, long = ctx.sleep(timedelta(hours=1)), ctx.sleep(timedelta(hours=2))
        done, pending = await wait_completed(long, short)
        return [[f is short for f in done], len(pending)]

    return [svc]


def check_fired_together(o: Observed) -> None:
    assert o.result == (b'[[true,false],0]', 0, None), "both fired in one commit, the earlier first"
    assert o.journal[2] == (COMBINATOR, None, b"[0,1]", 0, None)


def check_awakeable_won(o: Observed) -> None:
    assert o.result == (b'"approved yes"', 0, None)
    assert o.journal[2][2] == b"[0]"
    assert 1 not in o.completions, "the sleep of a finished invocation does not fire"


# ---- calls and sends ----


def shop(ext: Ext) -> list[ServiceDefinition]:
    pricing = Service("Pricing")

    @pricing.handler()
    async def quote(ctx: Context, sku: str) -> dict[str, Any]:
        return {"sku": sku, "price": 1.5}

    @pricing.handler()
    async def ping(ctx: Context) -> None:
        return None

    pay = Service("Pay")

    @pay.handler()
    async def charge(ctx: Context, amount: float) -> str:
        raise TerminalError("declined", 402)

    shop_ = Service("Shop")

    @shop_.handler()
    async def buy(ctx: Context, sku: str) -> float:
        fut = ctx.service_call(quote, sku, idempotency_key="q-1", headers={"a": "b"})
        ctx.service_send(ping, None)
        ctx.service_send(ping, None, send_delay=timedelta(hours=1), headers={"later": "yes"})
        return float((await fut)["price"])

    @shop_.handler()
    async def pay_for(ctx: Context, amount: float) -> str:
        return await ctx.service_call(charge, amount)

    return [pricing, pay, shop_]


def check_call_result(o: Observed) -> None:
    assert o.result == (b"1.5", 0, None)
    assert o.completions == {0: (b'{"sku":"tea","price":1.5}', 0, None)}
    assert [c[1:] for c in o.callees] == [("Pricing", "quote", "", b'"tea"', [("a", "b")], "q-1"),
                                         ("Pricing", "ping", "", b"", [], ""),
                                         ("Pricing", "ping", "", b"", [("later", "yes")], "")]


def check_call_failed(o: Observed) -> None:
    assert o.result == (None, 402, "declined")
    assert o.completions == {0: (None, 402, "declined")}


def targets(ext: Ext) -> list[ServiceDefinition]:
    stock = VirtualObject("Stock")

    @stock.handler()
    async def reserve(ctx: ObjectContext, qty: int) -> bool:
        return True

    @stock.handler()
    async def self_call(ctx: ObjectContext) -> list[Any]:
        try:
            ctx.object_call(reserve, ctx.key(), 1)
        except TerminalError as exc:
            return [exc.status_code, exc.message]
        return ["called"]

    @stock.handler(kind="shared")
    async def shared_self_call(ctx: ObjectSharedContext) -> Any:
        return await ctx.object_call(reserve, ctx.key(), 1)  # the shared handler holds no key

    wf = Workflow("Flow")

    @wf.main()
    async def run(ctx: WorkflowContext) -> str:
        return "ran"

    @wf.handler()
    async def poke(ctx: WorkflowSharedContext) -> str:
        return "poked"

    svc = Service("Caller")

    @svc.handler()
    async def probe(ctx: Context) -> list[Any]:
        answers: list[Any] = [await ctx.workflow_call(run, "w1", None)]
        # Refused calls journal nothing: they come last, where a replay reaches them live.
        for target in (lambda: ctx.generic_call("Nope", "h", b""),
                       lambda: ctx.generic_call("Stock", "reserve", b"1"),
                       lambda: ctx.workflow_call(run, "", None),
                       lambda: ctx.workflow_call(run, "w1", None)):
            try:
                target()
                answers.append("accepted")
            except TerminalError as exc:
                answers.append([exc.status_code, exc.message])
        return answers

    @svc.handler()
    async def careful(ctx: Context) -> int:
        try:
            ctx.generic_call("Nope", "h", b"")
            code = 0
        except TerminalError as exc:
            code = exc.status_code
        await ctx.sleep(timedelta(hours=1))
        return code

    return [stock, wf, svc]


def check_targets(o: Observed) -> None:
    assert o.result == (as_json([
        "ran",
        [404, "handler Nope/h not found"],
        [400, "Stock is keyed: a call to Stock/reserve needs a key"],
        [400, "Flow is keyed: a call to Flow/run needs a key"],
        [409, "workflow Flow/w1 has already been started"],
    ]), 0, None)


def check_refused_then_replayed(o: Observed) -> None:
    assert (o.result, o.retrying) == ((b"404", 0, None), False)


def check_self_call(o: Observed) -> None:
    assert o.result == (as_json([400, "Stock/tea/reserve is the caller's own key, which the caller holds: "
                                      "a call would deadlock; use a send"]), 0, None)


def check_shared_self_call(o: Observed) -> None:
    assert o.result == (b"true", 0, None)


def workflow_calls_itself(ext: Ext) -> list[ServiceDefinition]:
    wf = Workflow("Loop")

    @wf.main()
    async def run(ctx: WorkflowContext) -> list[Any]:
        try:
            ctx.workflow_call(run, ctx.key(), None)
        except TerminalError as exc:
            return [exc.status_code, exc.message]
        return ["accepted"]

    return [wf]


def check_workflow_calls_itself(o: Observed) -> None:
    assert o.result == (b'[409,"workflow Loop/w has already been started"]', 0, None)


def twice_in_one_commit(ext: Ext) -> list[ServiceDefinition]:
    wf = Workflow("Once")

    @wf.main()
    async def run(ctx: WorkflowContext) -> str:
        return "ran"

    svc = Service("Starter")

    @svc.handler()
    async def start(ctx: Context) -> list[Any]:
        first = ctx.workflow_call(run, "w", None)
        try:
            second = ctx.workflow_call(run, "w", None)  # no await in between: not durable yet
        except TerminalError as exc:
            return [await first, exc.status_code]
        return [await first, await second]

    return [wf, svc]


def check_twice_in_one_commit(o: Observed) -> None:
    assert o.result == (b'["ran",409]', 0, None), "a workflow key runs once"


# ---- cancellation ----


def cancellable(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Trip")

    @svc.handler()
    async def book(ctx: Context) -> str:
        try:
            await ctx.sleep(timedelta(hours=1))
        except TerminalError:
            await ctx.run_typed("undo", lambda: "undone")
            raise
        return "slept"

    canceller = Service("Canceller")

    @canceller.handler()
    async def cancel(ctx: Context, inv_id: str) -> str:
        ctx.cancel_invocation(inv_id)
        return "asked"

    return [svc, canceller]


def check_cancelled(o: Observed) -> None:
    assert o.result == (None, 409, "cancelled")
    assert [e[:2] for e in o.journal] == [(SLEEP, None), (CANCEL, None), (RUN, "undo")]
    assert [s for _, s in o.signals] == [APPLIED, ALREADY]


def check_cancelled_by_a_handler(o: Observed) -> None:
    assert o.result == (None, 409, "cancelled")
    assert [r for _, r, _ in o.invoked] == [(b'"asked"', 0, None)]


def cancelled_while_running(ext: Ext) -> list[ServiceDefinition]:
    svc = Service("Steps")

    @svc.handler()
    async def go(ctx: Context) -> list[Any]:
        async def first() -> str:
            await ext.cancel()
            return "one"

        done: list[Any] = [await ctx.run_typed("one", first)]
        # Observed at the next await point that waits. (The runtime hands the cancellation to
        # the machine when the event loop gets to its wake, which a step whose commit is
        # already durable does not yield to: which of several steps in a row observes it is
        # not determined, so none stands between.)
        try:
            await ctx.sleep(timedelta(hours=1))
            done.append("slept")
        except TerminalError as exc:
            done.append([exc.status_code, exc.message])
        done.append(await ctx.run_typed("three", lambda: "three"))  # observed once: later steps run
        return done

    return [svc]


def check_cancelled_while_running(o: Observed) -> None:
    assert o.result == (b'["one",[409,"cancelled"],"three"]', 0, None)
    assert [e[:2] for e in o.journal] == [(RUN, "one"), (SLEEP, None), (CANCEL, None), (RUN, "three")]


SCENARIOS = [
    Scenario("state get/set/clear around a wait", state_services, ("Counter", "edit", "k"),
             [Invoke("Counter", "read", "k"), Resolve(3, b"5"), Invoke("Counter", "read", "k")], check_state),
    Scenario("awakeable resolved, resolved again, rejected", two_awakeables, ("Waiter", "wait", ""),
             [Resolve(0, b'"one"'), Resolve(0, b'"again"'), Resolve(1, None, 410, "gone"), Resolve(1, b'"late"')],
             check_awakeable_completed_twice),
    Scenario("awakeable resolved by handlers, twice", resolved_by_handlers, ("Waiter", "wait", ""),
             [Invoke("Resolver", "resolve", body=as_json(awakeable_id(MAIN_ID, 0))),
              Invoke("Resolver", "reject", body=as_json(awakeable_id(MAIN_ID, 0)))],
             check_resolved_by_handlers),
    Scenario("awakeable resolved before its entry is journaled", early_awakeable, ("Early", "go", ""),
             [Resolve(2, b'"again"'), Resolve(1, b'"again"')], check_early_awakeable, never_suspends=True),
    Scenario("awakeable resolved while the handler runs", resolved_while_running, ("Busy", "go", ""),
             [], check_resolved_while_running, never_suspends=True),
    Scenario("promise resolved by a shared handler, twice", approval_workflow, ("Signup", "run", "w"),
             [Invoke("Signup", "status", "w"), Invoke("Signup", "approve", "w", b'"ann"'),
              Invoke("Signup", "approve", "w", b'"bob"'), Invoke("Signup", "status", "w")],
             check_promise_resolved_twice, body=b'"a@b"'),
    Scenario("promise rejected, then resolved", approval_workflow, ("Signup", "run", "w"),
             [Invoke("Signup", "refuse", "w", b'"nope"'), Invoke("Signup", "approve", "w", b'"ann"')],
             check_promise_rejected_then_resolved, body=b'"a@b"'),
    Scenario("promise completed twice by its own workflow", own_promises, ("Own", "run", "w"),
             [Invoke("Own", "settle_late", "w")], check_own_promises),
    Scenario("sleep fires", napper, ("Napper", "nap", ""), [Fire(0)], check_sleep_fired),
    Scenario("select: the timeout wins", race, ("Race", "go", ""), [Fire(1), Resolve(0, b'"late"')],
             check_timeout_won),
    Scenario("select: the awakeable wins", race, ("Race", "go", ""), [Resolve(0, b'"yes"'), Fire(1)],
             check_awakeable_won),
    Scenario("two sleeps fire at once", two_naps, ("Naps", "go", ""), [Fire(1)], check_fired_together),
    Scenario("call and its result", shop, ("Shop", "buy", ""),
             [Called(0, (b'{"sku":"tea","price":1.5}', 0, None))], check_call_result, body=b'"tea"'),
    Scenario("call and its failure", shop, ("Shop", "pay_for", ""), [Called(0, (None, 402, "declined"))],
             check_call_failed, body=b"3"),
    Scenario("call targets refused", targets, ("Caller", "probe", ""), [Called(0, (b'"ran"', 0, None))],
             check_targets),
    Scenario("a refused call caught, then a wait", targets, ("Caller", "careful", ""), [Fire(1)],
             check_refused_then_replayed),
    Scenario("exclusive handler calls its own key", targets, ("Stock", "self_call", "tea"), [],
             check_self_call, never_suspends=True),
    Scenario("shared handler calls its own key", targets, ("Stock", "shared_self_call", "tea"),
             [Called(0, (b"true", 0, None))], check_shared_self_call),
    Scenario("workflow calls its own run", workflow_calls_itself, ("Loop", "run", "w"), [],
             check_workflow_calls_itself, never_suspends=True),
    Scenario("one workflow key called twice in one commit", twice_in_one_commit, ("Starter", "start", ""),
             [Called(0, (b'"ran"', 0, None))], check_twice_in_one_commit),
    Scenario("cancelled while waiting, then again", cancellable, ("Trip", "book", ""), [Cancel(), Cancel()],
             check_cancelled),
    Scenario("cancelled by another handler", cancellable, ("Trip", "book", ""),
             [Invoke("Canceller", "cancel", body=as_json(MAIN_ID))], check_cancelled_by_a_handler),
    Scenario("cancelled while a step runs", cancelled_while_running, ("Steps", "go", ""), [],
             check_cancelled_while_running),
]


# -- the contract -------------------------------------------------------------------------------


def _cases() -> list[Any]:
    cases = []
    for s in SCENARIOS:
        for m in MODES:
            if s.never_suspends and m.name == "suspend":
                continue
            marks = []
            if s.bug is not None and m.name in s.bug[0]:
                marks.append(pytest.mark.xfail(strict=True, reason=f"bug: {s.bug[1]}"))
            cases.append(pytest.param(s, m, id=f"{s.name}-{m.name}", marks=marks))
    return cases


@pytest.mark.parametrize(("scenario", "mode"), _cases())
def test_the_fake_and_the_runtime_agree(scenario: Scenario, mode: Mode, tmp_path: Path) -> None:
    real = asyncio.run(run_real(scenario, mode, tmp_path / "data"))
    scenario.check(real)
    fake = asyncio.run(run_fake(scenario, mode))
    assert fake == real
