"""Calls and sends between handlers over real HTTP."""

from __future__ import annotations

import time

from tests.conftest import wait_for_lines


def test_object_call_returns_the_callees_result(flow) -> None:
    assert flow.post("/Caller/a/call_add", 2).json() == 2
    assert flow.post("/Caller/a/call_add", 3).json() == 5
    assert flow.post("/Counter/a/total").json() == 5


def test_callee_terminal_error_reaches_the_caller(flow) -> None:
    assert flow.post("/Caller/b/call_fail", "nope").json() == "caught 422 nope"


def test_send_returns_the_callee_id_and_runs_it(flow, effects_dir) -> None:
    callee = flow.post("/Caller/c/send_add", 7).json()
    assert callee.startswith("inv_")
    assert flow.get(f"/restate/invocation/{callee}/attach").json() == 7
    assert wait_for_lines(effects_dir / "counter-adds", 1) == ["c 7"]


def test_delayed_send_from_a_handler(flow, effects_dir) -> None:
    t0 = time.time()
    callee = flow.post("/Caller/d/send_later", 300).json()
    lines = wait_for_lines(effects_dir / "stamps", 1)
    assert lines[0].split()[0] == "d"
    assert float(lines[0].split()[1]) - t0 >= 0.3
    out = flow.get(f"/restate/invocation/{callee}/output")  # the stamp step's result: when it ran
    assert out.status_code == 200 and out.json() == float(lines[0].split()[1])


def test_call_to_own_key_is_refused(flow) -> None:
    resp = flow.post("/Caller/e/call_self")
    assert resp.status_code == 400
    assert "deadlock" in resp.json()["message"]


def test_generic_call_and_gather(flow) -> None:
    assert flow.post("/Caller/f/generic", 4).json() == 4
    assert flow.post("/Caller/g/fanout", 3).json() == [1, 2, 3]


def test_wallet_transfer_and_refund(flow) -> None:
    assert flow.post("/Wallet/alice/deposit", 100).json() == 100
    ok = flow.post("/Transfers/transfer", {"source": "alice", "target": "bob", "amount": 30})
    assert ok.json() == {"source": 70, "target": 30}
    assert flow.post("/Wallet/carol/deposit", 1_000_000).json() == 1_000_000
    refused = flow.post("/Transfers/transfer", {"source": "alice", "target": "carol", "amount": 10})
    assert refused.status_code == 409
    assert flow.post("/Wallet/alice/balance").json() == 70  # refunded
    short = flow.post("/Transfers/transfer", {"source": "bob", "target": "alice", "amount": 999})
    assert short.status_code == 409
    assert flow.post("/Wallet/bob/balance").json() == 30
