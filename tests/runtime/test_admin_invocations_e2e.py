"""The admin API's invocations over real HTTP against a real `stead serve`: the list
with its filters and pagination, one invocation's journal decoded entry by entry while
it runs and once it completed, purge, and the 4xx answers that change nothing. What
the API says is checked against what the handlers really did (their effects files)
and against the data directory read independently (tests/disk.py)."""

from __future__ import annotations

import json
from concurrent.futures import wait as wait_futures
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.conftest import FAILPOINTS_ENV, SteadServer, wait_for_lines, wait_until
from tests.disk import DiskReader, wait_on_disk


@pytest.fixture
def srv(tmp_path: Path, effects_dir: Path) -> Iterator[SteadServer]:
    server = SteadServer(tmp_path / "data", effects_dir).start()
    yield server
    server.kill()


def listing(srv: SteadServer, query: str = "") -> dict[str, Any]:
    resp = srv.admin("GET", f"/invocations{query}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def describe(srv: SteadServer, inv_id: str) -> dict[str, Any]:
    resp = srv.admin("GET", f"/invocations/{inv_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def send(srv: SteadServer, path: str, body: object, idempotency_key: str | None = None) -> str:
    headers = {"idempotency-key": idempotency_key} if idempotency_key else None
    resp = srv.post(f"{path}/send", body, headers=headers)
    assert resp.status_code == 202, resp.text
    return resp.json()["invocationId"]


def test_a_running_invocation_and_its_journal_then_completed(srv: SteadServer, effects_dir: Path) -> None:
    inv = send(srv, "/Steps/k1/run", "t1")
    wait_for_lines(effects_dir / "gates", 1)  # steps one and two are journaled; it waits at its gate

    def journaled() -> dict[str, Any] | None:
        d = describe(srv, inv)
        return d if d["journal_size"] >= 2 else None

    running = wait_until(journaled, what="two steps journaled")
    assert running["status"] == "running" and running["target"] == "Steps/k1/run"
    assert running["target_service_ty"] == "virtual_object" and running["invoked_by"] == "ingress"
    assert running["input"] == "t1" and running["completed_at"] is None and running["output"] is None
    steps = [(e["index"], e["kind"], e["name"], e["value"]) for e in running["journal"]]
    assert steps == [(0, "Run", "one", "a"), (1, "Run", "two", "b")]
    only = listing(srv, "?service=Steps&status=running")["invocations"]
    assert [i["id"] for i in only] == [inv]

    (effects_dir / "t1.gate").touch()
    done = wait_until(lambda: (d := describe(srv, inv))["status"] == "completed" and d, what="completed")
    assert done["output"] == "abc" and done["completion_result"] == "success" and done["failure"] is None
    kinds = [(e["kind"], e["name"]) for e in done["journal"]]
    assert kinds == [("Run", "one"), ("Run", "two"), ("Run", "three"), ("SetState", "result")]
    assert done["journal"][3]["value"] == "abc"
    assert done["completed_at"] >= done["created_at"]
    assert [i["id"] for i in listing(srv, "?service=Steps&status=running")["invocations"]] == []
    srv.stop()
    with DiskReader(srv.data_dir) as disk:  # the API showed what is on disk
        assert [(e.kind.name, e.name) for e in disk.journal(inv)] == [
            ("RUN", "one"), ("RUN", "two"), ("RUN", "three"), ("SET_STATE", "result")]


def test_failures_calls_and_sleeps_are_decoded(srv: SteadServer) -> None:
    failed = send(srv, "/Flaky/terminal_step", None)
    d = wait_until(lambda: (x := describe(srv, failed))["status"] == "completed" and x, what="failed")
    assert d["completion_result"] == "failure" and d["completion_failure"] == "[402] card declined"
    assert d["failure"] == {"code": 402, "message": "card declined"}
    assert d["journal"][0]["kind"] == "Run" and d["journal"][0]["failure"] == {"code": 402,
                                                                               "message": "card declined"}
    outer = send(srv, "/Gatekeeper/outer", "ann")
    d = wait_until(lambda: (x := describe(srv, outer))["status"] == "completed" and x, what="calls done")
    calls = [e for e in d["journal"] if e["kind"] == "Call"]
    assert [c["invoked_target"] for c in calls] == ["Hidden/secret", "Gatekeeper/inner"]
    assert all(c["completed"] and c["invoked_id"] for c in calls)
    callee = describe(srv, calls[0]["invoked_id"])
    assert callee["invoked_by"] == "service" and callee["invoked_by_id"] == outer
    assert calls[0]["completion"]["value"] == callee["output"]


def test_filters_and_pages_over_everything(srv: SteadServer) -> None:
    ids = [send(srv, f"/Cart/k{i % 3}/slow_add", f"item{i}") for i in range(25)]
    wait_until(lambda: len(listing(srv, "?service=Cart&status=completed&limit=1000")["invocations"]) == 25,
               what="all completed")
    seen: list[str] = []
    cursor = ""
    while True:
        page = listing(srv, f"?service=Cart&limit=7{'&cursor=' + cursor if cursor else ''}")
        assert len(page["invocations"]) <= 7
        seen += [i["id"] for i in page["invocations"]]
        if not page["next_cursor"]:
            break
        cursor = page["next_cursor"]
    assert seen == sorted(ids)  # every one exactly once, in id (= creation) order
    k1 = listing(srv, "?service=Cart&key=k1")["invocations"]
    assert {i["id"] for i in k1} == {ids[i] for i in range(25) if i % 3 == 1}
    assert all(i["target"] == "Cart/k1/slow_add" for i in k1)
    assert listing(srv, "?handler=items")["invocations"] == []
    first = describe(srv, ids[0])["created_at"]
    assert ids[0] not in [i["id"] for i in listing(srv, f"?service=Cart&created_after={first}")["invocations"]]
    assert listing(srv, "?service=Cart&created_before=2000-01-01T00:00:00Z")["invocations"] == []


@pytest.mark.parametrize("query, problem", [
    ("?status=sleeping", "unknown status"), ("?limit=0", "limit"), ("?limit=x", "limit"),
    ("?created_after=yesterday", "created_after"), ("?colour=red", "unknown filter"),
])
def test_bad_filters_are_400(srv: SteadServer, query: str, problem: str) -> None:
    resp = srv.admin("GET", f"/invocations{query}")
    assert resp.status_code == 400 and problem in resp.json()["message"]


def test_purge_a_completed_invocation_now(srv: SteadServer, effects_dir: Path) -> None:
    running = send(srv, "/Steps/k2/run", "t2", idempotency_key="once")
    wait_for_lines(effects_dir / "gates", 1)
    resp = srv.admin("PATCH", f"/invocations/{running}/purge")
    assert resp.status_code == 409 and "not completed" in resp.json()["message"]
    (effects_dir / "t2.gate").touch()
    wait_until(lambda: describe(srv, running)["status"] == "completed", what="completed")
    resp = srv.admin("PATCH", f"/invocations/{running}/purge")
    assert resp.status_code == 202 and resp.json() == {"invocationId": running, "status": "purged"}
    assert srv.admin("GET", f"/invocations/{running}").status_code == 404
    assert srv.admin("PATCH", f"/invocations/{running}/purge").status_code == 404
    # Its idempotency row went with it: the same key now starts a new invocation.
    again = send(srv, "/Steps/k2/run", "t2", idempotency_key="once")
    assert again != running
    srv.stop()
    with DiskReader(srv.data_dir) as disk:
        assert disk.invocation(running) is None and disk.journal(running) == []


def test_unknown_invocation_and_methods(srv: SteadServer) -> None:
    assert srv.admin("GET", "/invocations/inv_nope").status_code == 404
    for action in ("cancel", "kill", "purge"):
        assert srv.admin("PATCH", f"/invocations/inv_nope/{action}").status_code == 404
    assert srv.admin("POST", "/invocations/inv_nope/kill").status_code == 405
    body = json.loads(srv.admin("GET", "/invocations/inv_nope").text)
    assert set(body) >= {"message", "restate_code"}


def test_answers_wait_for_what_they_read_to_be_durable(tmp_path: Path, effects_dir: Path, pool) -> None:
    """The scans read written commits, which may not be synced yet: an answer that shows
    one must wait until it is durable (the barrier), as every other answer does. The writer
    is held after writing a send's admission and before syncing it."""
    srv = SteadServer(tmp_path / "held", effects_dir, env=FAILPOINTS_ENV).start()
    try:
        srv.failpoint("commit.before_sync", "pause")
        accepted = pool.submit(srv.post, "/Steps/h1/run/send", "held")
        wait_on_disk(srv.data_dir, lambda d: any(i.service == "Steps" for i in d.invocations().values()),
                     what="the admission written")
        listed = pool.submit(srv.admin, "GET", "/invocations?service=Steps")
        queried = pool.submit(httpx.post, f"{srv.admin_url}/query", json={"query": "SELECT id FROM sys_invocation"},
                              headers={"accept": "application/json"}, timeout=30)
        done, _ = wait_futures([listed, queried], timeout=1.0)
        assert not done, "an answer showed an invocation whose admission is not durable"
        srv.failpoint("commit.before_sync", None)
        inv = accepted.result(timeout=30).json()["invocationId"]
        assert [i["id"] for i in listed.result(timeout=30).json()["invocations"]] == [inv]
        assert [r["id"] for r in queried.result(timeout=30).json()["rows"]] == [inv]
    finally:
        srv.kill()
