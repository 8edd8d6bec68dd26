"""kill -9 during durable control flow: sends, saga compensations, workflows."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import FLOW_APP, wait_for_lines


def test_kill_after_send_journaled_callee_runs_once(make_server, effects_dir) -> None:
    server = make_server(target=FLOW_APP).start()
    callee = server.post("/Caller/k/send_later", 1500).json()  # journaled; runs in 1.5 s
    server.kill()
    assert not (effects_dir / "stamps").exists()
    server.restart()
    assert server.get(f"/restate/invocation/{callee}/attach").status_code == 200
    time.sleep(0.3)
    assert [line.split()[0] for line in (effects_dir / "stamps").read_text().splitlines()] == ["k"]


def test_kill_during_compensations_resumes_the_rest(make_server, effects_dir) -> None:
    server = make_server(target=FLOW_APP).start()
    (effects_dir / "c-undo3").touch()  # undo 3 may run; undo 2 waits at its gate
    inv = server.post("/Jobs/compensating/send", "c").json()["invocationId"]
    lines = wait_for_lines(effects_dir / "saga", 4)
    assert lines == ["step 1", "step 2", "step 3", "undo 3"]
    time.sleep(0.2)  # undo 3's result is journaled; undo 2 is waiting at its gate
    server.kill()
    (effects_dir / "c-undo2").touch()
    (effects_dir / "c-undo1").touch()
    server.restart()
    assert server.get(f"/restate/invocation/{inv}/attach").status_code == 409
    assert (effects_dir / "saga").read_text().splitlines() == [
        "step 1", "step 2", "step 3", "undo 3", "undo 2", "undo 1"]


def test_workflow_promise_resolved_while_server_down(make_server, effects_dir) -> None:
    server = make_server(target=FLOW_APP).start()
    server.post("/Signup/dee/run/send", "dee@example.com")
    wait_for_lines(effects_dir / "emails", 1)
    time.sleep(0.2)
    server.kill()
    with pytest.raises(httpx.TransportError):  # the resolve is refused: nobody listens
        server.post("/Signup/dee/click", "late", timeout=2.0)
    server.restart()
    assert server.post("/Signup/dee/click", "late").json() == "ok"
    assert server.get("/restate/workflow/Signup/dee/attach").json() == "verified dee@example.com with late"
    assert (effects_dir / "emails").read_text().splitlines() == ["dee dee@example.com"]
