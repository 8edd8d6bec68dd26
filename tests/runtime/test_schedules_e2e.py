"""Cron schedules end to end: real `stead serve` processes, killed with SIGKILL, firing
handlers of tests/apps/schedapp.py, which record each firing (its fire time, its
invocation id, when it ran) in the effects file named after the schedule."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SteadServer, read_lines, wait_until
from tests.runtime.test_cli import stead

APP = "tests.apps.schedapp:application"
DECLARED = "tests.apps.schedapp:declared"
CHANGED = "tests.apps.schedapp:changed"


@pytest.fixture
def mode() -> str:
    """Normal mode: the replay of the schedules' object is covered by the code-declared
    test, which runs with --always-replay."""
    return "normal"


def admin(server: SteadServer, method: str, path: str, body: Any = None) -> httpx.Response:
    content = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return server.admin(method, path, content)


def create(server: SteadServer, **doc: Any) -> dict[str, Any]:
    resp = admin(server, "POST", "/schedules", doc)
    assert resp.status_code == 201, resp.text
    return resp.json()


def get(server: SteadServer, schedule_id: str) -> dict[str, Any]:
    resp = admin(server, "GET", f"/schedules/{schedule_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


class Firings:
    """The lines of one schedule's effects file."""

    def __init__(self, effects_dir: Path, name: str) -> None:
        self.path = effects_dir / name

    def lines(self) -> list[list[str]]:
        return [line.split() for line in read_lines(self.path)]

    def invocations(self) -> dict[int, set[str]]:
        """Fire time -> the invocations that ran for it (one, unless it was sent twice)."""
        out: dict[int, set[str]] = defaultdict(set)
        for fire, inv, *_ in self.lines():
            out[ms(fire)].add(inv)
        return out

    def times(self) -> list[int]:
        return sorted(self.invocations())

    def wait(self, count: int, timeout: float = 20.0) -> list[int]:
        return wait_until(lambda: len(t := self.times()) >= count and t, timeout, f"{count} firings in {self.path}")

    def wait_past(self, at_ms: float, timeout: float = 20.0) -> list[int]:
        return wait_until(lambda: (t := self.times()) and t[-1] >= at_ms and t, timeout,
                          f"a firing after {at_ms} in {self.path}")


def assert_once_each(f: Firings) -> dict[int, set[str]]:
    runs = f.invocations()
    doubles = {t: ids for t, ids in runs.items() if len(ids) > 1}
    assert not doubles, f"fire times sent more than once: {doubles}"
    return runs


def test_every_second_across_kill_9_no_double_and_no_missed_fire(make_server, effects_dir: Path) -> None:
    server: SteadServer = make_server(target=APP).start()
    created = create(server, id="tick", service="Jobs", handler="record", every="1s", catchup="ALL",
                     overlap="ALLOW_ALL")
    assert created["next_fire_at"] and len(created["upcoming"]) == 5
    f = Firings(effects_dir, "tick")
    f.wait(3)
    server.kill()
    killed = time.time() * 1000
    time.sleep(2.2)  # down while two or three fire times pass
    server.restart()
    f.wait_past(killed + 4000)
    runs = assert_once_each(f)
    times = sorted(runs)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert set(gaps) == {1000}, f"missed fire times: {[(a, b) for a, b in zip(times, times[1:]) if b - a != 1000]}"
    # Those due while the server was down ran late, once it was back.
    late = [int(line[2]) - ms(line[0]) for line in f.lines() if killed < ms(line[0]) < killed + 2000]
    assert late and max(late) > 1000, late
    doc = get(server, "tick")  # late by less than grace (10s): run as on time, not missed
    assert doc["missed"] == doc["caught_up"] == 0 and doc["fired"] >= len(times)


def test_a_schedules_tick_cannot_be_killed_cancelled_or_paused(make_server, effects_dir: Path) -> None:
    server: SteadServer = make_server(target=APP).start()
    create(server, id="kept", service="Jobs", handler="record", every="1s")
    f = Firings(effects_dir, "kept")
    f.wait(1)
    listed = admin(server, "GET", "/invocations?service=stead.Schedules").json()["invocations"]
    ticks = [i["id"] for i in listed if i["status"] != "completed"]
    assert ticks, listed
    for path, method in ((f"/invocations/{ticks[0]}/kill", "PATCH"), (f"/invocations/{ticks[0]}/cancel", "PATCH"),
                         (f"/invocations/{ticks[0]}/pause", "PATCH"), (f"/invocations/{ticks[0]}?mode=kill", "DELETE")):
        resp = admin(server, method, path)
        assert resp.status_code == 409, resp.text
        message = resp.json()["message"]
        assert "tick of the cron schedule 'kept'" in message and "/schedules/kept" in message
    fired = len(f.lines())
    f.wait(fired + 2)  # it goes on firing


