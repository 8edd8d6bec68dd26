"""Handlers that cron schedules fire (tests/runtime/test_schedules_e2e.py).

Each firing appends a line to the effects file named after its schedule (the header
`x-stead-schedule`): "<fire time> <invocation id> <ms when it ran> [<what>]". The
invocation id tells a firing sent twice (two ids for one fire time) from one firing
whose handler ran again after a crash (one id, two lines).
"""

from __future__ import annotations

import asyncio
import time

from pysdk import (CatchupPolicy, Context, ObjectContext, OverlapPolicy, Schedule, Service, VirtualObject,
                   Workflow, WorkflowContext, app)
from tests.apps.testapp import effect

jobs = Service("Jobs")
counters = VirtualObject("Counters")
reports = Workflow("Reports")


def _line(ctx: Context, what: str = "") -> tuple[str, str]:
    headers = ctx.request().headers
    line = f"{headers['x-stead-schedule-time']} {ctx.request().id} {time.time() * 1000:.0f}"
    return headers["x-stead-schedule"], f"{line} {what}".rstrip()


@jobs.handler()
async def record(ctx: Context) -> None:
    name, line = _line(ctx)
    await ctx.run("record", lambda: effect(name, line))


@jobs.handler()
async def record_input(ctx: Context, value: dict) -> None:
    name, line = _line(ctx, f"input={value['n']}")
    await ctx.run("record", lambda: effect(name, line))


@jobs.handler()
async def slow(ctx: Context) -> None:
    """Runs 2.5 s: "start" and "end" lines around it."""
    name, line = _line(ctx, "start")
    effect(name, line)
    await asyncio.sleep(2.5)  # deliberate: a firing still running when the next one comes
    effect(name, _line(ctx, "end")[1])


@counters.handler()
async def bump(ctx: ObjectContext) -> int:
    name, line = _line(ctx, f"key={ctx.key()}")
    n = (await ctx.get("n") or 0) + 1
    ctx.set("n", n)
    await ctx.run("record", lambda: effect(name, line))
    return n


@reports.main()
async def run(ctx: WorkflowContext) -> str:
    name, line = _line(ctx, f"key={ctx.key()}")
    await ctx.run("record", lambda: effect(name, line))
    return ctx.key()


SERVICES = [jobs, counters, reports]
application = app(SERVICES)

# Declared in code: created at start, kept while unchanged, deleted once no longer declared.
declared = app(SERVICES, schedules=[
    Schedule("code-every", record, every="1s", catchup=CatchupPolicy.ALL),
    Schedule("code-object", bump, key="k1", every="1s"),
    Schedule("code-workflow", run, every="1s", overlap=OverlapPolicy.ALLOW_ALL),
])
changed = app(SERVICES, schedules=[
    Schedule("code-every", "Jobs/record_input", every="2s", input={"n": 7}),
])
