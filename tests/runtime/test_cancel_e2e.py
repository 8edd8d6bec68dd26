"""Cancellation and kill through the admin API, and sagas, over real HTTP."""

from __future__ import annotations

from tests.conftest import wait_for_lines


def _job(flow, effects_dir, path: str, tag: str, lines: int = 1) -> str:
    inv = flow.post(f"{path}/send", tag).json()["invocationId"]
    wait_for_lines(effects_dir / "jobs", lines)
    return inv


def test_cancel_runs_compensations(flow, effects_dir) -> None:
    inv = _job(flow, effects_dir, "/Jobs/long", "a")
    resp = flow.admin("PATCH", f"/invocations/{inv}/cancel")
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"invocationId": inv, "status": "cancelling"}
    out = flow.get(f"/restate/invocation/{inv}/attach")
    assert out.status_code == 409 and out.json()["message"] == "cancelled"
    assert (effects_dir / "jobs").read_text().splitlines() == ["reserve a", "release a"]
    again = flow.admin("PATCH", f"/invocations/{inv}/cancel")
    assert again.status_code == 409 and again.json()["message"] == f"invocation {inv} is already completed"


def test_kill_stops_without_compensation(flow, effects_dir) -> None:
    inv = _job(flow, effects_dir, "/Jobs/long", "b")
    assert flow.admin("PATCH", f"/invocations/{inv}/kill").status_code == 202
    out = flow.get(f"/restate/invocation/{inv}/attach")
    assert out.status_code == 409 and "killed" in out.json()["message"]
    assert (effects_dir / "jobs").read_text().splitlines() == ["reserve b"]


def test_cancel_propagates_to_awaited_calls(flow, effects_dir) -> None:
    inv = _job(flow, effects_dir, "/Jobs/parent", "p")
    assert flow.admin("PATCH", f"/invocations/{inv}/cancel").status_code == 202
    out = flow.get(f"/restate/invocation/{inv}/attach")
    assert out.status_code == 409 and out.json() == {"code": 409, "message": "cancelled"}
    lines = wait_for_lines(effects_dir / "jobs", 3)
    assert lines[0] == "reserve p-child"
    assert sorted(lines[1:]) == ["parent saw 409", "release p-child"]


def test_admin_bad_requests(flow) -> None:
    cases = [
        ("PATCH", "/invocations/inv_nope/cancel", 404, "invocation inv_nope not found"),
        ("GET", "/invocations/inv_nope/cancel", 405, "use PATCH /invocations/{id}/cancel"),
        ("PATCH", "/somewhere", 404, "unknown admin path /somewhere"),
    ]
    for method, path, status, fragment in cases:
        resp = flow.admin(method, path)
        assert resp.status_code == status and resp.json()["code"] == status, resp.text
        assert fragment in resp.json()["message"], resp.text
    health = flow.admin("GET", "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_travel_booking_fails_with_the_car_refusal(flow) -> None:
    """The example's compensations are pure steps; their order is checked by
    test_saga_compensations_run_in_reverse_order below (same Saga helper)."""
    ok = flow.post("/Trips/book", {"trip": "t1"})
    assert ok.json() == ["flight-t1", "hotel-t1", "car-t1"]
    refused = flow.post("/Trips/book", {"trip": "t2", "car": "convertible"})
    assert refused.status_code == 409 and "convertible" in refused.json()["message"]
    inv = refused.headers["x-restate-id"]
    assert flow.get(f"/restate/invocation/{inv}/output").json()["message"] == refused.json()["message"]


def test_saga_compensations_run_in_reverse_order(flow, effects_dir) -> None:
    for i in (1, 2, 3):
        (effects_dir / f"s-undo{i}").touch()
    resp = flow.post("/Jobs/compensating", "s")
    assert resp.status_code == 409 and resp.json() == {"code": 409, "message": "refused"}
    assert (effects_dir / "saga").read_text().splitlines() == [
        "step 1", "step 2", "step 3", "undo 3", "undo 2", "undo 1"]