def test_catch_up_policies_after_downtime(make_server, effects_dir: Path) -> None:
    server: SteadServer = make_server(target=APP).start()
    for policy in ("SKIP", "ONE", "ALL"):
        create(server, id=f"catchup-{policy}", service="Jobs", handler="record", every="1s", catchup=policy,
               overlap="ALLOW_ALL", grace="1s")
    firings = {p: Firings(effects_dir, f"catchup-{p}") for p in ("SKIP", "ONE", "ALL")}
    for f in firings.values():
        f.wait(2)
    server.kill()
    time.sleep(4.0)  # four fire times pass; with grace 1s, three or more are missed
    server.restart()
    back = time.time() * 1000
    for f in firings.values():
        f.wait_past(back + 1000)
    docs = {p: get(server, f"catchup-{p}") for p in firings}
    times = {p: sorted(assert_once_each(f)) for p, f in firings.items()}
    # ALL: every fire time ran, the missed ones late.
    assert {b - a for a, b in zip(times["ALL"], times["ALL"][1:])} == {1000}
    assert docs["ALL"]["caught_up"] >= 3 and docs["ALL"]["missed"] == 0, docs["ALL"]
    # ONE: one run for all the missed ones; SKIP: none.
    assert docs["ONE"]["caught_up"] == 1 and docs["ONE"]["missed"] >= 2, docs["ONE"]
    assert docs["SKIP"]["caught_up"] == 0 and docs["SKIP"]["missed"] >= 3, docs["SKIP"]
    for p in ("ONE", "SKIP"):
        gap = max(b - a for a, b in zip(times[p], times[p][1:]))
        assert gap >= 3000, (p, times[p])
    # What ONE ran for the missed ones is the latest of them: the run after the gap is at most
    # grace (1s) before the first on-time one.
    one = times["ONE"]
    i = max(range(1, len(one)), key=lambda i: one[i] - one[i - 1])
    assert one[i + 1] - one[i] == 1000, one


@pytest.mark.parametrize("always_replay", [False, True], ids=["normal", "replay"])
def test_overlap_skip_and_buffer_one_with_a_slow_handler(make_server, effects_dir: Path, always_replay: bool) -> None:
    server: SteadServer = make_server(target=APP, always_replay=always_replay).start()
    for policy in ("SKIP", "BUFFER_ONE"):
        create(server, id=f"slow-{policy}", service="Jobs", handler="slow", every="1s", overlap=policy)
    files = {p: Firings(effects_dir, f"slow-{p}") for p in ("SKIP", "BUFFER_ONE")}

    def runs(p: str) -> list[tuple[int, int, int]]:
        """(fire time, start, end) of each finished run, by start."""
        start, end = {}, {}
        for fire, _inv, at, what in files[p].lines():
            (start if what == "start" else end)[ms(fire)] = int(at)
        return sorted(((t, start[t], end[t]) for t in end), key=lambda r: r[1])

    wait_until(lambda: all(len(runs(p)) >= 2 for p in files), 20, "two finished runs of each")
    for p in files:
        done = runs(p)
        for (_, _, prev_end), (_, start, _) in zip(done, done[1:]):
            assert start >= prev_end, f"{p}: a run started before the previous one ended: {done}"
    skip, buffered = runs("SKIP"), runs("BUFFER_ONE")
    # SKIP: the firings while the first ran (2.5 s) were skipped; the next one is on time.
    assert skip[1][0] - skip[0][0] >= 3000 and skip[1][1] - skip[1][0] < 1000, skip
    # BUFFER_ONE: the firing right after the first waited, and started when it ended.
    assert buffered[1][0] - buffered[0][0] == 1000, buffered
    assert 0 <= buffered[1][1] - buffered[0][2] < 1000, buffered
    assert get(server, "slow-SKIP")["overlapped"] >= 2
    assert get(server, "slow-BUFFER_ONE")["overlapped"] >= 1


def test_a_schedule_of_a_deployments_handler(make_server, effects_dir: Path) -> None:
    """The target runs in a deployment (over gRPC); the schedule runs in the runtime."""
    server: SteadServer = make_server(target=APP, placement="remote").start()
    create(server, id="remote", service="Counters", key="r", handler="bump", every="1s")
    f = Firings(effects_dir, "remote")
    f.wait(2)
    assert_once_each(f)
    assert {line[3] for line in f.lines()} == {"key=r"}
    assert get(server, "remote")["fired"] >= 2


