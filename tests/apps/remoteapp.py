"""Handlers for the fault tests of remote deployments (tests/runtime/test_deployments_faults_e2e.py).

`application` is served by `stead deployment serve` processes; `local_app` is served
in-process by the runtime beside them (a callee the remote handlers call). The same
module serves two versions of its code: STEAD_TEST_VERSION (default "v1") names the
one a process runs, and every effect line starts with it, so a test sees which
deployment ran what. Effects files (tests/apps/testapp.py `effect`):

    steps    VERSION TAG STEP INVOCATION    one line per execution of a step body
    unwound  VERSION TAG EXCEPTION          a handler coroutine dropped (cancelled/closed)
    silent   VERSION TAG enter|dropped ...  the silent handler's attempts
"""

from __future__ import annotations

import asyncio
import os
from datetime import timedelta

from pysdk import Context, RunOptions, Service, app
from pysdk.retry_policy import InvocationRetryPolicy
from tests.apps.testapp import effect, effects_dir, gate

VERSION = os.environ.get("STEAD_TEST_VERSION", "v1")

# Retries come quickly, and the backoff stays short while a test keeps a deployment down.
FAST_RETRY = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=100), exponentiation_factor=2.0,
                                   max_interval=timedelta(milliseconds=500))


def _step(tag: str, step: str, inv_id: str) -> str:
    effect("steps", f"{VERSION} {tag} {step} {inv_id}")
    return f"{VERSION}:{step}"


async def _unwinding(tag: str, coro):  # type: ignore[no-untyped-def]
    """Await `coro`; record a handler coroutine that is dropped (its exception) and re-raise."""
    try:
        return await coro
    except BaseException as exc:
        effect("unwound", f"{VERSION} {tag} {type(exc).__name__}")
        raise


# ---- in the runtime's process -----------------------------------------------------------

local_gate = Service("LocalGate")


@local_gate.handler()
async def wait(ctx: Context, tag: str) -> str:
    """Waits at the gate `local-TAG`, then runs one step."""
    await gate(f"local-{tag}")
    return await ctx.run_typed("local", _step, RunOptions(), tag, "local", ctx.request().id)


local_app = app([local_gate])


# ---- in deployments ---------------------------------------------------------------------

steps = Service("RSteps", invocation_retry_policy=FAST_RETRY)


@steps.handler()
async def two_steps(ctx: Context, tag: str) -> str:
    """Step one, then the gate `two-TAG` (not durable: a plain wait), then step two."""
    inv_id = ctx.request().id

    async def body() -> str:
        one = await ctx.run_typed("one", _step, RunOptions(), tag, "one", inv_id)
        await gate(f"two-{tag}")
        two = await ctx.run_typed("two", _step, RunOptions(), tag, "two", inv_id)
        return f"{one} {two}"

    return await _unwinding(tag, body())


@steps.handler()
async def echo(ctx: Context, tag: str) -> str:
    return await ctx.run_typed("echo", _step, RunOptions(), tag, "echo", ctx.request().id)


@steps.handler()
async def blob(ctx: Context, size: int) -> str:
    """An output of `size` characters (and a step, so something is journaled first)."""
    await ctx.run_typed("echo", _step, RunOptions(), str(size), "blob", ctx.request().id)
    return "x" * size


@steps.handler()
async def nap(ctx: Context, arg: dict) -> str:
    """Step `start`, a durable sleep of `ms`, step `woke`; returns the version that ran it."""
    tag, ms = arg["tag"], arg["ms"]
    inv_id = ctx.request().id
    await ctx.run_typed("start", _step, RunOptions(), tag, "start", inv_id)
    await ctx.sleep(timedelta(milliseconds=ms))
    await ctx.run_typed("woke", _step, RunOptions(), tag, "woke", inv_id)
    return VERSION


@steps.handler()
async def call_local(ctx: Context, tag: str) -> str:
    """Step `before`, a call to LocalGate/wait (in-process, gated), step `after`."""
    inv_id = ctx.request().id

    async def body() -> str:
        await ctx.run_typed("before", _step, RunOptions(), tag, "before", inv_id)
        got = await ctx.service_call(wait, arg=tag)
        await ctx.run_typed("after", _step, RunOptions(), tag, "after", inv_id)
        return f"{VERSION} {got}"

    return await _unwinding(tag, body())


# A handler that never reaches a durable point: the runtime's watchdog must abort it.
quiet = Service("RSilent", inactivity_timeout=timedelta(seconds=1), abort_timeout=timedelta(seconds=1),
                invocation_retry_policy=FAST_RETRY)


@quiet.handler()
async def silent(ctx: Context, tag: str) -> str:
    """Blocks on a plain asyncio wait (nothing durable) until the file `release-TAG` exists
    when an attempt starts."""
    effect("silent", f"{VERSION} {tag} enter")
    if (effects_dir() / f"release-{tag}").exists():
        return "released"
    try:
        await asyncio.Event().wait()
    except BaseException as exc:
        effect("silent", f"{VERSION} {tag} dropped {type(exc).__name__}")
        raise
    return "unreachable"


@quiet.handler()
async def slow_nap(ctx: Context, ms: int) -> str:
    """A durable sleep longer than the inactivity timeout: suspended, never aborted."""
    await ctx.sleep(timedelta(milliseconds=ms))
    return await ctx.run_typed("woke", _step, RunOptions(), "slow", "woke", ctx.request().id)


application = app([steps, quiet])
