"""Workflows over real HTTP: main once per key, shared handlers, durable promises."""

from __future__ import annotations

from tests.conftest import wait_for_lines


def test_workflow_waits_for_its_promise(flow, effects_dir) -> None:
    sent = flow.post("/Signup/ann/run/send", "ann@example.com")
    assert sent.status_code == 202 and sent.json()["status"] == "Accepted"
    inv = sent.json()["invocationId"]
    wait_for_lines(effects_dir / "emails", 1)
    assert flow.get("/restate/workflow/Signup/ann/output").status_code == 470
    assert flow.post("/Signup/ann/peek").content == b""  # None: not resolved yet
    assert flow.post("/Signup/ann/click", "s3cret").json() == "ok"
    result = flow.get("/restate/workflow/Signup/ann/attach")
    assert result.json() == "verified ann@example.com with s3cret"
    assert result.headers["x-restate-id"] == inv
    assert flow.post("/Signup/ann/status").json() == "verified"
    assert flow.post("/Signup/ann/peek").json() == "s3cret"
    # A second resolve of the same promise is refused.
    again = flow.post("/Signup/ann/click", "other")
    assert again.status_code == 409 and again.json()["message"] == "promise already completed"
    assert flow.post("/Signup/ann/peek").json() == "s3cret"  # the first value stays


def test_main_runs_once_per_key(flow, effects_dir) -> None:
    first = flow.post("/Signup/bo/run/send", "bo@example.com").json()
    second = flow.post("/Signup/bo/run/send", "bo@example.com")
    assert second.json() == {"invocationId": first["invocationId"], "status": "PreviouslyAccepted"}
    flow.post("/Signup/bo/click", "x")
    assert flow.get("/restate/workflow/Signup/bo/attach").json() == "verified bo@example.com with x"
    rerun = flow.post("/Signup/bo/run", "ignored@example.com")
    assert rerun.status_code == 409 and rerun.json()["message"] == "the workflow method was already invoked"
    assert wait_for_lines(effects_dir / "emails", 1) == ["bo bo@example.com"]


def test_promise_resolved_before_it_is_awaited(flow) -> None:
    assert flow.post("/Signup/cy/click", "early").json() == "ok"
    assert flow.post("/Signup/cy/run", "cy@example.com").json() == "verified cy@example.com with early"


def test_unknown_workflow_paths(flow) -> None:
    nobody = flow.get("/restate/workflow/Signup/nobody/output")
    assert nobody.status_code == 404 and nobody.json()["message"] == "no invocation found for Signup/nobody"
    nope = flow.get("/restate/workflow/Nope/x/attach")
    assert nope.status_code == 404 and nope.json()["message"] == "workflow 'Nope' not found"


def test_workflow_started_from_a_handler_runs_once(flow, effects_dir) -> None:
    inv = flow.post("/Starter/start_signup", "eve").json()
    flow.post("/Signup/eve/click", "e")
    assert flow.get(f"/restate/invocation/{inv}/attach").json() == "verified eve@example.com with e"
    again = flow.post("/Starter/start_signup", "eve")
    assert again.status_code == 409 and "already been started" in again.json()["message"]
    assert wait_for_lines(effects_dir / "emails", 1) == ["eve eve@example.com"]
