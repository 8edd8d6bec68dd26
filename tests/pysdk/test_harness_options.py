"""The harness's options and lifecycle (pysdk/harness.py) and the client's edges
(pysdk/client.py): disable_retries, the synchronous test_harness, harnesses side by side,
the data directory deleted at exit, refused scopes, the generic calls."""

import asyncio
import gc
import os
import re
import socket
from datetime import timedelta

import httpx
import pytest

import pysdk
from pysdk import Context, HttpError, ObjectContext, Service, VirtualObject, Workflow, WorkflowContext
from pysdk import harness as harness_module
from pysdk.client import create_client
from pysdk.serde import BytesSerde

pytestmark = [pytest.mark.anyio]


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


# What the handlers did, seen from the test: they run in this process.
attempts: dict[str, int] = {}

flaky = Service("flaky")


@flaky.handler()
async def fail_until(ctx: Context, succeed_on_attempt: int) -> int:
    """Fails with a retryable error until its `succeed_on_attempt`-th attempt."""
    key = ctx.request().id
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < succeed_on_attempt:
        raise ValueError(f"attempt {attempts[key]} failed")
    return attempts[key]


counter = VirtualObject("counter")


@counter.handler()
async def add(ctx: ObjectContext, value: int) -> int:
    n = (await ctx.get("n", type_hint=int) or 0) + value
    ctx.set("n", n)
    return n


@counter.handler()
async def put_bytes(ctx: ObjectContext) -> None:
    ctx.set("raw", b"\xff\x00", serde=BytesSerde())


