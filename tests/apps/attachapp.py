"""Handlers for the `ctx.attach_invocation` tests (tests/runtime/test_attach_invocation_e2e.py).

`Target` handlers are what gets attached to; `Attacher` handlers attach. A
target can be held at a gate (tests/apps/testapp.py `gate`: a file the test
creates) so that a test can kill the server while its attacher waits.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pysdk import Context, RunOptions, Service, TerminalError, app
from tests.apps.testapp import effect, gate


class Receipt(BaseModel):
    order: str
    total: float


target = Service("Target")


@target.handler()
async def work(ctx: Context, name: str) -> Receipt:
    await ctx.run_typed("work", effect, RunOptions(), "target", f"work {name}")
    return Receipt(order=name, total=len(name) * 1.5)


@target.handler()
async def gated(ctx: Context, name: str) -> Receipt:
    """Runs until the test creates the file `name` in the effects directory."""
    await ctx.run_typed("started", effect, RunOptions(), "target", f"started {name}")
    await ctx.run_typed("gate", gate, RunOptions(), name)
    await ctx.run_typed("passed", effect, RunOptions(), "target", f"passed {name}")
    return Receipt(order=name, total=2.0)


@target.handler()
async def boom(ctx: Context, message: str) -> Receipt:
    raise TerminalError(message, 418)


attacher = Service("Attacher")


def _failure(exc: TerminalError) -> dict[str, Any]:
    return {"code": exc.status_code, "message": exc.message}


@attacher.handler()
async def send_and_attach(ctx: Context, name: str) -> dict[str, Any]:
    """Send `work` (or `gated` for names starting with "gate") and attach to it."""
    handler = gated if name.startswith("gate") else work
    handle = ctx.service_send(handler, name)
    inv_id = await handle.invocation_id()
    await ctx.run_typed("sent", effect, RunOptions(), "attacher", f"sent {name} {inv_id}")
    receipt = await ctx.attach_invocation(inv_id, type_hint=Receipt)
    await ctx.run_typed("got", effect, RunOptions(), "attacher", f"got {name} {receipt.total}")
    return {"target": inv_id, "receipt": receipt.model_dump()}


@attacher.handler()
async def send_boom_and_attach(ctx: Context, message: str) -> dict[str, Any]:
    handle = ctx.service_send(boom, message)
    try:
        await ctx.attach_invocation(await handle.invocation_id(), type_hint=Receipt)
    except TerminalError as exc:
        return _failure(exc)
    raise AssertionError("the target failed")


@attacher.handler()
async def attach_to(ctx: Context, inv_id: str) -> dict[str, Any]:
    """Attach to any invocation id; its output as raw JSON, or its failure."""
    try:
        return {"output": await ctx.attach_invocation(inv_id)}
    except TerminalError as exc:
        return _failure(exc)


@attacher.handler()
async def attach_self(ctx: Context) -> dict[str, Any]:
    try:
        await ctx.attach_invocation(ctx.request().id)
    except TerminalError as exc:
        return _failure(exc)
    raise AssertionError("an invocation cannot attach to itself")


application = app([target, attacher])
