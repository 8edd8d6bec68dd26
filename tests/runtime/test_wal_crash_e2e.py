"""SIGKILL in `--durability wal` mode (the WAL is written, not fsynced: what was
acknowledged survives a process crash), with a full inbox draining, and in the middle of
a retention purge.

What is on disk right after the kill is read with rocksdict (tests/disk.py); the kill
points are chosen by what the server has shown (effects lines, 404s of purged keys) and,
for the purge, by holding the core's writer at a failpoint.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import BEHAVIOUR_APP, FAILPOINTS_ENV, read_lines, wait_for_lines, wait_until
from tests.disk import Status, read_disk, wait_on_disk

WAL = ["--durability", "wal"]


def _load(server, worker: int, stop: threading.Event, acked: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Calls in sequence on one key of its own until the server is gone."""
    with httpx.Client(base_url=server.url, timeout=10.0) as client:
        i = 0
        while not stop.is_set():
            tag = f"w{worker}-{i}"
            try:
                resp = client.post(f"/Queue/load-{worker}/enter", content=json.dumps(tag),
                                   headers={"content-type": "application/json"})
            except httpx.TransportError:
                return
            if resp.status_code == 200:
                acked.append(tag)
            i += 1


def test_kill_in_wal_mode_while_a_full_inbox_drains(make_server, effects_dir) -> None:
    server = make_server(target=BEHAVIOUR_APP, extra_args=WAL).start()
    hold = server.post("/Queue/full/hold/send", "awakeable").json()["invocationId"]
    wait_for_lines(effects_dir / "queue-full-waiting", 1)
    tags = [f"t{i:02d}" for i in range(20)]
    ids = [server.post("/Queue/full/enter/send", tag).json()["invocationId"] for tag in tags]
    assert wait_on_disk(server.data_dir, lambda d: d.inbox("Queue", "full") == ids and True, what="the full inbox")

    stop = threading.Event()
    acked: list[list[str]] = [[] for _ in range(3)]
    load = [threading.Thread(target=_load, args=(server, w, stop, acked[w])) for w in range(3)]
    for t in load:
        t.start()
    wait_until(lambda: all(len(a) >= 3 for a in acked), what="the load going")
    awakeable = read_lines(effects_dir / "queue-full-awakeable")[0]
    assert server.post(f"/restate/awakeables/{awakeable}/resolve", "go").status_code == 202
    wait_for_lines(effects_dir / "queue-full", 6)  # the owner done and five of the inbox entered
    server.kill()
    stop.set()
    for t in load:
        t.join(timeout=15)

    def on_disk(d):  # type: ignore[no-untyped-def]
        return (d.state("Queue", "full").get("order"), [d.invocation(i).status for i in ids], d.inbox("Queue", "full"),
                d.invocation(hold).status, [d.state("Queue", f"load-{w}").get("order", []) for w in range(3)])

    order, statuses, inbox, owner, loaded = read_disk(server.data_dir, on_disk)
    # On disk: a prefix of the inbox ran (its order recorded), at most one was running, and
    # the rest still wait in order.
    done = statuses.count(Status.COMPLETED)
    assert owner == Status.COMPLETED and done >= 4 and order == ["hold", *tags[:done]]
    assert statuses[:done] == [Status.COMPLETED] * done
    running = statuses[done:done + 1] == [Status.RUNNING]
    assert statuses[done + running:] == [Status.INBOXED] * (len(tags) - done - running)
    assert inbox == ids[done + running:]
    for worker, state in enumerate(loaded):  # every acknowledged call is there, in order, once
        assert state[:len(acked[worker])] == acked[worker] and len(state) <= len(acked[worker]) + 1

    server.restart()
    assert server.get(f"/restate/invocation/{ids[-1]}/attach").json() == ["hold", *tags]
    entered = [line for line in read_lines(effects_dir / "queue-full") if line.startswith("enter t")]
    assert sorted(set(entered)) == [f"enter {tag}" for tag in tags]
    # Only those running at the kill ran twice: the one in its handler, and the next one of
    # the key if the previous completion's commit was queued but not yet written (the next
    # starts once that commit is queued: internal work does not wait for durability, and a
    # handler's own code outside steps runs again on a retry).
    assert len(entered) <= len(tags) + 2