def test_admin_api_crud_and_bad_input(make_server, effects_dir: Path) -> None:
    server: SteadServer = make_server(target=APP).start()
    doc = create(server, id="crud", service="Counters", key="c", handler="bump", cron="*/5 * * * *",
                 timezone="Europe/Paris")
    assert (doc["origin"], doc["paused"], doc["target"], doc["timezone"]) == ("api", False, "Counters/c/bump",
                                                                           "Europe/Paris")
    upcoming = [ms(t) for t in doc["upcoming"]]
    assert len(upcoming) == 5 and {b - a for a, b in zip(upcoming, upcoming[1:])} == {300_000}
    assert doc["next_fire_at"] == doc["upcoming"][0] and ms(doc["next_fire_at"]) > time.time() * 1000

    resp = admin(server, "POST", "/schedules", {"id": "crud", "service": "Jobs", "handler": "record", "every": "1s"})
    assert resp.status_code == 409 and "already exists" in resp.json()["message"]
    assert [s["id"] for s in admin(server, "GET", "/schedules").json()["schedules"]] == ["crud"]
    assert get(server, "crud")["cron"] == "*/5 * * * *"

    # Change it to every second: it fires.
    changed = admin(server, "PATCH", "/schedules/crud", {"every": "1s"}).json()
    assert (changed["cron"], changed["every"], changed["timezone"]) == (None, "1s", None)
    f = Firings(effects_dir, "crud")
    f.wait(1)
    assert f.lines()[0][3] == "key=c"
    # Paused, nothing fires (but what was sent just before may still be running).
    paused = admin(server, "PATCH", "/schedules/crud", {"paused": True}).json()
    assert paused["paused"] and paused["next_fire_at"] is None and paused["upcoming"] == []
    time.sleep(0.3)
    count = len(f.times())
    time.sleep(2.0)  # two fire times pass while paused
    assert len(f.times()) == count
    resumed = admin(server, "PATCH", "/schedules/crud", {"paused": False}).json()
    assert not resumed["paused"] and resumed["next_fire_at"]
    f.wait(count + 1)
    assert get(server, "crud")["missed"] == 0  # the paused time is not made up

    resp = admin(server, "DELETE", "/schedules/crud")
    assert resp.status_code == 202 and resp.json() == {"id": "crud", "status": "removed"}
    for method, body in (("GET", None), ("DELETE", None), ("PATCH", {"paused": True})):
        resp = admin(server, method, "/schedules/crud", body)
        assert resp.status_code == 404 and "not found" in resp.json()["message"], resp.text
    assert admin(server, "GET", "/schedules").json() == {"schedules": []}

    good = {"id": "bad", "service": "Jobs", "handler": "record", "every": "1s"}
    for body, words in [
        (b"{not json", "not JSON"),
        ([1, 2], "JSON object"),
        ({**good, "cron": "0 3 * * *"}, "exactly one"),
        ({**good, "every": None, "cron": "0 25 * * *"}, "cron"),
        ({**good, "every": None, "cron": "0 3 * * *", "timezone": "Nowhere/Land"}, "timezone"),
        ({**good, "every": "fast"}, "every"),
        ({**good, "service": "Nope"}, "service"),
        ({**good, "service": "stead.Schedules"}, "service"),
        ({**good, "handler": "nope"}, "handler"),
        ({**good, "service": "Counters", "handler": "bump"}, "key"),
        ({**good, "key": "k"}, "key"),
        ({**good, "catchup": "SOMETIMES"}, "catchup"),
        ({**good, "overlap": "TERMINATE_OTHER"}, "overlap"),
        ({**good, "id": "a b"}, "id"),
        ({**good, "color": "red"}, "unknown field"),
        ({**good, "handler": "record_input", "input": "seven"}, "input"),
    ]:
        resp = admin(server, "POST", "/schedules", body)
        assert resp.status_code == 400, (body, resp.text)
        assert words in resp.json()["message"], (body, resp.json())
    create(server, **good, paused=True)
    for body, words in [({"cron": "nope"}, "cron"), ({"paused": "yes"}, "paused"), ({"id": "other"}, "id"),
                        (b"[]", "JSON object")]:
        resp = admin(server, "PATCH", "/schedules/bad", body)
        assert resp.status_code == 400 and words in resp.json()["message"], (body, resp.text)
    assert admin(server, "PUT", "/schedules").status_code == 405
    assert admin(server, "GET", "/schedules/bad/x").status_code == 404
    # Nothing was written by the refusals; the schedules' object is nobody's to call or list.
    assert get(server, "bad")["every"] == "1s" and get(server, "bad")["paused"]
    assert server.post("/stead.Schedules/bad/tick", {"gen": "x"}).status_code == 400
    assert "stead.Schedules" not in server.get("/restate/health").json()["services"]
    assert "stead.Schedules" not in {s["name"] for s in admin(server, "GET", "/services").json()["services"]}


