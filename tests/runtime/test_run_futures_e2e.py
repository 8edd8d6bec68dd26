"""`ctx.run`, `ctx.run_typed` and `ctx.time` return durable futures, as in Restate, so
they can be passed to the combinators (issue 8, section 7)."""

from __future__ import annotations

from tests.conftest import CORRECT_APP, wait_for_lines


def test_restates_parallel_steps_example(make_server, effects_dir) -> None:
    server = make_server(target=CORRECT_APP).start()
    resp = server.post("/ParallelSteps/squares", 4)
    assert resp.status_code == 200, resp.text
    assert resp.json() == [0, 1, 4, 9]
    assert wait_for_lines(effects_dir / "squares.log", 4) == ["0", "1", "2", "3"], "each step ran once"


def test_a_step_wins_a_select_against_a_sleep(make_server) -> None:
    server = make_server(target=CORRECT_APP).start()
    resp = server.post("/ParallelSteps/race")
    assert resp.status_code == 200, resp.text
    assert resp.json() == ["step", "q"]


def test_a_step_future_awaited_twice_gives_one_value(make_server) -> None:
    server = make_server(target=CORRECT_APP).start()
    assert server.post("/ParallelSteps/stamped").json() is True