@pytest.mark.parametrize("point", ["commit.before_write", "commit.before_sync"])
def test_kill_in_wal_mode_during_a_purge(make_server, effects_dir, point: str) -> None:
    """A workflow run (with its key's state and promise) and 70 invocations with
    idempotency keys complete within a moment of each other, so that one purge round takes
    many of them. The writer is held at `point` once that round has queued its deletes
    (the group is lost at before_write; written, not yet published, at before_sync), and
    the server is killed there. Whatever survives is whole: an invocation is there with
    its journal and its idempotency row, or none of them is; the workflow run with its
    key's state and promise. After the restart the purge finishes, and the keys are free."""
    server = make_server(target=BEHAVIOUR_APP, env=FAILPOINTS_ENV, extra_args=[*WAL, "--retention", "3s"]).start()
    run = server.post("/Approval/wp/run/send", "old").json()["invocationId"]
    wait_for_lines(effects_dir / "approval-wp", 1)
    stamps = _completed_together(server, effects_dir)
    assert server.get(f"/restate/invocation/{run}/attach").json()["decision"] == "yes"
    paths = ["/restate/workflow/Approval/wp/output"] + [f"/restate/invocation/Once/stamp/p{i}/output"
                                                        for i in range(len(stamps))]
    assert not _any_gone(server, paths), "purged before the writer was held"
    server.failpoint(point, "pause")
    # With no other traffic, the first commit queued behind the held writer is the purge's:
    # a completed invocation's output then waits (it waits for every commit queued so far),
    # or is 404 (held at before_sync, the purge's deletes are written and readable).
    wait_until(lambda: _waits_or_gone(server, f"/restate/invocation/{run}/output"), what="a purge round queued")
    server.kill()

    def on_disk(d):  # type: ignore[no-untyped-def]
        records, rows = d.invocations(), d.idempotency()
        stamped = {i: (i in records, bool(d.journal(i)), rows.get(("Once", "", "stamp", f"p{n}")) == i)
                   for n, i in enumerate(stamps)}
        workflow = (run in records, rows.get(("Approval", "wp", "run", "")) == run, bool(d.journal(run)),
                    d.state("Approval", "wp") == {"tag": "old"}, "decision" in d.promises("Approval", "wp"))
        return stamped, workflow, set(rows.values()) <= set(records)

    stamped, workflow, rows_have_records = read_disk(server.data_dir, on_disk)
    assert rows_have_records
    assert all(parts in ((True, True, True), (False, False, False)) for parts in stamped.values()), stamped
    assert workflow in ((True,) * 5, (False,) * 5), workflow
    if point == "commit.before_write":  # nothing of the purge was written
        assert workflow == (True,) * 5 and all(parts == (True, True, True) for parts in stamped.values())

    server.restart()
    wait_until(lambda: all(_gone(server, path) for path in paths[:2] + paths[-1:]), what="the purge after the restart")
    fresh = server.post("/Once/stamp", "p0", headers={"idempotency-key": "p0"}).json()
    assert fresh not in stamps
    new_run = server.post("/Approval/wp/run/send", "new")
    assert new_run.json()["status"] == "Accepted"
    assert server.post("/Approval/wp/decide", "again").json() == "again"
    assert server.get("/restate/workflow/Approval/wp/attach").json() == {"prior": None, "tag": "new",
                                                                         "decision": "again"}
    assert read_lines(effects_dir / "stamp-p0") == [stamps[0], fresh]


def _completed_together(server, effects_dir, n: int = 70) -> list[str]:  # type: ignore[no-untyped-def]
    """Resolve the Approval/wp run's promise and make n Once/stamp invocations (idempotency
    keys p0..), their commits held until every one has started, so that all complete
    within a moment of each other; the stamps' invocation ids."""
    server.failpoint("commit.before_write", "pause")
    with ThreadPoolExecutor(n + 1) as many:
        decided = many.submit(server.post, "/Approval/wp/decide", "yes", timeout=60)
        stamps = [many.submit(server.post, "/Once/stamp", f"p{i}", headers={"idempotency-key": f"p{i}"}, timeout=60)
                  for i in range(n)]
        # Every stamp has started (its step waits for its admission, held with the rest).
        wait_until(lambda: read_lines(effects_dir / "deciding-wp")
                   and all((effects_dir / f"stamp-p{i}-entered").exists() for i in range(n)),
                   what="every invocation started")
        server.failpoint("commit.before_write", None)
        assert decided.result(timeout=30).json() == "yes"
        return [f.result(timeout=30).json() for f in stamps]


def _any_gone(server, paths: list[str]) -> bool:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=server.url, timeout=1.0) as client:
        for path in paths:
            try:
                if client.get(path).status_code == 404:
                    return True
            except httpx.TimeoutException:
                pass  # waits for a commit the held writer has not written
    return False


def _waits_or_gone(server, path: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        return server.get(path, timeout=1.0).status_code == 404
    except httpx.TimeoutException:
        return True


def _gone(server, path: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        return server.get(path, timeout=1.0).status_code == 404
    except httpx.TimeoutException:
        return False  # waits for a commit the held writer has not written
