"""`ctx.attach_invocation` over a real `stead serve` (tests/apps/attachapp.py): a
handler attaches to an invocation it sent, to one already completed, to an
unknown one and to itself; a failing target's TerminalError reaches the
attacher; and an attacher waiting for a target survives kill -9 of the server."""

from __future__ import annotations

import time

from tests.conftest import wait_for_lines

ATTACH_APP = "tests.apps.attachapp:application"


def _lines(effects_dir, name: str) -> list[str]:  # type: ignore[no-untyped-def]
    path = effects_dir / name
    return path.read_text().splitlines() if path.exists() else []


def test_a_handler_attaches_to_the_invocation_it_sent(make_server, effects_dir) -> None:
    server = make_server(target=ATTACH_APP).start()
    resp = server.post("/Attacher/send_and_attach", "abc")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["receipt"] == {"order": "abc", "total": 4.5}
    assert body["target"].startswith("inv_")
    assert _lines(effects_dir, "target") == ["work abc"]
    assert _lines(effects_dir, "attacher") == [f"sent abc {body['target']}", "got abc 4.5"]
    # The target's own result is the same.
    assert server.get(f"/restate/invocation/{body['target']}/output").json() == {"order": "abc", "total": 4.5}


def test_the_attacher_waits_for_a_running_target(make_server, effects_dir) -> None:
    server = make_server(target=ATTACH_APP).start()
    inv = server.post("/Attacher/send_and_attach/send", "gate-w").json()["invocationId"]
    assert wait_for_lines(effects_dir / "target", 1) == ["started gate-w"]
    time.sleep(0.3)
    assert server.get(f"/restate/invocation/{inv}/output").status_code == 470, "still waiting"
    assert len(_lines(effects_dir, "attacher")) == 1
    (effects_dir / "gate-w").touch()
    result = server.get(f"/restate/invocation/{inv}/attach")
    assert result.status_code == 200, result.text
    assert result.json()["receipt"] == {"order": "gate-w", "total": 2.0}
    assert _lines(effects_dir, "target") == ["started gate-w", "passed gate-w"]


def test_attaching_to_a_completed_invocation(make_server) -> None:
    server = make_server(target=ATTACH_APP).start()
    done = server.post("/Target/work/send", "xy").json()["invocationId"]
    assert server.get(f"/restate/invocation/{done}/attach").status_code == 200
    assert server.post("/Attacher/attach_to", done).json() == {"output": {"order": "xy", "total": 3.0}}
    # A completed failure too.
    failed = server.post("/Target/boom/send", "no").json()["invocationId"]
    assert server.get(f"/restate/invocation/{failed}/attach").status_code == 418
    assert server.post("/Attacher/attach_to", failed).json() == {"code": 418, "message": "no"}


def test_attaching_to_an_unknown_invocation_or_to_itself_fails(make_server) -> None:
    server = make_server(target=ATTACH_APP).start()
    unknown = "inv_1nope0000000000000000000000"
    assert server.post("/Attacher/attach_to", unknown).json() == {
        "code": 404, "message": f"invocation {unknown} not found"}
    answer = server.post("/Attacher/attach_self").json()
    assert answer["code"] == 400 and "cannot attach to itself" in answer["message"]


def test_a_failing_targets_terminal_error_reaches_the_attacher(make_server) -> None:
    server = make_server(target=ATTACH_APP).start()
    assert server.post("/Attacher/send_boom_and_attach", "out of stock").json() == {
        "code": 418, "message": "out of stock"}


def test_an_attacher_waiting_across_kill_9_gets_the_result(make_server, effects_dir) -> None:
    server = make_server(target=ATTACH_APP).start()
    inv = server.post("/Attacher/send_and_attach/send", "gate-k").json()["invocationId"]
    assert wait_for_lines(effects_dir / "target", 1) == ["started gate-k"]
    time.sleep(0.5)  # the attacher has journaled its ATTACH_INVOCATION and waits (or is suspended)
    server.kill()
    sent = _lines(effects_dir, "attacher")
    assert len(sent) == 1 and sent[0].startswith("sent gate-k inv_")
    (effects_dir / "gate-k").touch()
    server.restart()
    result = server.get(f"/restate/invocation/{inv}/attach")
    assert result.status_code == 200, result.text
    assert result.json()["receipt"] == {"order": "gate-k", "total": 2.0}
    # Each step ran once; the target's gate step ran again after the crash (it was not journaled).
    assert _lines(effects_dir, "attacher") == [sent[0], "got gate-k 2.0"]
    assert _lines(effects_dir, "target") == ["started gate-k", "passed gate-k"]
