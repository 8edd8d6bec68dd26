"""Awakeables and workflow promises: ids, completion, rejection, peek, replay."""
from __future__ import annotations

import pydantic
import pytest

from .fakes import FakeBackend, drive, run
from pysdk import (
    Context,
    DurablePromise,
    ObjectContext,
    RestateDurableFuture,
    TerminalError,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
    app,
)
from pysdk._entries import AWAKEABLE, COMPLETE_AWAKEABLE, COMPLETE_PROMISE, GET_PROMISE, PEEK_PROMISE, SET_STATE
from pysdk._errors import NonDeterminismError, Suspended
from pysdk._ids import awakeable_id, parse_awakeable_id


class Approval(pydantic.BaseModel):
    by: str
    ok: bool


# -- awakeables ----------------------------------------------------------------------------


def test_awakeable_id_names_the_entry_and_the_future_decodes_with_the_hint(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    backend.script = [(1, (b'{"by":"ann","ok":true}', 0, None))]

    async def body() -> Approval:
        ctx.generic_send("Audit", "log", b"")
        name, fut = ctx.awakeable(type_hint=Approval)
        assert isinstance(fut, RestateDurableFuture)
        assert name == awakeable_id("inv_1", 1) and parse_awakeable_id(name) == ("inv_1", 1)
        return await fut

    assert run(body()) == Approval(by="ann", ok=True)
    assert backend.journal[1] == (AWAKEABLE, None, None, 0, None)


def test_rejected_awakeable_raises(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    backend.script = [(0, (None, 410, "expired"))]

    async def body() -> None:
        _, fut = ctx.awakeable()
        await fut

    with pytest.raises(TerminalError) as info:
        run(body())
    assert (info.value.message, info.value.status_code) == ("expired", 410)


def test_awakeable_survives_suspension_and_replays() -> None:
    wf = Workflow("W")
    seen: list[str] = []

    @wf.main()
    async def run_(ctx: WorkflowContext) -> str:
        name, fut = ctx.awakeable()
        seen.append(name)
        return str(await fut)

    b = FakeBackend()
    with pytest.raises(Suspended):
        run(drive(wf.handlers["run_"], b"", b))
    b.deliver(0, b'"go"')
    assert run(drive(wf.handlers["run_"], b"", b)) == b'"go"'
    assert seen[0] == seen[1], "the id is the same on replay"


def test_resolve_and_reject_awakeable_are_journaled(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    target = awakeable_id("inv_9", 3)
    ctx.resolve_awakeable(target, {"a": 1})
    ctx.reject_awakeable(target, "no", 422)
    assert ctx._m.take_pending() == [
        (COMPLETE_AWAKEABLE, target, b'{"a":1}', 0, None),
        (COMPLETE_AWAKEABLE, target, None, 422, "no"),
    ]
    with pytest.raises(TerminalError) as info:
        ctx.resolve_awakeable("prom_123", 1)
    assert info.value.status_code == 400
    # replay: recorded, not re-encoded; another id is non-determinism
    replay = Context(FakeBackend(journal=[(COMPLETE_AWAKEABLE, target, b"1", 0, None)]).machine(kind="service"))
    with pytest.raises(NonDeterminismError):
        replay.resolve_awakeable(awakeable_id("inv_9", 4), 1)


# -- promises -------------------------------------------------------------------------------


def approval_workflow(log: list[str]) -> Workflow:
    wf = Workflow("Signup")

    @wf.main()
    async def run_(ctx: WorkflowContext, email: str) -> str:
        ctx.set("status", "waiting")
        approval = await ctx.promise("approval", type_hint=Approval)
        log.append(f"approved by {approval.by}")
        ctx.set("status", "done")
        return approval.by

    @wf.handler()
    async def approve(ctx: WorkflowSharedContext, who: str) -> bool:
        await ctx.promise("approval").resolve({"by": who, "ok": True})
        return True

    @wf.handler()
    async def status(ctx: WorkflowSharedContext) -> object:
        return [await ctx.get("status"), await ctx.promise("approval", type_hint=Approval).peek()]

    return wf


def test_promise_value_waits_for_a_shared_handler_to_resolve_it() -> None:
    log: list[str] = []
    wf = approval_workflow(log)
    main_b = FakeBackend()
    with pytest.raises(Suspended):
        run(drive(wf.handlers["run_"], b'"a@b"', main_b))
    assert [e[0] for e in main_b.journal] == [SET_STATE, GET_PROMISE]

    # a shared handler of the same workflow key resolves the promise (shared promise table)
    other = FakeBackend(state=main_b.state)
    other.promises = main_b.promises
    assert run(drive(wf.handlers["status"], b"", other, invocation_id="inv_2")) == b'["waiting",null]'
    approve_b = FakeBackend(state=main_b.state)
    approve_b.promises = main_b.promises
    assert run(drive(wf.handlers["approve"], b'"ann"', approve_b, invocation_id="inv_3")) == b"true"
    assert approve_b.journal == [(COMPLETE_PROMISE, "approval", b'{"by":"ann","ok":true}', 0, None)]
    assert approve_b.completions == {0: (b"", 0, None)}

    # the runtime completes the main handler's GET_PROMISE and resumes it by replay
    main_b.deliver(1, *main_b.promises["approval"])
    assert run(drive(wf.handlers["run_"], b'"a@b"', main_b)) == b'"ann"'
    assert log == ["approved by ann"]

    peek_b = FakeBackend(state=main_b.state)
    peek_b.promises = main_b.promises
    out = run(drive(wf.handlers["status"], b"", peek_b, invocation_id="inv_4"))
    assert out == b'["done",{"by":"ann","ok":true}]'
    assert peek_b.journal[1] == (PEEK_PROMISE, "approval", b'{"by":"ann","ok":true}', 0, None)


def test_resolving_a_completed_promise_is_terminal_409() -> None:
    log: list[str] = []
    wf = approval_workflow(log)
    b = FakeBackend()
    b.promises["approval"] = (b'{"by":"x","ok":false}', 0, None)
    with pytest.raises(TerminalError) as info:
        run(drive(wf.handlers["approve"], b'"ann"', b))
    assert info.value.status_code == 409 and "already completed" in info.value.message


def test_rejected_promise_raises_on_value_and_on_peek() -> None:
    b = FakeBackend()
    ctx = WorkflowSharedContext(b.machine(kind="shared"))

    async def body() -> None:
        p: DurablePromise[int] = ctx.promise("p")
        await p.reject("nope", 451)
        with pytest.raises(TerminalError) as on_peek:
            await p.peek()
        assert on_peek.value.status_code == 451
        with pytest.raises(TerminalError) as on_value:
            await p.value()
        assert on_value.value.message == "nope"

    run(body())
    assert [e[0] for e in b.journal] == [COMPLETE_PROMISE, PEEK_PROMISE, GET_PROMISE]
    assert b.journal[0] == (COMPLETE_PROMISE, "p", None, 451, "nope")


def test_peek_replays_what_the_first_run_saw() -> None:
    b = FakeBackend(journal=[(PEEK_PROMISE, "p", None, 0, None)])
    b.promises["p"] = (b"5", 0, None)  # resolved since: the replay still sees "not yet"
    ctx = WorkflowContext(b.machine(kind="workflow"))
    assert run(ctx.promise("p").peek()) is None
    assert run(ctx.promise("p").peek()) == 5


def test_promises_only_on_workflow_contexts() -> None:
    for cls in (Context, ObjectContext):
        assert not hasattr(cls, "promise")
    assert hasattr(WorkflowContext, "promise") and hasattr(WorkflowSharedContext, "promise")
    assert not hasattr(WorkflowSharedContext, "set") and hasattr(WorkflowContext, "set")
    assert app([approval_workflow([])]).service_type("Signup") == "workflow"
