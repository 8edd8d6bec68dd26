"""Limits in the test harness (pysdk/harness.py): a rate limit's refills follow the
injected clock (runtime/queues.py reads runtime/clock.py), so time skipping moves them,
and the Restate-style client sends limit keys."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

import pysdk
from pysdk import Context, HarnessEnvironment, RateLimit, Service

pytestmark = pytest.mark.anyio

daily = Service("daily")
started: list[tuple[float, str]] = []  # (virtual time, limit key) of each start


@daily.handler(rate_limit=RateLimit(2, per=timedelta(days=1)))
async def report(ctx: Context, n: int) -> int:
    started.append((await ctx.time(), ctx.request().limit_key or "-"))
    return n


APP = pysdk.app([daily])


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


async def test_a_daily_rate_limit_is_moved_by_time_skipping() -> None:
    started.clear()
    async with pysdk.create_test_harness(APP, time_skipping=True) as env:
        await _five_reports_over_a_day_and_a_half(env)


async def _five_reports_over_a_day_and_a_half(env: HarnessEnvironment) -> None:
    client = env.client
    real = time.monotonic()
    handles = [await client.service_send(report, arg=n, limit_key=f"t{n % 2}") for n in range(5)]
    first = time.monotonic()
    while len(started) < 2 and time.monotonic() - first < 5:
        await env.advance(timedelta(0))
    assert len(started) == 2, "a burst of two"
    await env.advance(timedelta(hours=11))
    assert len(started) == 2, "the next token comes 12 hours after the burst"
    await env.advance(timedelta(hours=2))
    assert len(started) == 3
    await env.advance(timedelta(days=1))
    assert len(started) == 5, "one more every 12 hours"
    assert [await client.attach(h, report) for h in handles] == list(range(5))
    gaps = [b[0] - a[0] for a, b in zip(started, started[1:])]
    assert gaps[0] < 60 and all(11.9 * 3600 <= g <= 12.1 * 3600 for g in gaps[1:]), gaps
    assert [key for _, key in started] == ["t0", "t1", "t0", "t1", "t0"]
    assert time.monotonic() - real < 5.0
