"""Retention purge racing new work on the same key (`--retention 1s`): a new run of a
purged workflow key, and a new request with a purged idempotency key.

The race is made certain with the core's `commit.before_write` failpoint (`pause`): the
writer is held, the purge of the expired invocation queues its deletes behind it (seen
from outside: the old invocation's output, read by its id, now waits for a commit), the
new work arrives and runs against that (it is admitted at once, behind the purge's
commit, and reads the key; its steps wait for its admission: the tests wait for the
read), then the writer goes on. The new
work must see nothing of the purged run: not its state, not its promise, not its
idempotency row; and the purge must not delete what the new work wrote.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import BEHAVIOUR_APP, FAILPOINTS_ENV, read_lines, wait_for_lines, wait_until
from tests.disk import Status, read_disk

HOLD = "commit.before_write"


def _status(server, path: str) -> int | None:  # type: ignore[no-untyped-def]
    try:
        return server.get(path, timeout=1.0).status_code
    except httpx.TimeoutException:
        return None  # waits for a commit the held writer has not written


def _purge_queued(server, inv_id: str) -> None:  # type: ignore[no-untyped-def]
    """With the writer held and no other traffic, wait until a commit is queued: the purge.
    (A completed invocation's output waits for every commit queued so far.)"""
    wait_until(lambda: _status(server, f"/restate/invocation/{inv_id}/output") is None, what="the purge queued")


@pytest.fixture
def short_retention(make_server):  # type: ignore[no-untyped-def]
    return make_server(target=BEHAVIOUR_APP, env=FAILPOINTS_ENV, extra_args=["--retention", "1s"]).start()


def test_a_new_run_of_a_purged_workflow_key_starts_from_nothing(short_retention, effects_dir, pool) -> None:
    server = short_retention
    old = server.post("/Approval/w/run/send", "old").json()["invocationId"]
    wait_for_lines(effects_dir / "approval-w", 1)
    assert server.post("/Approval/w/decide", "yes").json() == "yes"
    assert server.get("/restate/workflow/Approval/w/attach").json() == {"prior": None, "tag": "old", "decision": "yes"}

    server.failpoint(HOLD, "pause")
    _purge_queued(server, old)
    new = pool.submit(server.post, "/Approval/w/run/send", "new", timeout=60)
    # The new run reads the key's state while its admission and the purge wait for the
    # writer; its step waits for its admission (the barrier), so it has not run yet.
    wait_until(lambda: "read new" in read_lines(effects_dir / "approval-w-read"), what="the new run's read")
    assert read_lines(effects_dir / "approval-w") == ["started old"]
    assert not new.done()
    server.failpoint(HOLD, None)
    assert wait_for_lines(effects_dir / "approval-w", 2)[1] == "started new"
    accepted = new.result(timeout=30).json()
    assert accepted["status"] == "Accepted" and accepted["invocationId"] != old

    assert server.post("/Approval/w/current").json() == {"tag": "new", "decision": None}
    # On disk, while the new run waits (nothing of it can be purged yet): the old run is
    # gone, the key's state and promise are the new run's.
    server.kill()

    def on_disk(d):  # type: ignore[no-untyped-def]
        promise = d.promises("Approval", "w").get("decision")
        return (d.state("Approval", "w"), promise and (promise.completed, promise.value), d.invocation(old),
                d.idempotency().get(("Approval", "w", "run", "")))

    assert read_disk(server.data_dir, on_disk) == ({"tag": "new"}, (False, None), None, accepted["invocationId"])
    server.restart()
    assert server.post("/Approval/w/decide", "again").json() == "again"
    assert server.get("/restate/workflow/Approval/w/attach").json() == {"prior": None, "tag": "new",
                                                                        "decision": "again"}


def test_a_request_with_a_purged_idempotency_key_runs_anew_once(short_retention, effects_dir, pool) -> None:
    server = short_retention
    key = {"idempotency-key": "r"}
    first = server.post("/Once/stamp", "i", headers=key).json()
    assert server.post("/Once/stamp", "i", headers=key).json() == first  # retained: deduplicated

    server.failpoint(HOLD, "pause")
    _purge_queued(server, first)
    again = [pool.submit(server.post, "/Once/stamp", "i", headers=key, timeout=60) for _ in range(3)]
    # One new invocation starts while its admission waits behind the purge; its step waits
    # for that admission (the barrier).
    wait_until(lambda: len(set(read_lines(effects_dir / "stamp-i-entered"))) >= 2, what="the new attempt")
    assert read_lines(effects_dir / "stamp-i") == [first]
    server.failpoint(HOLD, None)
    answers = [f.result(timeout=30) for f in again]
    second = answers[0].json()
    assert second != first
    assert all(a.status_code == 200 and a.json() == second and a.headers["x-restate-id"] == second for a in answers)
    assert server.post("/Once/stamp", "i", headers=key).json() == second
    assert wait_for_lines(effects_dir / "stamp-i", 2) == [first, second]
    server.stop()

    # The new invocation may itself be purged by now (1 s after it completed): then with
    # its idempotency row. The old one is gone either way.
    def on_disk(d):  # type: ignore[no-untyped-def]
        record = d.invocation(second)
        return d.idempotency(), d.invocation(first), record and (record.status, record.output)

    rows, old_record, new_record = read_disk(server.data_dir, on_disk)
    assert old_record is None
    assert (rows, new_record) in (({("Once", "", "stamp", "r"): second}, (Status.COMPLETED, f'"{second}"'.encode())),
                                  ({}, None))


def test_a_purge_is_not_reported_before_it_is_durable(short_retention) -> None:
    server = short_retention
    inv = server.post("/Once/stamp", "g", headers={"idempotency-key": "g"}).json()
    server.failpoint(HOLD, "pause")
    _purge_queued(server, inv)
    answer = _status(server, "/restate/invocation/Once/stamp/g/output")
    server.kill()  # the purge's commit is lost
    assert read_disk(server.data_dir, lambda d: d.idempotency()) == {("Once", "", "stamp", "g"): inv}
    assert answer is None, f"answered {answer} on a purge that a crash then undid"
