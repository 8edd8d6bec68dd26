"""Pause and resume (Restate's), end to end over real HTTP: PATCH /invocations/{id}/pause
stops a started invocation (running at a gate, waiting for an awakeable, sleeping) until
PATCH /invocations/{id}/resume replays it from its journal. While paused it runs nothing,
keeps its object key (later exclusive invocations of the key wait in its inbox), and the
completions that reach it are stored without waking it. The pause survives `kill -9` and
a restart. Cancel resumes a paused invocation so that it sees the cancellation; kill ends it.

Handlers: Steps/{key}/run (tests/apps/testapp.py: steps one and two, a gate, step three),
Queue/{key}/hold and Lane/{key}/nap (tests/apps/behaviourapp.py). A step's line in an
effects file is written once per execution of the step; a body line on every run.

"Nothing runs while paused" is a negative observation: each such check looks for a
bounded window (`QUIET_S`) after giving the handler every reason to go on (its gate open,
its completion stored), as nothing signals that something did not happen.
"""

from __future__ import annotations

import time

import httpx

from tests.conftest import read_lines, wait_for_lines, wait_until
from tests.disk import EntryKind, Status, read_disk, wait_on_disk

QUIET_S = 1.0  # the gate is polled every 20 ms: a paused handler that went on would show by then


