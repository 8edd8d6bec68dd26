"""Version 1 of an app whose journals tests/runtime/test_replay_e2e.py records and replays
(`stead replay`); tests/apps/replay_v2.py is the next version, with one step renamed.

Every step body appends to the effects file `steps`, so a test sees that a replay runs none.
"""

from __future__ import annotations

from datetime import timedelta

from pysdk import ObjectContext, VirtualObject, app
from tests.apps.testapp import effect

orders = VirtualObject("Orders")


def charge(amount: int) -> str:
    effect("steps", f"charge {amount}")
    return f"charged {amount}"


@orders.handler()
async def checkout(ctx: ObjectContext, amount: int) -> str:
    total = await ctx.get("total") or 0
    receipt = await ctx.run("charge", charge, args=(amount,))
    ctx.set("total", total + amount)
    return receipt


@orders.handler()
async def checkout_later(ctx: ObjectContext, wait_ms: int) -> str:
    """Reserves, sleeps, then charges: a long sleep leaves it suspended before the charge."""
    await ctx.run("reserve", lambda: effect("steps", "reserve"))
    await ctx.sleep(timedelta(milliseconds=wait_ms))
    return await ctx.run("charge", charge, args=(1,))


@orders.handler()
async def checkout_approved(ctx: ObjectContext, amount: int) -> str:
    """Charges, then waits for an approval (an awakeable) before shipping."""
    receipt = await ctx.run("charge", charge, args=(amount,))
    approval_id, approval = ctx.awakeable()
    ctx.set("approval", approval_id)
    await approval
    await ctx.run("ship", lambda: effect("steps", "ship"))
    return receipt


application = app([orders])
