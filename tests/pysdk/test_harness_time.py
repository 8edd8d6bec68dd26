"""Time skipping in the test harness (`create_test_harness(app, time_skipping=True)`,
pysdk/harness.py): the runtime and the in-process handlers run on a virtual clock that
`env.advance(delta)` moves, timer by timer, so month-long workflows finish in milliseconds.
"""

import itertools
import time
import uuid
from datetime import timedelta

import pytest

import pysdk
from pysdk import (
    Context,
    HarnessEnvironment,
    InvocationRetryPolicy,
    ObjectContext,
    Service,
    VirtualObject,
    Workflow,
    WorkflowContext,
)
from runtime import _core

pytestmark = pytest.mark.anyio

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


subscription = Workflow("subscription")
reminders: dict[str, list[float]] = {}  # key -> the (virtual) times reminders were sent


@subscription.main()
async def run(ctx: WorkflowContext, weeks: int) -> float:
    """A subscription of `weeks` weeks: a reminder after each week, then the end."""
    key = ctx.key()
    for week in range(weeks):
        await ctx.sleep(timedelta(weeks=1))
        now = await ctx.time()
        await ctx.run(f"remind {week}", lambda now=now: reminders.setdefault(key, []).append(now))
    return await ctx.time()


long_sleep = Workflow("long_sleep")


@long_sleep.main()
async def sleep_a_month(ctx: WorkflowContext, days: int) -> float:
    started = await ctx.time()
    await ctx.sleep(timedelta(days=days))
    return await ctx.time() - started


clock = VirtualObject("clock")


@clock.handler()
async def now(ctx: ObjectContext) -> float:
    return await ctx.time()


@clock.handler()
async def tick(ctx: ObjectContext) -> int:
    ticks = (await ctx.get("ticks", type_hint=int) or 0) + 1
    ctx.set("ticks", ticks)
    return ticks


@clock.handler()
async def ticks(ctx: ObjectContext) -> int:
    return await ctx.get("ticks", type_hint=int) or 0


@clock.handler()
async def tick_later(ctx: ObjectContext, days: int) -> None:
    ctx.object_send(tick, key=ctx.key(), arg=None, send_delay=timedelta(days=days))


flaky = Service("flaky", invocation_retry_policy=InvocationRetryPolicy(initial_interval=timedelta(hours=1),
                                                                        max_interval=timedelta(days=1)))
attempts: dict[str, int] = {}


@flaky.handler()
async def succeed_on_second(ctx: Context, key: str) -> int:
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 2:
        raise RuntimeError("not yet")
    return attempts[key]


APP = pysdk.app([subscription, long_sleep, clock, flaky])


@pytest.fixture(params=[False, True], ids=["normal", "always_replay"])
async def env(request):
    async with pysdk.create_test_harness(APP, time_skipping=True, always_replay=request.param) as env:
        yield env


async def test_a_thirty_day_sleep_completes_once_advanced(env: HarnessEnvironment):
    client = env.client
    started = time.monotonic()
    handle = await client.workflow_send(sleep_a_month, key=str(uuid.uuid4()), arg=30)

    await env.advance(timedelta(days=30))

    slept = await client.attach(handle, sleep_a_month)
    assert 30 * 86_400 - 0.01 <= slept < 30 * 86_400 + 60  # virtual seconds; fire times are in whole ms
    assert time.monotonic() - started < 1.0


async def test_weekly_reminders_of_a_thirty_day_subscription(env: HarnessEnvironment):
    client = env.client
    key = str(uuid.uuid4())
    started = time.monotonic()
    handle = await client.workflow_send(run, key=key, arg=4)

    await env.advance(timedelta(days=6))
    assert reminders.get(key) is None  # none before the first week is out

    await env.advance(timedelta(days=24))  # day 30: four weeks are out
    sent = reminders[key]
    assert len(sent) == 4
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(7 * 86_400 - 0.01 <= gap < 7 * 86_400 + 60 for gap in gaps), gaps  # fire times are in whole ms
    ended = await client.attach(handle, run)
    assert ended >= sent[-1]
    assert time.monotonic() - started < 1.0


async def test_ctx_time_reflects_the_virtual_clock(env: HarnessEnvironment):
    client = env.client
    before = await client.object_call(now, key="a", arg=None)
    assert abs(before - time.time()) < 60

    await env.advance(timedelta(days=30))

    after = await client.object_call(now, key="a", arg=None)
    assert 30 * 86_400 <= after - before < 30 * 86_400 + 60
    assert _core.clock_offset_ms() >= 30 * 86_400_000


async def test_delayed_sends_fire_once_advanced(env: HarnessEnvironment):
    client = env.client
    key = str(uuid.uuid4())
    handle = await client.object_send(tick, key=key, arg=None, send_delay=timedelta(days=2))  # from the ingress
    await client.object_call(tick_later, key=key, arg=3)  # from a handler

    await env.advance(timedelta(days=1))
    assert await client.object_call(ticks, key=key, arg=None) == 0

    await env.advance(timedelta(days=1))
    assert await client.attach(handle, tick) == 1
    assert await client.object_call(ticks, key=key, arg=None) == 1

    await env.advance(timedelta(days=1))
    assert await client.object_call(ticks, key=key, arg=None) == 2


async def test_retry_backoff_follows_the_clock(env: HarnessEnvironment):
    client = env.client
    key = str(uuid.uuid4())
    handle = await client.service_send(succeed_on_second, arg=key)

    await env.advance(timedelta(minutes=59))
    assert attempts[key] == 1  # backing off for an hour

    await env.advance(timedelta(minutes=1))
    assert await client.attach(handle, succeed_on_second) == 2


async def test_cron_schedules_follow_the_clock():
    key = str(uuid.uuid4())
    nightly = pysdk.Schedule("nightly", tick, key=key, cron="0 3 * * *", timezone="UTC")
    async with pysdk.create_test_harness(pysdk.app([clock], schedules=[nightly]), time_skipping=True) as env:
        started = time.monotonic()
        await env.advance(timedelta(days=3))
        assert await env.client.object_call(ticks, key=key, arg=None) == 3  # one firing a night
        assert time.monotonic() - started < 1.0


async def test_the_clock_only_moves_forward(env: HarnessEnvironment):
    with pytest.raises(ValueError, match="only moves forward"):
        await env.advance(timedelta(seconds=-1))
    await env.advance(timedelta(0))


async def test_one_time_skipping_harness_at_a_time(env: HarnessEnvironment):
    with pytest.raises(RuntimeError, match="another time-skipping harness"):
        async with pysdk.create_test_harness(APP, time_skipping=True):
            pass
    async with pysdk.create_test_harness(APP) as other:  # one without time skipping may run beside it
        assert await other.client.object_call(ticks, key="x", arg=None) == 0


async def test_the_offset_is_back_to_zero_at_exit():
    async with pysdk.create_test_harness(APP, time_skipping=True) as env:
        await env.advance(timedelta(days=3))
        assert _core.clock_offset_ms() >= 3 * 86_400_000
    assert _core.clock_offset_ms() == 0


async def test_without_time_skipping_the_clock_is_real():
    async with pysdk.create_test_harness(APP) as env:
        with pytest.raises(RuntimeError, match="time_skipping=True"):
            await env.advance(DAY)
        assert abs(await env.client.object_call(now, key="b", arg=None) - time.time()) < 60
    assert _core.clock_offset_ms() == 0
