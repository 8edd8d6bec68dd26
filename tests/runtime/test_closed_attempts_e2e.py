"""A suspended attempt journals nothing more, and an awakeable resolved while the step
that publishes it runs is not refused (issue 8, sections 2 and 3)."""

from __future__ import annotations

from tests.conftest import CORRECT_APP, wait_for_lines


def test_finally_of_a_suspended_attempt_journals_nothing(make_server, effects_dir) -> None:
    server = make_server(target=CORRECT_APP, extra_args=["--suspend-after", "0.1s"]).start()
    resp = server.post("/Closing/sleep_then_step", "t", timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "done"
    assert wait_for_lines(effects_dir / "t.log", 2) == ["step", "cleanup"]
    # It really was suspended (normal mode too): the body ran again when the timer resumed it.
    assert len(wait_for_lines(effects_dir / "t.body", 2)) >= 2


def test_forced_replay_reaches_the_handler(make_server, mode, effects_dir) -> None:
    server = make_server(target=CORRECT_APP).start()
    assert server.post("/Closing/counted", "c").json() == 2
    assert (effects_dir / "c.steps").read_text().splitlines() == ["one", "two"], "each step once"
    runs = len((effects_dir / "c.body").read_text().splitlines())
    # replay mode: after each of the two steps the handler is replayed from the journal
    assert runs == (3 if mode == "replay" else 1)


def test_a_handler_catching_base_exception_cannot_journal_after_suspension(make_server, effects_dir) -> None:
    server = make_server(target=CORRECT_APP, extra_args=["--suspend-after", "0.1s"]).start()
    resp = server.post("/Closing/swallow", "s", timeout=30)
    assert resp.status_code == 200, resp.text
    assert wait_for_lines(effects_dir / "s.log", 1) == ["after"]


def test_awakeable_resolved_by_the_step_that_publishes_it(make_server) -> None:
    server = make_server(target=CORRECT_APP).start()
    resp = server.post("/Webhook/pay", server.url, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "paid"


def test_a_kill_during_a_step_journals_nothing_more(make_server, effects_dir) -> None:
    from tests.disk import read_disk

    server = make_server(target=CORRECT_APP).start()
    inv = server.post("/Closing/gated_step/send", "k").json()["invocationId"]
    assert wait_for_lines(effects_dir / "k.log", 1) == ["started"]
    assert server.admin("PATCH", f"/invocations/{inv}/kill").status_code == 202
    (effects_dir / "k.gate").touch()
    assert wait_for_lines(effects_dir / "k.log", 2) == ["started", "finished"]
    out = server.get(f"/restate/invocation/{inv}/output")
    assert out.status_code == 409 and out.json()["message"] == "killed"
    (effects_dir / "ok.gate").touch()
    done = server.post("/Closing/gated_step/send", "ok").json()["invocationId"]
    assert server.get(f"/restate/invocation/{done}/attach").json() == "done"
    server.stop()
    journal = read_disk(server.data_dir, lambda d: d.journal(inv))
    assert [e.name for e in journal if e.kind == 6] == [], "the killed step's result was not journaled"
    control = read_disk(server.data_dir, lambda d: d.journal(done))
    assert [e.name for e in control if e.kind == 6] == ["slow", "after"], "the reader sees steps"
    assert (effects_dir / "k.log").read_text().splitlines() == ["started", "finished"]
    assert "Traceback" not in server.log()


def test_cancel_and_attach_reach_an_invocation_without_a_durable_point(make_server, effects_dir) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = make_server(target=CORRECT_APP).start()
    with ThreadPoolExecutor(3) as pool:
        cancelled = pool.submit(server.post, "/Closing/unpersisted", "c", timeout=30)
        (c_id,) = wait_for_lines(effects_dir / "c.id", 1)
        assert server.admin("PATCH", f"/invocations/{c_id}/cancel").status_code == 202
        (effects_dir / "c.gate").touch()
        resp = cancelled.result(timeout=30)
        assert resp.status_code == 409 and resp.json()["message"] == "cancelled"

        running = pool.submit(server.post, "/Closing/unpersisted", "a", timeout=30)
        (a_id,) = wait_for_lines(effects_dir / "a.id", 1)
        attached = pool.submit(server.post, "/Closing/attach", a_id, timeout=30)
        assert wait_for_lines(effects_dir / "attaching", 1)[:1] == [a_id]
        (effects_dir / "a.gate").touch()
        assert running.result(timeout=30).json() == "finished"
        resp = attached.result(timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json() == "finished"
