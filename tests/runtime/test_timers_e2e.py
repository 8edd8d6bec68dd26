"""Durable timers over real HTTP: ctx.sleep, delayed sends, and a sleep across kill -9."""

from __future__ import annotations

import json
import time

from tests.conftest import read_lines, wait_for_lines
from tests.disk import DiskReader, EntryKind, Status, Timer, wait_on_disk


def test_sleep_wakes_after_its_duration(flow) -> None:
    t0 = time.time()
    resp = flow.post("/Timers/nap", 300)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["woke"] >= out["due"] - 0.005
    assert time.time() - t0 >= 0.3
    # Generous bound: the timer fires within 50 ms on an idle server; CI machines are noisy.
    assert out["woke"] - out["due"] < 1.0


def test_sleeps_run_concurrently(flow) -> None:
    ids = [flow.post("/Timers/nap/send", 500).json()["invocationId"] for _ in range(20)]
    t0 = time.time()
    outs = [flow.get(f"/restate/invocation/{i}/attach").json() for i in ids]
    assert time.time() - t0 < 5.0  # twenty 0.5 s sleeps do not run one after another
    assert all(o["woke"] >= o["due"] - 0.005 for o in outs)


def test_delayed_send_runs_after_the_delay(flow, effects_dir) -> None:
    t0 = time.time()
    resp = flow.post("/Timers/stamp/send?delay=400ms", "later")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "Accepted" and body["invocationId"].startswith("inv_")
    lines = wait_for_lines(effects_dir / "stamps", 1)
    tag, ran = lines[0].split()
    assert tag == "later"
    assert 0.4 <= float(ran) - t0 < 2.0
    assert flow.get(f"/restate/invocation/{body['invocationId']}/output").json() == float(ran)


def test_sleep_survives_kill_and_wakes_once(flow, effects_dir) -> None:
    inv = flow.post("/Timers/nap/send", 2000).json()["invocationId"]

    def asleep(disk: DiskReader) -> list[Timer]:
        return [t for t in disk.timers() if t.invocation_id == inv]

    # Kill once the sleep is journaled and its timer stored (read from disk, not guessed).
    wait_on_disk(flow.data_dir, asleep, what="the nap's timer on disk")
    flow.kill()
    assert read_lines(effects_dir / "woke") == []
    with DiskReader(flow.data_dir) as disk:
        journal = disk.journal(inv)
        timers = asleep(disk)
        done = disk.completions(inv)
        record = disk.invocation(inv)
    assert [(e.kind, e.name) for e in journal] == [(EntryKind.RUN, "start"), (EntryKind.SLEEP, "nap")]
    fire_ms = int.from_bytes(journal[1].value or b"", "big")
    assert timers == [Timer(fire_ms, inv, 1)]
    # 2 s after the start step (fire times are whole milliseconds)
    assert -0.002 <= fire_ms / 1000 - (journal[0].json() + 2.0) < 5.0
    assert done == {} and record is not None and record.status != Status.COMPLETED

    flow.restart()
    resp = flow.get(f"/restate/invocation/{inv}/attach")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["woke"] >= out["due"] - 0.005
    assert out["woke"] - out["due"] < 2.0
    assert read_lines(effects_dir / "woke") == [inv]
    flow.stop()
    with DiskReader(flow.data_dir) as disk:
        journal = disk.journal(inv)
        done = disk.completions(inv)
        timers = asleep(disk)
        record = disk.invocation(inv)
    # Woke once: one completion of the sleep, one "woke" step, no timer left.
    assert [e.name for e in journal] == ["start", "nap", "woke"]
    assert list(done) == [1] and timers == []
    assert record is not None and record.status == Status.COMPLETED
    assert json.loads(record.output or b"null") == out
