"""Faults around remote deployments, with real processes: a deployment killed between
two steps, a deployment down when called, the runtime killed while a remote handler
waits on a call, versioning across a new registration, a silent deployment aborted
by the watchdog, and a deployment that sends a malformed message.

The handlers are tests/apps/remoteapp.py: `application` in `stead deployment serve`
processes (STEAD_TEST_VERSION names the version each runs), `local_app` in the
runtime. Every test runs in normal and forced-replay mode (the `mode` fixture).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import betterproto2
import httpx
import pytest
from grpclib.const import Cardinality, Handler
from grpclib.server import Server

from pysdk._deployment.wire import StrictCodec
from pysdk._entries import CALL, RUN, SET_STATE
from pysdk._ids import child_invocation_id
from pysdk._proto.stead.deployment import v1 as pb
from tests.conftest import DeploymentProcess, kill_all, read_lines, register, wait_until
from tests.disk import EntryKind, Status, read_disk, wait_on_disk

REMOTE_APP = "tests.apps.remoteapp:application"
LOCAL_APP = "tests.apps.remoteapp:local_app"
DISCOVER_PATH = "/stead.deployment.v1.Deployment/Discover"
INVOKE_PATH = "/stead.deployment.v1.Deployment/Invoke"
SESSION_PATH = "/stead.deployment.v1.Deployment/Session"


@pytest.fixture
def deployments(tmp_path: Path, effects_dir: Path) -> Iterator[Callable[..., DeploymentProcess]]:
    """`make(version)`: a deployment process of tests/apps/remoteapp.py (not started)."""
    procs: list[DeploymentProcess] = []

    def make(version: str = "v1") -> DeploymentProcess:
        dep = DeploymentProcess(REMOTE_APP, tmp_path, effects_dir, env={"STEAD_TEST_VERSION": version})
        procs.append(dep)
        return dep

    yield make
    kill_all(procs)


def runtime(make_server, *args: str):  # type: ignore[no-untyped-def]
    """A started runtime serving `local_app` in-process, logging at info (retries show)."""
    return make_server(target=LOCAL_APP, extra_args=["--log-level", "info", *args]).start()


def steps_of(effects_dir: Path, tag: str) -> list[str]:
    """The step lines of `tag` (VERSION STEP), without the invocation id."""
    return [" ".join(line.split()[i] for i in (0, 2)) for line in read_lines(effects_dir / "steps")
            if line.split()[1] == tag]


def gate_hits(effects_dir: Path, name: str) -> int:
    return read_lines(effects_dir / "gates").count(f"at {name}")


# ---- 1. the deployment killed between two steps ------------------------------------------


def test_deployment_killed_between_steps(make_server, deployments, effects_dir, pool) -> None:  # type: ignore[no-untyped-def]
    server = runtime(make_server)
    dep = deployments().start()
    register(server, dep)
    answer = pool.submit(server.post, "/RSteps/two_steps", "k1", timeout=90)
    # Step one is durable once the handler is at the gate (its run returned).
    wait_until(lambda: gate_hits(effects_dir, "two-k1"), what="the handler at the gate")
    hits = gate_hits(effects_dir, "two-k1")
    dep.kill()
    wait_until(lambda: "unreachable or broke the stream" in server.log(), what="the runtime's retry")
    dep.restart()
    # The retried attempt replays step one (without running it) and waits at the gate again.
    wait_until(lambda: gate_hits(effects_dir, "two-k1") > hits, what="the retried attempt at the gate")
    (effects_dir / "two-k1").touch()
    resp = answer.result(60)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "v1:one v1:two"
    assert steps_of(effects_dir, "k1") == ["v1 one", "v1 two"]


# ---- 2. a deployment down when called ------------------------------------------------------


def test_deployment_down_when_called(make_server, deployments, effects_dir, pool) -> None:  # type: ignore[no-untyped-def]
    server = runtime(make_server)
    dep = deployments().start()
    register(server, dep)
    dep.kill()
    answer = pool.submit(server.post, "/RSteps/echo", "k2", timeout=90)

    def retries() -> list[float]:
        # "... retrying in 0.100s [inv=... target=... attempt=N]": the delay, before the log fields.
        return [float(line.rsplit("retrying in ", 1)[1].split()[0].rstrip("s"))
                for line in server.log().splitlines()
                if "unreachable or broke the stream" in line and "retrying in " in line]

    wait_until(lambda: len(retries()) >= 3, what="three retries of the call")
    delays = retries()
    assert delays[:3] == sorted(delays[:3]) and delays[2] > delays[0], delays  # backoff grows
    assert not answer.done()
    assert steps_of(effects_dir, "k2") == []
    dep.restart()
    resp = answer.result(60)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "v1:echo"
    assert steps_of(effects_dir, "k2") == ["v1 echo"]


# ---- 3. the runtime killed while a remote handler waits on a call ----------------------------


def test_runtime_killed_while_remote_handler_waits_on_call(make_server, deployments, effects_dir,  # type: ignore[no-untyped-def]
                                                            mode) -> None:
    server = runtime(make_server)
    dep = deployments().start()
    register(server, dep)
    resp = server.post("/RSteps/call_local/send", "k3")
    assert resp.status_code == 202, resp.text
    inv_id = resp.json()["invocationId"]
    # The callee (in the runtime) is at its gate: the caller's CALL entry is durable.
    wait_until(lambda: gate_hits(effects_dir, "local-k3"), what="the callee at its gate")
    if mode == "normal":
        # The caller still waits in the deployment, its stream open (no suspension yet).
        assert read_lines(effects_dir / "unwound") == []
    # (In forced-replay mode the caller suspends at its wait, Stop(SUSPENDED): its coroutine
    # is dropped then, before or after the kill.)
    server.kill()
    # The deployment drops the coroutine of the stream that broke.
    wait_until(lambda: read_lines(effects_dir / "unwound"), what="the deployment dropping the caller's coroutine")
    if mode == "normal":
        # grpclib cancels the RPC of a lost connection ("Connection lost"); a stream that
        # ends otherwise is logged by pysdk ("the stream broke").
        wait_until(lambda: "Connection lost" in dep.log() or "the stream broke" in dep.log(),
                   what="the deployment's log of the lost stream")
    server.restart()
    (effects_dir / "local-k3").touch()
    resp = server.get(f"/restate/invocation/{inv_id}/attach", timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "v1 v1:local"
    assert steps_of(effects_dir, "k3") == ["v1 before", "v1 local", "v1 after"]


# ---- 4. versioning: an invocation stays on the deployment it started on ------------------------


def test_suspended_invocation_stays_on_its_version(make_server, deployments, effects_dir) -> None:  # type: ignore[no-untyped-def]
    server = runtime(make_server, "--suspend-after", "0.2")
    v1 = deployments("v1").start()
    dep1 = register(server, v1)
    resp = server.post("/RSteps/nap/send", {"tag": "old", "ms": 2500})
    assert resp.status_code == 202, resp.text
    old = resp.json()["invocationId"]

    def suspended(disk):  # type: ignore[no-untyped-def]
        inv = disk.invocation(old)
        return inv is not None and inv.status == Status.SUSPENDED and inv

    rec = wait_on_disk(server.data_dir, suspended, what="the old invocation suspended in its sleep")
    assert rec.deployment_id == dep1["id"]
    v2 = deployments("v2").start()
    dep2 = register(server, v2)
    assert dep2["id"] != dep1["id"]
    # A new invocation runs on the deployment registered last.
    resp = server.post("/RSteps/nap", {"tag": "new", "ms": 10})
    assert resp.status_code == 200, resp.text
    assert resp.json() == "v2"
    # The old one resumes on v1, whose code wrote its journal.
    resp = server.get(f"/restate/invocation/{old}/attach", timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "v1"
    assert steps_of(effects_dir, "old") == ["v1 start", "v1 woke"]
    assert steps_of(effects_dir, "new") == ["v2 start", "v2 woke"]


# ---- 5. a silent deployment --------------------------------------------------------------


def test_silent_deployment_is_aborted_and_retried(make_server, deployments, effects_dir, pool) -> None:  # type: ignore[no-untyped-def]
    # The runtime starts before the deployment that sets the timeouts is registered.
    server = runtime(make_server)
    dep = deployments().start()
    register(server, dep)
    answer = pool.submit(server.post, "/RSilent/silent", "q", timeout=90)
    wait_until(lambda: "(inactivity_timeout): aborted" in server.log(), timeout=30,
               what="the watchdog aborting the silent attempt")
    wait_until(lambda: any(" dropped " in line for line in read_lines(effects_dir / "silent")), timeout=30,
               what="the deployment dropping the silent coroutine")
    assert not answer.done()
    (effects_dir / "release-q").touch()
    resp = answer.result(60)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "released"
    lines = read_lines(effects_dir / "silent")
    entered = sum(1 for line in lines if line.endswith(" enter"))
    dropped = sum(1 for line in lines if " dropped " in line)
    assert entered == dropped + 1, lines  # every attempt but the last was dropped


def test_remote_wait_longer_than_inactivity_timeout_suspends(make_server, deployments, effects_dir) -> None:  # type: ignore[no-untyped-def]
    """A remote handler that waits on a durable sleep past its inactivity timeout is
    suspended (as in-process), not aborted by the watchdog."""
    server = runtime(make_server)
    dep = deployments().start()
    register(server, dep)
    resp = server.post("/RSilent/slow_nap", 2500, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "v1:woke"
    assert "aborted" not in server.log(), server.log()


# ---- 6. a malformed message from a deployment ----------------------------------------------


class FakeDeployment:
    """A deployment in the test process (grpclib, its own thread and loop): discovery
    answers one object `Fake/run`; every attempt answers Start with one given Flush, then
    records what the runtime sends until the stream ends. `version` 1: an Invoke stream
    per attempt; 2: attempts on a Session (the runtime's choice when it is offered)."""

    def __init__(self, flush: Callable[[pb.Start], pb.Flush], version: int = 1) -> None:
        self.flush = flush
        self.version = version
        self.starts: list[pb.Start] = []
        self.received: list[str] = []
        self.sessions = 0  # Session calls opened
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: Server | None = None
        self._transports: list[Any] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __mapping__(self) -> dict[str, Handler]:
        return {
            DISCOVER_PATH: Handler(self._discover, Cardinality.UNARY_UNARY, pb.DiscoverRequest, pb.DiscoverResponse),
            INVOKE_PATH: Handler(self._invoke, Cardinality.STREAM_STREAM, pb.RuntimeMessage, pb.DeploymentMessage),
            SESSION_PATH: Handler(self._session, Cardinality.STREAM_STREAM, bytes, bytes),
        }

    async def _discover(self, stream: Any) -> None:
        await stream.recv_message()
        retry = pb.RetryPolicy(initial_interval_ms=300, max_interval_ms=300, max_attempts=3, on_max_attempts="KILL")
        await stream.send_message(pb.DiscoverResponse(
            min_protocol_version=1, max_protocol_version=self.version, sdk="fake 0",
            services=[pb.ServiceInfo(name="Fake", type="object",
                                     options=pb.Options(retry_policy=retry, journal_retention_ms=600_000),
                                     handlers=[pb.HandlerInfo(name="run", kind="exclusive")])]))

    async def _invoke(self, stream: Any) -> None:
        first = await stream.recv_message()
        self.starts.append(first.start)
        await stream.send_message(pb.DeploymentMessage(flush=self.flush(first.start)))
        while True:
            msg = await stream.recv_message()
            if msg is None:
                return
            self.received.append(betterproto2.which_one_of(msg, "message")[0])

    async def _session(self, stream: Any) -> None:
        assert self.version >= 2, "the runtime opened a Session on a version-1 deployment"
        self.sessions += 1
        while (data := await stream.recv_message()) is not None:
            msg = pb.RuntimeMessage.parse(data)
            if msg.start is None:
                self.received.append(betterproto2.which_one_of(msg, "message")[0])
                continue
            self.starts.append(msg.start)
            await stream.send_message(self.reply(msg.stream_id, msg.start))

    def reply(self, stream_id: int, start: pb.Start) -> bytes:
        """The first answer to a Start on a Session."""
        return bytes(pb.DeploymentMessage(stream_id=stream_id, flush=self.flush(start)))

    def start(self) -> FakeDeployment:
        self._thread.start()

        async def up() -> int:
            self._server = server = Server([self], codec=StrictCodec())
            factory = server._protocol_factory

            def tracked():  # type: ignore[no-untyped-def]
                # grpclib's close leaves accepted connections open: remember them to close.
                protocol = factory()
                made = protocol.connection_made
                protocol.connection_made = lambda t: (self._transports.append(t), made(t))[1]
                return protocol

            server._protocol_factory = tracked  # type: ignore[method-assign]
            await self._server.start("127.0.0.1", 0)
            return self._server._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        self.port = asyncio.run_coroutine_threadsafe(up(), self._loop).result(10)
        return self

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        async def down() -> None:
            assert self._server is not None
            self._server.close()
            for transport in self._transports:
                transport.close()
            await self._server.wait_closed()
            await asyncio.sleep(0)  # the transports' connection_lost

        try:
            asyncio.run_coroutine_threadsafe(down(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def _bad_set_state(start: pb.Start) -> pb.Flush:
    # A valid step, then a SET_STATE without its value: nothing of the flush may be written.
    return pb.Flush(flush_id=1, entries=[pb.Entry(kind=RUN, name="step", value=b'"ok"'),
                                         pb.Entry(kind=SET_STATE, name="s")])


def _call(start: pb.Start, index: int, callee_index: int, callee_id: str | None = None) -> pb.Flush:
    """A step at 0, a CALL of LocalGate/wait at 1; its callee claims entry `callee_index`."""
    callee = callee_id or child_invocation_id(start.invocation_id, index)
    return pb.Flush(flush_id=1, entries=[pb.Entry(kind=RUN, name="step", value=b'"ok"'),
                                         pb.Entry(kind=CALL, name="LocalGate/wait", value=callee.encode())],
                    children=[pb.Child(index=callee_index, invocation_id=callee, service="LocalGate",
                                       handler="wait", input=b'"bad"')])


def _unknown_kind(start: pb.Start) -> pb.Flush:
    return pb.Flush(flush_id=1, entries=[pb.Entry(kind=RUN, name="step", value=b'"ok"'),
                                         pb.Entry(kind=999, name="what")])


MALFORMED = {
    "set-state-without-value": (_bad_set_state, "SET_STATE without name or value"),
    # the callee of a CALL at 1 claims entry 7, which is not in the journal
    "callee-out-of-range": (lambda s: _call(s, 1, 7), "callee of entry 7"),
    # ... claims entry 0, the step
    "callee-of-a-step": (lambda s: _call(s, 1, 0), "callee of entry 0"),
    # ... has an id that is not the one of its entry (here: the caller's own)
    "callee-with-a-foreign-id": (lambda s: _call(s, 1, 1, s.invocation_id), "callee of entry 1"),
    # a CALL without its callee: the caller would wait forever
    "call-without-callee": (lambda s: pb.Flush(flush_id=1, entries=_call(s, 1, 1).entries),
                            "without its callee"),
    "unknown-kind": (_unknown_kind, "kind 999"),
}


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_flush_fails_the_attempt(make_server, effects_dir, case, version) -> None:  # type: ignore[no-untyped-def]
    flush, error = MALFORMED[case]
    server = runtime(make_server)
    fake = FakeDeployment(flush, version).start()
    try:
        register(server, fake)  # type: ignore[arg-type]
        resp = server.post("/Fake/k6/run", "x", timeout=20)
        # Never a success built on garbage: the attempts fail, the retry policy ends it.
        assert resp.status_code == 500, resp.text
        assert "failed after 3 attempts" in resp.json()["message"], resp.text
        assert error in resp.json()["message"], resp.text
        log = server.log()
        assert "ERROR stead.remote" in log and error in log, log
        assert len(fake.starts) == 3
        inv_id = fake.starts[0].invocation_id
        # Every retry started from an empty journal and no state: the flush was never committed,
        assert all(list(s.journal) == [] and list(s.state) == [] for s in fake.starts), fake.starts
        # never acknowledged (on a Session, each attempt was stopped instead),
        assert "ack" not in fake.received, fake.received
        if version == 2:
            wait_until(lambda: fake.received.count("stop") == 3, what=f"three Stops, not {fake.received}")
        assert set(fake.received) <= {"stop"}, fake.received
        # and nothing of it is on disk; no callee was started.
        journal = read_disk(server.data_dir, lambda d: d.journal(inv_id))
        assert all(e.kind not in (EntryKind.RUN, EntryKind.SET_STATE, EntryKind.CALL) for e in journal), journal
        assert read_disk(server.data_dir, lambda d: d.state("Fake", "k6")) == {}
        invocations = read_disk(server.data_dir, lambda d: d.invocations())
        assert [i.target for i in invocations.values()] == ["Fake/k6/run"], invocations
        assert not (effects_dir / "gates").exists()
    finally:
        fake.close()


# ---- 7. an oversized message from a deployment ----------------------------------------------


def test_an_oversized_message_fails_the_attempt_with_a_clear_error(make_server, deployments,
                                                                     effects_dir) -> None:  # type: ignore[no-untyped-def]
    server = runtime(make_server, "--max-deployment-message", "4KiB")
    dep = deployments().start()
    register(server, dep)
    assert server.post("/RSteps/blob", 100).json() == "x" * 100  # under the limit: as usual
    # Its End is over the limit on every attempt: each fails with the error logged, and is
    # retried under RSteps' policy (no attempt limit), so the call does not return.
    with pytest.raises(httpx.ReadTimeout):
        server.post("/RSteps/blob", 20_000, timeout=3)
    errors = wait_until(lambda: [line for line in server.log().splitlines()
                                 if " ERROR " in line and "over the limit of 4096" in line][1:],
                        what="two attempts refused for their size")
    # The End: 20,000 bytes of output, its framing and the Session's stream id.
    assert "sent a message of 20012 bytes" in errors[0], errors
    assert "retrying in" in server.log()
    # Each retry replayed the journaled step instead of running it again, and nothing of the
    # oversized End was journaled: the step ran once.
    assert steps_of(effects_dir, "20000") == ["v1 blob"]
