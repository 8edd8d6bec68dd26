"""Handlers the end-to-end tests drive through a real `stead serve`.

Side effects that must be counted across crashes go to files under the
directory named by STEAD_TEST_EFFECTS (one line appended per execution).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from examples.cart import cart, checkout
from pysdk import Context, ObjectContext, ObjectSharedContext, Service, TerminalError, VirtualObject, app
from pydantic import BaseModel


def effects_dir() -> Path:
    """The test's own effects directory. There is no default: a shared path would let
    two test runs (or two servers) count each other's effects."""
    path = os.environ.get("STEAD_TEST_EFFECTS")
    if not path:
        raise RuntimeError("STEAD_TEST_EFFECTS is not set: the test apps write effects only "
                           "to the directory the test gives them")
    return Path(path)


def __getattr__(name: str) -> Path:
    if name == "EFFECTS":  # the old constant, read when used: still no default
        return effects_dir()
    raise AttributeError(name)


def effect(name: str, line: str) -> None:
    """Append one line to an effects file: how tests count real executions."""
    root = effects_dir()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / name, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def effects(name: str) -> list[str]:
    path = effects_dir() / name
    return path.read_text().splitlines() if path.exists() else []


async def gate(name: str) -> None:
    """Wait until the test creates the file `name` in the effects directory; the effects
    file `gates` records `at NAME` when a handler starts waiting there, so a test knows
    the handler reached the gate (and, for a step body, that what it observed is durable)."""
    effect("gates", f"at {name}")
    while not (effects_dir() / name).exists():
        await asyncio.sleep(0.02)


@cart.handler(kind="shared")
async def items(ctx: ObjectSharedContext) -> list[str]:
    return await ctx.get("items") or []


@cart.handler(kind="shared")
async def meet(ctx: ObjectSharedContext, tag: str) -> int:
    """A shared handler that records entering and leaving (effects file `meet-KEY`) and in
    between waits at the gate `meet-KEY.gate`: two of them are provably inside at once."""
    effect(f"meet-{ctx.key()}", f"enter {tag}")
    await gate(f"meet-{ctx.key()}.gate")
    n = len(await ctx.get("items") or [])
    effect(f"meet-{ctx.key()}", f"leave {tag}")
    return n


@cart.handler()
async def slow_add(ctx: ObjectContext, item: str) -> int:
    """An exclusive handler that yields to the loop between its read and its write."""
    items = await ctx.get("items") or []
    await asyncio.sleep(0.002)  # deliberate: lets other work interleave, which must not break exclusivity
    items.append(item)
    ctx.set("items", items)
    return len(items)


@cart.handler()
async def clear(ctx: ObjectContext) -> None:
    ctx.clear_all()


# ---- state values the runtime keeps decoded between invocations (see StateCache) ----


@cart.handler()
async def first_sorted(ctx: ObjectContext) -> str | None:
    """Sorts the list it got in place and does not set it: the state must not change."""
    items = await ctx.get("items") or []
    items.sort()
    return items[0] if items else None


@cart.handler()
async def add_then_fail_once(ctx: ObjectContext, item: str) -> int:
    """Appends and sets, then fails (not terminally) on its first attempt: the retry
    must start again from the committed list, without the first attempt's append."""
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    if not effects(f"fail-{item}"):
        effect(f"fail-{item}", "failed")
        raise RuntimeError("fails once")
    return len(items)


@cart.handler()
async def add_and_remember(ctx: ObjectContext, item: str) -> int:
    """Sets the same list under two names, and a dict holding it under a third."""
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    ctx.set("copy", items)
    ctx.set("last", {"item": item, "items": items})
    return len(items)


@cart.handler()
async def remembered(ctx: ObjectContext) -> dict:
    """An exclusive reader: it gets the values the runtime kept decoded, if any."""
    return {"copy": await ctx.get("copy"), "last": await ctx.get("last")}


steps = VirtualObject("Steps")


