"""Idempotency keys over real HTTP (Restate's `idempotency-key` header): requests with one
key make one invocation that executes once, whether they arrive together, while it runs,
or after the server was killed with SIGKILL; every duplicate gets that invocation's id
and result (a call attaches, a send is 202 PreviouslyAccepted).

The handler (Once/work) runs a step, waits at a gate, runs a step (its second gate is
opened from the start): the steps' effects count executions; the gate holds the first
execution while the duplicates arrive.
"""

from __future__ import annotations

import threading

import httpx

from tests.conftest import BEHAVIOUR_APP, read_lines, wait_until
from tests.disk import EntryKind, Status, read_disk

N = 8


def _start(effects_dir, tag: str) -> None:  # type: ignore[no-untyped-def]
    (effects_dir / f"once-{tag}-return").touch()


def _gated(effects_dir, tag: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until an execution of Once/work for `tag` waits at its gate (its first step
    is durable then, in both modes)."""
    wait_until(lambda: f"at once-{tag}-gate" in read_lines(effects_dir / "gates"), what=f"Once/work {tag} at its gate")


def test_concurrent_requests_with_one_key_make_one_invocation(behaviour, effects_dir, pool) -> None:
    server = behaviour
    start = threading.Barrier(N)
    key = {"idempotency-key": "together"}

    def call() -> httpx.Response:
        start.wait(timeout=10)
        return server.post("/Once/work", "t", headers=key, timeout=60)

    def send() -> httpx.Response:
        start.wait(timeout=10)
        return server.post("/Once/work/send", "t", headers=key, timeout=60)

    _start(effects_dir, "t")
    calls = [pool.submit(call) for _ in range(N // 2)]
    sends = [pool.submit(send) for _ in range(N // 2)]
    _gated(effects_dir, "t")
    accepted = [f.result(timeout=30) for f in sends]  # a send's answer does not wait for the result
    (effects_dir / "once-t-gate").touch()
    results = [f.result(timeout=30) for f in calls]

    ids = {r.headers["x-restate-id"] for r in results} | {r.json()["invocationId"] for r in accepted}
    assert len(ids) == 1, ids
    (inv,) = ids
    assert all(r.status_code == 200 and r.json() == f"t by {inv}" for r in results), [r.text for r in results]
    statuses = sorted(r.json()["status"] for r in accepted)
    assert all(r.status_code == 202 for r in accepted)
    assert statuses.count("Accepted") <= 1 and statuses.count("PreviouslyAccepted") >= N // 2 - 1, statuses
    assert read_lines(effects_dir / "once-t") == ["begin", "end"]
    server.stop()
    with_disk = read_disk(server.data_dir, lambda d: (d.idempotency(), list(d.invocations())))
    assert with_disk == ({("Once", "", "work", "together"): inv}, [inv])


def test_a_duplicate_while_the_first_runs_attaches_to_it(behaviour, effects_dir, pool) -> None:
    server = behaviour
    key = {"idempotency-key": "running"}
    _start(effects_dir, "r")
    first = pool.submit(server.post, "/Once/work", "r", headers=key, timeout=60)
    _gated(effects_dir, "r")
    duplicate = pool.submit(server.post, "/Once/work", "r", headers=key, timeout=60)
    again = server.post("/Once/work/send", "r", headers=key)
    assert again.status_code == 202 and again.json()["status"] == "PreviouslyAccepted"
    inv = again.json()["invocationId"]
    assert not first.done() and not duplicate.done()
    assert server.get(f"/restate/invocation/Once/work/running/output").status_code == 470  # not ready
    (effects_dir / "once-r-gate").touch()
    for resp in (first.result(timeout=30), duplicate.result(timeout=30)):
        assert resp.status_code == 200 and resp.json() == f"r by {inv}" and resp.headers["x-restate-id"] == inv
    assert read_lines(effects_dir / "once-r") == ["begin", "end"]


def test_a_duplicate_after_kill_attaches_to_the_recovered_invocation(make_server, effects_dir, pool) -> None:
    server = make_server(target=BEHAVIOUR_APP).start()
    key = {"idempotency-key": "crash"}
    _start(effects_dir, "c")
    first = pool.submit(server.post, "/Once/work", "c", headers=key, timeout=60)
    _gated(effects_dir, "c")
    server.kill()
    assert isinstance(first.exception(timeout=30), httpx.TransportError)

    def on_disk(d):  # type: ignore[no-untyped-def]
        (inv,) = d.idempotency().values()
        return inv, d.invocation(inv), d.journal(inv)

    inv, record, journal = read_disk(server.data_dir, on_disk)
    assert record.status == Status.RUNNING and record.idempotency_key == "crash"
    assert [(e.kind, e.name) for e in journal] == [(EntryKind.RUN, "begin")]

    server.restart()
    duplicate = pool.submit(server.post, "/Once/work", "c", headers=key, timeout=60)
    accepted = server.post("/Once/work/send", "c", headers=key).json()
    assert accepted == {"invocationId": inv, "status": "PreviouslyAccepted"}
    (effects_dir / "once-c-gate").touch()
    resp = duplicate.result(timeout=30)
    assert resp.status_code == 200 and resp.json() == f"c by {inv}" and resp.headers["x-restate-id"] == inv
    assert read_lines(effects_dir / "once-c") == ["begin", "end"]  # the first step did not run again
    later = server.post("/Once/work", "c", headers=key)
    assert later.json() == f"c by {inv}" and later.headers["x-restate-id"] == inv
    server.stop()
    assert read_disk(server.data_dir, lambda d: (d.idempotency(), list(d.invocations()))) == (
        {("Once", "", "work", "crash"): inv}, [inv])
