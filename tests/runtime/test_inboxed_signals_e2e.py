"""Cancel and kill, through the admin API, of invocations that wait in a key's inbox
(Restate: an inboxed invocation that is cancelled or killed never runs and completes
with 409). Its caller (an ingress call, or a handler that called it) gets the 409; the
key's owner is untouched (still waiting, its state as it was); the next waiter runs in
its turn. Also across a restart after SIGKILL, with what is queued read from disk.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import BEHAVIOUR_APP, read_lines, wait_for_lines
from tests.disk import Status, read_disk, wait_on_disk

MESSAGES = {"cancel": "cancelled", "kill": "killed"}


def _queued(server, key: str, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    return wait_on_disk(server.data_dir, lambda d: len(ids := d.inbox("Queue", key)) >= count and ids,
                        what=f"{count} invocations in the inbox of Queue/{key}")


def _hold(server, effects_dir, key: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """An owner of Queue/key waiting on an awakeable: (its id, the awakeable's id)."""
    hold = server.post(f"/Queue/{key}/hold/send", "awakeable").json()["invocationId"]
    wait_for_lines(effects_dir / f"queue-{key}-waiting", 1)
    return hold, read_lines(effects_dir / f"queue-{key}-awakeable")[0]


def _finish_owner(server, effects_dir, key: str, hold: str, awakeable: str, after: str) -> None:  # type: ignore
    """The owner is untouched by what happened to its waiters; released, it completes and
    the next waiter (`after`) runs; no victim ever entered the key."""
    assert server.get(f"/restate/invocation/{hold}/output").status_code == 470
    assert server.post(f"/Queue/{key}/peek").json() == ["hold"]
    assert server.post(f"/restate/awakeables/{awakeable}/resolve", "go").status_code == 202
    assert server.get(f"/restate/invocation/{hold}/attach").json() == "go"
    assert server.get(f"/restate/invocation/{after}/attach").json() == ["hold", "next"]
    assert [x for x in read_lines(effects_dir / f"queue-{key}") if x != "peek"] == ["release hold", "enter next"]


@pytest.mark.parametrize("action", ["cancel", "kill"])
def test_signal_to_an_inboxed_invocation(behaviour, effects_dir, pool, action: str) -> None:
    server, key, message = behaviour, f"x-{action}", MESSAGES[action]
    hold, awakeable = _hold(server, effects_dir, key)
    by_ingress = pool.submit(server.post, f"/Queue/{key}/enter", "victim-ingress", timeout=60)
    (v_ingress,) = _queued(server, key, 1)
    by_handler = pool.submit(server.post, "/Forwarder/call_enter", {"key": key, "tag": "victim-handler"}, timeout=60)
    wait_for_lines(effects_dir / "forwarder-victim-handler", 1)
    v_handler = _queued(server, key, 2)[1]
    after = server.post(f"/Queue/{key}/enter/send", "next").json()["invocationId"]
    assert _queued(server, key, 3) == [v_ingress, v_handler, after]

    for victim in (v_ingress, v_handler):
        resp = server.admin("PATCH", f"/invocations/{victim}/{action}")
        assert resp.status_code == 202 and resp.json() == {
            "invocationId": victim, "status": "cancelling" if action == "cancel" else "killed"}
    answer = by_ingress.result(timeout=30)
    assert answer.status_code == 409 and answer.json() == {"code": 409, "message": message}
    assert answer.headers["x-restate-id"] == v_ingress
    assert by_handler.result(timeout=30).json() == {"error": [409, message]}
    assert server.admin("PATCH", f"/invocations/{v_ingress}/{action}").status_code == 409  # already completed

    def on_disk(d):  # type: ignore[no-untyped-def]
        victims = [d.invocation(v) for v in (v_ingress, v_handler)]
        return (d.inbox("Queue", key), [(v.status, v.failure_code, v.failure_message, v.journal_len) for v in victims],
                d.invocation(hold).status)

    inbox, victims, owner = read_disk(server.data_dir, on_disk)
    assert inbox == [after] and victims == [(Status.COMPLETED, 409, message, 0)] * 2
    assert owner in (Status.RUNNING, Status.SUSPENDED)
    _finish_owner(server, effects_dir, key, hold, awakeable, after)


@pytest.mark.parametrize("action", ["cancel", "kill"])
def test_signal_to_an_inboxed_invocation_after_a_restart(make_server, effects_dir, action: str) -> None:
    server, key, message = make_server(target=BEHAVIOUR_APP).start(), "y", MESSAGES[action]
    hold, awakeable = _hold(server, effects_dir, key)
    caller = server.post("/Forwarder/call_enter/send", {"key": key, "tag": "victim-handler"}).json()["invocationId"]
    wait_for_lines(effects_dir / "forwarder-victim-handler", 1)
    (v_handler,) = _queued(server, key, 1)
    v_send = server.post(f"/Queue/{key}/enter/send", "victim-send").json()["invocationId"]
    after = server.post(f"/Queue/{key}/enter/send", "next").json()["invocationId"]
    server.kill()

    def queued(d):  # type: ignore[no-untyped-def]
        ids = d.inbox("Queue", key)
        return ids, [json.loads(d.invocation(i).input) for i in ids], [d.invocation(i).status for i in ids]

    assert read_disk(server.data_dir, queued) == (
        [v_handler, v_send, after], ["victim-handler", "victim-send", "next"], [Status.INBOXED] * 3)

    server.restart()
    for victim in (v_handler, v_send):
        assert server.admin("PATCH", f"/invocations/{victim}/{action}").status_code == 202
    resp = server.get(f"/restate/invocation/{v_send}/attach")
    assert resp.status_code == 409 and resp.json()["message"] == message
    assert server.get(f"/restate/invocation/{caller}/attach").json() == {"error": [409, message]}
    _finish_owner(server, effects_dir, key, hold, awakeable, after)
    server.stop()

    def victims(d):  # type: ignore[no-untyped-def]
        return d.inboxes(), [(d.invocation(v).status, d.invocation(v).failure_message) for v in (v_handler, v_send)]

    assert read_disk(server.data_dir, victims) == ({}, [(Status.COMPLETED, message)] * 2)