signup = Workflow("signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> str:
    return f"welcome {email}"


APP = pysdk.app([flaky, counter, signup])


async def test_disable_retries_fails_the_call_instead_of_retrying() -> None:
    before = dict(attempts)
    async with pysdk.create_test_harness(APP, disable_retries=True) as env:
        with pytest.raises(HttpError) as failed:
            await env.client.service_call(fail_until, arg=3)
    assert failed.value.status_code == 500
    assert "failed after 1 attempts" in (failed.value.body or "")
    assert "attempt 1 failed" in (failed.value.body or "")
    tried = {k: v for k, v in attempts.items() if k not in before}
    assert list(tried.values()) == [1]


async def test_without_disable_retries_a_failing_handler_is_retried() -> None:
    async with pysdk.create_test_harness(APP) as env:
        assert await env.client.service_call(fail_until, arg=3) == 3


async def test_follow_logs_prints_the_runtimes_records(capsys: pytest.CaptureFixture[str]) -> None:
    async with pysdk.create_test_harness(APP, follow_logs=True) as env:
        assert await env.client.service_call(fail_until, arg=2) == 2
    err = capsys.readouterr().err
    assert re.search(r"INFO stead\.invoker: invocation \S+ attempt 1 failed .*retrying in", err), err
    async with pysdk.create_test_harness(APP) as env:  # and no more once it is gone
        assert await env.client.service_call(fail_until, arg=2) == 2
    assert "stead.invoker" not in capsys.readouterr().err


def test_sync_test_harness() -> None:
    with pysdk.test_harness(APP, always_replay=True) as harness:
        with harness.ingress_client() as client:
            assert client.post("/counter/a/add", json=2).json() == 2
            assert client.post("/counter/a/add", json=3).json() == 5
        assert httpx.get(f"{harness.admin_api_url}/services/counter/state/a").json()["state"] == {"n": 5}
    with pytest.raises(AssertionError, match="not running"):
        harness.ingress_client()


def test_sync_test_harness_start_and_stop() -> None:
    harness = pysdk.test_harness(APP, follow_logs=False, restate_image="ignored", disable_retries=True)
    harness.start()
    try:
        ingress = harness.ingress_url
        assert httpx.get(f"{ingress}/restate/health").json()["status"] == "ok"
    finally:
        harness.stop()
    assert not _serving(ingress)


def test_start_takes_another_admin_port_when_its_port_was_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:  # another process got the port that was free a moment ago
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = iter([taken])
        free_port = harness_module._free_port
        monkeypatch.setattr(harness_module, "_free_port", lambda: next(offered, None) or free_port())
        with pysdk.test_harness(APP) as harness:
            assert not harness.admin_api_url.endswith(f":{taken}")
            assert httpx.get(f"{harness.admin_api_url}/health").status_code == 200
    gc.collect()  # a socket the failed start left open would warn (an error here) now, not later


async def test_an_app_is_required() -> None:
    with pytest.raises(TypeError, match="pysdk.app"):
        async with pysdk.create_test_harness([counter]):  # type: ignore[arg-type]
            pass


async def test_two_harnesses_side_by_side() -> None:
    async with pysdk.create_test_harness(APP) as one, pysdk.create_test_harness(APP) as two:
        assert {one.ingress_url, one.admin_api_url}.isdisjoint({two.ingress_url, two.admin_api_url})
        a, b = await asyncio.gather(one.client.object_call(add, key="k", arg=1),
                                    two.client.object_call(add, key="k", arg=10))
        assert (a, b) == (1, 10)
        assert await one.client.object_call(add, key="k", arg=1) == 2  # each has its own data
        assert await two.get_state(counter, "k") == {"n": 10}


async def test_exit_stops_the_runtime_and_deletes_its_data(capsys: pytest.CaptureFixture[str]) -> None:
    async with pysdk.create_test_harness(APP) as env:
        await env.client.object_call(add, key="k", arg=1)
        ingress, admin = env.ingress_url, env.admin_api_url
        data_dir = _data_dir(capsys.readouterr().err, ingress)
        assert os.path.isdir(data_dir)
    assert not os.path.exists(os.path.dirname(data_dir))
    assert not _serving(ingress) and not _serving(admin)


async def test_client_edges() -> None:
    async with pysdk.create_test_harness(APP) as env:
        client = env.client
        with pytest.raises(NotImplementedError, match="no scopes"):
            client.scope("tenant-1")
        with pytest.raises(ValueError, match="no scopes"):
            await client.generic_call("counter", "add", b"1", key="k", scope="tenant-1")
        with pytest.raises(ValueError, match="invalid limit key"):
            await client.generic_send("counter", "add", b"1", key="k", limit_key="not a key")
        with pytest.raises(TypeError, match="call it with object_call or workflow_call"):
            await client.service_call(add, arg=1)
        with pytest.raises(TypeError, match="is not a handler"):
            await client.object_call(lambda ctx: None, key="k", arg=None)

        assert await client.generic_call("counter", "add", b"4", key="a/b") == b"4"  # keys are percent-encoded
        assert await env.get_state("counter", "a/b") == {"n": 4}
        sent = await client.generic_send("counter", "add", b"1", key="a/b")
        assert await client.attach(sent.invocation_id) == 5  # no handler given: JSON

        await client.object_call(put_bytes, key="raw", arg=None)
        assert await env.get_state(counter, "raw") == {"raw": b"\xff\x00"}
        with pytest.raises(HttpError) as unknown:
            await env.get_state("nope", "k")
        assert unknown.value.status_code == 404

        assert await client.workflow_call(run, key="w", arg="ann@example.com") == "welcome ann@example.com"
        assert await client.workflow_attach(run, "w") == "welcome ann@example.com"
        assert await client.workflow_output(run, "w") == "welcome ann@example.com"
        again = await client.workflow_send(run, key="w", arg="bob@example.com")
        assert again.status == "PreviouslyAccepted"


async def test_create_client_against_any_ingress() -> None:
    async with pysdk.create_test_harness(APP) as env:
        async with create_client(env.ingress_url, headers={"x-test": "1"}) as client:
            assert await client.object_call(add, key="c", arg=7) == 7
            later = await client.object_send(add, key="c", arg=1, send_delay=timedelta(hours=1))
            with pytest.raises(HttpError) as not_ready:
                await client.get_output(later, add)
            assert not_ready.value.status_code == 470  # Restate's "not ready"


def _data_dir(stderr: str, ingress: str) -> str:
    match = re.search(rf"stead ready: ingress {re.escape(ingress)}, admin \S+, data (\S+),", stderr)
    assert match, stderr
    return match.group(1)


def _serving(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0
