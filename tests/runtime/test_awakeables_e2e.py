"""Awakeables and combinators over real HTTP: resolved and rejected through the ingress."""

from __future__ import annotations

import time

from tests.conftest import wait_for_lines


def _started(flow, effects_dir, path: str, count: int = 1, body: object = None) -> tuple[str, list[str]]:
    before = len(wait_for_lines(effects_dir / "awakeables", 0, timeout=0))
    inv = flow.post(f"{path}/send", body).json()["invocationId"]
    ids = wait_for_lines(effects_dir / "awakeables", before + count)[before:]
    assert len(ids) == count
    return inv, ids


def test_resolve_through_the_ingress(flow, effects_dir) -> None:
    inv, (awk,) = _started(flow, effects_dir, "/Waiter/wait")
    assert flow.get(f"/restate/invocation/{inv}/output").status_code == 470  # not ready
    assert flow.post(f"/restate/awakeables/{awk}/resolve", "hello").status_code == 202
    assert flow.get(f"/restate/invocation/{inv}/attach").json() == "hello"
    again = flow.post(f"/restate/awakeables/{awk}/resolve", "again")
    assert again.status_code == 202  # Restate: a second completion is accepted and ignored
    assert flow.get(f"/restate/invocation/{inv}/attach").json() == "hello"


def test_reject_through_the_ingress(flow, effects_dir) -> None:
    inv, (awk,) = _started(flow, effects_dir, "/Waiter/wait")
    resp = httpx_post_text(flow, f"/restate/awakeables/{awk}/reject", "card declined")
    assert resp.status_code == 202
    out = flow.get(f"/restate/invocation/{inv}/attach")
    assert out.status_code == 500
    assert out.json()["message"] == "card declined"


def test_resolve_from_another_handler(flow, effects_dir) -> None:
    inv, (awk,) = _started(flow, effects_dir, "/Waiter/wait")
    resp = flow.post("/Waiter/resolve_other", {"id": awk, "value": "from ctx"})
    assert resp.status_code == 200 and resp.content == b""  # None
    assert flow.get(f"/restate/invocation/{inv}/attach").json() == "from ctx"


def test_unknown_and_malformed_awakeables(flow) -> None:
    assert flow.post("/restate/awakeables/nonsense/resolve", 1).status_code == 400
    from pysdk._ids import awakeable_id

    unknown = awakeable_id("inv_00000000000000000000000000000000", 1)
    resp = flow.post(f"/restate/awakeables/{unknown}/resolve", 1)
    assert resp.status_code == 404 and "not found" in resp.json()["message"]


def test_select_timer_wins_then_signal_wins(flow, effects_dir) -> None:
    t0 = time.time()
    assert flow.post("/Waiter/race", 200).json() == ["timeout", "None"]
    assert time.time() - t0 >= 0.2
    inv, (awk,) = _started(flow, effects_dir, "/Waiter/race", body=30_000)
    flow.post(f"/restate/awakeables/{awk}/resolve", "go")
    assert flow.get(f"/restate/invocation/{inv}/attach").json() == ["signal", "go"]


def test_as_completed_follows_completion_order(flow, effects_dir) -> None:
    inv, awks = _started(flow, effects_dir, "/Waiter/first_two", count=3)
    # A resolve is answered once its completion is committed, and completions reach the
    # handler in commit order: c is complete before a is resolved.
    for awk, value in ((awks[2], "c"), (awks[0], "a")):
        assert flow.post(f"/restate/awakeables/{awk}/resolve", value).status_code == 202
    assert flow.get(f"/restate/invocation/{inv}/attach").json() == ["c", "a", "2 done"]


def httpx_post_text(flow, path: str, text: str):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.post(f"{flow.url}{path}", content=text.encode(), headers={"content-type": "text/plain"})
