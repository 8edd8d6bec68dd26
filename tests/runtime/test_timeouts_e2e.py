"""Restate's inactivity_timeout and abort_timeout (issue 8, section 7): an attempt that
makes no progress is suspended if it waits on a durable future, otherwise aborted and
retried; a handler's own timeout overrides its service's."""

from __future__ import annotations

import pytest

from tests.conftest import CORRECT_APP, wait_for_lines


def test_an_attempt_stuck_in_a_plain_await_is_aborted_and_retried(make_server, mode, effects_dir) -> None:
    if mode == "replay":
        pytest.skip("forced replay reruns the body after each step, so it cannot tell its first attempt")
    server = make_server(target=CORRECT_APP).start()
    resp = server.post("/Timeouts/stuck_once", "t", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "ok"
    assert (effects_dir / "t.attempts").read_text().splitlines() == ["attempt", "attempt"]


def test_a_handler_timeout_overrides_the_service_timeout(make_server, effects_dir) -> None:
    server = make_server(target=CORRECT_APP).start()
    assert server.post("/Timeouts/patient", "p", timeout=30).json() == "ok"
    assert (effects_dir / "p.attempts").read_text().splitlines() == ["attempt"]


def test_waiting_on_a_durable_future_suspends_instead(make_server, mode, effects_dir) -> None:
    server = make_server(target=CORRECT_APP).start()  # --suspend-after stays 5 s
    assert server.post("/Timeouts/sleeps", "s", timeout=30).json() == "ok"
    # Suspended after 300 ms (the inactivity timeout), resumed by replay when the timer fired.
    runs = len((effects_dir / "s.body").read_text().splitlines())
    assert runs == 2 if mode == "normal" else runs >= 2


def test_non_determinism_is_retried_and_logged_with_both_commands(make_server, effects_dir) -> None:
    server = make_server(target=CORRECT_APP).start()
    inv = server.post("/Timeouts/shifty/send", "n").json()["invocationId"]
    assert len(wait_for_lines(effects_dir / "n.attempts", 3, timeout=30)) >= 3
    log = server.log()
    line = next(line for line in log.splitlines() if "was recorded as" in line)
    assert " ERROR " in line and inv in line
    assert "entry 0" in line and "reserve" in line and "charge" in line
    assert server.get(f"/restate/invocation/{inv}/output").status_code == 470  # still retried
    assert server.admin("PATCH", f"/invocations/{inv}/kill").status_code == 202
