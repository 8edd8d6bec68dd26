"""Restate ingress features beyond calls: /send, ?delay=, idempotency-key,
attach/output, and the bad input around them (nothing is written on a rejection)."""

from __future__ import annotations

import httpx


def test_idempotent_call_runs_once(flow) -> None:
    key = {"idempotency-key": "order-1"}
    first = flow.post("/Counter/idem/add", 5, headers=key)
    second = flow.post("/Counter/idem/add", 5, headers=key)
    assert first.json() == second.json() == 5
    assert first.headers["x-restate-id"] == second.headers["x-restate-id"]
    assert flow.post("/Counter/idem/total").json() == 5
    out = flow.get("/restate/invocation/Counter/idem/add/order-1/output")
    assert out.status_code == 200 and out.json() == 5
    assert flow.get("/restate/invocation/Counter/idem/add/order-1/attach").json() == 5


def test_idempotent_send_is_previously_accepted(flow) -> None:
    key = {"idempotency-key": "s-1"}
    first = flow.post("/Counter/is/add/send", 2, headers=key).json()
    second = flow.post("/Counter/is/add/send", 2, headers=key).json()
    assert second == {"invocationId": first["invocationId"], "status": "PreviouslyAccepted"}
    assert flow.get(f"/restate/invocation/{first['invocationId']}/attach").json() == 2
    assert flow.post("/Counter/is/total").json() == 2


def test_attach_and_output_of_a_call(flow) -> None:
    resp = flow.post("/Counter/ao/add", 1)
    inv = resp.headers["x-restate-id"]
    assert flow.get(f"/restate/invocation/{inv}/output").json() == 1
    assert flow.get(f"/restate/invocation/{inv}/attach").json() == 1
    failed = flow.post("/Counter/ao/fail", "bad")
    out = flow.get(f"/restate/invocation/{failed.headers['x-restate-id']}/output")
    assert out.status_code == 422 and out.json() == {"code": 422, "message": "bad"}


def test_bad_requests_write_nothing(flow) -> None:
    bad = [
        flow.post("/Counter/x/add?delay=1s", 1),                        # delay on a call
        flow.post("/Counter/x/add/send?delay=soon", 1),                 # malformed delay
        flow.post("/Counter/x/add", 1, headers={"idempotency-key": ""}),  # empty key
        flow.post("/Counter/x/add", 1, headers={"idempotency-key": "k" * 300}),
    ]
    assert [r.status_code for r in bad] == [400, 400, 400, 400]
    assert all(r.json()["code"] == 400 and r.json()["message"] for r in bad)
    assert flow.get("/restate/invocation/inv_doesnotexist/attach").status_code == 404
    assert flow.get("/restate/invocation/inv_doesnotexist/output").status_code == 404
    assert flow.get("/restate/invocation/Counter/x/add/never/output").status_code == 404
    assert httpx.post(f"{flow.url}/restate/invocation/inv_x/output").status_code == 405
    assert flow.post("/Counter/x/total").json() == 0  # nothing ran
    assert flow.post("/Counter/x/add", 1).json() == 1  # and the server still serves
