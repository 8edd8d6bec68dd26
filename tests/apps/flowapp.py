"""Handlers for the durable control-flow tests: timers, calls and sends,
awakeables, workflows, cancellation, sagas and combinators.

Executions that tests count across crashes append lines to effects files
(tests/apps/testapp.effect). A step can be held at a gate (a file that must
exist before it proceeds) so a test can kill the server at a known point.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Optional

from examples.travel import trips
from examples.wallet import transfers, wallet
from pysdk import (Context, ObjectContext, RunOptions, Saga, Service, TerminalError, VirtualObject, Workflow,
                   WorkflowContext, WorkflowSharedContext, app, as_completed, gather, select, wait_completed)
from tests.apps.testapp import effect, gate


# ---- timers -------------------------------------------------------------------------------

timers = Service("Timers")


@timers.handler()
async def nap(ctx: Context, ms: int) -> dict[str, float]:
    """Sleep `ms`; report when it was meant to wake and when it did (wall clock, s)."""
    start = await ctx.run_typed("start", time.time, RunOptions())
    await ctx.sleep(timedelta(milliseconds=ms), name="nap")
    woke = await ctx.run_typed("woke", _woke, RunOptions(), ctx.request().id)
    return {"due": start + ms / 1000, "woke": woke}


def _woke(inv_id: str) -> float:
    effect("woke", inv_id)
    return time.time()


@timers.handler()
async def stamp(ctx: Context, tag: str) -> float:
    """Records when it ran (the target of delayed sends)."""
    return await ctx.run_typed("stamp", _stamp, RunOptions(), tag)


@timers.handler()
async def gated_stamp(ctx: Context, tag: str) -> float:
    """`stamp`, once the test opens the gate `stamp-TAG`: a crash test holds it there."""
    await gate(f"stamp-{tag}")
    return await ctx.run_typed("stamp", _stamp, RunOptions(), tag)


def _stamp(tag: str) -> float:
    now = time.time()
    effect("stamps", f"{tag} {now}")
    return now


# ---- calls and sends ----------------------------------------------------------------------

counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total = (await ctx.get("total") or 0) + n
    ctx.set("total", total)
    effect("counter-adds", f"{ctx.key()} {n}")
    return total


@counter.handler(kind="shared")
async def total(ctx) -> int:  # type: ignore[no-untyped-def]
    return await ctx.get("total") or 0


@counter.handler()
async def fail(ctx: ObjectContext, message: str) -> int:
    raise TerminalError(message, 422)


caller = VirtualObject("Caller")


@caller.handler()
async def call_add(ctx: ObjectContext, n: int) -> int:
    """Calls another object's exclusive handler and returns its result."""
    return await ctx.object_call(add, key=ctx.key(), arg=n)


@caller.handler()
async def call_fail(ctx: ObjectContext, message: str) -> str:
    try:
        await ctx.object_call(fail, key=ctx.key(), arg=message)
    except TerminalError as exc:
        return f"caught {exc.status_code} {exc.message}"
    return "no error"


@caller.handler()
async def send_add(ctx: ObjectContext, n: int) -> str:
    handle = ctx.object_send(add, key=ctx.key(), arg=n)
    return await handle.invocation_id()


@caller.handler()
async def send_later(ctx: ObjectContext, ms: int) -> str:
    """A delayed send to Timers/stamp, tagged with this object's key."""
    handle = ctx.service_send(stamp, arg=ctx.key(), send_delay=timedelta(milliseconds=ms))
    return await handle.invocation_id()


@caller.handler()
async def send_gated(ctx: ObjectContext, ms: int) -> str:
    """A delayed send to Timers/gated_stamp, tagged with this object's key."""
    handle = ctx.service_send(gated_stamp, arg=ctx.key(), send_delay=timedelta(milliseconds=ms))
    return await handle.invocation_id()


@caller.handler()
async def call_self(ctx: ObjectContext) -> str:
    """A call to the caller's own key: refused (it would deadlock)."""
    return str(await ctx.object_call(call_add, key=ctx.key(), arg=1))


@caller.handler()
async def generic(ctx: ObjectContext, n: int) -> int:
    raw = await ctx.generic_call("Counter", "add", str(n).encode(), key=ctx.key())
    return int(raw)


@caller.handler()
async def fanout(ctx: ObjectContext, n: int) -> list[int]:
    """Calls n counters at once and gathers the results in order."""
    futures = [ctx.object_call(add, key=f"{ctx.key()}-{i}", arg=i + 1) for i in range(n)]
    await gather(*futures)
    return [await f for f in futures]


