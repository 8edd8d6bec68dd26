"""Remote deployments through the admin API and the CLI, with real processes on loopback:
registration and its refusals, the registry's shapes, removal (refused while an
invocation runs there unless forced), the registry across restarts, `stead deployments`
and `stead keys`, and request identity between a runtime and its deployments.

These are placement tests: each builds its own `stead serve` and `stead deployment serve`
processes (no normal/replay parametrization; the flow tests cover that)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runtime.identity import generate_key, write_public_pem
from tests.conftest import (
    EMPTY_APP, FLOW_APP, ROOT, DeploymentProcess, SteadServer, free_port, kill_all, read_lines, register,
    wait_for_lines, wait_until)
from tests.disk import DiskReader, Status, wait_on_disk


@pytest.fixture
def procs(tmp_path: Path, effects_dir: Path) -> Iterator[Any]:
    """`procs.server(...)` / `procs.deployment(...)`: processes killed at teardown."""
    started: list[SteadServer | DeploymentProcess] = []

    class Procs:
        @staticmethod
        def server(target: str = EMPTY_APP, *, name: str = "data", **kwargs: Any) -> SteadServer:
            server = SteadServer(tmp_path / name, effects_dir, target=target, **kwargs)
            started.append(server)
            return server

        @staticmethod
        def deployment(target: str = FLOW_APP, **kwargs: Any) -> DeploymentProcess:
            dep = DeploymentProcess(target, tmp_path, effects_dir, **kwargs)
            started.append(dep)
            return dep

    yield Procs
    kill_all(started)


def post_deployment(server: SteadServer, body: object) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return server.admin("POST", "/deployments", raw)


def listed(server: SteadServer) -> list[dict[str, Any]]:
    resp = server.admin("GET", "/deployments")
    assert resp.status_code == 200, resp.text
    # The registered deployments: the in-process app's own (listed first when it serves
    # anything) is not registered (tests/runtime/test_admin_services_e2e.py covers it).
    return [d for d in resp.json()["deployments"] if d["uri"] != "stead://in-process"]


def assert_refused(server: SteadServer, body: object, *words: str) -> dict[str, Any]:
    """A 400 with a JSON body whose message has each of `words`; nothing registered."""
    resp = post_deployment(server, body)
    assert resp.status_code == 400, resp.text
    doc = resp.json()
    assert doc["code"] == 400
    for word in words:
        assert word in doc["message"], doc
    assert listed(server) == []
    return doc


def expected_services(target: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Restate's shape of an app's services: name -> (ty, {handler: ty}), from its definition."""
    module, _, attr = target.partition(":")
    app = getattr(__import__(module, fromlist=[attr]), attr)
    types = {"service": "Service", "object": "VirtualObject", "workflow": "Workflow"}
    kinds = {"service": None, "exclusive": "Exclusive", "shared": "Shared", "workflow": "Workflow"}
    return {name: (types[svc.service_type], {h: kinds[spec.kind] for h, spec in svc.handlers.items()})
            for name, svc in app.services.items()}


def shape(services: list[dict[str, Any]]) -> dict[str, tuple[str, dict[str, Any]]]:
    # A Service's handlers have no kind: None, or left out as Restate's full ServiceMetadata does.
    return {s["name"]: (s["ty"], {h["name"]: h.get("ty") for h in s["handlers"]}) for s in services}


# ---------------------------------------------------------------- 1. refusals


