"""Restate's retention options over the server's default `--retention` (24 h here):
`idempotency_retention`, `journal_retention` (per service, per handler: the
handler's wins) and `workflow_retention` purge what they cover after their own
period, while what runs under the default stays (tests/apps/retentionapp.py)."""

from __future__ import annotations

import time

from tests.conftest import wait_for_lines

RETENTION_APP = "tests.apps.retentionapp:application"


def _until_gone(server, path: str, timeout: float = 20.0) -> int:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        status = server.get(path).status_code
        if status == 404 or time.monotonic() > deadline:
            return status
        time.sleep(0.1)


def _key(value: str) -> dict[str, str]:
    return {"idempotency-key": value}


def test_idempotency_and_journal_retention_per_service_and_handler(make_server) -> None:
    server = make_server(target=RETENTION_APP).start()
    short_idem = server.post("/Plain/idem", "a", headers=_key("k1"))
    default_idem = server.post("/Plain/default", "b", headers=_key("k2"))
    assert (short_idem.json(), default_idem.json()) == ("a", "b")
    short_id, default_id = short_idem.headers["x-restate-id"], default_idem.headers["x-restate-id"]
    # Deduplicated while retained.
    assert server.post("/Plain/idem", "a-again", headers=_key("k1")).json() == "a"
    service_short = server.post("/Short/echo/send", "c").json()["invocationId"]
    handler_long = server.post("/Short/kept/send", "d").json()["invocationId"]
    for inv in (service_short, handler_long):
        assert server.get(f"/restate/invocation/{inv}/attach").status_code == 200

    # 1 s: the handler's idempotency_retention, the service's journal_retention.
    assert _until_gone(server, f"/restate/invocation/{short_id}/output") == 404
    assert _until_gone(server, f"/restate/invocation/{service_short}/output") == 404
    # The server's default (24 h), and a handler's own 1 h over its service's 1 s, keep theirs.
    assert server.get(f"/restate/invocation/{default_id}/output").json() == "b"
    assert server.get(f"/restate/invocation/{handler_long}/output").json() == "d"
    time.sleep(0.5)  # more purge passes: still there
    assert server.get(f"/restate/invocation/{default_id}/output").status_code == 200
    assert server.get(f"/restate/invocation/{handler_long}/output").status_code == 200
    # The purged idempotency key runs again; the retained one still deduplicates.
    assert server.post("/Plain/idem", "a2", headers=_key("k1")).json() == "a2"
    assert server.post("/Plain/default", "b2", headers=_key("k2")).json() == "b"


def test_workflow_retention_purges_the_run_its_state_and_promises(make_server, effects_dir) -> None:
    server = make_server(target=RETENTION_APP).start()
    assert server.post("/Quick/w/run", "x1").json() == "x1"
    assert server.post("/Slow/w/run", "y1").json() == "y1"
    assert server.post("/Quick/w/peek").json() == {"x": "x1", "p": "x1"}

    assert _until_gone(server, "/restate/workflow/Quick/w/output") == 404
    assert server.post("/Quick/w/peek").json() == {"x": None, "p": None}
    # The key can run again, from fresh state and promises.
    assert server.post("/Quick/w/run", "x2").json() == "x2"
    assert server.post("/Quick/w/peek").json() == {"x": "x2", "p": "x2"}
    assert wait_for_lines(effects_dir / "quick", 2) == ["w x1", "w x2"]

    # The default retention keeps the other workflow's run, state and promises.
    assert server.get("/restate/workflow/Slow/w/output").json() == "y1"
    assert server.post("/Slow/w/peek").json() == {"x": "y1", "p": "y1"}
    assert server.post("/Slow/w/run", "y2").status_code == 409
    assert (effects_dir / "slow").read_text().splitlines() == ["w y1"]
