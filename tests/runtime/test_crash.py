"""Crash tests: real `stead serve` processes killed with SIGKILL mid-work, then restarted.

What is on disk right after the kill is read with rocksdict (tests/disk.py), not
through core_rs.
"""

from __future__ import annotations

import json
import threading

import httpx

from tests.conftest import read_lines, wait_until
from tests.disk import DiskReader, EntryKind, Status

KEYS = 40


def _load(server, stop: threading.Event, acked: dict[str, list[str]], sent: dict[str, list[str]],
          worker: int, progress: list[int]) -> None:
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        i = 0
        while not stop.is_set():
            key = f"k{(worker * 7 + i) % KEYS}"
            item = f"w{worker}-{i}"
            sent.setdefault(key, []).append(item)
            try:
                resp = client.post(f"/Cart/{key}/add", content=f'"{item}"',
                                   headers={"content-type": "application/json"})
            except httpx.TransportError:
                return  # the server is gone: this add is unacknowledged
            if resp.status_code == 200:
                acked.setdefault(key, []).append(item)
                progress.append(1)
            i += 1


def test_kill_during_adds_loses_no_acknowledged_add(make_server) -> None:
    server = make_server().start()
    stop = threading.Event()
    progress: list[int] = []
    results = [({}, {}) for _ in range(8)]
    threads = [threading.Thread(target=_load, args=(server, stop, acked, sent, w, progress))
               for w, (acked, sent) in enumerate(results)]
    for t in threads:
        t.start()
    # Kill under load: once enough adds were acknowledged that some keys have a queue.
    wait_until(lambda: len(progress) >= 200, 60, "200 acknowledged adds")
    server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=15)
    acked_items = {item for acked, _ in results for items in acked.values() for item in items}
    sent_items = {item for _, sent in results for items in sent.values() for item in items}

    with DiskReader(server.data_dir) as disk:
        on_disk = {f"k{k}": disk.state("Cart", f"k{k}").get("items", []) for k in range(KEYS)}
    _check(on_disk, acked_items, sent_items)

    server.restart()
    after = {f"k{k}": server.post(f"/Cart/k{k}/items").json() for k in range(KEYS)}
    _check(after, acked_items, sent_items)
    # An exclusive call on each key runs after every add the restart resumed or dequeued.
    for k in range(KEYS):
        assert server.post(f"/Cart/k{k}/first_sorted").status_code == 200
    server.stop()
    with DiskReader(server.data_dir) as disk:
        final = {f"k{k}": disk.state("Cart", f"k{k}").get("items", []) for k in range(KEYS)}
        invocations = list(disk.invocations().values())
        inboxes = disk.inboxes()
    _check(final, acked_items, sent_items)
    assert inboxes == {}, "an inbox still holds invocations after every key was drained"
    assert all(inv.status == Status.COMPLETED for inv in invocations), \
        sorted({inv.status.name for inv in invocations})
    # Every admitted add ran exactly once: one item per completed add, per key.
    for k in range(KEYS):
        adds = [inv for inv in invocations if (inv.service, inv.handler, inv.key) == ("Cart", "add", f"k{k}")]
        assert sorted(_item(inv.input) for inv in adds) == sorted(final[f"k{k}"])


def _item(raw: bytes) -> str:
    return json.loads(raw)


def _check(state: dict[str, list[str]], acked: set[str], sent: set[str]) -> None:
    present = [item for items in state.values() for item in items]
    assert len(present) == len(set(present)), "an add was applied twice"
    missing = acked - set(present)
    assert not missing, f"{len(missing)} acknowledged adds lost, e.g. {sorted(missing)[:5]}"
    assert set(present) <= sent


def test_kill_between_steps_resumes_without_rerunning_finished_steps(make_server, effects_dir) -> None:
    server = make_server().start()
    log = effects_dir / "t1.log"
    inv = server.post("/Steps/s1/run/send", "t1").json()["invocationId"]
    # The handler waits at its gate after step two (a step returns once its result is durable).
    wait_until(lambda: "at t1.gate" in read_lines(effects_dir / "gates"), what="the handler at its gate")
    server.kill()
    assert log.read_text().splitlines().count("2") == 1
    with DiskReader(server.data_dir) as disk:
        journal = disk.journal(inv)
        record = disk.invocation(inv)
    # Steps one and two are journaled with their results; three is not.
    assert [(e.kind, e.name, e.json()) for e in journal] == [(EntryKind.RUN, "one", "a"), (EntryKind.RUN, "two", "b")]
    assert record is not None and record.status != Status.COMPLETED and record.output is None

    (effects_dir / "t1.gate").touch()
    server.restart()
    assert server.get(f"/restate/invocation/{inv}/attach").json() == "abc"
    assert server.post("/Steps/s1/result").json() == "abc"
    lines = log.read_text().splitlines()
    assert lines.count("1") == 1 and lines.count("2") == 1 and lines.count("3") == 1, lines
    server.stop()
    with DiskReader(server.data_dir) as disk:
        assert disk.state("Steps", "s1") == {"result": "abc"}
        journal = disk.journal(inv)
        record = disk.invocation(inv)
    assert [(e.kind, e.name) for e in journal if e.kind == EntryKind.RUN] == [
        (EntryKind.RUN, "one"), (EntryKind.RUN, "two"), (EntryKind.RUN, "three")]
    assert record is not None and record.status == Status.COMPLETED and record.output == b'"abc"'