@steps.handler()
async def run(ctx: ObjectContext, tag: str) -> str:
    """Three durable steps; between the second and the third it waits for a gate file,
    so a test can kill the server there."""
    a = await ctx.run_typed("one", lambda: effect(f"{tag}.log", "1") or "a")
    b = await ctx.run_typed("two", lambda: effect(f"{tag}.log", "2") or "b")
    effect(f"{tag}.log", "after-two")  # not a step: runs again on replay
    await gate(f"{tag}.gate")
    c = await ctx.run_typed("three", lambda: effect(f"{tag}.log", "3") or "c")
    ctx.set("result", a + b + c)
    return a + b + c


@steps.handler(kind="shared")
async def result(ctx: ObjectSharedContext) -> str | None:
    return await ctx.get("result")


flaky = Service("Flaky")


@flaky.handler()
async def step_until(ctx: Context, failures: int) -> str:
    """A step that fails `failures` times with an ordinary exception, then succeeds."""

    def attempt() -> str:
        n = len(effects("flaky.log"))
        effect("flaky.log", f"attempt {time.time()}")
        if n < failures:
            raise RuntimeError(f"transient failure {n + 1}")
        return f"ok after {n + 1}"

    return await ctx.run_typed("attempt", attempt)


@flaky.handler()
async def handler_until(ctx: Context, failures: int) -> str:
    """The handler itself (not a step) fails `failures` times: invocation retries."""
    n = len(effects("handler.log"))
    effect("handler.log", f"attempt {time.time()}")
    if n < failures:
        raise RuntimeError(f"transient handler failure {n + 1}")
    return f"ok after {n + 1}"


@flaky.handler()
async def terminal(ctx: Context, message: str) -> str:
    effect("terminal.log", "attempt")
    raise TerminalError(message, status_code=422)


@flaky.handler()
async def terminal_step(ctx: Context) -> str:
    def fail() -> str:
        effect("terminal_step.log", "attempt")
        raise TerminalError("card declined", status_code=402)

    return await ctx.run_typed("charge", fail)


class Order(BaseModel):
    sku: str
    quantity: int


class Receipt(BaseModel):
    sku: str
    total: int


shop = Service("Shop")


@shop.handler()
async def buy(ctx: Context, order: Order) -> Receipt:
    return Receipt(sku=order.sku, total=order.quantity * 3)


@shop.handler()
async def ping(ctx: Context) -> str:
    return "pong"


# ---- ingress edges (tests/runtime/test_ingress_edges.py) ----

mailbox = VirtualObject("Mailbox")


@mailbox.handler()
async def put(ctx: ObjectContext, n: int = -1) -> int:
    """Stores what it got (a default, so an empty body would run too) and counts executions."""
    ctx.set("last", n)
    effect("mailbox", f"{ctx.key()} put {n}")
    return n


@mailbox.handler(name="send")
async def send_handler(ctx: ObjectContext, n: int) -> str:
    """An object handler named `send`: /Mailbox/k/send calls it, /Mailbox/k/send/send sends to it."""
    ctx.set("last", n)
    effect("mailbox", f"{ctx.key()} send {n}")
    return f"sent {n}"


@mailbox.handler(kind="shared")
async def last(ctx: ObjectSharedContext) -> int | None:
    return await ctx.get("last")


hidden = Service("Hidden", ingress_private=True)


@hidden.handler()
async def secret(ctx: Context, name: str) -> str:
    return f"secret for {name}"


gatekeeper = Service("Gatekeeper")


@gatekeeper.handler(ingress_private=True)
async def inner(ctx: Context, name: str) -> str:
    return f"inner for {name}"


@gatekeeper.handler()
async def outer(ctx: Context, name: str) -> list[str]:
    """A public handler that calls a private service and a private handler."""
    return [await ctx.service_call(secret, arg=name), await ctx.service_call(inner, arg=name)]


application = app([cart, checkout, steps, flaky, shop, mailbox, hidden, gatekeeper])