def test_registration_refusals_are_400s_that_register_nothing(procs) -> None:
    server = procs.server(FLOW_APP).start()
    twin = procs.deployment(FLOW_APP).start()

    nobody = f"http://127.0.0.1:{free_port()}"
    assert_refused(server, {"uri": nobody}, "does not answer", nobody)
    # An HTTP/1 server (the runtime's own ingress, and its admin API) is not gRPC.
    assert_refused(server, {"uri": server.url}, "not a Stead deployment", server.url)
    assert_refused(server, {"uri": server.admin_url}, "not a Stead deployment")
    # A deployment of the app the runtime serves in-process: its services are taken.
    assert_refused(server, {"uri": twin.uri}, "served in-process", twin.uri)

    for body in [b"{not json", b"", b"[]", b'"http://127.0.0.1:1"', {}, {"url": twin.uri}, {"uri": ""},
                 {"uri": 5}, {"uri": None}]:
        assert_refused(server, body, "expected a JSON body", '"uri"')
    for uri in ["127.0.0.1", "nope", "https://127.0.0.1:1", "ftp://127.0.0.1:1", "http://:9080",
                "http://127.0.0.1:notaport", "http://127.0.0.1:99999", "http://127.0.0.1:0",
                f"{twin.uri}/a/path", f"{twin.uri}?q=1", f"http://user:pw@127.0.0.1:{twin.port}"]:
        assert_refused(server, {"uri": uri}, "http://host:port", repr(uri))

    # The in-process app still serves; nothing was routed anywhere.
    assert server.post("/Counter/a/add", 1).json() == 1
    assert twin.proc is not None and twin.proc.poll() is None


def test_a_deployment_that_offers_nothing_is_refused(procs) -> None:
    server = procs.server().start()
    empty = procs.deployment(EMPTY_APP).start()
    assert_refused(server, {"uri": empty.uri}, "offers no services")


# ---------------------------------------------------------------- 2. the registry


def test_list_describe_remove_and_the_registry_across_restarts(procs, effects_dir) -> None:
    server = procs.server().start()
    dep = procs.deployment(FLOW_APP).start()
    assert listed(server) == []
    assert server.post("/Counter/a/add", 1).status_code == 404  # not served before registration

    created = register(server, dep)
    dep_id = created["id"]
    assert dep_id.startswith("dp_")
    expected = expected_services(FLOW_APP)
    assert shape(created["services"]) == expected
    # Restate's kinds, spelled out for a few (not only derived from the definition).
    assert expected["Counter"] == ("VirtualObject", {"add": "Exclusive", "total": "Shared", "fail": "Exclusive"})
    assert expected["Signup"] == ("Workflow", {"run": "Workflow", "click": "Shared", "status": "Shared",
                                               "peek": "Shared"})
    assert expected["Timers"][0] == "Service" and expected["Timers"][1]["stamp"] is None

    def check_registered() -> None:
        [item] = listed(server)
        assert item["id"] == dep_id and item["uri"] == dep.uri
        assert shape(item["services"]) == expected
        assert item["min_protocol_version"] <= item["max_protocol_version"]
        described = server.admin("GET", f"/deployments/{dep_id}")
        assert described.status_code == 200, described.text
        # Restate's detailed shape: the same deployment, its services in full (schemas, options).
        detail = described.json()
        assert {k: v for k, v in detail.items() if k != "services"} == {
            k: v for k, v in item.items() if k != "services"}
        assert shape(detail["services"]) == expected
        assert all(s["deployment_id"] == dep_id and "input_description" in s["handlers"][0]
                   for s in detail["services"])

    check_registered()
    assert server.post("/Counter/a/add", 2).json() == 2
    assert server.post("/Timers/stamp", "before").status_code == 200

    for unknown in ["dp_0000000000000000", "nope"]:
        for method in ["GET", "DELETE"]:
            resp = server.admin(method, f"/deployments/{unknown}")
            assert resp.status_code == 404, resp.text
            assert unknown in resp.json()["message"]
    check_registered()

    # The registration is in the data directory: a restarted runtime routes to it.
    assert server.stop() == -signal.SIGTERM  # graceful: it re-raises the signal when done
    server.restart()
    check_registered()
    assert server.post("/Counter/a/add", 3).json() == 5  # the object's state survived too
    assert server.post("/Timers/stamp", "after").status_code == 200
    assert [line.split()[0] for line in read_lines(effects_dir / "stamps")] == ["before", "after"]

    resp = server.admin("DELETE", f"/deployments/{dep_id}")
    assert resp.status_code == 202, resp.text
    assert listed(server) == []
    assert server.admin("GET", f"/deployments/{dep_id}").status_code == 404
    for path in ["/Counter/a/add", "/Timers/stamp"]:
        resp = server.post(path, 1)
        assert resp.status_code == 404, resp.text
    assert server.admin("DELETE", f"/deployments/{dep_id}").status_code == 404

    # The removal is durable too.
    server.kill()
    server.restart()
    assert listed(server) == []
    assert server.post("/Counter/a/add", 1).status_code == 404


