"""The automatic mode of time skipping (`create_test_harness(app, time_skipping="auto")`,
pysdk/_autoskip.py): while the test waits for an answer of `env.client`, time skips from
timer to timer whenever the runtime is quiescent; otherwise it stands still."""

import itertools
import time
import uuid
from datetime import timedelta

import httpx
import pytest

import pysdk
from pysdk import HarnessEnvironment, RateLimit, Service
from tests.pysdk.test_harness_time import APP as TIME_APP, reminders, run, sleep_a_month, succeed_on_second
from tests.pysdk.test_harness_time import attempts

pytestmark = pytest.mark.anyio

throttled = Service("throttled")


@throttled.handler(rate_limit=RateLimit(1, per=timedelta(hours=1)))
async def hourly(ctx: pysdk.Context, n: int) -> float:
    return await ctx.time()


APP = pysdk.app([*TIME_APP.services.values(), throttled])


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


@pytest.fixture(params=[(False, False), (True, False), (False, True)], ids=["normal", "always_replay", "remote"])
async def env(request):
    always_replay, remote = request.param
    async with pysdk.create_test_harness(APP, time_skipping="auto", always_replay=always_replay,
                                         remote=remote) as env:
        yield env


async def test_a_call_to_a_thirty_day_subscription_answers_at_once(env: HarnessEnvironment):
    key = str(uuid.uuid4())
    started = time.monotonic()
    ended = await env.client.workflow_call(run, key=key, arg=4)  # four weekly reminders, no advance()
    sent = reminders[key]
    assert len(sent) == 4
    gaps = [b - a for a, b in itertools.pairwise(sent)]
    assert all(7 * 86_400 - 0.01 <= gap < 7 * 86_400 + 60 for gap in gaps), gaps
    assert ended >= sent[-1]
    assert time.monotonic() - started < 1.0


async def test_time_stands_still_while_the_test_does_not_wait(env: HarnessEnvironment):
    # Sent with a client of its own: a send of the harness's client is a request in flight
    # too until its 202 arrives, and on a loaded machine the workflow it starts could sleep
    # (and time skip) before then (seen once in CI).
    async with httpx.AsyncClient(base_url=env.ingress_url) as ingress:
        sent = await ingress.post(f"long_sleep/{uuid.uuid4()}/sleep_a_month/send", json=30)
    assert sent.status_code == 202, sent.text
    invocation_id = sent.json()["invocationId"]
    time.sleep(0.3)  # the test is busy elsewhere: no request in flight, no skipping
    async with httpx.AsyncClient(base_url=env.admin_api_url) as admin:  # not the harness's client
        status = (await admin.get(f"invocations/{invocation_id}")).json()["status"]
    assert status != "completed"
    slept = await env.client.attach(invocation_id, sleep_a_month)  # waiting: now it skips
    assert 30 * 86_400 - 0.01 <= slept < 30 * 86_400 + 60


async def test_retry_backoff_and_rate_limits_are_skipped_too(env: HarnessEnvironment):
    key = str(uuid.uuid4())
    assert await env.client.service_call(succeed_on_second, arg=key) == 2  # an hour of backoff
    assert attempts[key] == 2
    started = time.monotonic()
    handles = [await env.client.service_send(hourly, arg=n) for n in range(3)]
    times = [await env.client.attach(h, hourly) for h in handles]
    assert all(3600 - 1 <= b - a <= 3600 + 1 for a, b in itertools.pairwise(times)), times
    assert time.monotonic() - started < 2.0


async def test_advance_still_works_in_automatic_mode(env: HarnessEnvironment):
    handle = await env.client.workflow_send(sleep_a_month, key=str(uuid.uuid4()), arg=2)
    await env.advance(timedelta(days=2))
    async with httpx.AsyncClient(base_url=env.admin_api_url) as admin:
        status = (await admin.get(f"invocations/{handle.invocation_id}")).json()["status"]
    assert status == "completed"


async def test_a_bad_mode_is_refused():
    with pytest.raises(ValueError, match="time_skipping is False, True"):
        async with pysdk.create_test_harness(APP, time_skipping="fast"):
            pass
