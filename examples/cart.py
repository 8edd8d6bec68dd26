"""The objects and services of the benchmark workloads (../shared/bench/WORKLOADS.md).

Serve them with `stead serve examples.cart:application` from the repository root:

    curl -X POST localhost:8080/Cart/alice/add -H 'content-type: application/json' -d '"apple"'
"""

from pysdk import Context, ObjectContext, ObjectSharedContext, Service, TerminalError, VirtualObject, app

cart = VirtualObject("Cart")


@cart.handler()  # exclusive: one at a time per key
async def add(ctx: ObjectContext, item: str) -> int:
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    return len(items)


@cart.handler(kind="shared")  # runs concurrently with add, reads only
async def count(ctx: ObjectSharedContext) -> int:
    return len(await ctx.get("items") or [])


checkout = Service("Checkout")


@checkout.handler()
async def pay(ctx: Context, order: str) -> str:
    """Three durable steps: after a crash, finished steps are not run again."""
    a = await ctx.run_typed("reserve", lambda: "r-" + order)
    b = await ctx.run_typed("charge", lambda: "c-" + order)
    c = await ctx.run_typed("ship", lambda: "s-" + order)
    return a + b + c


def _ship(order: str) -> str:
    raise TerminalError(f"cannot ship {order}: no carrier for this address", status_code=409)


@checkout.handler()
async def saga(ctx: Context, order: str) -> str:
    """Restate's saga pattern: compensations registered as steps succeed, run in reverse."""
    compensations = []
    try:
        await ctx.run_typed("reserve", lambda: "r-" + order)
        compensations.append(("release", lambda: "released-" + order))
        await ctx.run_typed("charge", lambda: "c-" + order)
        compensations.append(("refund", lambda: "refunded-" + order))
        return await ctx.run_typed("ship", lambda: _ship(order))
    except TerminalError:
        for name, undo in reversed(compensations):
            await ctx.run_typed(name, undo)
        raise


application = app([cart, checkout])
