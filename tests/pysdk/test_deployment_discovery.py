"""Discovery and the deployment process (pysdk/_deployment/discovery.py, server.py):
a real grpclib server on a free loopback port, a real grpclib client."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grpclib import GRPCError
from grpclib.client import Channel
from grpclib.const import Status
from pydantic import BaseModel

from pysdk import Context, ObjectContext, ObjectSharedContext, Service, VirtualObject, Workflow, WorkflowContext, app
from pysdk._deployment.server import DISCOVER_PATH, DeploymentServer
from pysdk._proto.stead.deployment import v1 as pb
from pysdk._retry import InvocationRetryPolicy
from runtime.identity import RequestSigner

ROOT = Path(__file__).resolve().parents[2]


class Order(BaseModel):
    item: str
    qty: int


greeter = Service("Greeter", description="says hello", metadata={"team": "a"},
                  inactivity_timeout=timedelta(seconds=30), ingress_private=True,
                  invocation_retry_policy=InvocationRetryPolicy(initial_interval=timedelta(milliseconds=100),
                                                                exponentiation_factor=2.0, max_attempts=3,
                                                                on_max_attempts="kill"))


@greeter.handler(journal_retention=timedelta(hours=1), metadata={"h": "1"})
async def greet(ctx: Context, order: Order) -> str:
    return order.item


@greeter.handler()
async def untyped(ctx: Context, x):  # type: ignore[no-untyped-def]
    return x


cart = VirtualObject("Cart", enable_lazy_state=True)


@cart.handler()
async def add(ctx: ObjectContext, item: str) -> int:
    return 1


@cart.handler(kind="shared")
async def count(ctx: ObjectSharedContext) -> int:
    return 0


signup = Workflow("Signup")


@signup.main(workflow_retention=timedelta(days=2))
async def run(ctx: WorkflowContext, email: str) -> bool:
    return True


application = app([greeter, cart, signup])


def arun(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def discover(port: int, lo: int = 1, hi: int = 1, metadata: Optional[list] = None) -> pb.DiscoverResponse:
    channel = Channel("127.0.0.1", port)
    try:
        return await pb.DeploymentStub(channel).discover(
            pb.DiscoverRequest(min_protocol_version=lo, max_protocol_version=hi), metadata=metadata)
    finally:
        channel.close()


async def with_server(fn: Any, **kw: Any) -> Any:
    server = DeploymentServer(application, **kw)
    port = await server.start("127.0.0.1", 0)
    try:
        return await fn(port)
    finally:
        await server.shutdown(grace=0.5)


def test_discover_describes_services_kinds_and_options() -> None:
    resp: pb.DiscoverResponse = arun(with_server(discover))
    assert (resp.min_protocol_version, resp.max_protocol_version) == (1, 2)
    assert resp.sdk.startswith("stead-pysdk ")
    services = {s.name: s for s in resp.services}
    assert {n: s.type for n, s in services.items()} == {"Greeter": "service", "Cart": "object", "Signup": "workflow"}
    assert {h.name: h.kind for h in services["Cart"].handlers} == {"add": "exclusive", "count": "shared"}
    assert {h.name: h.kind for h in services["Signup"].handlers} == {"run": "workflow"}

    g = services["Greeter"]
    assert g.description == "says hello" and g.metadata == {"team": "a"}
    assert g.options.inactivity_timeout_ms == 30_000
    assert g.options.ingress_private is True
    assert g.options.abort_timeout_ms is None and g.options.enable_lazy_state is None
    rp = g.options.retry_policy
    assert (rp.initial_interval_ms, rp.exponentiation_factor, rp.max_interval_ms, rp.max_attempts,
            rp.on_max_attempts) == (100, 2.0, None, 3, "KILL")
    assert services["Cart"].options.enable_lazy_state is True

    handlers = {h.name: h for h in g.handlers}
    greet_info = handlers["greet"]
    assert greet_info.options.journal_retention_ms == 3_600_000
    assert greet_info.metadata == {"h": "1"}
    assert greet_info.accept == "application/json" and greet_info.content_type == "application/json"
    schema = json.loads(greet_info.input_schema or "")
    assert schema["properties"]["qty"]["type"] == "integer" and schema["title"] == "Order"
    assert json.loads(greet_info.output_schema or "") == {"type": "string"}
    assert handlers["untyped"].input_schema is None and handlers["untyped"].output_schema is None
    wf = {h.name: h for h in services["Signup"].handlers}["run"]
    assert wf.options.workflow_retention_ms == 2 * 86_400_000


@pytest.mark.parametrize("lo,hi", [(3, 5), (0, 0)])
def test_discover_refuses_a_range_that_does_not_overlap(lo: int, hi: int) -> None:
    with pytest.raises(GRPCError) as err:
        arun(with_server(lambda port: discover(port, lo, hi)))
    assert err.value.status == Status.FAILED_PRECONDITION
    assert f"{lo}..{hi}" in (err.value.message or "") and "1..2" in (err.value.message or "")


def test_discover_accepts_an_overlapping_range() -> None:
    resp = arun(with_server(lambda port: discover(port, 0, 3)))
    assert (resp.min_protocol_version, resp.max_protocol_version) == (1, 2)


def test_identity_keys_refuse_unsigned_requests() -> None:
    signer = RequestSigner(Ed25519PrivateKey.generate())
    other = RequestSigner(Ed25519PrivateKey.generate())

    async def main(port: int) -> None:
        with pytest.raises(GRPCError) as err:
            await discover(port)
        assert err.value.status == Status.UNAUTHENTICATED
        with pytest.raises(GRPCError) as err:
            await discover(port, metadata=other.headers(DISCOVER_PATH))
        assert err.value.status == Status.UNAUTHENTICATED
        resp = await discover(port, metadata=signer.headers(DISCOVER_PATH))
        assert len(resp.services) == 3

    arun(with_server(main, identity_keys=[signer.public_key_string()]))


def test_identity_keys_of_the_app_are_used() -> None:
    signer = RequestSigner(Ed25519PrivateKey.generate())
    keyed = app([greeter], identity_keys=[signer.public_key_string()])

    async def main() -> None:
        server = DeploymentServer(keyed)
        port = await server.start("127.0.0.1", 0)
        try:
            with pytest.raises(GRPCError) as err:
                await discover(port)
            assert err.value.status == Status.UNAUTHENTICATED
            assert len((await discover(port, metadata=signer.headers(DISCOVER_PATH))).services) == 1
        finally:
            await server.shutdown(grace=0.5)

    arun(main())


def test_cli_ready_file_and_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pysdk._deployment", "tests.pysdk.test_deployment_discovery:application",
         "--port", "0", "--ready-file", str(ready)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "no ready file"
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid and info["port"] > 0
        resp = arun(discover(info["port"]))
        assert {s.name for s in resp.services} == {"Greeter", "Cart", "Signup"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
