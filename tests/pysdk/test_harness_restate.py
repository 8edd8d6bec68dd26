"""Restate's harness test suite (sdk-python tests/harness.py), ported by changing the
import, and grown the way a Restate user's suite grows: objects with state, a service
calling an object, a workflow whose promise a shared handler resolves, calls and sends
with idempotency keys, a delayed send, an awakeable resolved from outside.

The handlers use only names Restate's SDK also has; the harness calls are Restate's
(`create_test_harness`, `client.*_call/_send`), except for what Restate's client has no
call for: attaching to a send's invocation, completing an awakeable and reading state
(Stead's additions: pysdk/client.py, HarnessEnvironment.get_state). Every test runs
three times: normally, with always_replay (each invocation replayed after every durable
point), and with the handlers in a deployment reached over gRPC (`remote=True`, the
way Restate's own harness always runs them).
"""

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Optional

import pytest

import pysdk
from pysdk import (
    Context,
    HarnessEnvironment,
    HttpError,
    ObjectContext,
    ObjectSharedContext,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
)

# ----- Asyncio fixtures


@pytest.fixture(scope="module")
def anyio_backend():
    return "asyncio"


pytestmark = [
    pytest.mark.anyio,
]

# -------- Restate services and restate fixture

greeter = Service("greeter")


@greeter.handler()
async def greet(ctx: Context, name: str) -> str:
    return f"Hello {name}!"


@greeter.handler()
async def greet_counted(ctx: Context, name: str) -> str:
    visits = await ctx.object_call(increment, key=name, arg=1)
    return f"Hello {name}, visit {visits}!"


counter = VirtualObject("counter")


@counter.handler()
async def increment(ctx: ObjectContext, value: int) -> int:
    n = await ctx.get("counter", type_hint=int) or 0
    n += value
    ctx.set("counter", n)
    return n


@counter.handler(kind="shared")
async def count(ctx: ObjectSharedContext) -> int:
    return await ctx.get("counter") or 0


@counter.handler()
async def reset(ctx: ObjectContext) -> None:
    if await ctx.get("counter", type_hint=int) is None:
        raise TerminalError("nothing to reset", status_code=409)
    ctx.clear("counter")


payment = Workflow("payment")


@payment.main()
async def pay(ctx: WorkflowContext):
    ctx.set("status", "verifying payment")

    def payment_gateway():
        return "authorized"

    await ctx.run_typed("payment", payment_gateway)

    ctx.set("status", "waiting for the payment provider to approve")

    # Wait for the payment to be verified
    result = await ctx.promise("verify.payment", type_hint=str).value()
    ctx.set("status", "verified")
    return f"Verified {result}!"


@payment.handler()
async def payment_verified(ctx: WorkflowSharedContext, result: str):
    promise = ctx.promise("verify.payment", type_hint=str)
    await promise.resolve(result)


# Restate's test-services keep an awakeable's id in an object, for the test to find it.
awakeable_holder = VirtualObject("awakeable_holder")


@awakeable_holder.handler()
async def hold(ctx: ObjectContext, awakeable_id: str) -> None:
    ctx.set("id", awakeable_id)


@awakeable_holder.handler(kind="shared")
async def held(ctx: ObjectSharedContext) -> Optional[str]:
    return await ctx.get("id")


approvals = Service("approvals")


@approvals.handler()
async def request_approval(ctx: Context, request: str) -> str:
    awakeable_id, approval = ctx.awakeable(type_hint=str)
    ctx.object_send(hold, key=request, arg=awakeable_id)
    try:
        return f"{request}: {await approval}"
    except TerminalError as exc:
        return f"{request} rejected: {exc.message}"


@pytest.fixture(scope="module", params=[(False, False), (True, False), (False, True)],
                ids=["normal", "always_replay", "remote"])
async def restate_test_harness(request):
    always_replay, remote = request.param
    async with pysdk.create_test_harness(
        pysdk.app([greeter, counter, payment, awakeable_holder, approvals]),
        restate_image="ghcr.io/restatedev/restate:latest",
        always_replay=always_replay,
        remote=remote,  # Stead's: the handlers in a deployment, over gRPC
    ) as harness:
        yield harness


# ----- Tests


async def test_greeter(restate_test_harness: HarnessEnvironment):
    greeting = await restate_test_harness.client.service_call(greet, arg="Pippo")

    assert greeting == "Hello Pippo!"


async def test_counter(restate_test_harness: HarnessEnvironment):
    random_key = str(uuid.uuid4())
    initial_count = await restate_test_harness.client.object_call(count, key=random_key, arg=None)
    await restate_test_harness.client.object_call(increment, key=random_key, arg=1)
    new_count = await restate_test_harness.client.object_call(count, key=random_key, arg=None)

    assert new_count == initial_count + 1