def test_the_newest_registration_of_a_service_wins(procs, effects_dir) -> None:
    server = procs.server().start()
    old, new = procs.deployment(FLOW_APP).start(), procs.deployment(FLOW_APP).start()
    first, second = register(server, old)["id"], register(server, new)["id"]
    assert {d["id"] for d in listed(server)} == {first, second}
    assert server.post("/Counter/a/add", 1).json() == 1
    old.kill()  # new invocations go to the newest deployment only
    assert server.post("/Counter/a/add", 1).json() == 2
    assert server.admin("DELETE", f"/deployments/{first}").status_code == 202
    assert [d["id"] for d in listed(server)] == [second]
    assert server.post("/Counter/a/add", 1).json() == 3


# ---------------------------------------------------------------- 3. removal while busy


def test_removal_is_refused_while_an_invocation_runs_there_unless_forced(procs, effects_dir) -> None:
    server = procs.server().start()
    dep = procs.deployment(FLOW_APP).start()
    dep_id = register(server, dep)["id"]
    sent = server.post("/Timers/gated_stamp/send", "held")
    assert sent.status_code == 202, sent.text
    wait_for_lines(effects_dir / "gates", 1)  # the handler waits at its gate, in the deployment

    resp = server.admin("DELETE", f"/deployments/{dep_id}")
    assert resp.status_code == 409, resp.text
    assert resp.json()["code"] == 409 and "in flight" in resp.json()["message"]
    for false in ["false", "0", "no"]:
        assert server.admin("DELETE", f"/deployments/{dep_id}?force={false}").status_code == 409
    assert [d["id"] for d in listed(server)] == [dep_id]

    resp = server.admin("DELETE", f"/deployments/{dep_id}?force=true")
    assert resp.status_code == 202, resp.text
    assert listed(server) == []
    assert server.post("/Timers/stamp", "x").status_code == 404
    (effects_dir / "stamp-held").touch()  # the stranded attempt may go on; the runtime stays up
    assert server.get("/restate/health").status_code == 200


def test_removal_is_refused_while_an_invocation_is_suspended_there(procs) -> None:
    """Pinned but not in memory: suspended on a long sleep (its coroutine dropped)."""
    server = procs.server(extra_args=["--suspend-after", "100ms"]).start()
    dep = procs.deployment(FLOW_APP).start()
    dep_id = register(server, dep)["id"]
    inv = server.post("/Timers/nap/send", 60_000).json()["invocationId"]

    def suspended(disk: DiskReader) -> bool:
        record = disk.invocation(inv)
        return record is not None and record.status == Status.SUSPENDED

    wait_on_disk(server.data_dir, suspended, what="the nap suspended")
    resp = server.admin("DELETE", f"/deployments/{dep_id}")
    assert resp.status_code == 409, resp.text
    server.kill()  # and after a restart, from what is on disk
    server.restart()
    assert server.admin("DELETE", f"/deployments/{dep_id}").status_code == 409
    assert server.admin("DELETE", f"/deployments/{dep_id}?force=true").status_code == 202
    assert listed(server) == []


def test_removal_after_the_invocations_end_needs_no_force(procs, effects_dir) -> None:
    server = procs.server().start()
    dep = procs.deployment(FLOW_APP).start()
    dep_id = register(server, dep)["id"]
    inv = server.post("/Timers/gated_stamp/send", "done").json()["invocationId"]
    wait_for_lines(effects_dir / "gates", 1)
    assert server.admin("DELETE", f"/deployments/{dep_id}").status_code == 409
    (effects_dir / "stamp-done").touch()
    out = server.get(f"/restate/invocation/{inv}/attach")
    assert out.status_code == 200, out.text
    assert server.admin("DELETE", f"/deployments/{dep_id}").status_code == 202