def test_cli_commands(make_server, effects_dir: Path) -> None:
    server: SteadServer = make_server(target=APP).start()

    def run(*args: str, code: int = 0) -> str:
        out = stead("schedules", *args, "--admin-url", server.admin_url)
        assert out.returncode == code, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        return out.stdout if code == 0 else out.stderr

    assert run("add", "cli-job", "Jobs/record", "--every", "1s").startswith("cli-job: created, next at ")
    assert "cli-obj: created" in run("add", "cli-obj", "Counters/k9/bump", "--cron", "*/10 * * * *",
                                     "--tz", "Europe/Paris", "--catchup", "all", "--overlap", "buffer-one",
                                     "--paused")
    listed = run("list")
    assert "2 schedules" in listed
    [job] = [line for line in listed.splitlines() if line.startswith("cli-job")]
    assert "Jobs/record" in job and "every 1s" in job and "active" in job
    [obj] = [line for line in listed.splitlines() if line.startswith("cli-obj")]
    assert "Counters/k9/bump" in obj and "Europe/Paris" in obj and "paused" in obj
    assert [s["id"] for s in json.loads(run("list", "--json"))["schedules"]] == ["cli-job", "cli-obj"]
    Firings(effects_dir, "cli-job").wait(1)
    described = run("describe", "cli-job")
    assert "next fire times:" in described and "Jobs/record" in described and "last invocation" in described
    assert json.loads(run("describe", "cli-obj", "--json"))["overlap"] == "BUFFER_ONE"

    assert run("pause", "cli-job") == "cli-job: paused\n"
    assert get(server, "cli-job")["paused"]
    assert run("resume", "cli-job").startswith("cli-job: resumed, next at ")
    assert "cli-obj: updated" in run("update", "cli-obj", "--every", "2s")
    assert get(server, "cli-obj")["every"] == "2s"
    assert run("remove", "cli-obj") == "removed cli-obj\n"
    err = run("describe", "cli-obj", code=1)
    assert err.startswith("stead: ") and "not found" in err and "(HTTP 404)" in err
    err = run("add", "bad", "Jobs/record", "--cron", "not a cron", code=1)
    assert "cron" in err and "(HTTP 400)" in err
    assert "exactly one of --cron and --every" in run("add", "bad", "Jobs/record", code=1)


def test_code_declared_schedules(make_server, effects_dir: Path) -> None:
    """Declared in the app: created at start, replayed (--always-replay) without firing twice,
    changed and deleted with the code at the next start."""
    server: SteadServer = make_server(target=DECLARED, always_replay=True).start()
    every, objects, workflows = (Firings(effects_dir, n) for n in ("code-every", "code-object", "code-workflow"))
    for f in (every, objects, workflows):
        f.wait(2)
    docs = {s["id"]: s for s in admin(server, "GET", "/schedules").json()["schedules"]}
    assert set(docs) == {"code-every", "code-object", "code-workflow"}
    assert {s["origin"] for s in docs.values()} == {"code"}
    assert {line[3] for line in objects.lines()} == {"key=k1"}
    for fire, _inv, _at, key in workflows.lines():
        assert key == f"key=code-workflow@{fire}"  # a workflow run per firing, keyed by it
    # Operators may pause a schedule of the code; the pause outlives a restart.
    assert admin(server, "PATCH", "/schedules/code-object", {"paused": True}).json()["paused"]
    server.stop()
    server.restart()
    assert get(server, "code-object")["paused"]
    before = len(every.times())
    every.wait(before + 2)
    assert_once_each(every)

    server.stop()
    server.target = CHANGED
    server.restart()
    [doc] = admin(server, "GET", "/schedules").json()["schedules"]
    assert (doc["id"], doc["handler"], doc["every"], doc["input"]) == ("code-every", "record_input", "2s", {"n": 7})
    wait_until(lambda: any(line[3:] == ["input=7"] for line in every.lines()), 20, "a firing of the new code")
    assert all(ms(line[0]) % 2000 == 0 for line in every.lines() if line[3:] == ["input=7"])
    assert_once_each(every)