def _patch(server, inv: str, action: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    return server.admin("PATCH", f"/invocations/{inv}/{action}")


def _status(server, inv: str) -> str:  # type: ignore[no-untyped-def]
    resp = server.admin("GET", f"/invocations/{inv}")
    assert resp.status_code == 200, resp.text
    return resp.json()["status"]


def _steps(effects_dir, tag: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The lines of Steps/run's steps (not its body's "after-two"), in order."""
    return [line for line in read_lines(effects_dir / f"{tag}.log") if line in ("1", "2", "3")]


def _stays(what, expected, seconds: float = QUIET_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert what() == expected
        time.sleep(0.05)


def test_a_paused_invocation_runs_nothing_until_resumed(server, effects_dir) -> None:
    key = "p"
    inv = server.post(f"/Steps/{key}/run/send", "p1").json()["invocationId"]
    wait_until(lambda: "at p1.gate" in read_lines(effects_dir / "gates"), what="the handler at its gate")

    resp = _patch(server, inv, "pause")
    assert (resp.status_code, resp.json()) == (202, {"invocationId": inv, "status": "paused"})
    assert _status(server, inv) == "paused"
    again = _patch(server, inv, "pause")
    assert (again.status_code, again.json()) == (200, {"invocationId": inv, "status": "paused"}), "already paused"

    # A later exclusive invocation of the key waits: the paused one keeps the key.
    (effects_dir / "p2.gate").touch()
    later = server.post(f"/Steps/{key}/run/send", "p2").json()["invocationId"]
    wait_on_disk(server.data_dir, lambda d: d.inbox("Steps", key) == [later], what="the later one inboxed")
    assert _status(server, later) == "pending"
    # It has not started: it can be neither paused (409) nor resumed (425, Restate's "too early").
    assert _patch(server, later, "pause").status_code == 409
    assert _patch(server, later, "resume").status_code == 425

    # Its gate opens, yet nothing runs: the attempt was closed when it was paused.
    (effects_dir / "p1.gate").touch()
    _stays(lambda: (_steps(effects_dir, "p1"), _steps(effects_dir, "p2")), (["1", "2"], []))
    assert server.get(f"/restate/invocation/{inv}/output").status_code == 470  # no result yet
    assert read_disk(server.data_dir, lambda d: (d.invocation(inv).status, d.invocation(later).status)) == (
        Status.PAUSED, Status.INBOXED)
    assert server.post(f"/Steps/{key}/result").status_code == 200, "shared handlers of the key still run"

    resp = _patch(server, inv, "resume")
    assert (resp.status_code, resp.json()) == (200, {"invocationId": inv, "status": "running"})
    assert server.get(f"/restate/invocation/{inv}/attach").json() == "abc"
    assert server.get(f"/restate/invocation/{later}/attach").json() == "abc"
    assert _steps(effects_dir, "p1") == ["1", "2", "3"], "each step ran once"
    assert _steps(effects_dir, "p2") == ["1", "2", "3"]
    # Completed: neither applies any more (Restate: 409); unknown: 404.
    assert _patch(server, inv, "pause").status_code == 409
    assert _patch(server, inv, "resume").status_code == 409
    assert _patch(server, "inv_1nothing", "pause").status_code == 404
    assert _patch(server, "inv_1nothing", "resume").status_code == 404
    assert server.admin("GET", f"/invocations/{inv}/pause").status_code == 405


def test_completions_are_kept_while_paused_without_waking_it(behaviour, effects_dir) -> None:
    """An awakeable resolved and a sleep that fires while paused: both completions are
    stored (on disk) and the invocation stays paused; the resume's replay gets them."""
    server = behaviour
    hold = server.post("/Queue/a/hold/send", "awakeable").json()["invocationId"]
    wait_for_lines(effects_dir / "queue-a-waiting", 1)
    nap = server.post("/Lane/n/nap/send", 3000).json()["invocationId"]
    wait_for_lines(effects_dir / "nap-n", 1)  # "before": its sleep of 3 s is next
    assert _patch(server, hold, "pause").status_code == 202
    assert _patch(server, nap, "pause").status_code == 202
    entered = server.post("/Queue/a/enter/send", "after").json()["invocationId"]

    awakeable = read_lines(effects_dir / "queue-a-awakeable")[0]
    assert server.post(f"/restate/awakeables/{awakeable}/resolve", "go").status_code == 202
    hold_awakeable = read_disk(server.data_dir, lambda d: [i for i, e in enumerate(d.journal(hold))
                                                           if e.kind == EntryKind.AWAKEABLE])

    def both_completed(d):  # type: ignore[no-untyped-def]
        return all(i in d.completions(hold) for i in hold_awakeable) and len(d.completions(nap)) == 1

    wait_on_disk(server.data_dir, both_completed, what="the awakeable and the sleep completed")
    assert read_disk(server.data_dir, lambda d: (d.invocation(hold).status, d.invocation(nap).status,
                                                 d.inbox("Queue", "a"))) == (Status.PAUSED, Status.PAUSED, [entered])
    _stays(lambda: (read_lines(effects_dir / "queue-a"), read_lines(effects_dir / "nap-n")), ([], ["before"]))

    assert _patch(server, hold, "resume").status_code == 200
    assert _patch(server, nap, "resume").status_code == 200
    assert server.get(f"/restate/invocation/{hold}/attach").json() == "go"
    assert server.get(f"/restate/invocation/{entered}/attach").json() == ["hold", "after"]
    assert server.get(f"/restate/invocation/{nap}/attach").json() == "rested"
    assert read_lines(effects_dir / "queue-a") == ["release hold", "enter after"]
    assert read_lines(effects_dir / "nap-n") == ["before", "after"]


def test_a_pause_survives_a_crash_and_a_restart(server, effects_dir) -> None:
    key = "crash"
    inv = server.post(f"/Steps/{key}/run/send", "c1").json()["invocationId"]
    wait_until(lambda: "at c1.gate" in read_lines(effects_dir / "gates"), what="the handler at its gate")
    assert _patch(server, inv, "pause").status_code == 202  # durable once answered
    later = server.post(f"/Steps/{key}/run/send", "c2").json()["invocationId"]
    wait_on_disk(server.data_dir, lambda d: d.inbox("Steps", key) == [later], what="the later one inboxed")
    server.kill()

    def on_disk(d):  # type: ignore[no-untyped-def]
        r = d.invocation(inv)
        return (r.status, [e.name for e in d.journal(inv)], d.invocation(later).status, d.inbox("Steps", key),
                [t for t in d.timers() if t.invocation_id == inv])

    assert read_disk(server.data_dir, on_disk) == (Status.PAUSED, ["one", "two"], Status.INBOXED, [later], [])

    server.restart()
    assert (_status(server, inv), _status(server, later)) == ("paused", "pending")
    (effects_dir / "c1.gate").touch()
    (effects_dir / "c2.gate").touch()
    # Recovery resumed neither: the paused one still holds the key.
    _stays(lambda: (_steps(effects_dir, "c1"), _steps(effects_dir, "c2")), (["1", "2"], []))
    assert _patch(server, inv, "pause").status_code == 200, "still paused"
    assert _patch(server, inv, "resume").status_code == 200
    assert server.get(f"/restate/invocation/{inv}/attach").json() == "abc"
    assert server.get(f"/restate/invocation/{later}/attach").json() == "abc"
    assert _steps(effects_dir, "c1") == ["1", "2", "3"], "steps one and two were replayed, not run again"
    assert _steps(effects_dir, "c2") == ["1", "2", "3"]


def test_cancel_resumes_a_paused_invocation_and_kill_ends_it(behaviour, effects_dir, pool) -> None:
    server = behaviour
    cancelled = server.post("/Queue/c/hold/send", "awakeable").json()["invocationId"]
    killed = server.post("/Queue/k/hold/send", "awakeable").json()["invocationId"]
    wait_for_lines(effects_dir / "queue-c-waiting", 1)
    wait_for_lines(effects_dir / "queue-k-waiting", 1)
    for inv in (cancelled, killed):
        assert _patch(server, inv, "pause").status_code == 202
    after_kill = server.post("/Queue/k/enter/send", "next").json()["invocationId"]
    attached = pool.submit(server.get, f"/restate/invocation/{killed}/attach")

    # Cancel: resumed so that it sees the cancellation at its await (Restate's).
    assert _patch(server, cancelled, "cancel").status_code == 202
    out = server.get(f"/restate/invocation/{cancelled}/attach")
    assert out.status_code == 409 and out.json() == {"code": 409, "message": "cancelled"}
    # Kill: completed at once, the key handed over, its attached client answered.
    assert _patch(server, killed, "kill").status_code == 202
    out = attached.result(timeout=30)
    assert out.status_code == 409 and out.json() == {"code": 409, "message": "killed"}
    assert server.get(f"/restate/invocation/{after_kill}/attach").json() == ["hold", "next"]
    assert read_lines(effects_dir / "queue-k") == ["enter next"], "the killed one ran nothing more"
    assert _patch(server, killed, "resume").status_code == 409