# ---- awakeables and combinators --------------------------------------------------------

waiter = Service("Waiter")


@waiter.handler()
async def wait(ctx: Context) -> str:
    """Publishes an awakeable id (effects file `awakeables`) and returns what resolves it."""
    awakeable_id, future = ctx.awakeable()
    await ctx.run_typed("publish", effect, RunOptions(), "awakeables", awakeable_id)
    return await future


@waiter.handler()
async def race(ctx: Context, ms: int) -> list[str]:
    """An awakeable against a timer: whichever completes first wins."""
    awakeable_id, future = ctx.awakeable()
    await ctx.run_typed("publish", effect, RunOptions(), "awakeables", awakeable_id)
    who, what = await select(signal=future, timeout=ctx.sleep(timedelta(milliseconds=ms)))
    return [who, str(what)]


@waiter.handler()
async def first_two(ctx: Context) -> list[str]:
    """Three awakeables; returns the values of the first two to complete, in order."""
    futures = []
    for i in range(3):
        awakeable_id, future = ctx.awakeable()
        await ctx.run_typed(f"publish{i}", effect, RunOptions(), "awakeables", awakeable_id)
        futures.append(future)
    seen: list[str] = []
    async for done in as_completed(*futures):
        seen.append(await done)
        if len(seen) == 2:
            break
    done_list, pending = await wait_completed(*futures)
    seen.append(f"{len(done_list)} done")
    return seen


@waiter.handler()
async def resolve_other(ctx: Context, req: dict[str, str]) -> None:
    ctx.resolve_awakeable(req["id"], req["value"])


# ---- workflows ------------------------------------------------------------------------------

signup = Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    ctx.set("status", "emailing")
    await ctx.run_typed("email", effect, RunOptions(), "emails", f"{ctx.key()} {email}")
    ctx.set("status", "waiting")
    secret = await ctx.promise("link").value()
    ctx.set("status", "verified")
    return f"verified {email} with {secret}"


@signup.handler()
async def click(ctx: WorkflowSharedContext, secret: str) -> str:
    await ctx.promise("link").resolve(secret)
    return "ok"


@signup.handler()
async def status(ctx: WorkflowSharedContext) -> Optional[str]:
    return await ctx.get("status")


@signup.handler()
async def peek(ctx: WorkflowSharedContext) -> Optional[str]:
    return await ctx.promise("link").peek()


starter = Service("Starter")


@starter.handler()
async def start_signup(ctx: Context, key: str) -> str:
    """Starts a Signup workflow from a handler; a key that already ran is refused."""
    handle = ctx.workflow_send(run, key=key, arg=f"{key}@example.com")
    return await handle.invocation_id()


# ---- cancellation and sagas -----------------------------------------------------------------

jobs = Service("Jobs")


@jobs.handler()
async def long(ctx: Context, tag: str) -> str:
    """Books a step, then waits a long time; compensates when cancelled."""
    async with Saga(ctx) as saga:
        await ctx.run_typed("reserve", effect, RunOptions(), "jobs", f"reserve {tag}")
        saga.add("release", effect, "jobs", f"release {tag}")
        await ctx.sleep(timedelta(seconds=60))
    return "finished"


@jobs.handler()
async def parent(ctx: Context, tag: str) -> str:
    """Awaits a call to `long`: cancelling the parent cancels the child too."""
    try:
        return await ctx.service_call(long, arg=f"{tag}-child")
    except TerminalError as exc:
        await ctx.run_typed("parent-compensate", effect, RunOptions(), "jobs", f"parent saw {exc.status_code}")
        raise


@jobs.handler()
async def compensating(ctx: Context, tag: str) -> str:
    """Three steps, then a refusal; compensations 3, 2, 1 each pass a gate first, so a
    test can kill the server between them."""
    async with Saga(ctx) as saga:
        for i in (1, 2, 3):
            await ctx.run_typed(f"step{i}", effect, RunOptions(), "saga", f"step {i}")
            saga.add(f"undo{i}", _undo, tag, i)
        await ctx.run_typed("refuse", _refuse, RunOptions())
    return "unreachable"


async def _undo(tag: str, i: int) -> None:
    await gate(f"{tag}-undo{i}")
    effect("saga", f"undo {i}")


def _refuse() -> None:
    raise TerminalError("refused", 409)


application = app([timers, counter, caller, waiter, signup, starter, jobs, wallet, transfers, trips])
