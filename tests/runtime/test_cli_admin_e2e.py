"""The `stead` commands over the admin API (services, invocations, state, sql), run as
an operator runs them (a process of their own) against a real server: their --json is
the API's answer, their tables show the ids, what they change is what the handlers see
next, and their errors (nothing answering, an API error, a refused token, a state
edited by somebody else meanwhile) exit 1 with a message, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import FLOW_APP, RemoteSteadServer, SteadServer, free_port, read_lines, wait_for_lines, wait_until
from tests.disk import lp, read_disk
from tests.runtime.test_cli import stead


@pytest.fixture
def mode() -> str:
    """One mode: these test the command line, not the runtime (the flow tests cover replay)."""
    return "normal"


@pytest.fixture
def server(make_server) -> SteadServer:  # type: ignore[no-untyped-def]
    started: SteadServer = make_server(target=FLOW_APP).start()
    return started


def run(server: SteadServer, *args: str, env: dict[str, str] | None = None) -> Any:
    """`stead ARGS --admin-url URL`, which must succeed; its stdout."""
    out = stead(*args, "--admin-url", server.admin_url, env=env)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    assert out.stderr == "", out.stderr
    return out.stdout


def run_json(server: SteadServer, *args: str) -> Any:
    return json.loads(run(server, *args, "--json"))


def fails(server: SteadServer, *args: str, code: int = 1, env: dict[str, str] | None = None) -> str:
    """`stead ARGS --admin-url URL`, which must fail with `code`; its stderr."""
    out = stead(*args, "--admin-url", server.admin_url, env=env)
    assert out.returncode == code, (args, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return out.stderr


def api(server: SteadServer, path: str) -> Any:
    resp = server.admin("GET", path)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_completed(server: SteadServer, inv_id: str) -> dict[str, Any]:
    return wait_until(lambda: (d := api(server, f"/invocations/{inv_id}"))["status"] == "completed" and d,
                      20, f"{inv_id} completed")


# ---------------------------------------------------------------- services


@pytest.mark.parametrize("placement", ["local", "remote"])
def test_services_list_and_describe(make_server, placement: str) -> None:  # type: ignore[no-untyped-def]
    """In-process, and in a deployment (`stead deployment serve`, registered)."""
    server: SteadServer = make_server(target=FLOW_APP, placement=placement).start()
    assert run_json(server, "services", "list") == api(server, "/services")
    if isinstance(server, RemoteSteadServer):  # the services are the registered deployment's
        [where] = [d["id"] for d in api(server, "/deployments")["deployments"] if d["uri"] == server.deployment.uri]
    else:  # the in-process app's (null, or the id the API gives the in-process deployment)
        where = api(server, "/services/Counter")["deployment_id"] or "in-process"
    out = run(server, "services", "list")
    for name, ty in [("Counter", "VirtualObject"), ("Timers", "Service"), ("Signup", "Workflow")]:
        [line] = [line for line in out.splitlines() if line.split()[:1] == [name]]
        assert ty in line and where in line, line

    assert run_json(server, "services", "describe", "Counter") == api(server, "/services/Counter")
    out = run(server, "services", "describe", "Counter")
    assert "VirtualObject" in out
    lines = [line.strip() for line in out.splitlines()]
    handlers = {line.split()[0]: line for line in lines[lines.index("Handlers") + 1:]
                if line and not line.startswith(("HANDLER", "─"))}
    assert set(handlers) == {"add", "total", "fail"}
    assert "Shared" in handlers["total"] and "Exclusive" in handlers["add"]

    err = fails(server, "services", "describe", "Nope")
    assert err.startswith("stead: ") and "Nope" in err and "(HTTP 404)" in err


# ---------------------------------------------------------------- invocations


def test_invocations_list_and_describe(server: SteadServer) -> None:
    assert server.post("/Counter/c1/add", 5).json() == 5
    assert server.post("/Caller/k/call_add", 3).json() == 3
    assert server.post("/Counter/c2/fail", "boom").status_code >= 400

    listed = run_json(server, "invocations", "list", "--status", "completed")
    assert listed == api(server, "/invocations?status=completed")
    ids = {inv["target"]: inv["id"] for inv in listed["invocations"]}
    assert set(ids) == {"Counter/c1/add", "Caller/k/call_add", "Counter/k/add", "Counter/c2/fail"}
    out = run(server, "invocations", "list")
    for target, inv_id in ids.items():
        [line] = [line for line in out.splitlines() if inv_id in line]
        assert target in line and "completed" in line, line
    assert "4 invocations" in out
    assert "[422] boom" in [line for line in out.splitlines() if ids["Counter/c2/fail"] in line][0]

    # Filters reach the API.
    only = run_json(server, "invocations", "list", "--service", "Counter", "--key", "c1")["invocations"]
    assert [inv["id"] for inv in only] == [ids["Counter/c1/add"]]
    assert {i["target"] for i in run_json(server, "invocations", "list", "--handler", "add")["invocations"]} == {
        "Counter/c1/add", "Counter/k/add"}
    assert run_json(server, "invocations", "list", "--status", "running", "--status", "suspended") == {
        "invocations": [], "next_cursor": None}
    # Pages: --limit, then --cursor from what the first page printed.
    out = run(server, "invocations", "list", "--limit", "3")
    assert "3 invocations" in out
    [cursor] = [line.removeprefix("more: --cursor ") for line in out.splitlines() if line.startswith("more: ")]
    rest = run_json(server, "invocations", "list", "--limit", "3", "--cursor", cursor)["invocations"]
    first = run_json(server, "invocations", "list", "--limit", "3")["invocations"]
    assert sorted(i["id"] for i in first + rest) == sorted(ids.values())

    # One invocation, its journal as a table.
    caller = ids["Caller/k/call_add"]
    assert run_json(server, "invocations", "describe", caller) == api(server, f"/invocations/{caller}")
    out = run(server, "invocations", "describe", caller)
    assert caller in out and "Caller/k/call_add" in out and "Journal (1 entry)" in out
    [call] = [line for line in out.splitlines() if line.split()[:2] == ["0", "Call"]]
    assert "Counter/k/add" in call and ids["Counter/k/add"] in call, call

    err = fails(server, "invocations", "describe", "inv_nope")
    assert err.startswith("stead: ") and "inv_nope" in err and "(HTTP 404)" in err
    err = fails(server, "invocations", "list", "--created-after", "last tuesday")
    assert "created_after" in err and "(HTTP 400)" in err
    assert "'nope' is not one of" in fails(server, "invocations", "list", "--status", "nope", code=2)


def test_cancel_kill_purge(server: SteadServer, effects_dir: Path) -> None:
    cancelled = server.post("/Jobs/long/send", "c").json()["invocationId"]
    killed = server.post("/Jobs/long/send", "k").json()["invocationId"]
    wait_for_lines(effects_dir / "jobs", 2)  # both reserved, both sleeping

    assert run(server, "invocations", "cancel", cancelled) == f"{cancelled}: cancelling\n"
    assert run_json(server, "invocations", "kill", killed) == {"invocationId": killed, "status": "killed"}
    assert wait_completed(server, cancelled)["completion_result"] == "failure"
    assert wait_completed(server, killed)["completion_result"] == "failure"
    lines = read_lines(effects_dir / "jobs")
    assert "release c" in lines and "release k" not in lines  # cancel compensates, kill does not

    for action in ("cancel", "kill"):
        err = fails(server, "invocations", action, killed)
        assert err.startswith("stead: ") and "(HTTP 409)" in err and "completed" in err
    running = server.post("/Jobs/long/send", "r").json()["invocationId"]
    wait_for_lines(effects_dir / "jobs", 3)
    err = fails(server, "invocations", "purge", running)
    assert "(HTTP 409)" in err and "not completed" in err
    # Pause and resume: paused, it shows as such and runs nothing until resumed.
    assert run(server, "invocations", "pause", running) == f"{running}: paused\n"
    assert run_json(server, "invocations", "describe", running)["status"] == "paused"
    assert running in run(server, "invocations", "list", "--status", "paused")
    assert run_json(server, "invocations", "resume", running) == {"invocationId": running, "status": "running"}
    assert run_json(server, "invocations", "describe", running)["status"] != "paused"
    run(server, "invocations", "kill", running)

    assert run(server, "invocations", "purge", killed) == f"{killed}: purged\n"
    assert "(HTTP 404)" in fails(server, "invocations", "describe", killed)
    for action in ("cancel", "kill", "purge"):
        assert "(HTTP 404)" in fails(server, "invocations", action, "inv_nope")
    assert killed not in run(server, "invocations", "list") and cancelled in run(server, "invocations", "list")


# ---------------------------------------------------------------- state


def test_state_get_set_clear(server: SteadServer) -> None:
    assert server.post("/Counter/c1/add", 5).json() == 5
    doc = run_json(server, "state", "get", "Counter", "c1")
    assert doc == api(server, "/services/Counter/state/c1") and doc["state"] == {"total": 5}
    out = run(server, "state", "get", "Counter", "c1")
    assert f"Counter/c1 (version {doc['version']})" in out
    assert [line.split() for line in out.splitlines() if line.startswith("total")] == [["total", "5"]]

    # What `set` writes is what the handler reads next.
    assert run(server, "state", "set", "Counter", "c1", "total", "41") == "set total of Counter/c1\n"
    assert server.post("/Counter/c1/add", 1).json() == 42
    answer = run_json(server, "state", "set", "Counter", "c1", "note", '{"tags": ["a", "b"], "n": null}')
    assert answer["version"] == api(server, "/services/Counter/state/c1")["version"]
    assert api(server, "/services/Counter/state/c1")["state"] == {"total": 42, "note": {"tags": ["a", "b"], "n": None}}
    run(server, "state", "set", "Counter", "c1", "text", '"hello"')
    assert api(server, "/services/Counter/state/c1")["state"]["text"] == "hello"

    assert run(server, "state", "clear", "Counter", "c1", "note") == "cleared note of Counter/c1\n"
    assert api(server, "/services/Counter/state/c1")["state"] == {"total": 42, "text": "hello"}
    assert run(server, "state", "clear", "Counter", "c1") == "cleared the state of Counter/c1\n"
    assert api(server, "/services/Counter/state/c1")["state"] == {}
    assert server.post("/Counter/c1/add", 1).json() == 1
    assert run(server, "state", "get", "Counter", "never").strip() == "no state for Counter/never"
    # A value that is not JSON is shown as base64, and kept byte for byte when another name is set.
    resp = server.admin("POST", "/services/Counter/state", json.dumps(
        {"object_key": "raw", "new_state": {"blob": [255, 0, 1]}}).encode())
    assert resp.status_code == 202, resp.text
    assert run_json(server, "state", "get", "Counter", "raw")["state"] == {"blob": {"base64": "/wAB"}}
    run(server, "state", "set", "Counter", "raw", "total", "1")
    assert api(server, "/services/Counter/state/raw")["state"] == {"blob": {"base64": "/wAB"}, "total": 1}
    # (The API shows the JSON {"base64": "/wAB"} alike: what is stored are the bytes.)
    row = b"st" + lp("Counter") + lp("raw") + b"blob"
    assert read_disk(server.data_dir, lambda d: d.cf("state").get(row)) == b"\xff\x00\x01"

    err = fails(server, "state", "set", "Counter", "c1", "total", "hello", code=2)
    assert "'hello' is not JSON" in err and '\'"hello"\'' in err
    err = fails(server, "state", "clear", "Counter", "c1", "nope")
    assert err.startswith("stead: Counter/c1 has no state named 'nope'")
    for args in (["get", "Nope", "k"], ["set", "Nope", "k", "n", "1"], ["get", "Timers", "k"]):
        err = fails(server, "state", *args)
        assert err.startswith("stead: ") and "(HTTP 404)" in err, (args, err)
    assert api(server, "/services/Counter/state/c1")["state"] == {"total": 1}


def test_state_of_a_key_with_a_slash(server: SteadServer) -> None:
    """A key is any string (as in Restate): one with a / and a space is one key, through
    the CLI (which escapes it in the admin API's path) as through the ingress."""
    run(server, "state", "set", "Counter", "a b/c", "total", "10")
    assert server.post("/Counter/a%20b%2Fc/add", 1).json() == 11
    assert run_json(server, "state", "get", "Counter", "a b/c")["state"] == {"total": 11}
    assert run_json(server, "state", "get", "Counter", "a b")["state"] == {}


def editor(tmp_path: Path, name: str, body: str) -> dict[str, str]:
    """$EDITOR: a script given the file to edit, which keeps a copy of what it was given
    (`NAME.seen`) and then runs `body` (`path` is the file, `state` its JSON)."""
    script = tmp_path / f"{name}.py"
    script.write_text("import json, shutil, sys, urllib.request\n"
                      "path = sys.argv[1]\n"
                      f"shutil.copy(path, {str(tmp_path / (name + '.seen'))!r})\n"
                      "state = json.load(open(path))\n" + body)
    return {"EDITOR": f"{sys.executable} {script}"}


def test_state_edit(server: SteadServer, tmp_path: Path) -> None:
    assert server.post("/Counter/c1/add", 5).json() == 5
    run(server, "state", "set", "Counter", "c1", "note", '["a"]')

    env = editor(tmp_path, "edit", 'state["total"] = 100\nstate["note"].append("b")\n'
                                   'json.dump(state, open(path, "w"))\n')
    assert run(server, "state", "edit", "Counter", "c1", env=env) == "wrote the state of Counter/c1\n"
    assert json.loads((tmp_path / "edit.seen").read_text()) == {"total": 5, "note": ["a"]}
    assert api(server, "/services/Counter/state/c1")["state"] == {"total": 100, "note": ["a", "b"]}
    assert server.post("/Counter/c1/add", 1).json() == 101

    for name, body in [("same", "json.dump(state, open(path, 'w'), indent=4)\n"),  # same JSON, other text
                       ("untouched", "")]:
        out = run(server, "state", "edit", "Counter", "c1", env=editor(tmp_path, name, body))
        assert out == "no change: nothing written to Counter/c1\n"
    version = api(server, "/services/Counter/state/c1")["version"]

    for name, body, words in [
        ("broken", "open(path, 'w').write('{\"total\": ')\n", ["the edited state is not JSON"]),
        ("list", "open(path, 'w').write('[1, 2]')\n", ["must be a JSON object", "not a list"]),
    ]:
        err = fails(server, "state", "edit", "Counter", "c1", env=editor(tmp_path, name, body))
        assert err.startswith("stead: ") and all(w in err for w in words) and "nothing was written" in err, err
        kept = Path(err.split("your edit is kept in ")[1].strip())
        assert kept.read_text() in ('{"total": ', "[1, 2]")
        kept.unlink()

    # Somebody writes the key while the operator edits: the edit is refused, not written
    # over theirs, and what the operator typed is kept.
    racing = f'urllib.request.urlopen(urllib.request.Request({server.url + "/Counter/c1/add"!r}, data=b"1", ' \
             'headers={"content-type": "application/json"})).read()\n' \
             'state["total"] = 0\njson.dump(state, open(path, "w"))\n'
    err = fails(server, "state", "edit", "Counter", "c1", env=editor(tmp_path, "racing", racing))
    assert err.startswith("stead: ") and "(HTTP 409)" in err and "nothing was written" in err, err
    assert "stead state edit Counter c1" in err
    kept = Path(err.split("your edit is kept in ")[1].strip())
    assert json.loads(kept.read_text()) == {"total": 0, "note": ["a", "b"]}
    kept.unlink()
    now = api(server, "/services/Counter/state/c1")
    assert now["state"] == {"total": 102, "note": ["a", "b"]} and now["version"] != version

    err = fails(server, "state", "edit", "Counter", "c1", env={"EDITOR": str(tmp_path / "no-such-editor")})
    assert err.startswith("stead: ") and "EDITOR" in err


# ---------------------------------------------------------------- sql


def test_sql(server: SteadServer) -> None:
    assert server.post("/Counter/c1/add", 5).json() == 5
    query = "SELECT id, target, status FROM sys_invocation ORDER BY id"
    doc = run_json(server, "sql", query)
    resp = httpx.post(f"{server.admin_url}/query", json={"query": query}, headers={"accept": "application/json"},
                      timeout=30)
    assert resp.status_code == 200 and doc == resp.json()
    [row] = doc["rows"]
    assert row["target"] == "Counter/c1/add" and row["status"] == "completed"
    out = run(server, "sql", query)
    assert row["id"] in out and "Counter/c1/add" in out and out.endswith("1 row\n")
    assert run(server, "sql", "SELECT id FROM sys_invocation WHERE id = 'inv_nope'") == "no rows\n"
    err = fails(server, "sql", "SELEC nothing")
    assert err.startswith("stead: ") and "(HTTP 400)" in err


# ---------------------------------------------------------------- errors common to all


COMMANDS = [
    ["services", "list"], ["services", "describe", "Counter"], ["invocations", "list"],
    ["invocations", "describe", "inv_x"], ["invocations", "cancel", "inv_x"], ["invocations", "kill", "inv_x"],
    ["invocations", "purge", "inv_x"], ["state", "get", "Counter", "k"], ["state", "set", "Counter", "k", "n", "1"],
    ["state", "clear", "Counter", "k"], ["state", "edit", "Counter", "k"], ["sql", "SELECT 1"],
    ["deployments", "list"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_nothing_answers_at_the_admin_url(command: list[str]) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    for args, env in [([*command, "--admin-url", nobody], None), (command, {"STEAD_ADMIN_URL": nobody})]:
        out = stead(*args, env=env)
        assert out.returncode == 1 and out.stdout == "", out
        assert out.stderr == (f"stead: the admin API at {nobody} does not answer (connection refused): "
                              "is `stead serve` running there? (--admin-url or STEAD_ADMIN_URL)\n")


def test_admin_token(make_server) -> None:  # type: ignore[no-untyped-def]
    server: SteadServer = make_server(target=FLOW_APP, extra_args=["--admin-token", "s3cret"]).start()
    assert server.post("/Counter/c1/add", 5).json() == 5
    # Reading needs no token; changing does.
    assert run_json(server, "state", "get", "Counter", "c1")["state"] == {"total": 5}
    assert run_json(server, "sql", "SELECT id FROM sys_invocation")["rows"]
    for token in ([], ["--admin-token", "wrong"]):
        err = fails(server, "state", "set", "Counter", "c1", "total", "1", *token)
        assert err.startswith("stead: ") and "(HTTP 401)" in err and "--admin-token or STEAD_ADMIN_TOKEN" in err
    assert api(server, "/services/Counter/state/c1")["state"] == {"total": 5}
    run(server, "state", "set", "Counter", "c1", "total", "1", "--admin-token", "s3cret")
    run(server, "state", "set", "Counter", "c1", "total", "2", env={"STEAD_ADMIN_TOKEN": "s3cret"})
    run(server, "state", "--admin-token", "s3cret", "set", "Counter", "c1", "total", "3")  # on the group
    assert api(server, "/services/Counter/state/c1")["state"] == {"total": 3}
    inv = server.post("/Jobs/long/send", "t").json()["invocationId"]
    assert "(HTTP 401)" in fails(server, "invocations", "kill", inv)
    run(server, "invocations", "kill", inv, env={"STEAD_ADMIN_TOKEN": "s3cret"})
    assert wait_completed(server, inv)["completion_result"] == "failure"
