"""Restate's own CLI (npm `@restatedev/restate` 1.7, installed by scripts/setup.sh) against
a real `stead serve`, as a Restate user runs it with RESTATE_ADMIN_URL pointing at the
admin port. Each command's output is checked against what the handlers did.

Known not to work, and why (so a change that makes them work shows up here):
`restate invocations describe ID` and any command given an invocation id: the CLI
parses ids in Restate's own binary format (`inv_1...`, a partition key and a UUID),
which Stead's ids (`inv_` + time + random hex) are not; the same commands given a
target (`Service/key/handler`) work, since the CLI then finds ids by SQL."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import SteadServer, wait_for_lines, wait_until

CLI = Path(os.environ.get("STEAD_RESTATE_CLI", Path.home() / ".cache/stead/restate-cli")) / "node_modules/.bin/restate"


@pytest.fixture
def srv(tmp_path: Path, effects_dir: Path) -> Iterator[SteadServer]:
    assert CLI.exists(), f"Restate's CLI is not installed at {CLI}: run scripts/setup.sh"
    server = SteadServer(tmp_path / "data", effects_dir).start()
    yield server
    server.kill()


def restate(srv: SteadServer, *args: str) -> str:
    env = dict(os.environ, RESTATE_ADMIN_URL=srv.admin_url, NO_COLOR="1", CLICOLOR="0", TERM="dumb",
               HOME=str(srv.data_dir.parent))  # no user config of the machine
    proc = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"restate {' '.join(args)} exited {proc.returncode}:\n{out}"
    assert "Could not verify the admin API version" not in out
    return proc.stdout if "--json" in args else out


def test_services_list_and_describe(srv: SteadServer) -> None:
    out = restate(srv, "services", "list")
    for name in ("Cart", "Steps", "Shop", "Gatekeeper"):
        assert name in out
    assert "virtual object" in out
    described = restate(srv, "services", "describe", "Shop")
    assert "buy" in described and "ping" in described and "Service" in described
    assert "dp_1" in restate(srv, "deployments", "list")


def test_invocations_list_sql_and_cancel_by_target(srv: SteadServer, effects_dir: Path) -> None:
    assert srv.post("/Cart/c1/slow_add", "apple").json() == 1
    waiting = srv.post("/Steps/s1/run/send", "t1").json()["invocationId"]
    wait_for_lines(effects_dir / "gates", 1)
    listed = restate(srv, "invocations", "list")
    assert waiting in listed and "Steps/s1/run" in listed and "running" in listed
    everything = restate(srv, "invocations", "list", "--all")
    assert "Cart/c1/slow_add" in everything
    rows = json.loads(restate(srv, "sql", "--json", "SELECT id, status FROM sys_invocation ORDER BY id"))
    assert {(r["id"], r["status"]) for r in rows} >= {(waiting, "running")}
    assert len(rows) == 2
    # Cancel by target: the CLI finds the id by SQL, then PATCHes /v4/invocations/{id}/cancel.
    assert "Cancelled 1" in restate(srv, "invocations", "cancel", "--yes", "Steps/s1/run")
    (effects_dir / "t1.gate").touch()  # the handler sees the cancellation at its next durable await
    done = wait_until(lambda: (d := srv.admin("GET", f"/invocations/{waiting}").json())["status"] == "completed"
                      and d, what="cancelled")
    assert done["failure"]["code"] == 409
    assert "Purged 1" in restate(srv, "invocations", "purge", "--yes", "Steps/s1/run")
    assert srv.admin("GET", f"/invocations/{waiting}").status_code == 404


def test_state_get_and_clear(srv: SteadServer) -> None:
    srv.post("/Cart/c2/slow_add", "apple")
    srv.post("/Cart/c2/slow_add", "pear")
    out = restate(srv, "kv", "get", "Cart", "c2")
    assert "items" in out and "apple" in out and "pear" in out
    # `kv clear` computes Restate's state version on its side and POSTs it with the new state.
    restate(srv, "kv", "clear", "--yes", "Cart/c2")
    assert srv.admin("GET", "/services/Cart/state/c2").json()["state"] == {}
    assert srv.post("/Cart/c2/slow_add", "fig").json() == 1  # the next handler sees the edit
