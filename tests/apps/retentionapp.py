"""Handlers for the retention-option tests (tests/runtime/test_retention_options_e2e.py):
services, handlers and workflows with Restate's `journal_retention`,
`idempotency_retention` and `workflow_retention`, and without (the server's
default `--retention`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional

from pysdk import (Context, RunOptions, Service, Workflow, WorkflowContext, WorkflowSharedContext, app)
from tests.apps.testapp import effect

SHORT = timedelta(seconds=1)
LONG = timedelta(hours=1)

# Options on the service apply to its handlers; a handler's own option wins.
short = Service("Short", journal_retention=SHORT, idempotency_retention=SHORT)


@short.handler()
async def echo(ctx: Context, x: str) -> str:
    await ctx.run_typed("effect", effect, RunOptions(), "short", x)
    return x


@short.handler(journal_retention=LONG, idempotency_retention=LONG)
async def kept(ctx: Context, x: str) -> str:
    await ctx.run_typed("effect", effect, RunOptions(), "short", x)
    return x


plain = Service("Plain")


@plain.handler(idempotency_retention=SHORT)
async def idem(ctx: Context, x: str) -> str:
    await ctx.run_typed("effect", effect, RunOptions(), "plain", x)
    return x


@plain.handler()
async def default(ctx: Context, x: str) -> str:
    await ctx.run_typed("effect", effect, RunOptions(), "plain", x)
    return x


def _workflow(name: str, retention: Optional[timedelta]) -> Workflow:
    wf = Workflow(name)

    @wf.main(workflow_retention=retention)
    async def run(ctx: WorkflowContext, x: str) -> str:
        ctx.set("x", x)
        await ctx.promise("p").resolve(x)
        await ctx.run_typed("effect", effect, RunOptions(), name.lower(), f"{ctx.key()} {x}")
        return x

    @wf.handler()
    async def peek(ctx: WorkflowSharedContext) -> dict[str, Any]:
        return {"x": await ctx.get("x"), "p": await ctx.promise("p").peek()}

    return wf


quick = _workflow("Quick", SHORT)
slow = _workflow("Slow", None)

application = app([short, plain, quick, slow])
