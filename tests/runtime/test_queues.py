"""runtime/queues.py on its own (no server): the token bucket's arithmetic, the lanes'
order and fairness, and the checks of pysdk/_limits.py."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from datetime import timedelta
from typing import Any

import pytest

from pysdk import Context, RateLimit, Service, VirtualObject, app
from pysdk._limits import check_limit_key, with_limit_key
from runtime.queues import ALREADY_QUEUED, CANCELLED, DROPPED, GRANTED, Bucket, Queues, Ticket, Waiter

svc = Service("Svc", concurrency=2)
free = Service("Free")


@svc.handler(concurrency_per_limit_key=1)
async def one(ctx: Context) -> None: ...


@free.handler()
async def anything(ctx: Context) -> None: ...


APP = app([svc, free])
_n = 0


def inv(handler: str = "one", limit_key: str = "", service: str = "Svc", created: int = 0) -> Any:
    """What the queues read of an invocation (`_core.Invocation`'s attributes)."""
    global _n
    _n += 1
    headers = [("x-restate-limit-key", limit_key)] if limit_key else []
    return SimpleNamespace(id=f"inv_{_n:04d}", service=service, handler=handler, headers=headers,
                           created_ms=created or 1_000 + _n, retry_count=0, journal_len=0)


def spec(service: str = "Svc", handler: str = "one") -> Any:
    return APP.services[service].handlers[handler]


def test_a_handler_without_limits_takes_no_slot() -> None:
    async def body() -> None:
        q = Queues(APP)
        assert q.active
        assert q.enter(inv("anything", service="Free"), spec("Free", "anything")) is None
    asyncio.run(body())


def test_lanes_are_served_round_robin_and_in_arrival_order() -> None:
    async def body() -> None:
        q = Queues(APP)
        running = [q.enter(inv(limit_key="a"), spec()), q.enter(inv(limit_key="b"), spec())]
        assert all(isinstance(t, Ticket) for t in running)
        a = [q.enter(inv(limit_key="a"), spec()) for _ in range(3)]
        b = [q.enter(inv(limit_key="b"), spec()) for _ in range(2)]
        assert all(isinstance(w, Waiter) and not w.future.done() for w in a + b)
        assert q.depth() == 5
        order: list[str] = []
        tickets: list[Ticket] = list(running)  # type: ignore[arg-type]
        while tickets:
            q.leave(tickets.pop(0))
            for w in a + b:
                if w.future.done() and w.inv.id not in order:
                    assert w.future.result() == GRANTED and w.ticket is not None
                    order.append(w.inv.id)
                    tickets.append(w.ticket)
        keys = {w.inv.id: k for k, ws in (("a", a), ("b", b)) for w in ws}
        assert [keys[i] for i in order] == ["a", "b", "a", "b", "a"]
        assert [i for i in order if keys[i] == "a"] == [w.inv.id for w in a]
        assert q.depth() == 0
    asyncio.run(body())


def test_recovery_order_is_arrival_order_and_a_second_start_is_refused() -> None:
    async def body() -> None:
        q = Queues(APP)
        holder = q.enter(inv(limit_key="k"), spec())
        late, early = inv(limit_key="k", created=5_000), inv(limit_key="k", created=2_000)
        w_late, w_early = q.enter(late, spec()), q.enter(early, spec())
        assert q.enter(late, spec()) == ALREADY_QUEUED  # a second start does not queue twice
        assert q.depth() == 2
        assert isinstance(holder, Ticket)
        q.leave(holder)
        assert isinstance(w_early, Waiter) and w_early.future.result() == GRANTED
        assert isinstance(w_late, Waiter) and not w_late.future.done()
    asyncio.run(body())


def test_drop_and_cancel() -> None:
    async def body() -> None:
        q = Queues(APP)
        holder = q.enter(inv(limit_key="k"), spec())
        fresh = q.enter(inv(limit_key="k"), spec())
        started = inv(limit_key="k")
        started.retry_count = 1  # it ran before (a retry): a cancel must let it unwind
        resumed = q.enter(started, spec())
        killed = q.enter(inv(limit_key="k"), spec())
        assert isinstance(fresh, Waiter) and isinstance(resumed, Waiter) and isinstance(killed, Waiter)
        assert q.drop(fresh.inv.id, cancelled=True) and fresh.future.result() == CANCELLED
        assert not q.drop(started.id, cancelled=True) and not resumed.future.done()
        assert q.drop(killed.inv.id) and killed.future.result() == DROPPED
        assert not q.drop("inv_unknown")
        assert isinstance(holder, Ticket)
        q.leave(holder)
        assert resumed.future.result() == GRANTED
    asyncio.run(body())


def test_a_token_bucket_bursts_then_refills_evenly() -> None:
    b = Bucket(RateLimit(5, per=timedelta(seconds=1)), now=10_000)
    for _ in range(5):
        assert b.has_token(10_000)
        b.take(10_000)
    assert not b.has_token(10_000)
    assert b.next_token_ms(10_000) == 10_200
    assert not b.has_token(10_199) and b.has_token(10_200)
    assert b.has_token(20_000) and b.tokens == 5, "never more than the burst"


def test_declarations_and_limit_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="concurrency must be an integer >= 1"):
        Service("Bad", concurrency=0)
    with pytest.raises(ValueError, match="concurrency_per_limit_key must be"):
        VirtualObject("Bad").handler(concurrency_per_limit_key=True)
    with pytest.raises(ValueError, match="rate_limit must be a pysdk.RateLimit"):
        Service("Bad").handler(rate_limit=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="starts must be"):
        RateLimit(0, per=timedelta(seconds=1))
    with pytest.raises(ValueError, match="per must be a positive"):
        RateLimit(1, per=timedelta(0))
    assert check_limit_key("tenant-1/user_42.x") == "tenant-1/user_42.x"
    for bad in ("", "a b", "a/b/c", "x" * 37, "é"):
        with pytest.raises(ValueError, match="invalid limit key"):
            check_limit_key(bad)
    assert with_limit_key({"a": "1"}, "t") == {"a": "1", "x-restate-limit-key": "t"}
    assert with_limit_key(None, None) is None
