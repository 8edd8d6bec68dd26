"""SIGTERM with invocations in flight: the server stops gracefully (an invocation that can
finish within the shutdown timeout finishes; the others stop where they are, nothing
half-written), exits by re-raising the signal, and after the restart every unfinished
invocation resumes exactly once: no durable step runs twice, none is lost.

In flight at the signal: Lane/a between two steps at a gate that stays closed (it is
cancelled when the 10 s shutdown timeout runs out), Lane/b at a gate the test opens once
the server has stopped listening (its last step takes a second: it finishes within the
shutdown timeout), Queue/q waiting on an awakeable with Queue/q/enter queued behind it,
and Lane/n in a durable sleep that ends after the restart.
"""

from __future__ import annotations

import signal
import time

import httpx

from tests.conftest import BEHAVIOUR_APP, read_lines, wait_for_lines, wait_until
from tests.disk import Status, read_disk


def _listening(server) -> bool:  # type: ignore[no-untyped-def]
    try:
        server.get("/restate/health", timeout=1.0)
    except httpx.ConnectError:
        return False
    return True


def _at_gate(effects_dir, name: str) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: f"at {name}" in read_lines(effects_dir / "gates"), what=f"a handler at gate {name}")


def test_sigterm_stops_gracefully_and_each_invocation_resumes_once(make_server, effects_dir, mode: str) -> None:
    server = make_server(target=BEHAVIOUR_APP).start()
    a = server.post("/Lane/a/steps/send", "a").json()["invocationId"]
    b = server.post("/Lane/b/slow/send", "b").json()["invocationId"]
    hold = server.post("/Queue/q/hold/send", "awakeable").json()["invocationId"]
    wait_for_lines(effects_dir / "queue-q-waiting", 1)
    awakeable = read_lines(effects_dir / "queue-q-awakeable")[0]
    queued = server.post("/Queue/q/enter/send", "next").json()["invocationId"]
    nap = server.post("/Lane/n/nap/send", 3000).json()["invocationId"]
    wait_for_lines(effects_dir / "nap-n", 1)
    _at_gate(effects_dir, "lane-a-gate")
    _at_gate(effects_dir, "lane-b-gate")
    bodies = {name: len(read_lines(effects_dir / name)) for name in ("lane-a-body", "lane-b-body", "nap-n-body")}

    assert server.proc is not None
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: not _listening(server), what="the server to stop listening")
    (effects_dir / "lane-b-gate").touch()  # b can finish within the shutdown timeout
    assert server.proc.wait(timeout=30) == -signal.SIGTERM
    assert time.monotonic() - started < 20
    log = server.log()
    assert "Traceback" not in log and "storage failed" not in log, log

    def on_disk(d):  # type: ignore[no-untyped-def]
        status = {name: d.invocation(inv).status for name, inv in
                  (("a", a), ("b", b), ("hold", hold), ("queued", queued), ("nap", nap))}
        return (status, d.invocation(b).output, [e.name for e in d.journal(a)], d.inbox("Queue", "q"),
                [t.invocation_id for t in d.timers()])

    status, b_output, a_journal, inbox, timers = read_disk(server.data_dir, on_disk)
    assert status["b"] == Status.COMPLETED and b_output == b'"b done"'
    assert status["a"] == Status.RUNNING and a_journal == ["before"]
    assert status["hold"] in (Status.RUNNING, Status.SUSPENDED)
    assert status["queued"] == Status.INBOXED and inbox == [queued]
    # The sleep ends during the shutdown: whether its timer fires then or at the restart,
    # the nap finishes once.
    assert timers == ([] if status["nap"] == Status.COMPLETED else [nap])
    assert read_lines(effects_dir / "lane-b") == ["before", "after"]

    server.restart()
    (effects_dir / "lane-a-gate").touch()
    assert server.get(f"/restate/invocation/{a}/attach").json() == "a done"
    assert server.get(f"/restate/invocation/{b}/attach").json() == "b done"
    assert server.get(f"/restate/invocation/{nap}/attach").json() == "rested"
    assert server.post(f"/restate/awakeables/{awakeable}/resolve", "go").status_code == 202
    assert server.get(f"/restate/invocation/{hold}/attach").json() == "go"
    assert server.get(f"/restate/invocation/{queued}/attach").json() == ["hold", "next"]

    for name in ("lane-a", "lane-b", "nap-n"):
        assert read_lines(effects_dir / name) == ["before", "after"], name
    assert read_lines(effects_dir / "queue-q") == ["release hold", "enter next"]
    if mode == "normal":  # forced replay runs each body again after every durable point
        again = {name: len(read_lines(effects_dir / name)) - n for name, n in bodies.items()}
        napped = status["nap"] == Status.COMPLETED
        assert again == {"lane-a-body": 1, "lane-b-body": 0, "nap-n-body": 0 if napped else 1}, again
    server.stop()
    assert read_disk(server.data_dir, lambda d: ({i.status for i in d.invocations().values()}, d.timers(),
                                                 d.inboxes())) == ({Status.COMPLETED}, [], {})