async def test_idempotency_key(restate_test_harness: HarnessEnvironment):
    random_key = str(uuid.uuid4())
    initial_count = await restate_test_harness.client.object_call(count, key=random_key, arg=None)
    await restate_test_harness.client.object_call(increment, key=random_key, arg=1, idempotency_key=random_key)
    await restate_test_harness.client.object_call(increment, key=random_key, arg=1, idempotency_key=random_key)
    new_count = await restate_test_harness.client.object_call(count, key=random_key, arg=None)

    assert new_count == initial_count + 1


async def test_workflow(restate_test_harness: HarnessEnvironment):
    random_key = str(uuid.uuid4())
    call_task = asyncio.create_task(restate_test_harness.client.workflow_call(pay, key=random_key, arg=None))

    await restate_test_harness.client.workflow_call(payment_verified, key=random_key, arg="Done")

    assert await call_task == "Verified Done!"
    assert await restate_test_harness.get_state(payment, random_key) == {"status": "verified"}


async def test_send(restate_test_harness: HarnessEnvironment):
    invocation_handle = await restate_test_harness.client.service_send(greet, arg="Pippo")

    assert invocation_handle.status_code == 200
    assert len(invocation_handle.invocation_id) > 0


# ----- Beyond Restate's own suite


async def test_service_calls_an_object(restate_test_harness: HarnessEnvironment):
    name = str(uuid.uuid4())
    client = restate_test_harness.client

    assert await client.service_call(greet_counted, arg=name) == f"Hello {name}, visit 1!"
    assert await client.service_call(greet_counted, arg=name) == f"Hello {name}, visit 2!"
    assert await client.object_call(count, key=name, arg=None) == 2
    assert await restate_test_harness.get_state(counter, name) == {"counter": 2}


async def test_state_is_per_key_and_cleared(restate_test_harness: HarnessEnvironment):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    client = restate_test_harness.client
    await client.object_call(increment, key=a, arg=5)
    await client.object_call(increment, key=b, arg=-3)

    assert await restate_test_harness.get_state("counter", a) == {"counter": 5}
    assert await restate_test_harness.get_state("counter", b) == {"counter": -3}
    await client.object_call(reset, key=a, arg=None)
    assert await restate_test_harness.get_state("counter", a) == {}
    with pytest.raises(HttpError) as refused:
        await client.object_call(reset, key=a, arg=None)  # a TerminalError, with its status
    assert refused.value.status_code == 409
    assert "nothing to reset" in (refused.value.body or "")


async def test_send_with_idempotency_key_runs_once(restate_test_harness: HarnessEnvironment):
    key, op = str(uuid.uuid4()), str(uuid.uuid4())
    client = restate_test_harness.client

    first = await client.object_send(increment, key=key, arg=10, idempotency_key=op)
    again = await client.object_send(increment, key=key, arg=10, idempotency_key=op)

    assert again.invocation_id == first.invocation_id
    assert (first.status, again.status) == ("Accepted", "PreviouslyAccepted")
    assert await client.attach(first, increment) == 10
    assert await client.get_output(again.invocation_id, increment) == 10
    assert await client.object_call(count, key=key, arg=None) == 10


async def test_delayed_send(restate_test_harness: HarnessEnvironment):
    key = str(uuid.uuid4())
    client = restate_test_harness.client
    started = time.monotonic()

    handle = await client.object_send(increment, key=key, arg=1, send_delay=timedelta(seconds=1))

    assert await client.object_call(count, key=key, arg=None) == 0  # not yet
    assert await client.attach(handle, increment) == 1
    assert time.monotonic() - started >= 1.0


async def test_awakeable_resolved_from_outside(restate_test_harness: HarnessEnvironment):
    request = str(uuid.uuid4())
    client = restate_test_harness.client
    call = asyncio.create_task(client.service_call(request_approval, arg=request))

    awakeable_id = await _held_awakeable(client, request)
    await client.resolve_awakeable(awakeable_id, "approved")

    assert await call == f"{request}: approved"


async def test_awakeable_rejected_from_outside(restate_test_harness: HarnessEnvironment):
    request = str(uuid.uuid4())
    client = restate_test_harness.client
    call = asyncio.create_task(client.service_call(request_approval, arg=request))

    await client.reject_awakeable(await _held_awakeable(client, request), "over budget")

    assert await call == f"{request} rejected: over budget"


async def _held_awakeable(client, request: str) -> str:
    """The awakeable id the approval handler left in the holder, once it is there."""
    deadline = time.monotonic() + 30
    while (awakeable_id := await client.object_call(held, key=request, arg=None)) is None:
        assert time.monotonic() < deadline, "the handler never handed over its awakeable"
        await asyncio.sleep(0.01)
    return awakeable_id
