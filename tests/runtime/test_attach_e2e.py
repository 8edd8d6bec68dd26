"""Attaching to an invocation (`GET /restate/invocation/{id}/attach`, an idempotent
duplicate) around its completion: an attach that arrives after the handler returned but
before the completion commit is written waits for that commit (never answers early,
never waits forever), and many concurrent attaches to one invocation all get its result.

The commit is held with the core's `commit.before_write` failpoint (`pause`). Once/work
writes `once-TAG-returning` right before it returns, in the same turn of the event loop
as the completion is queued, so a request sent after that line is seen arrives after
the completion was queued.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import BEHAVIOUR_APP, FAILPOINTS_ENV, read_lines, wait_for_lines, wait_until
from tests.disk import Status, read_disk

HOLD = "commit.before_write"


@pytest.fixture
def held(make_server):  # type: ignore[no-untyped-def]
    return make_server(target=BEHAVIOUR_APP, env=FAILPOINTS_ENV).start()


def _at_gate(effects_dir, tag: str) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: f"at once-{tag}-gate" in read_lines(effects_dir / "gates"), what=f"Once/work {tag} at its gate")


def _returned(server, effects_dir, tag: str) -> None:  # type: ignore[no-untyped-def]
    """Let Once/work `tag` go to its last gate (its last step durable), hold the writer,
    let it return: its completion is queued, not written."""
    (effects_dir / f"once-{tag}-gate").touch()
    wait_until(lambda: f"at once-{tag}-return" in read_lines(effects_dir / "gates"), what="the last gate")
    server.failpoint(HOLD, "pause")
    (effects_dir / f"once-{tag}-return").touch()
    wait_for_lines(effects_dir / f"once-{tag}-returning", 1)


def test_an_attach_before_the_completion_is_written_waits_for_it(held, effects_dir, pool) -> None:
    server = held
    inv = server.post("/Once/work/send", "a", headers={"idempotency-key": "a"}).json()["invocationId"]
    _at_gate(effects_dir, "a")
    _returned(server, effects_dir, "a")
    attaches = [pool.submit(server.get, f"/restate/invocation/{inv}/attach", timeout=60),
                pool.submit(server.get, "/restate/invocation/Once/work/a/attach", timeout=60),
                pool.submit(server.post, "/Once/work", "a", headers={"idempotency-key": "a"}, timeout=60)]
    # Completed in memory, not durable: not ready, and nobody is answered yet.
    assert server.get(f"/restate/invocation/{inv}/output").status_code == 470
    with pytest.raises(httpx.ReadTimeout):
        server.get(f"/restate/invocation/{inv}/attach", timeout=1.0)
    assert not any(f.done() for f in attaches)
    server.failpoint(HOLD, None)
    for f in attaches:
        resp = f.result(timeout=30)
        assert resp.status_code == 200 and resp.json() == f"a by {inv}" and resp.headers["x-restate-id"] == inv
    assert server.get(f"/restate/invocation/{inv}/output").json() == f"a by {inv}"
    assert read_lines(effects_dir / "once-a") == ["begin", "end"]


def test_an_attach_waiting_for_a_completion_lost_in_a_crash_is_not_answered(held, effects_dir, pool) -> None:
    server = held
    inv = server.post("/Once/work/send", "c").json()["invocationId"]
    _at_gate(effects_dir, "c")
    _returned(server, effects_dir, "c")
    attach = pool.submit(server.get, f"/restate/invocation/{inv}/attach", timeout=60)
    assert server.get(f"/restate/invocation/{inv}/output").status_code == 470
    server.kill()  # the held completion is lost
    assert isinstance(attach.exception(timeout=30), httpx.TransportError)
    record = read_disk(server.data_dir, lambda d: d.invocation(inv))
    assert record.status == Status.RUNNING and record.output is None
    server.restart()  # resumes it by replay: its steps are recorded, it completes again
    resp = server.get(f"/restate/invocation/{inv}/attach")
    assert resp.status_code == 200 and resp.json() == f"c by {inv}"
    assert read_lines(effects_dir / "once-c") == ["begin", "end"]


def test_many_concurrent_attaches_get_the_one_result(held, effects_dir, pool) -> None:
    server = held
    inv = server.post("/Once/work/send", "m", headers={"idempotency-key": "m"}).json()["invocationId"]
    _at_gate(effects_dir, "m")
    paths = [f"/restate/invocation/{inv}/attach", "/restate/invocation/Once/work/m/attach"]
    early = [pool.submit(server.get, paths[i % 2], timeout=60) for i in range(16)]  # while it runs
    _returned(server, effects_dir, "m")
    late = [pool.submit(server.get, paths[i % 2], timeout=60) for i in range(8)]  # completion not written
    server.failpoint(HOLD, None)
    after = [pool.submit(server.get, paths[i % 2], timeout=60) for i in range(8)]  # completed
    answers = [f.result(timeout=30) for f in early + late + after]
    assert {(r.status_code, r.text, r.headers["x-restate-id"]) for r in answers} == {(200, f'"m by {inv}"', inv)}
    assert read_lines(effects_dir / "once-m") == ["begin", "end"]
