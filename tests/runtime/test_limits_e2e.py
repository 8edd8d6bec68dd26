"""Concurrency and rate limits end to end (runtime/queues.py, pysdk/_limits.py): real
`stead serve` processes serving tests/apps/limitapp.py, whose handlers record when their
code runs; the test computes from those intervals how many ran at once."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import SteadServer, read_lines, wait_until
from tests.runtime.test_cli import stead

APP = "tests.apps.limitapp:application"


@pytest.fixture
def mode() -> str:
    return "normal"


@pytest.fixture
def limits(make_server, placement: str) -> SteadServer:  # type: ignore[no-untyped-def]
    return make_server(target=APP, placement=placement).start()


def intervals(effects_dir: Path, name: str) -> list[tuple[float, int, str, str]]:
    """(time, +1 enter / -1 exit, invocation id, limit key) of one handler, in time order."""
    out = []
    for line in read_lines(effects_dir / name):
        what, at, inv_id, limit_key = line.split()
        out.append((float(at), 1 if what == "enter" else -1, inv_id, limit_key))
    out.sort(key=lambda e: (e[0], e[1]))  # at a tie an exit counts first
    return out


def peak(events: list[tuple[float, int, str, str]], by_limit_key: bool = False) -> int:
    """The most intervals open at once (per limit key, the highest of them)."""
    open_: dict[str, int] = {}
    top = 0
    for _, delta, _, limit_key in events:
        group = limit_key if by_limit_key else ""
        open_[group] = open_.get(group, 0) + delta
        top = max(top, open_[group])
    return top


def send(server: SteadServer, path: str, body: object, query: str = "", **headers: str) -> str:
    resp = server.post(f"{path}/send{query}", body, headers=headers)
    assert resp.status_code == 202, resp.text
    return resp.json()["invocationId"]


def status(server: SteadServer, inv_id: str) -> dict:
    resp = server.admin("GET", f"/invocations/{inv_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def limits_of(server: SteadServer, service: str, handler: str) -> dict:
    resp = server.admin("GET", "/limits")
    assert resp.status_code == 200, resp.text
    return next(item for item in resp.json()["limits"]
                if item["service"] == service and item["handler"] == handler)


def test_a_limit_of_two_is_never_exceeded_under_a_hundred_concurrent_calls(
        limits: SteadServer, effects_dir: Path) -> None:
    with ThreadPoolExecutor(100) as pool:
        results = list(pool.map(lambda i: limits.post("/Limited/work", 20, timeout=60), range(100)))
    assert [r.status_code for r in results] == [200] * 100
    events = intervals(effects_dir, "work")
    assert len(events) == 200
    assert peak(events) == 2, "the limit is 2 and it was used"
    assert sorted(read_lines(effects_dir / "work-done")) == sorted(r.json() for r in results)


def test_queued_invocations_are_visible_survive_kill_9_and_run_once(
        make_server, effects_dir: Path) -> None:  # type: ignore[no-untyped-def]
    server = make_server(target=APP).start()
    ids = [send(server, "/Limited/hold", f"g{i}") for i in range(12)]
    wait_until(lambda: len(read_lines(effects_dir / "hold")) >= 2, what="two running")
    time.sleep(0.2)
    assert len(read_lines(effects_dir / "hold")) == 2
    statuses = [status(server, i)["status"] for i in ids]
    assert statuses == ["running"] * 2 + ["ready"] * 10, statuses
    view = limits_of(server, "Limited", "hold")
    assert (view["running"], view["queued"]) == (2, 10)
    assert view["service_limits"]["concurrency"] == 2
    listed = server.admin("GET", "/invocations?status=ready&service=Limited").json()["invocations"]
    assert sorted(item["id"] for item in listed) == sorted(ids[2:])
    metrics = server.admin("GET", "/metrics").text
    assert 'stead_queue_depth{handler="hold",service="Limited"} 10.0' in metrics
    query = {"query": "SELECT status, count(*) AS n FROM sys_invocation WHERE target_service_name = 'Limited' "
                      "GROUP BY status ORDER BY status"}
    rows = httpx.post(f"{server.admin_url}/query", json=query, headers={"accept": "application/json"},
                      timeout=30).json()["rows"]
    assert rows == [{"status": "ready", "n": 10}, {"status": "running", "n": 2}], rows

    server.kill()
    for i in range(12):
        (effects_dir / f"g{i}").touch()
    server.restart()
    wait_until(lambda: len(read_lines(effects_dir / "hold-done")) >= 12, timeout=30, what="all done")
    time.sleep(0.3)
    assert sorted(read_lines(effects_dir / "hold-done")) == sorted(ids), "each ran its step exactly once"
    for inv_id in ids:
        assert status(server, inv_id)["status"] == "completed"
    # After the restart the limit still holds (the first process's two intervals were cut
    # by the kill: only the second process's are counted), in arrival order.
    restarted = [e for e in intervals(effects_dir, "hold")][2:]
    assert peak(restarted) == 2
    started = [e[2] for e in restarted if e[1] == 1]
    assert started[:2] == ids[:2] or sorted(started[:2]) == sorted(ids[:2]), "the running two resume first"
    assert started[2:] == ids[2:], "then the queued ones, in arrival order"


def test_a_queued_invocation_cancelled_completes_at_once_without_running(
        limits: SteadServer, effects_dir: Path) -> None:
    first = send(limits, "/Limited/hold", "g1")
    second = send(limits, "/Limited/hold", "g2")
    queued = send(limits, "/Limited/hold", "never")
    killed = send(limits, "/Limited/hold", "never-either")
    wait_until(lambda: len(read_lines(effects_dir / "hold")) >= 2, what="two holding")
    assert status(limits, queued)["status"] == "ready"
    assert limits.admin("PATCH", f"/invocations/{killed}/kill").status_code == 202
    wait_until(lambda: status(limits, killed)["status"] == "completed", what="killed")
    resp = limits.admin("PATCH", f"/invocations/{queued}/cancel")
    assert resp.status_code == 202, resp.text
    wait_until(lambda: status(limits, queued)["status"] == "completed", what="cancelled")
    assert status(limits, queued)["completion_failure"] == "[409] cancelled"
    out = limits.get(f"/restate/invocation/{queued}/output")
    assert out.status_code == 409, out.text
    (effects_dir / "g1").touch()
    (effects_dir / "g2").touch()
    wait_until(lambda: status(limits, first)["status"] == "completed" and
               status(limits, second)["status"] == "completed", what="the others done")
    assert all(queued not in line and killed not in line for line in read_lines(effects_dir / "hold")), \
        "neither ever ran"
    assert limits_of(limits, "Limited", "hold")["queued"] == 0


def test_limit_keys_are_served_fairly_one_at_a_time_each(limits: SteadServer, effects_dir: Path) -> None:
    # Three slots, one per limit key: "a" holds one, and "a" queues five more behind it;
    # "b" and "c" each get a slot of their own at once, and never wait behind "a".
    send(limits, "/Tenants/job", "gate-a0", **{"x-restate-limit-key": "a"})
    wait_until(lambda: len(read_lines(effects_dir / "job-order")) == 1, what="a0 running")
    for i in range(1, 6):
        send(limits, "/Tenants/job", f"a{i}", **{"x-restate-limit-key": "a"})
    b = [send(limits, "/Tenants/job", f"b{i}", **{"x-restate-limit-key": "b"}) for i in range(3)]
    c = [send(limits, "/Tenants/job", f"c{i}", query="?limit-key=c") for i in range(3)]
    wait_until(lambda: all(status(limits, i)["status"] == "completed" for i in b + c), what="b and c done")
    order = [line.split()[0] for line in read_lines(effects_dir / "job-order")]
    assert order[0] == "gate-a0" and not any(n.startswith("a") and n != "gate-a0" for n in order), order
    assert sorted(order[1:]) == ["b0", "b1", "b2", "c0", "c1", "c2"]
    assert [n for n in order if n[0] == "b"] == ["b0", "b1", "b2"], "arrival order within a key"
    view = limits_of(limits, "Tenants", "job")
    assert {k["limit_key"]: (k["running"], k["queued"]) for k in view["limit_keys"]} == {"a": (1, 5)}
    out = stead("limits", "--admin-url", limits.admin_url)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0] if not line.strip().startswith("limit key") else " ".join(line.split()[:3]):
            line.split()[-2:] for line in out.stdout.splitlines() if line.strip()}
    assert rows["Tenants/job"] == ["1", "5"] and rows["limit key a"] == ["1", "5"], out.stdout
    assert "3 at once, 1 per limit key" in out.stdout
    (effects_dir / "gate-a0").touch()
    wait_until(lambda: len(read_lines(effects_dir / "job-order")) == 12, what="a done")
    events = intervals(effects_dir, "job")
    assert peak(events, by_limit_key=True) == 1
    assert peak(events) <= 3
    assert [line.split()[0] for line in read_lines(effects_dir / "job-order")][7:] == [f"a{i}" for i in range(1, 6)]


def test_calls_from_handlers_carry_their_limit_key(limits: SteadServer, effects_dir: Path) -> None:
    assert limits.post("/Tenants/fan", 4).status_code == 200
    wait_until(lambda: len(read_lines(effects_dir / "job-order")) == 4, what="four jobs")
    wait_until(lambda: len(read_lines(effects_dir / "job")) == 8, what="four jobs done")
    assert read_lines(effects_dir / "job-order") == [f"z{i} z" for i in range(4)]
    assert peak(intervals(effects_dir, "job")) == 1, "one at a time under the limit key z"


def test_objects_keep_their_per_key_exclusivity_under_a_limit(limits: SteadServer, effects_dir: Path) -> None:
    keys = ["k1", "k2", "k3", "k4"]
    with ThreadPoolExecutor(40) as pool:
        results = list(pool.map(lambda i: limits.post(f"/Accounts/{keys[i % 4]}/deposit", 1, timeout=60),
                                range(40)))
    assert all(r.status_code == 200 for r in results), [r.text for r in results if r.status_code != 200]
    assert sorted(r.json() for r in results) == sorted(list(range(1, 11)) * 4)
    events = intervals(effects_dir, "deposit")
    assert peak(events) == 2
    by_key: dict[str, list] = {}
    ids = {r.headers["x-restate-id"]: keys[i % 4] for i, r in enumerate(results)}
    for e in events:
        by_key.setdefault(ids[e[2]], []).append(e)
    assert all(peak(es) == 1 for es in by_key.values()), "one at a time per key"


def test_a_rate_limit_spaces_new_starts(limits: SteadServer, effects_dir: Path) -> None:
    begin = time.time()
    for n in range(15):
        send(limits, "/Rated/tick", n)
    wait_until(lambda: len(read_lines(effects_dir / "tick")) == 15, timeout=20, what="15 ticks")
    times = sorted(float(line.split()[0]) for line in read_lines(effects_dir / "tick"))
    # A burst of 5, then one every 200 ms: the 15th starts about 2 s after the first.
    assert times[-1] - times[0] >= 1.8, times
    for i in range(len(times)):  # in any window of 1 s, at most 5 + 5 starts
        assert sum(1 for t in times if times[i] <= t < times[i] + 1.0) <= 10
    assert times[4] - begin < 1.5, "the burst is not held back"


def test_a_bad_limit_key_is_refused_and_changes_nothing(limits: SteadServer, effects_dir: Path) -> None:
    for headers, path in (({"x-restate-limit-key": "a b"}, "/Limited/work"),
                          ({}, "/Limited/work?limit-key=" + "x" * 37),
                          ({"x-restate-limit-key": "a/b/c"}, "/Limited/work/send")):
        resp = httpx.post(f"{limits.url}{path}", content=b"1", timeout=10,
                          headers={"content-type": "application/json", **headers})
        assert resp.status_code == 400, resp.text
        assert "invalid limit key" in resp.json()["message"]
    assert read_lines(effects_dir / "work") == []
    assert limits.post("/Limited/work", 1, headers={"x-restate-limit-key": "tenant-1/user.42"}).status_code == 200
    assert limits_of(limits, "Limited", "work")["queued"] == 0
