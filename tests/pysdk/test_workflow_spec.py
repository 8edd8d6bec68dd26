"""Workflow definitions: kinds, contexts, decoration-time checks, App, calls."""
from __future__ import annotations

from datetime import timedelta

import pytest

from .fakes import FakeBackend, drive, run
from pysdk import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
    app,
)
from pysdk._entries import CALL, SEND, SET_STATE


def signup() -> Workflow:
    wf = Workflow("Signup", description="sign-up flow")

    @wf.main(workflow_retention=timedelta(days=7))
    async def run_(ctx: WorkflowContext, email: str) -> str:
        ctx.set("email", email)
        return email

    @wf.handler()
    async def email(ctx: WorkflowSharedContext) -> object:
        return await ctx.get("email")

    return wf


def test_main_and_shared_handlers_get_their_kinds_and_contexts() -> None:
    wf = signup()
    main, shared = wf.handlers["run_"], wf.handlers["email"]
    assert (main.kind, main.service_type, main.context_class) == ("workflow", "workflow", WorkflowContext)
    assert (shared.kind, shared.service_type, shared.context_class) == ("shared", "workflow", WorkflowSharedContext)
    assert main.options.workflow_retention == timedelta(days=7)
    assert wf.main_handler == "run_"
    assert issubclass(WorkflowContext, ObjectContext) and issubclass(WorkflowSharedContext, ObjectSharedContext)


def test_main_handler_writes_state_and_shared_handler_reads_it() -> None:
    wf = signup()
    b = FakeBackend()
    assert run(drive(wf.handlers["run_"], b'"a@b.c"', b, key="user-1")) == b'"a@b.c"'
    assert b.journal == [(SET_STATE, "email", b'"a@b.c"', 0, None)]
    assert run(drive(wf.handlers["email"], b"", b.next_invocation(), key="user-1")) == b'"a@b.c"'


def test_a_workflow_has_one_main_handler() -> None:
    wf = signup()
    with pytest.raises(ValueError, match="already has a main handler"):
        @wf.main()
        async def again(ctx: WorkflowContext) -> None:
            return None


def test_main_annotated_with_a_read_only_context_is_refused() -> None:
    wf = Workflow("W")
    with pytest.raises(TypeError, match="workflow handler, so its context is WorkflowContext"):
        @wf.main()
        async def run_(ctx: WorkflowSharedContext) -> None:
            return None


def test_shared_handler_annotated_with_the_main_context_is_refused() -> None:
    wf = Workflow("W")
    with pytest.raises(TypeError, match="shared handler, so its context is WorkflowSharedContext"):
        @wf.handler()
        async def peek(ctx: WorkflowContext) -> None:
            return None


def test_main_signature_is_checked_when_decorated() -> None:
    wf = Workflow("W")
    with pytest.raises(TypeError, match="async def"):
        @wf.main()
        def sync(ctx: WorkflowContext) -> None:  # type: ignore[type-var]
            return None
    with pytest.raises(TypeError, match="at most one input"):
        @wf.main()
        async def two(ctx: WorkflowContext, a: int, b: int) -> None:
            return None
    with pytest.raises(ValueError, match="handler name"):
        wf.main(name="a/b")(lambda ctx: None)
    with pytest.raises(ValueError, match="Workflow name"):
        Workflow("bad name")
    assert wf.main_handler is None, "a refused main does not count"


def test_base_context_annotations_are_accepted() -> None:
    """A handler may annotate a base class of its context; it still gets the workflow's."""
    wf = Workflow("W")
    seen: list[type] = []

    @wf.main()
    async def run_(ctx: Context) -> str:
        seen.append(type(ctx))
        ctx.set("seen", "main")  # type: ignore[attr-defined]
        return "ran"

    @wf.handler()
    async def info(ctx: ObjectSharedContext) -> object:
        seen.append(type(ctx))
        return await ctx.get("seen")

    main, shared = wf.handlers["run_"], wf.handlers["info"]
    assert (main.kind, main.context_class) == ("workflow", WorkflowContext)
    assert (shared.kind, shared.context_class) == ("shared", WorkflowSharedContext)
    assert wf.main_handler == "run_"
    b = FakeBackend()
    assert run(drive(main, b"", b, key="k")) == b'"ran"'
    assert run(drive(shared, b"", b.next_invocation(), key="k")) == b'"main"'
    assert seen == [WorkflowContext, WorkflowSharedContext]


def test_app_serves_workflows() -> None:
    wf = signup()
    application = app([wf, Service("S")])
    assert application.service_type("Signup") == "workflow"
    assert application.lookup("Signup", "run_") is wf.handlers["run_"]
    with pytest.raises(TypeError, match="list of services"):
        app(wf)  # type: ignore[arg-type]


def test_workflow_call_and_send_target_the_workflow_key(backend: FakeBackend) -> None:
    wf = signup()
    obj = VirtualObject("O")
    ctx = Context(backend.machine(kind="service"))
    ctx.workflow_send(wf.handlers["run_"].fn, "user-9", "x@y.z")
    ctx.workflow_call(wf.handlers["email"].fn, "user-9", None)
    with pytest.raises(TypeError, match="call it with workflow_call"):
        ctx.object_call(wf.handlers["run_"].fn, "user-9", "x")
    with pytest.raises(TypeError, match="key must be a str"):
        ctx.workflow_call(wf.handlers["run_"].fn, 9, "x")  # type: ignore[arg-type]
    assert [e[:2] for e in ctx._m.take_pending()] == [(SEND, "Signup/user-9/run_"), (CALL, "Signup/user-9/email")]
    children = ctx._m.take_children()
    assert [c[2:6] for c in children] == [("Signup", "run_", "user-9", b'"x@y.z"'), ("Signup", "email", "user-9", b"")]
    del obj
