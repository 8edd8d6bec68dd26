"""Handlers of the correctness tests (issue 8): the durability barrier, closed
attempts, awakeables resolved during a step, value semantics of state.

Executions that tests count go to effects files (tests/apps/testapp.effect).
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import timedelta
from typing import Any

from pysdk import (Context, ObjectContext, ObjectSharedContext, RunOptions, Service, VirtualObject, Workflow,
                   WorkflowContext, WorkflowSharedContext, app, gather, select)
from tests.apps.testapp import EFFECTS, effect

# ---- the durability barrier ---------------------------------------------------------------

acct = VirtualObject("Acct")


@acct.handler()
async def deposit(ctx: ObjectContext, amount: int) -> int:
    balance = (await ctx.get("balance") or 0) + amount
    ctx.set("balance", balance)
    effect(f"reached-{ctx.key()}", "deposit")  # a probe: its commit is queued right after this
    return balance


@acct.handler()
async def payout(ctx: ObjectContext) -> int:
    """Reads the balance, then pays it out in a step: the payment must not happen before
    the commit that wrote the balance is durable."""
    balance = await ctx.get("balance") or 0
    effect(f"reached-{ctx.key()}", "payout")  # a probe, not an effect that matters
    await ctx.run("payout", lambda: effect(f"payout-{ctx.key()}", str(balance)))
    return balance


@acct.handler(kind="shared")
async def report(ctx: ObjectSharedContext) -> int:
    """A shared reader that sends what it read out of the process in a step."""
    balance = await ctx.get("balance") or 0
    effect(f"reached-{ctx.key()}", "report")
    await ctx.run("report", lambda: effect(f"report-{ctx.key()}", str(balance)))
    return balance


# ---- closed attempts ---------------------------------------------------------------------

closing = Service("Closing")


@closing.handler()
async def sleep_then_step(ctx: Context, tag: str) -> str:
    """Suspended during the sleep (with a short --suspend-after): the `finally` must not
    journal `cleanup` from the suspended attempt, and the replay must answer."""
    effect(f"{tag}.body", "run")  # not a step: once per attempt, so the test sees the suspension
    try:
        await ctx.sleep(timedelta(milliseconds=400))
        await ctx.run("step", lambda: effect(f"{tag}.log", "step"))
    finally:
        await ctx.run("cleanup", lambda: effect(f"{tag}.log", "cleanup"))
    return "done"


@closing.handler()
async def swallow(ctx: Context, tag: str) -> str:
    """Catches everything it can around a suspending sleep and tries to journal a step."""
    try:
        await ctx.sleep(timedelta(milliseconds=300))
    except BaseException:
        await ctx.run("swallowed", lambda: effect(f"{tag}.log", "swallowed"))
        raise
    await ctx.run("after", lambda: effect(f"{tag}.log", "after"))
    return "done"


@closing.handler()
async def counted(ctx: Context, tag: str) -> int:
    """Two steps; the body itself (not a step) counts its executions: with forced replay
    it runs again after every durable point, while each step runs once."""
    effect(f"{tag}.body", "run")
    await ctx.run("one", lambda: effect(f"{tag}.steps", "one"))
    await ctx.run("two", lambda: effect(f"{tag}.steps", "two"))
    return 2


@closing.handler()
async def gated_step(ctx: Context, tag: str) -> str:
    """A step whose body waits for a gate file, so a test can kill it mid-step."""
    async def body() -> str:
        effect(f"{tag}.log", "started")
        while not (EFFECTS / f"{tag}.gate").exists():
            await asyncio.sleep(0.02)
        effect(f"{tag}.log", "finished")
        return "slow"

    await ctx.run("slow", body)
    await ctx.run("after", lambda: effect(f"{tag}.log", "after"))
    return "done"


@closing.handler()
async def unpersisted(ctx: Context, tag: str) -> str:
    """Waits at a gate before its first durable point: the store does not know it yet."""
    effect(f"{tag}.id", ctx.request().id)
    while not (EFFECTS / f"{tag}.gate").exists():
        await asyncio.sleep(0.02)
    await ctx.run("after gate", lambda: "x")
    return "finished"


@closing.handler()
async def attach(ctx: Context, invocation_id: str) -> str:
    fut = ctx.attach_invocation(invocation_id)
    # A probe: the await below journals the attach before it yields to the loop.
    effect("attaching", invocation_id)
    return str(await fut)


# ---- awakeables resolved while the step that publishes them runs -------------------------

webhook = Service("Webhook")


def _post(url: str, body: Any) -> int:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return int(resp.status)


@webhook.handler()
async def pay(ctx: Context, ingress: str) -> str:
    """Restate's payment pattern: a step hands the awakeable id to a provider that
    resolves it at once (here: the ingress itself, from a thread), then the handler waits."""
    aid, fut = ctx.awakeable()

    async def provider() -> int:
        return await asyncio.to_thread(_post, f"{ingress}/restate/awakeables/{aid}/resolve", "paid")

    await ctx.run("hand over", provider)
    return str(await fut)


# ---- value semantics of state --------------------------------------------------------------

TEMPLATE: dict[str, list[str]] = {"items": []}
LEAKED: dict[str, list[str]] = {}

carts = VirtualObject("Carts")


@carts.handler()
async def reset(ctx: ObjectContext) -> None:
    ctx.set("cart", TEMPLATE)


@carts.handler()
async def add(ctx: ObjectContext, item: str) -> dict[str, list[str]]:
    cart = await ctx.get("cart")
    cart["items"].append(item)
    ctx.set("cart", cart)
    return cart


@carts.handler(kind="shared")
async def cart(ctx: ObjectSharedContext) -> Any:
    return await ctx.get("cart")


@carts.handler()
async def set_then_append(ctx: ObjectContext) -> list[int]:
    items = [1]
    ctx.set("items", items)
    items.append(2)  # after the set: not stored
    return items


@carts.handler()
async def push(ctx: ObjectContext, item: str) -> int:
    """The hot-key shape (get, append, set) on a flat list."""
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    return len(items)


@carts.handler()
async def push_and_leak(ctx: ObjectContext, item: str) -> int:
    """Like push, but keeps the list in a module global after setting it."""
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    LEAKED[ctx.key()] = items
    return len(items)


@carts.handler()
async def push_then_mutate(ctx: ObjectContext, item: str) -> int:
    """Sets the list, then changes it without setting it again: not stored."""
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    items.append("not-stored")
    items[0] = "changed"
    return len(items)


@carts.handler(kind="shared")
async def items(ctx: ObjectSharedContext) -> Any:
    return await ctx.get("items")


@carts.handler(kind="shared")
async def leaked(ctx: ObjectSharedContext) -> Any:
    return LEAKED.get(ctx.key())


# ---- promises peeked (barrier) ------------------------------------------------------------

signup = Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, user: str) -> str:
    return await ctx.promise("approval").value()


@signup.handler()
async def approve(ctx: WorkflowSharedContext, verdict: str) -> None:
    await ctx.promise("approval").resolve(verdict)


@signup.handler()
async def peek(ctx: WorkflowSharedContext) -> Any:
    value = await ctx.promise("approval").peek()
    await ctx.run("peeked", lambda: effect(f"peeked-{ctx.key()}", str(value)))
    return value


# ---- steps as durable futures (Restate's parallel-steps example) ---------------------------

steps = Service("ParallelSteps")


@steps.handler()
async def squares(ctx: Context, n: int) -> list[int]:
    futures = [ctx.run_typed(f"square-{i}", _square, RunOptions(), i) for i in range(n)]
    return [await f for f in await gather(*futures)]


def _square(i: int) -> int:
    effect("squares.log", str(i))
    return i * i


@steps.handler()
async def race(ctx: Context) -> list[Any]:
    return await select(step=ctx.run_typed("quick", lambda: "q"), nap=ctx.sleep(timedelta(seconds=30)))


@steps.handler()
async def stamped(ctx: Context) -> bool:
    first = ctx.time()
    t = await first
    return t == await first and isinstance(t, float)


# ---- inactivity and abort timeouts ---------------------------------------------------------

timeouts = Service("Timeouts", inactivity_timeout=timedelta(milliseconds=300),
                   abort_timeout=timedelta(milliseconds=300))


@timeouts.handler()
async def stuck_once(ctx: Context, tag: str) -> str:
    """Its first attempt hangs in an await that is not durable: aborted, then retried."""
    effect(f"{tag}.attempts", "attempt")
    await ctx.run("before", lambda: "journaled")
    if len(_lines(f"{tag}.attempts")) == 1:
        await asyncio.sleep(60)
    return "ok"


@timeouts.handler(inactivity_timeout=timedelta(seconds=30))
async def patient(ctx: Context, tag: str) -> str:
    """The handler's own (longer) timeout overrides its service's: not aborted."""
    effect(f"{tag}.attempts", "attempt")
    await asyncio.sleep(1.0)
    return "ok"


@timeouts.handler()
async def sleeps(ctx: Context, tag: str) -> str:
    """Waits on a durable sleep longer than the inactivity timeout: suspended, not aborted."""
    effect(f"{tag}.body", "run")
    await ctx.sleep(timedelta(milliseconds=1200))
    return "ok"


@timeouts.handler(inactivity_timeout=timedelta(seconds=60))
async def shifty(ctx: Context, tag: str) -> str:
    """Changes its first step after its first attempt fails: the journal no longer matches
    the code (non-determinism), which is retried and logged at error level."""
    first = len(_lines(f"{tag}.attempts")) == 0
    effect(f"{tag}.attempts", "attempt")
    await ctx.run("reserve" if first else "charge", lambda: "done")
    if first:
        raise RuntimeError("transient")
    return "unreachable"


def _lines(name: str) -> list[str]:
    from tests.apps.testapp import effects
    return effects(name)


application = app([acct, closing, webhook, carts, signup, steps, timeouts])