# ---------------------------------------------------------------- 4. the CLI


def stead(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_cli_register_list_describe_remove(procs, effects_dir) -> None:
    server = procs.server().start()
    dep = procs.deployment(FLOW_APP).start()
    admin = ["deployments", "--admin-url", server.admin_url]

    out = stead(*admin, "list")
    assert out.returncode == 0, out.stderr
    assert "no deployments registered" in out.stdout

    out = stead(*admin, "register", dep.uri)
    assert out.returncode == 0, out.stderr
    [dep_id] = [d["id"] for d in listed(server)]
    assert f"registered {dep_id}" in out.stdout
    assert "  Counter (VirtualObject)" in out.stdout
    assert "    total [Shared]" in out.stdout
    assert "  Timers (Service)" in out.stdout and "    stamp\n" in out.stdout

    out = stead(*admin, "list")
    assert out.returncode == 0, out.stderr
    assert dep_id in out.stdout and dep.uri in out.stdout and "Counter" in out.stdout

    out = stead(*admin, "describe", dep_id)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{dep_id}  {dep.uri}\n")
    assert "  Signup (Workflow)" in out.stdout and "    run [Workflow]" in out.stdout

    # Errors: `stead: <the admin API's message>` on stderr, exit 1.
    nobody = f"http://127.0.0.1:{free_port()}"
    for args, words in [
        (("register", nobody), ["does not answer", nobody]),
        (("register", "ftp://x:1"), ["http://host:port"]),
        (("describe", "dp_nope"), ["dp_nope", "not found"]),
        (("remove", "dp_nope"), ["dp_nope", "not found"]),
    ]:
        out = stead(*admin, *args)
        assert out.returncode == 1, (args, out)
        assert out.stderr.startswith("stead: "), (args, out.stderr)
        assert all(w in out.stderr for w in words), (args, out.stderr)
        assert "Traceback" not in out.stderr
    out = stead("deployments", "--admin-url", nobody, "list")
    assert out.returncode == 1 and out.stderr.startswith(f"stead: the admin API at {nobody} does not answer")

    # Busy: refused without --force, removed with it.
    server.post("/Timers/gated_stamp/send", "cli")
    wait_for_lines(effects_dir / "gates", 1)
    out = stead(*admin, "remove", dep_id)
    assert out.returncode == 1 and out.stderr.startswith("stead: ") and "force" in out.stderr
    out = stead(*admin, "remove", "--force", dep_id)
    assert out.returncode == 0, out.stderr
    assert f"removed {dep_id}" in out.stdout
    assert listed(server) == []


def test_cli_keys_generate(tmp_path: Path) -> None:
    key, pub = tmp_path / "key.pem", tmp_path / "pub.pem"
    out = stead("keys", "generate", str(key), "--public", str(pub))
    assert out.returncode == 0, out.stderr
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    [public] = [w for w in out.stdout.split() if w.startswith("publickeyv1_")]
    from pysdk._identity import parse_public_key, public_key_string
    from runtime.identity import RequestSigner
    assert RequestSigner.from_pem_file(str(key)).public_key_string() == public
    assert public_key_string(parse_public_key(str(pub))) == public

    before = key.read_bytes()
    out = stead("keys", "generate", str(key))
    assert out.returncode == 1 and out.stderr.startswith("stead: ") and "already exists" in out.stderr
    assert key.read_bytes() == before

    other = tmp_path / "other.pem"
    out = stead("keys", "generate", str(other), "--public", str(pub))  # the public file exists
    assert out.returncode == 1 and "already exists" in out.stderr
    assert pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    assert public_key_string(parse_public_key(str(pub))) == public

    out = stead("keys", "generate", str(tmp_path / "missing" / "key.pem"))
    assert out.returncode == 1 and out.stderr.startswith("stead: ") and "Traceback" not in out.stderr


# ---------------------------------------------------------------- 5. request identity


@pytest.fixture
def keys(tmp_path: Path) -> Callable[[str], tuple[Path, str, Path]]:
    """`keys(name)`: (private PEM, publickeyv1 string, public PEM) of a new key."""

    def make(name: str) -> tuple[Path, str, Path]:
        private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
        string = generate_key(str(private))
        assert write_public_pem(str(private), str(public)) == string
        return private, string, public

    return make


@pytest.mark.parametrize("form", ["publickeyv1", "pem"])
def test_signed_runtime_and_verifying_deployment(procs, keys, effects_dir, form) -> None:
    private, string, public = keys("runtime")
    server = procs.server(extra_args=["--signing-key", str(private)]).start()
    dep = procs.deployment(FLOW_APP, extra_args=[
        "--identity-key", string if form == "publickeyv1" else str(public)]).start()
    register(server, dep)
    assert server.post("/Counter/a/add", 2).json() == 2
    assert server.post("/Timers/stamp", "signed").status_code == 200
    assert [line.split()[0] for line in read_lines(effects_dir / "stamps")] == ["signed"]
    # A handler calling another one (a second Invoke stream, signed too).
    assert server.post("/Caller/k/call_add", 3).status_code == 200
    assert "refused" not in dep.log()


def test_a_verifying_deployment_refuses_an_unsigned_or_wrongly_signed_runtime(procs, keys) -> None:
    right, string, _ = keys("right")
    wrong, _, _ = keys("wrong")
    dep = procs.deployment(FLOW_APP, extra_args=["--identity-key", string]).start()
    unsigned = procs.server(name="unsigned").start()
    assert_refused(unsigned, {"uri": dep.uri}, "UNAUTHENTICATED", "not signed")
    other = procs.server(name="other", extra_args=["--signing-key", str(wrong)]).start()
    assert_refused(other, {"uri": dep.uri}, "UNAUTHENTICATED", "bad signature")
    assert unsigned.post("/Counter/a/add", 1).status_code == 404
    # The same deployment accepts the runtime with the right key.
    signed = procs.server(name="signed", extra_args=["--signing-key", str(right)]).start()
    register(signed, dep)
    assert signed.post("/Counter/a/add", 1).json() == 1


def test_an_unsigned_invoke_runs_nothing_and_is_retried(procs, keys, effects_dir) -> None:
    private, string, _ = keys("runtime")
    signing = ["--signing-key", str(private)]
    server = procs.server(extra_args=list(signing)).start()
    dep = procs.deployment(FLOW_APP, extra_args=["--identity-key", string]).start()
    register(server, dep)

    # The same data directory (the registration), without the key: its requests are unsigned.
    # (Attempt failures are logged at info.)
    assert server.stop() == -signal.SIGTERM  # graceful: it re-raises the signal when done
    server.extra_args = ["--log-level", "info"]
    server.restart()
    with pytest.raises(httpx.TimeoutException):
        server.post("/Timers/stamp", "unsigned", headers={"idempotency-key": "one"}, timeout=3.0)
    # Refused by the deployment before anything ran, more than once (retried), and the
    # runtime says why.
    wait_until(lambda: dep.log().count("refused /stead.deployment.v1.Deployment/Session") >= 2,
               what="the deployment refusing the retried attempt's Session")
    assert "the request is not signed" in dep.log()
    wait_until(lambda: "UNAUTHENTICATED" in server.log(), what="the refusal in the runtime's log")
    assert "retrying" in server.log()
    assert read_lines(effects_dir / "stamps") == []  # the handler never ran
    assert read_lines(effects_dir / "gates") == []

    # It was not failed but retried: with the key back, the same invocation runs, once.
    assert server.stop() == -signal.SIGTERM
    server.extra_args = list(signing)
    server.restart()
    resp = server.post("/Timers/stamp", "unsigned", headers={"idempotency-key": "one"}, timeout=60.0)
    assert resp.status_code == 200, resp.text
    assert [line.split()[0] for line in read_lines(effects_dir / "stamps")] == ["unsigned"]
