"""Handlers for the end-to-end tests of behaviours that had no test (issue 13's list):
key queueing, idempotency, retention races, cancel/kill of waiting invocations,
retries and their exhaustion, graceful shutdown, crashes in `wal` mode, attaches and
concurrent completions.

Executions that tests count go to effects files (tests/apps/testapp.effect): a line
written inside a step (`ctx.run_typed(..., effect, ...)`) is written once per
durable execution; a line written in the handler body is written on every run of
the body (replays included). A handler can wait at a gate (a file in the effects
directory, `gate(name)`; effects file `gates` gets `at NAME` when one starts waiting),
so that a test chooses where the server is when it acts. Gate names end in `-gate` or
`-return`, never the name of an effects file (writing that file would open the gate).
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any, Optional

from pysdk import (Context, InvocationRetryPolicy, ObjectContext, ObjectSharedContext, RunOptions, Saga, Service,
                   TerminalError, VirtualObject, Workflow, WorkflowContext, WorkflowSharedContext, app)
from tests.apps.testapp import effect, effects, gate

# ---- one object key, its owner and its inbox ----------------------------------------------

queue = VirtualObject("Queue")


async def _append(ctx: ObjectContext, tag: str) -> list[str]:
    order = await ctx.get("order") or []
    order.append(tag)
    ctx.set("order", order)
    return order


@queue.handler()
async def hold(ctx: ObjectContext, how: str) -> str:
    """Takes the key (appends "hold" to `order`), then waits while holding it:
    "awakeable" (its id published to effects file `queue-{key}-awakeable`), "sleep:MS",
    or "call" (a call to Blocker/block, which waits at gate `queue-{key}-gate`). The wait
    starts once effects file `queue-{key}-waiting` has its line."""
    key = ctx.key()
    await _append(ctx, "hold")
    if how == "awakeable":
        awakeable_id, future = ctx.awakeable()
        await ctx.run_typed("publish", effect, RunOptions(), f"queue-{key}-awakeable", awakeable_id)
        await ctx.run_typed("waiting", effect, RunOptions(), f"queue-{key}-waiting", how)
        value = await future
    elif how.startswith("sleep:"):
        await ctx.run_typed("waiting", effect, RunOptions(), f"queue-{key}-waiting", how)
        await ctx.sleep(timedelta(milliseconds=int(how.split(":", 1)[1])))
        value = "slept"
    elif how == "call":
        future = ctx.service_call(block, arg=f"queue-{key}")
        value = await future
    else:
        raise TerminalError(f"unknown way to hold: {how}", 400)
    effect(f"queue-{key}", "release hold")  # the body: every run after the wait writes it
    return str(value)


@queue.handler()
async def enter(ctx: ObjectContext, tag: str) -> list[str]:
    """An exclusive handler that records its turn on the key."""
    order = await _append(ctx, tag)
    effect(f"queue-{ctx.key()}", f"enter {tag}")
    return order


@queue.handler(invocation_retry_policy=InvocationRetryPolicy(initial_interval=timedelta(seconds=2)))
async def flaky_enter(ctx: ObjectContext, tag: str) -> list[str]:
    """Fails (not terminally) on its first attempt, then records its turn; its retry
    comes 2 s later, and the key stays its own meanwhile."""
    order = await _append(ctx, tag)
    if not effects(f"flaky-{ctx.key()}-{tag}"):
        effect(f"flaky-{ctx.key()}-{tag}", "failed")
        raise RuntimeError(f"{tag} fails once")
    effect(f"queue-{ctx.key()}", f"enter {tag}")
    return order


@queue.handler(kind="shared")
async def peek(ctx: ObjectSharedContext) -> list[str]:
    effect(f"queue-{ctx.key()}", "peek")
    return await ctx.get("order") or []


blocker = Service("Blocker")


@blocker.handler()
async def block(ctx: Context, name: str) -> str:
    """Waits at gate `{name}-gate` (a callee that holds its caller); effects file
    `{name}-waiting` gets its line first."""
    await ctx.run_typed("waiting", effect, RunOptions(), f"{name}-waiting", "call")
    await gate(f"{name}-gate")
    return "unblocked"


forwarder = Service("Forwarder")


def _noop() -> None:
    return None


@forwarder.handler()
async def call_enter(ctx: Context, req: dict[str, str]) -> dict[str, Any]:
    """Calls Queue/{key}/enter; effects file `forwarder-{tag}` gets its line once the call
    is durable (the callee admitted). A failure of the call is returned, not raised."""
    future = ctx.object_call(enter, key=req["key"], arg=req["tag"])
    await ctx.run_typed("flush", _noop, RunOptions())  # journals the CALL with this step
    await ctx.run_typed("called", effect, RunOptions(), f"forwarder-{req['tag']}", "called")
    try:
        return {"order": await future}
    except TerminalError as exc:
        return {"error": [exc.status_code, exc.message]}


@forwarder.handler()
async def send_enter(ctx: Context, req: dict[str, str]) -> str:
    handle = ctx.object_send(enter, key=req["key"], arg=req["tag"])
    return await handle.invocation_id()


# ---- idempotency, attach -------------------------------------------------------------------

once = Service("Once")


@once.handler()
async def work(ctx: Context, tag: str) -> str:
    """A step, gate `once-{tag}-gate`, a step, gate `once-{tag}-return`; returns who did it.
    Effects file `once-{tag}-returning` gets its line in the same turn of the event loop
    as the completion is queued (nothing is awaited in between)."""
    effect(f"once-{tag}-body", "run")
    await ctx.run_typed("begin", effect, RunOptions(), f"once-{tag}", "begin")
    await gate(f"once-{tag}-gate")
    await ctx.run_typed("end", effect, RunOptions(), f"once-{tag}", "end")
    await gate(f"once-{tag}-return")
    effect(f"once-{tag}-returning", "returning")
    return f"{tag} by {ctx.request().id}"


@once.handler()
async def stamp(ctx: Context, tag: str) -> str:
    """One step recording which invocation ran it."""
    effect(f"stamp-{tag}-entered", ctx.request().id)  # a probe (not a step): the attempt started
    await ctx.run_typed("stamp", effect, RunOptions(), f"stamp-{tag}", ctx.request().id)
    return ctx.request().id


# ---- a workflow: state and one promise ------------------------------------------------------

approval = Workflow("Approval")


@approval.main()
async def run(ctx: WorkflowContext, tag: str) -> dict[str, Any]:
    """Reads the key's state as it starts (a new run of a purged key must see none), then
    waits for its promise `decision`."""
    prior = await ctx.get("tag")
    effect(f"approval-{ctx.key()}-read", f"read {tag}")  # a probe (not a step): the state was read
    ctx.set("tag", tag)
    await ctx.run_typed("started", effect, RunOptions(), f"approval-{ctx.key()}", f"started {tag}")
    decision = await ctx.promise("decision").value()
    return {"prior": prior, "tag": tag, "decision": decision}


@approval.handler()
async def decide(ctx: WorkflowSharedContext, value: str) -> str:
    """Resolves the promise; a second resolve fails with 409 'promise already completed'.
    Effects file `deciding-{key}` gets its line in the turn of the event loop in which the
    store decides the resolve (nothing is awaited in between)."""
    effect(f"deciding-{ctx.key()}", value)
    await ctx.promise("decision").resolve(value)
    return value


@approval.handler()
async def current(ctx: WorkflowSharedContext) -> dict[str, Any]:
    return {"tag": await ctx.get("tag"), "decision": await ctx.promise("decision").peek()}


# ---- awakeables -------------------------------------------------------------------------------

signals = Service("Signals")


@signals.handler()
async def wait(ctx: Context, tag: str) -> Any:
    """Publishes an awakeable id (effects file `signal-{tag}`) and returns what completes it."""
    awakeable_id, future = ctx.awakeable()
    await ctx.run_typed("publish", effect, RunOptions(), f"signal-{tag}", awakeable_id)
    return await future


@signals.handler()
async def resolve(ctx: Context, req: dict[str, str]) -> str:
    """Resolves an awakeable from a handler; the store decides it when this handler
    completes, in the turn of the event loop in which effects file `resolving` gets its line."""
    ctx.resolve_awakeable(req["id"], req["value"])
    effect("resolving", req["value"])
    return "sent"


# ---- retries --------------------------------------------------------------------------------

retrying = Service("Retrying")


@retrying.handler(invocation_retry_policy=InvocationRetryPolicy(initial_interval=timedelta(seconds=60),
                                                                 max_interval=timedelta(seconds=60)))
async def fail_once(ctx: Context, tag: str) -> str:
    """Books a step, then fails (not terminally) on its first attempt: the next attempt
    is a minute away. A later attempt does a second step (an await point: a pending
    cancellation is seen there and the booking is compensated)."""
    async with Saga(ctx) as saga:
        await ctx.run_typed("reserve", effect, RunOptions(), f"retry-{tag}", "reserve")
        saga.add("release", effect, f"retry-{tag}", "release")
        effect(f"retry-{tag}-attempts", "attempt")  # after the replayed step: one line per attempt
        if len(effects(f"retry-{tag}-attempts")) == 1:
            raise RuntimeError(f"{tag}: first attempt fails")
        await ctx.run_typed("work", effect, RunOptions(), f"retry-{tag}", "work")
    return "done"


def _exhausting(on_max_attempts: Optional[str]) -> InvocationRetryPolicy:
    return InvocationRetryPolicy(initial_interval=timedelta(milliseconds=100), exponentiation_factor=2.0,
                                 max_attempts=3, on_max_attempts=on_max_attempts)  # type: ignore[arg-type]


async def _always_fails(ctx: Context, tag: str) -> str:
    await ctx.run_typed("step", effect, RunOptions(), f"exhaust-{tag}", "step")
    effect(f"exhaust-{tag}-attempts", repr(time.time()))  # after the replayed step: one line per attempt
    raise RuntimeError(f"boom {tag}")


@retrying.handler(invocation_retry_policy=_exhausting(None))
async def exhaust_default(ctx: Context, tag: str) -> str:
    return await _always_fails(ctx, tag)


@retrying.handler(invocation_retry_policy=_exhausting("kill"))
async def exhaust_kill(ctx: Context, tag: str) -> str:
    return await _always_fails(ctx, tag)


@retrying.handler(invocation_retry_policy=_exhausting("pause"))
async def exhaust_pause(ctx: Context, tag: str) -> str:
    return await _always_fails(ctx, tag)


# ---- work in flight at shutdown -------------------------------------------------------------

lane = VirtualObject("Lane")


@lane.handler()
async def steps(ctx: ObjectContext, tag: str) -> str:
    """A step, gate `lane-{tag}-gate`, a step."""
    effect(f"lane-{tag}-body", "run")
    await ctx.run_typed("before", effect, RunOptions(), f"lane-{tag}", "before")
    await gate(f"lane-{tag}-gate")
    await ctx.run_typed("after", effect, RunOptions(), f"lane-{tag}", "after")
    return f"{tag} done"


async def _slowly(name: str, line: str) -> None:
    await asyncio.sleep(1.0)
    effect(name, line)


@lane.handler()
async def slow(ctx: ObjectContext, tag: str) -> str:
    """A step, gate `lane-{tag}-gate`, a step that takes a second."""
    effect(f"lane-{tag}-body", "run")
    await ctx.run_typed("before", effect, RunOptions(), f"lane-{tag}", "before")
    await gate(f"lane-{tag}-gate")
    await ctx.run_typed("after", _slowly, RunOptions(), f"lane-{tag}", "after")
    return f"{tag} done"


@lane.handler()
async def nap(ctx: ObjectContext, ms: int) -> str:
    """A step, a durable sleep, a step."""
    effect(f"nap-{ctx.key()}-body", "run")
    await ctx.run_typed("before", effect, RunOptions(), f"nap-{ctx.key()}", "before")
    await ctx.sleep(timedelta(milliseconds=ms))
    await ctx.run_typed("after", effect, RunOptions(), f"nap-{ctx.key()}", "after")
    return "rested"


application = app([queue, blocker, forwarder, once, approval, signals, retrying, lane])
