"""Invocation retries end to end: a cancel or kill that reaches an invocation backing off
between attempts, and retries running out, for each `on_max_attempts` value of
`InvocationRetryPolicy` (unset and "kill": the invocation fails; "pause": it is paused
until resumed, as in Restate).

Handlers: Retrying/fail_once (a booked step, then a failure; the retry is a minute
away) and Retrying/exhaust_* (a step, then a failure every attempt; 3 attempts, 100 ms
then 200 ms apart). An attempt writes one line after its replayed step, so the lines
count attempts in both modes; a step's own line counts its executions.
"""

from __future__ import annotations

import time

import pytest

from tests.conftest import read_lines, wait_for_lines
from tests.disk import RETRY_TIMER_ENTRY, EntryKind, Status, read_disk, wait_on_disk


def _backing_off(server, inv: str):  # type: ignore[no-untyped-def]
    return wait_on_disk(server.data_dir, lambda d: (r := d.invocation(inv)) and r.status == Status.BACKING_OFF and r,
                        what=f"{inv} backing off")


@pytest.mark.parametrize("action", ["cancel", "kill"])
def test_signal_to_an_invocation_backing_off(behaviour, effects_dir, action: str) -> None:
    server = behaviour
    inv = server.post("/Retrying/fail_once/send", action).json()["invocationId"]
    record = _backing_off(server, inv)
    assert record.retry_count == 1 and record.next_retry_ms > time.time() * 1000 + 30_000
    timers = read_disk(server.data_dir, lambda d: [(t.fire_ms, t.entry) for t in d.timers() if t.invocation_id == inv])
    assert timers == [(record.next_retry_ms, RETRY_TIMER_ENTRY)]

    started = time.monotonic()
    assert server.admin("PATCH", f"/invocations/{inv}/{action}").status_code == 202
    out = server.get(f"/restate/invocation/{inv}/attach")
    assert time.monotonic() - started < 20, "the signal waited for the retry timer"
    message = "cancelled" if action == "cancel" else "killed"
    assert out.status_code == 409 and out.json() == {"code": 409, "message": message}
    # A cancel runs the handler again at once so that it sees the cancellation at its next
    # await: the booking is compensated and the work never done. A kill runs nothing more.
    assert read_lines(effects_dir / f"retry-{action}") == (["reserve", "release"] if action == "cancel"
                                                           else ["reserve"])
    attempts = len(read_lines(effects_dir / f"retry-{action}-attempts"))
    assert attempts >= 2 if action == "cancel" else attempts == 1
    server.stop()

    def on_disk(d):  # type: ignore[no-untyped-def]
        r = d.invocation(inv)
        return r.status, r.failure_code, r.failure_message, [t for t in d.timers() if t.invocation_id == inv]

    assert read_disk(server.data_dir, on_disk) == (Status.COMPLETED, 409, message, [])


@pytest.mark.parametrize("handler", ["exhaust_default", "exhaust_kill"])
def test_retries_run_out(behaviour, effects_dir, handler: str) -> None:
    """`on_max_attempts` unset or "kill": the invocation fails with 500 after its last
    attempt ("pause": see the next test)."""
    server = behaviour
    resp = server.post(f"/Retrying/{handler}", handler)
    assert resp.status_code == 500
    assert resp.json() == {"code": 500, "message": f"failed after 3 attempts: RuntimeError('boom {handler}')"}
    inv = resp.headers["x-restate-id"]
    attempts = [float(t) for t in read_lines(effects_dir / f"exhaust-{handler}-attempts")]
    assert len(attempts) == 3
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert gaps[0] >= 0.09 and gaps[1] >= 0.18, gaps  # 100 ms, then twice that
    assert read_lines(effects_dir / f"exhaust-{handler}") == ["step"]  # replayed, not run again
    assert server.get(f"/restate/invocation/{inv}/output").json()["message"] == resp.json()["message"]
    server.stop()

    def on_disk(d):  # type: ignore[no-untyped-def]
        r = d.invocation(inv)
        return (r.status, r.failure_code, r.retry_count, [(e.kind, e.name) for e in d.journal(inv)],
                [t for t in d.timers() if t.invocation_id == inv])

    assert read_disk(server.data_dir, on_disk) == (Status.COMPLETED, 500, 2, [(EntryKind.RUN, "step")], [])


def _paused_after(server, inv: str, attempts_file, attempts: int):  # type: ignore[no-untyped-def]
    """The record once the last of `attempts` attempts has failed and paused the invocation."""
    wait_for_lines(attempts_file, attempts)
    return wait_on_disk(server.data_dir, lambda d: (r := d.invocation(inv)) and r.status == Status.PAUSED and r,
                        what=f"{inv} paused")


def test_pause_on_max_attempts_leaves_the_invocation_paused(behaviour, effects_dir, pool) -> None:
    """on_max_attempts="pause" (Restate's): when the attempts run out the invocation is paused,
    not failed. It keeps its journal (the step is not run again) and its retry count, no
    retry is scheduled, and no result is given: its output is not ready (470) and an attached
    client waits. A resume gives it a fresh set of attempts (Restate's invoker starts a new
    retry policy at each invoke), which run out into the paused status again; a kill ends it."""
    server = behaviour
    attempts_file = effects_dir / "exhaust-paused-attempts"
    inv = server.post("/Retrying/exhaust_pause/send", "paused").json()["invocationId"]
    record = _paused_after(server, inv, attempts_file, 3)
    assert record.retry_count == 2 and record.next_retry_ms == 0
    assert read_disk(server.data_dir, lambda d: [t for t in d.timers() if t.invocation_id == inv]) == []
    assert len(read_lines(attempts_file)) == 3
    assert server.get(f"/restate/invocation/{inv}/output").status_code == 470  # not completed: paused
    described = server.admin("GET", f"/invocations/{inv}").json()
    assert (described["status"], described["retry_count"], described["completion_result"]) == ("paused", 2, None)
    listed = server.admin("GET", "/invocations?status=paused").json()["invocations"]
    assert [i["id"] for i in listed] == [inv]
    assert "paused until it is resumed" in server.log()

    resp = server.admin("PATCH", f"/invocations/{inv}/resume")
    assert (resp.status_code, resp.json()) == (200, {"invocationId": inv, "status": "running"})
    record = _paused_after(server, inv, attempts_file, 6)
    assert len(read_lines(attempts_file)) == 6, "three fresh attempts, then paused again"
    assert record.retry_count == 2
    assert read_lines(effects_dir / "exhaust-paused") == ["step"]  # replayed, never run again

    attached = pool.submit(server.get, f"/restate/invocation/{inv}/attach")
    assert server.admin("PATCH", f"/invocations/{inv}/kill").status_code == 202
    out = attached.result(timeout=30)
    assert out.status_code == 409 and out.json() == {"code": 409, "message": "killed"}
    server.stop()
    assert read_disk(server.data_dir, lambda d: (d.invocation(inv).status, d.invocation(inv).failure_code)) == (
        Status.COMPLETED, 409)
