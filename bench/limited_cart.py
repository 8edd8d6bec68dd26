"""W2 under a concurrency limit (issue 12, part 5): the cart of examples/cart.py with at
most LIMIT `add`s running at once. W2 keeps 64 requests in flight, so most of them wait
in the limit's queue (runtime/queues.py): W2L against W2 is the cost of that queue."""

from pysdk import ObjectContext, ObjectSharedContext, VirtualObject, app
from examples import cart as example

LIMIT = 8

cart = VirtualObject("Cart", concurrency=LIMIT)


@cart.handler()
async def add(ctx: ObjectContext, item: str) -> int:
    return await example.add(ctx, item)


@cart.handler(kind="shared")
async def count(ctx: ObjectSharedContext) -> int:
    return await example.count(ctx)


application = app([cart])
