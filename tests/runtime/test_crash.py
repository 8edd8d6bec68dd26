"""Crash tests: real `stead serve` processes killed with SIGKILL mid-work, then restarted.

What is on disk right after the kill is read with rocksdict (tests/disk.py), not
through core_rs.
"""

from __future__ import annotations

import threading
import time

import httpx

from tests.disk import DiskReader

KEYS = 40


def _load(server, stop: threading.Event, acked: dict[str, list[str]], sent: dict[str, list[str]],
          worker: int) -> None:
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
            i += 1


def test_kill_during_adds_loses_no_acknowledged_add(make_server) -> None:
    server = make_server().start()
    stop = threading.Event()
    results = [({}, {}) for _ in range(8)]
    threads = [threading.Thread(target=_load, args=(server, stop, acked, sent, w))
               for w, (acked, sent) in enumerate(results)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    server.kill()
    stop.set()
    for t in threads:
        t.join(timeout=15)
    acked_items = {item for acked, _ in results for items in acked.values() for item in items}
    sent_items = {item for _, sent in results for items in sent.values() for item in items}
    assert len(acked_items) > 50, "the load did not get going before the kill"

    with DiskReader(server.data_dir) as disk:
        on_disk = {f"k{k}": disk.state("Cart", f"k{k}").get("items", []) for k in range(KEYS)}
    _check(on_disk, acked_items, sent_items)

    server.restart()
    after = {f"k{k}": server.post(f"/Cart/k{k}/items").json() for k in range(KEYS)}
    _check(after, acked_items, sent_items)


def _check(state: dict[str, list[str]], acked: set[str], sent: set[str]) -> None:
    present = [item for items in state.values() for item in items]
    assert len(present) == len(set(present)), "an add was applied twice"
    missing = acked - set(present)
    assert not missing, f"{len(missing)} acknowledged adds lost, e.g. {sorted(missing)[:5]}"
    assert set(present) <= sent


def test_kill_between_steps_resumes_without_rerunning_finished_steps(make_server, effects_dir) -> None:
    server = make_server().start()
    log = effects_dir / "t1.log"
    call = threading.Thread(target=lambda: _swallow(server.post, "/Steps/s1/run", "t1"))
    call.start()
    deadline = time.monotonic() + 20
    while "after-two" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.01)
    server.kill()
    call.join(timeout=15)
    assert log.read_text().splitlines().count("2") == 1

    (effects_dir / "t1.gate").touch()
    server.restart()
    deadline = time.monotonic() + 20
    while server.post("/Steps/s1/result").json() is None:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.02)
    assert server.post("/Steps/s1/result").json() == "abc"
    lines = log.read_text().splitlines()
    assert lines.count("1") == 1 and lines.count("2") == 1 and lines.count("3") == 1, lines
    server.stop()
    with DiskReader(server.data_dir) as disk:
        assert disk.state("Steps", "s1") == {"result": "abc"}


def _swallow(fn, *args) -> None:  # type: ignore[no-untyped-def]
    try:
        fn(*args)
    except httpx.TransportError:
        pass
