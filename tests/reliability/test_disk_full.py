"""Disk full (issue 11, part 4), and what every request in flight is told when the store
fails.

The server runs on a small filesystem of its own (an 8 MiB tmpfs the test mounts: root
only, skipped with the reason otherwise) while clients add growing state to carts
(examples/cart.py) and overwrite state through the admin API, and the test fills what is
left with a file. Then:

- a request whose commit could not be made durable is answered 503 with a JSON body
  saying that storage failed (ENOSPC) and that the server is stopping; no answer is a 200
  it cannot keep, none is a 500;
- the process prints `stead: storage failed, stopping: ...No space left on device...`
  and exits 3 (crash-only: runtime/server.py);
- once the file is deleted, the server started again on the same directory serves, and
  every acknowledged effect is there: the state (admin API and rocksdict), the result of
  every acknowledged invocation (by its x-restate-id), in order and once.

The second test holds requests that are not waiting for a commit (a handler waiting for
an awakeable, an admin read waiting for the durability barrier) when a write fails
(failpoint): each is answered 503 at once, not after the shutdown timeout as a bare 500.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.conftest import BEHAVIOUR_APP, FAILPOINTS_ENV, SteadServer, kill_all, read_lines, wait_until
from tests.disk import Status, read_disk
from tests.reliability.storage_faults import fill, mount_tmpfs, umount

CART_APP = "examples.cart:application"
FS_SIZE = "8m"
CARTS = 5


@pytest.fixture
def mode() -> str:
    """One run of each test (the default app's replay mode adds nothing here)."""
    return "normal"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small-fs"
    why = mount_tmpfs(mnt, FS_SIZE)
    if why is not None:
        pytest.skip(f"disk-full test needs a filesystem of its own: {why}")
    yield mnt
    umount(mnt)


@dataclass
class Client:
    """One client: sequential requests, each answered, until one is not a 200/202 (its
    outcome is then unknown, and it stops) or the server is gone."""
    name: str
    acked: list[tuple[str, str]] = field(default_factory=list)  # (item, invocation id)
    unknown: list[str] = field(default_factory=list)
    answers: list[tuple[int, str]] = field(default_factory=list)  # every non-2xx answer
    no_answer: list[str] = field(default_factory=list)


def _items(client: Client, base: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=base, timeout=30.0) as http:
        n = 0
        while not stop.is_set():
            # Incompressible and growing: each add rewrites the whole list (examples/cart.py).
            item = f"{client.name}-{n:04d}-{os.urandom(600).hex()}"
            try:
                resp = http.post(f"/Cart/{client.name}/add", content=json.dumps(item),
                                 headers={"content-type": "application/json"})
            except httpx.TransportError as exc:
                # The server stopped listening: this request was never answered (nor acknowledged).
                client.no_answer.append(repr(exc))
                client.unknown.append(item)
                return
            if resp.status_code == 200:
                assert resp.json() == len(client.acked) + 1, resp.text
                client.acked.append((item, resp.headers["x-restate-id"]))
            else:
                client.answers.append((resp.status_code, resp.text))
                client.unknown.append(item)
                return
            n += 1


def _admin_writes(client: Client, admin: str, stop: threading.Event) -> None:
    with httpx.Client(base_url=admin, timeout=30.0) as http:
        n = 0
        while not stop.is_set():
            value = json.dumps({"n": n, "pad": os.urandom(2000).hex()}).encode()
            body = {"object_key": client.name, "new_state": {"doc": list(value)}}
            try:
                resp = http.post("/services/Cart/state", json=body)
            except httpx.TransportError as exc:
                client.no_answer.append(repr(exc))
                client.unknown.append(str(n))
                return
            if resp.status_code == 202:
                client.acked.append((str(n), ""))
            else:
                client.answers.append((resp.status_code, resp.text))
                client.unknown.append(str(n))
                return
            n += 1


def _check_503(status: int, text: str, cause: str) -> None:
    assert status == 503, f"{status} {text}"
    body = json.loads(text)  # a JSON error, never a bare 500
    assert body["code"] == 503
    message = body["message"]
    assert message.startswith("storage failed: ") and cause in message and "the server is stopping" in message, message


def test_disk_full_answers_503_keeps_what_was_acknowledged_and_recovers(small_fs: Path, tmp_path: Path,
                                                                         effects_dir: Path) -> None:
    data = small_fs / "data"
    server = SteadServer(data, effects_dir, target=CART_APP)
    # The server's output and ready file live off the small filesystem.
    server.log_path = tmp_path / "server.log"
    server.ready_path = tmp_path / "server.ready.json"
    try:
        server.start()
        carts = [Client(f"cart{i}") for i in range(CARTS)]
        admin = Client("admin-doc")
        stop = threading.Event()
        with ThreadPoolExecutor(CARTS + 1) as pool:
            running = [pool.submit(_items, c, server.url, stop) for c in carts]
            running.append(pool.submit(_admin_writes, admin, server.admin_url, stop))
            wait_until(lambda: all(len(c.acked) >= 3 for c in carts) and len(admin.acked) >= 3,
                       what="every client acknowledged")
            filler = small_fs / "filler"
            fill(filler)  # the rest of the filesystem; the clients keep writing
            try:
                code = server.proc.wait(timeout=30)
            finally:
                stop.set()
            for r in running:
                r.result(timeout=30)
        log = server.log()
        assert code == 3, log
        assert "stead: storage failed, stopping: " in log and "No space left on device" in log, log

        clients = [*carts, admin]
        answers = [a for c in clients for a in c.answers]
        assert answers, "no request was in flight when the disk filled"
        for status, text in answers:
            _check_503(status, text, "No space left on device")
        assert sum(len(c.acked) for c in carts) >= 3 * CARTS

        # Space again, and the crash-only restart: everything acknowledged is there.
        filler.unlink()
        server.restart()
        for c in carts:
            stored = _admin_state(server, c.name).get("items", [])
            acked = [item for item, _ in c.acked]
            assert stored[:len(acked)] == acked, f"{c.name}: acknowledged items lost or reordered"
            # What was not acknowledged is there in full or not at all (its group was atomic).
            assert stored[len(acked):] in ([], c.unknown[:1]), c.name
            assert server.post(f"/Cart/{c.name}/count", timeout=10).json() == len(stored)
            for n, (_, inv_id) in enumerate(c.acked, start=1):
                out = server.get(f"/restate/invocation/{inv_id}/output", timeout=10)
                assert out.status_code == 200 and out.json() == n, (inv_id, out.status_code, out.text)
        doc = _admin_state(server, admin.name)["doc"]
        assert doc["n"] in (len(admin.acked) - 1, len(admin.acked)), "an acknowledged state overwrite was lost"
        # It serves new work too.
        assert server.post(f"/Cart/{carts[0].name}/add", "after").status_code == 200
        server.stop()  # SIGTERM: a graceful stop, which exits by that signal

        def on_disk(d):  # type: ignore[no-untyped-def]
            return ({c.name: d.state("Cart", c.name)["items"] for c in carts},
                    {inv_id: d.invocation(inv_id) for c in carts for _, inv_id in c.acked})

        states, invocations = read_disk(data, on_disk)
        for c in carts:
            acked = [item for item, _ in c.acked]
            assert states[c.name][:len(acked)] == acked
        for inv_id, inv in invocations.items():
            assert inv is not None and inv.status == Status.COMPLETED, inv_id
    finally:
        kill_all([server])


def _admin_state(server: SteadServer, key: str) -> dict:
    resp = server.admin("GET", f"/services/Cart/state/{key}")
    assert resp.status_code == 200, resp.text
    return resp.json()["state"]


def test_every_request_in_flight_is_answered_503_when_a_write_fails(make_server, effects_dir: Path) -> None:
    # A long --suspend-after: the waiting handler stays in memory, in its request's task.
    server = make_server(target=BEHAVIOUR_APP, env=FAILPOINTS_ENV, extra_args=["--suspend-after", "60s"]).start()
    assert server.post("/Queue/q/enter", "before").status_code == 200
    with ThreadPoolExecutor(4) as pool:
        # Waits for an awakeable nobody resolves: no commit of its own is pending.
        waiting = pool.submit(server.post, "/Signals/wait", "w", timeout=60)
        wait_until(lambda: read_lines(effects_dir / "signal-w"), what="the handler waiting")
        # Hold the writer, queue a write and an admin read behind it, then fail that write.
        server.failpoint("commit.before_write", "pause")
        write = pool.submit(server.post, "/Queue/q/enter", "lost?", timeout=60)
        time.sleep(0.2)
        read = pool.submit(server.admin, "GET", "/services/Queue/state/q")
        time.sleep(0.2)
        assert not write.done() and not read.done()
        server.failpoint("commit.write_error", "return")
        failed_at = time.monotonic()
        server.failpoint("commit.before_write", None)
        answers = {"write": write.result(timeout=30), "read": read.result(timeout=30),
                   "waiting": waiting.result(timeout=30)}
        answered_in = time.monotonic() - failed_at
    got = {name: (resp.status_code, resp.text) for name, resp in answers.items()}
    assert all(status == 503 for status, _ in got.values()), got
    for status, text in got.values():
        _check_503(status, text, "injected write error")
    # At once: not after the shutdown timeout (10 s), when uvicorn would cancel them.
    assert answered_in < 5, answered_in
    assert server.proc.wait(timeout=30) == 3
    assert "stead: storage failed, stopping: " in server.log()
