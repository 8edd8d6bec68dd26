"""kill -9 during durable control flow: sends, saga compensations, workflows.

Each kill point is chosen by a gate the handler waits at (tests/apps/testapp.gate)
or by what the server has written (tests/disk.wait_on_disk), never by a sleep;
after each kill the data directory is read with the independent reader.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import read_lines, wait_until
from tests.disk import SCHEDULED_TIMER_ENTRY, DiskReader, EntryKind, Status, Timer, wait_on_disk


def test_kill_after_send_journaled_callee_runs_once(flow, effects_dir) -> None:
    resp = flow.post("/Caller/k/send_gated", 1500)  # a delayed send to Timers/gated_stamp
    assert resp.status_code == 200, resp.text
    caller, callee = resp.headers["x-restate-id"], resp.json()
    # The answer came after the commit holding the SEND entry and the scheduled callee;
    # the callee cannot stamp before the test opens its gate, so any kill point from
    # here on is "send journaled, callee not run".
    flow.kill()
    with DiskReader(flow.data_dir) as disk:
        caller_rec, callee_rec = disk.invocation(caller), disk.invocation(callee)
        timers = disk.timers()
    # The caller finished in the commit that admitted the callee (a journal is written
    # only for an invocation that outlives one commit): its record holds the callee's id.
    assert caller_rec is not None and caller_rec.status == Status.COMPLETED
    assert json.loads(caller_rec.output or b"null") == callee
    assert callee_rec is not None and callee_rec.output is None
    assert (callee_rec.service, callee_rec.handler, json.loads(callee_rec.input)) == ("Timers", "gated_stamp", "k")
    assert callee_rec.status in (Status.SCHEDULED, Status.RUNNING, Status.SUSPENDED), callee_rec.status
    if callee_rec.status == Status.SCHEDULED:  # its delay had not passed: the timer row admits it
        assert Timer(callee_rec.next_retry_ms, callee, SCHEDULED_TIMER_ENTRY) in timers, timers
    assert not (effects_dir / "stamps").exists()

    (effects_dir / "stamp-k").touch()
    flow.restart()
    out = flow.get(f"/restate/invocation/{callee}/attach")
    assert out.status_code == 200, out.text
    assert [line.split() for line in read_lines(effects_dir / "stamps")] == [["k", str(out.json())]]
    flow.stop()
    with DiskReader(flow.data_dir) as disk:
        stamps = [inv for inv in disk.invocations().values() if inv.service == "Timers"]
        left = [t for t in disk.timers() if t.invocation_id == callee]
    # One callee, completed once: the restart did not send again, and no timer is left.
    assert [(inv.id, inv.status) for inv in stamps] == [(callee, Status.COMPLETED)]
    assert left == []


def test_kill_during_compensations_resumes_the_rest(flow, effects_dir) -> None:
    (effects_dir / "c-undo3").touch()  # undo 3 may run; undo 2 waits at its gate
    inv = flow.post("/Jobs/compensating/send", "c").json()["invocationId"]
    # A step body runs once what its attempt observed is durable: undo 2 at its gate
    # means undo 3's result is journaled.
    wait_until(lambda: "at c-undo2" in read_lines(effects_dir / "gates"), what="undo 2 at its gate")
    flow.kill()
    assert read_lines(effects_dir / "saga") == ["step 1", "step 2", "step 3", "undo 3"]
    with DiskReader(flow.data_dir) as disk:
        journal = disk.journal(inv)
        record = disk.invocation(inv)
    assert [(e.kind, e.name, e.failure_code) for e in journal] == [
        (EntryKind.RUN, "step1", 0), (EntryKind.RUN, "step2", 0), (EntryKind.RUN, "step3", 0),
        (EntryKind.RUN, "refuse", 409), (EntryKind.RUN, "undo3", 0)]
    assert record is not None and record.status != Status.COMPLETED

    (effects_dir / "c-undo2").touch()
    (effects_dir / "c-undo1").touch()
    flow.restart()
    assert flow.get(f"/restate/invocation/{inv}/attach").status_code == 409
    assert read_lines(effects_dir / "saga") == ["step 1", "step 2", "step 3", "undo 3", "undo 2", "undo 1"]
    flow.stop()
    with DiskReader(flow.data_dir) as disk:
        journal = disk.journal(inv)
        record = disk.invocation(inv)
    assert [e.name for e in journal] == ["step1", "step2", "step3", "refuse", "undo3", "undo2", "undo1"]
    assert record is not None and record.status == Status.COMPLETED
    assert (record.failure_code, record.output) == (409, None)


def test_workflow_promise_resolved_while_server_down(flow, effects_dir) -> None:
    run = flow.post("/Signup/dee/run/send", "dee@example.com").json()["invocationId"]

    def waiting(disk: DiskReader):  # type: ignore[no-untyped-def]
        link = disk.promises("Signup", "dee").get("link")
        return link if link is not None and link.waiters else None

    # Kill once the run waits on its promise: the promise row lists the run as its waiter.
    wait_on_disk(flow.data_dir, waiting, what="the run waiting on its promise")
    flow.kill()
    with DiskReader(flow.data_dir) as disk:
        link = disk.promises("Signup", "dee")["link"]
        journal = disk.journal(run)
        state = disk.state("Signup", "dee")
    index = [e.kind for e in journal].index(EntryKind.GET_PROMISE)
    assert journal[index].name == "link"
    assert not link.completed and link.waiters == [(run, index)]
    assert state == {"status": "waiting"}
    assert read_lines(effects_dir / "emails") == ["dee dee@example.com"]

    with pytest.raises(httpx.TransportError):  # the resolve is refused: nobody listens
        flow.post("/Signup/dee/click", "late", timeout=2.0)
    flow.restart()
    assert flow.post("/Signup/dee/click", "late").json() == "ok"
    assert flow.get("/restate/workflow/Signup/dee/attach").json() == "verified dee@example.com with late"
    assert read_lines(effects_dir / "emails") == ["dee dee@example.com"]
    flow.stop()
    with DiskReader(flow.data_dir) as disk:
        link = disk.promises("Signup", "dee")["link"]
        record = disk.invocation(run)
        state = disk.state("Signup", "dee")
    assert link.completed and json.loads(link.value or b"null") == "late" and link.waiters == []
    assert record is not None and record.status == Status.COMPLETED
    assert json.loads(record.output or b"null") == "verified dee@example.com with late"
    assert state == {"status": "verified"}
