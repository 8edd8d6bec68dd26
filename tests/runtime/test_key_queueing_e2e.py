"""One object key, one exclusive invocation at a time (Restate's virtual objects), over
real HTTP: an exclusive handler that waits (a sleep, an awakeable, a call) keeps its key,
so later exclusive invocations queue while shared handlers of the key still run;
invocations that arrive on one key by every path (ingress call, ingress send, delayed
send, call and send from a handler) queue in arrival order; an invocation backing off
between retries keeps its key.

Arrival is observed on disk (the `inbox` column family, read with rocksdict beside the
running server), so each arrival is known to be queued before the next one is made.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import read_lines, wait_for_lines
from tests.disk import Status, read_disk, wait_on_disk


def _awakeable(effects_dir, key: str) -> str:  # type: ignore[no-untyped-def]
    return wait_for_lines(effects_dir / f"queue-{key}-awakeable", 1)[0]


def _release(server, effects_dir, key: str, how: str) -> None:  # type: ignore[no-untyped-def]
    if how == "awakeable":
        assert server.post(f"/restate/awakeables/{_awakeable(effects_dir, key)}/resolve", "go").status_code == 202
    elif how == "call":
        (effects_dir / f"queue-{key}-gate").touch()  # the callee's gate


def _queued(server, key: str, count: int) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Wait until `count` invocations wait on Queue/key on disk; (id, tag) in inbox order."""
    def read(disk):  # type: ignore[no-untyped-def]
        ids = disk.inbox("Queue", key)
        if len(ids) < count:
            return None
        return [(i, json.loads(disk.invocation(i).input)) for i in ids]

    return wait_on_disk(server.data_dir, read, what=f"{count} invocations in the inbox of Queue/{key}")


@pytest.mark.parametrize("how", ["awakeable", "sleep:3000", "call"])
def test_a_waiting_owner_keeps_its_key_while_shared_handlers_run(behaviour, effects_dir, how: str) -> None:
    """`sleep:3000`: the queued invocation and the shared read are made during the 3 s
    (checked: the owner has not gone on by then); in forced-replay mode the owner is
    suspended while it waits, and keeps its key all the same."""
    server, key = behaviour, "k"
    hold = server.post(f"/Queue/{key}/hold/send", how).json()["invocationId"]
    wait_for_lines(effects_dir / f"queue-{key}-waiting", 1)
    second = server.post(f"/Queue/{key}/enter/send", "second")
    assert second.status_code == 202, second.text
    second_id = second.json()["invocationId"]

    # A shared handler of the key runs now, beside the waiting owner, on its committed state.
    assert server.post(f"/Queue/{key}/peek").json() == ["hold"]
    assert read_lines(effects_dir / f"queue-{key}") == ["peek"], "the owner went on, or the second ran"
    assert _queued(server, key, 1) == [(second_id, "second")]
    with_disk = read_disk(server.data_dir, lambda d: (d.invocation(hold).status, d.invocation(second_id).status))
    assert with_disk[0] in (Status.RUNNING, Status.SUSPENDED) and with_disk[1] == Status.INBOXED

    _release(server, effects_dir, key, how)
    assert server.get(f"/restate/invocation/{hold}/attach").status_code == 200
    assert server.get(f"/restate/invocation/{second_id}/attach").json() == ["hold", "second"]
    lines = read_lines(effects_dir / f"queue-{key}")
    assert lines.count("enter second") == 1
    assert lines.index("release hold") < lines.index("enter second"), lines


def test_arrivals_by_every_path_queue_in_arrival_order(behaviour, effects_dir, pool) -> None:
    server, key = behaviour, "order"
    hold = server.post(f"/Queue/{key}/hold/send", "awakeable").json()["invocationId"]
    wait_for_lines(effects_dir / f"queue-{key}-waiting", 1)

    call = pool.submit(server.post, f"/Queue/{key}/enter", "ingress-call", timeout=60)
    _queued(server, key, 1)
    assert server.post(f"/Queue/{key}/enter/send", "ingress-send").status_code == 202
    _queued(server, key, 2)
    # A delayed send arrives when its delay is over.
    assert server.post(f"/Queue/{key}/enter/send?delay=200ms", "delayed-send").status_code == 202
    _queued(server, key, 3)
    forwarded = pool.submit(server.post, "/Forwarder/call_enter", {"key": key, "tag": "handler-call"}, timeout=60)
    wait_for_lines(effects_dir / "forwarder-handler-call", 1)
    _queued(server, key, 4)
    sent = server.post("/Forwarder/send_enter", {"key": key, "tag": "handler-send"}).json()
    arrivals = ["ingress-call", "ingress-send", "delayed-send", "handler-call", "handler-send"]
    assert [tag for _, tag in _queued(server, key, 5)] == arrivals
    assert read_lines(effects_dir / f"queue-{key}") == []  # nobody entered: the owner holds the key

    _release(server, effects_dir, key, "awakeable")
    assert server.get(f"/restate/invocation/{hold}/attach").status_code == 200
    assert call.result(timeout=30).json() == ["hold", "ingress-call"]
    assert forwarded.result(timeout=30).json() == {"order": ["hold", *arrivals[:4]]}
    assert server.get(f"/restate/invocation/{sent}/attach").json() == ["hold", *arrivals]
    assert [line for line in read_lines(effects_dir / f"queue-{key}") if line != "peek"] == [
        "release hold", *(f"enter {tag}" for tag in arrivals)]
    assert read_disk(server.data_dir, lambda d: d.inbox("Queue", key)) == []


def test_an_owner_backing_off_between_retries_keeps_its_key(behaviour, effects_dir) -> None:
    server, key = behaviour, "r"
    flaky = server.post(f"/Queue/{key}/flaky_enter/send", "flaky").json()["invocationId"]
    record = wait_on_disk(server.data_dir,
                          lambda d: (r := d.invocation(flaky)) and r.status == Status.BACKING_OFF and r,
                          what="the first attempt failed and its retry is scheduled")
    assert read_lines(effects_dir / f"flaky-{key}-flaky") == ["failed"]
    after = server.post(f"/Queue/{key}/enter/send", "after").json()["invocationId"]
    # The retry is two seconds away: the key is still the flaky invocation's.
    on_disk = read_disk(server.data_dir, lambda d: (d.invocation(flaky), d.invocation(after), d.inbox("Queue", key),
                                                     [t.entry for t in d.timers() if t.invocation_id == flaky]))
    assert on_disk[0].status == Status.BACKING_OFF and on_disk[0].next_retry_ms == record.next_retry_ms
    assert on_disk[1].status == Status.INBOXED and on_disk[2] == [after]
    assert on_disk[3] == [0xFFFF_FFFF]  # its retry timer

    assert server.get(f"/restate/invocation/{after}/attach").json() == ["flaky", "after"]
    assert server.get(f"/restate/invocation/{flaky}/attach").json() == ["flaky"]
    assert read_lines(effects_dir / f"queue-{key}") == ["enter flaky", "enter after"]
