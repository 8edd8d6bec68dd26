"""The handlers of the durable control-flow benchmarks (bench/flows.py).

    Sleeper/nap(ms)        a durable timer: returns how late it woke, in ms
    Counter/{key}/add(n)   the direct floor of the call workload
    Counter/{key}/total    (shared) the sum added so far, for the harness's check
    Caller/{key}/call(n)   an exclusive handler calling Counter/{key}/add

Serve them with `stead serve bench.flowapp:application` from the repository root.
"""

from __future__ import annotations

import time
from datetime import timedelta

from pysdk import Context, ObjectContext, ObjectSharedContext, RunOptions, Service, VirtualObject, app

sleeper = Service("Sleeper")


def _due(ms: int) -> float:
    return time.time() + ms / 1000


@sleeper.handler()
async def nap(ctx: Context, ms: int) -> float:
    """Sleep `ms`; return the lateness (wake wall time − intended wake time), in ms.

    The intended time is a durable step, so a replay (after a suspension) sees the
    original one. The wake time is read right after the sleep, not in a step: a step
    would add a commit to what is measured, and the output is recorded only once.
    """
    due = await ctx.run_typed("due", _due, RunOptions(), ms)
    await ctx.sleep(timedelta(milliseconds=ms))
    return (time.time() - due) * 1000


counter = VirtualObject("Counter")


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total = (await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return total


@counter.handler(kind="shared")
async def total(ctx: ObjectSharedContext) -> int:
    return await ctx.get("total") or 0


caller = VirtualObject("Caller")


@caller.handler()
async def call(ctx: ObjectContext, n: int) -> int:
    """One journaled call to another object's exclusive handler (same key, other object)."""
    return await ctx.object_call(add, key=ctx.key(), arg=n)


application = app([sleeper, counter, caller])
