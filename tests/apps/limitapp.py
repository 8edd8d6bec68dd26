"""Handlers under concurrency and rate limits (tests/runtime/test_limits_e2e.py).

Each handler measures itself: it appends "enter <time> <id> <limit key>" when its code
starts and "exit <time> <id> <limit key>" when it ends (however it ends) to the effects
file named after its handler, so the test computes from these intervals how many ran at
once, whatever the runtime says.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from pysdk import Context, ObjectContext, RateLimit, Service, VirtualObject, app
from tests.apps.testapp import effect, gate

limited = Service("Limited", concurrency=2)
tenants = Service("Tenants")
accounts = VirtualObject("Accounts")
rated = Service("Rated")


class _Interval:
    def __init__(self, ctx: Context, name: str) -> None:
        request = ctx.request()
        self.name = name
        self.tail = f"{request.id} {request.limit_key or '-'}"

    def __enter__(self) -> None:
        effect(self.name, f"enter {time.time():.6f} {self.tail}")

    def __exit__(self, *exc: object) -> None:
        effect(self.name, f"exit {time.time():.6f} {self.tail}")


@limited.handler()
async def work(ctx: Context, ms: int) -> str:
    """Busy for `ms` (real time, not journaled), then one step that records its completion."""
    with _Interval(ctx, "work"):
        await asyncio.sleep(ms / 1000)
        await ctx.run("done", lambda: effect("work-done", ctx.request().id))
    return ctx.request().id


@limited.handler()
async def hold(ctx: Context, name: str) -> str:
    """Waits at the gate `name` (a file the test creates), then records its completion in a step."""
    with _Interval(ctx, "hold"):
        await gate(name)
        await ctx.run("done", lambda: effect("hold-done", ctx.request().id))
    return name


@tenants.handler(concurrency=3, concurrency_per_limit_key=1)
async def job(ctx: Context, name: str) -> str:
    """At most one per limit key, three in all; waits at the gate `name` when it is not "-"."""
    with _Interval(ctx, "job"):
        effect("job-order", f"{name} {ctx.request().limit_key or '-'}")
        if name.startswith("gate-"):
            await gate(name)
        else:
            await asyncio.sleep(0.05)
    return name


@tenants.handler()
async def fan(ctx: Context, n: int) -> None:
    """Sends `n` jobs, all under the limit key "z" (the context's limit_key=)."""
    for i in range(n):
        ctx.service_send(job, f"z{i}", limit_key="z")


@accounts.handler(concurrency=2)
async def deposit(ctx: ObjectContext, amount: int) -> int:
    """Exclusive per key, and at most two keys at once."""
    with _Interval(ctx, "deposit"):
        await asyncio.sleep(0.02)
        balance = (await ctx.get("balance") or 0) + amount
        ctx.set("balance", balance)
    return balance


@rated.handler(rate_limit=RateLimit(5, per=timedelta(seconds=1)))
async def tick(ctx: Context, n: int) -> int:
    effect("tick", f"{time.time():.6f} {n}")
    return n


application = app([limited, tenants, accounts, rated])
