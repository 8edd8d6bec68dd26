"""Failure paths that used to hang or lie (issue 8, section 5), in a real server:

- a signal for an unknown invocation is answered without waiting for the writer;
- a storage failure (a failed write, a panic in the writer, an error while recovering)
  stops the server with a clear message and a non-zero exit, and the clients of the
  failed group are told the outcome is unknown (503), never that it failed.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pysdk._ids import awakeable_id
from runtime.ids import new_invocation_id
from tests.conftest import CORRECT_APP, FAILPOINTS_ENV


def test_signals_for_unknown_ids_do_not_wait_for_the_writer(make_server) -> None:
    server = make_server(target=CORRECT_APP, env=FAILPOINTS_ENV).start()
    server.failpoint("commit.before_write", "pause")
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(server.post, "/Acct/u/deposit", 1, timeout=60)
        time.sleep(0.1)
        unknown = new_invocation_id()
        started = time.monotonic()
        assert server.post(f"/restate/awakeables/{awakeable_id(unknown, 1)}/resolve", "x",
                           timeout=5).status_code == 404
        assert server.admin("PATCH", f"/invocations/{unknown}/cancel").status_code == 404
        assert server.admin("PATCH", f"/invocations/{unknown}/kill").status_code == 404
        assert server.get("/restate/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 5
        assert not held.done()
        server.failpoint("commit.before_write", None)
        assert held.result(timeout=30).json() == 1


def _exit_code(server, timeout: float = 30.0) -> int:  # type: ignore[no-untyped-def]
    return server.proc.wait(timeout=timeout)


@pytest.mark.parametrize("point, actions", [
    ("commit.write_error", "return"),
    ("commit.before_sync", "panic"),
])
def test_a_storage_failure_stops_the_server_and_answers_outcome_unknown(make_server, point, actions) -> None:
    server = make_server(target=CORRECT_APP, env=FAILPOINTS_ENV).start()
    assert server.post("/Acct/f/deposit", 1).json() == 1
    server.failpoint(point, actions)
    resp = server.post("/Acct/f/deposit", 1, timeout=30)
    assert resp.status_code == 503, resp.text
    assert "outcome is unknown" in resp.json()["message"]
    assert _exit_code(server) != 0
    assert "storage failed" in server.log()
    # Crash-only: the next start recovers, and the first deposit is there.
    server.env = {}
    server.restart()
    assert server.post("/Acct/f/deposit", 0).json() in (1, 2)


def test_a_storage_failure_during_recovery_stops_the_server(make_server) -> None:
    server = make_server(target=CORRECT_APP, env={**FAILPOINTS_ENV, "STEAD_FAILPOINTS": "store.recover=return"})
    with pytest.raises(RuntimeError, match="exited with 3"):
        server.start()
    assert "storage failed" in server.log()
