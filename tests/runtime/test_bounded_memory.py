"""What the invoker keeps in memory per invocation is dropped when that invocation no
longer needs it (issue 8, section 5): the parsed input of an inboxed invocation that
is cancelled or killed before it runs, and the result waiter of a request that ends
before its invocation does. In-process: a real store, Commits and Invoker on the
test's event loop (as runtime/server.py wires them), no HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from pysdk import ObjectContext, VirtualObject, app
from runtime import _core
from runtime.commits import Commits
from runtime.invoker import Invoker

queue = VirtualObject("Queue")


@queue.handler()
async def hold(ctx: ObjectContext) -> str:
    _, fut = ctx.awakeable()
    return str(await fut)


@queue.handler()
async def add(ctx: ObjectContext, item: str) -> int:
    items = await ctx.get("items") or []
    items.append(item)
    ctx.set("items", items)
    return len(items)


APP = app([queue])


async def _with_invoker(path: Path, body: Any) -> None:
    loop = asyncio.get_running_loop()
    store = _core.Store(str(path), "wal")
    store.recover()
    commits = Commits(store, loop)
    invoker = Invoker(store, APP, commits, suspend_after_s=60.0)
    try:
        await body(invoker)
    finally:
        await invoker.close(1.0)
        commits.close()
        store.close()


async def _holding(invoker: Invoker) -> asyncio.Task[Any]:
    """An owner of Queue/k waiting on an awakeable, so later calls on the key are inboxed."""
    spec = APP.lookup("Queue", "hold")
    assert spec is not None
    owner = asyncio.create_task(invoker.call(spec, invoker.new_invocation(spec, "k", b"", []), None))
    while not any(a.waiting for a in invoker.live.values()):
        await asyncio.sleep(0.001)
    return owner


def test_parsed_inputs_of_cancelled_or_killed_inboxed_invocations_are_dropped(tmp_path: Path) -> None:
    async def body(invoker: Invoker) -> None:
        owner = await _holding(invoker)
        spec = APP.lookup("Queue", "add")
        assert spec is not None
        calls = []
        for i in range(40):
            inv = invoker.new_invocation(spec, "k", f'"{i}"'.encode(), [])
            calls.append((inv.id, asyncio.create_task(invoker.call(spec, inv, str(i)))))
        while len(invoker._parsed) < 40:
            await asyncio.sleep(0.001)
        for n, (inv_id, _) in enumerate(calls):
            status, seq = invoker.store.cancel(inv_id) if n % 2 else invoker.store.kill(inv_id)
            assert status == _core.SIGNAL_APPLIED
            await invoker.signal(seq)
        results = await asyncio.gather(*(task for _, task in calls))
        assert {r[1] for r in results} == {409}
        assert invoker._parsed == {}, "inputs of invocations that will never run are still held"
        owner.cancel()
        await asyncio.gather(owner, return_exceptions=True)

    asyncio.run(_with_invoker(tmp_path / "data", body))


def test_the_waiter_of_a_request_that_ends_first_is_dropped(tmp_path: Path) -> None:
    async def body(invoker: Invoker) -> None:
        owner = await _holding(invoker)
        spec = APP.lookup("Queue", "add")
        assert spec is not None
        inv = invoker.new_invocation(spec, "k", b'"x"', [])
        request = asyncio.create_task(invoker.call(spec, inv, "x"))
        while inv.id not in invoker._parsed:
            await asyncio.sleep(0.001)
        assert invoker.results.has_waiters(inv.id)
        request.cancel()  # the client went away; the invocation itself stays inboxed
        await asyncio.gather(request, return_exceptions=True)
        assert not invoker.results.has_waiters(inv.id), "a waiter nobody awaits is still held"
        owner.cancel()
        await asyncio.gather(owner, return_exceptions=True)

    asyncio.run(_with_invoker(tmp_path / "data", body))
