"""Concurrent completions of one awakeable or one workflow promise: exactly one wins;
the others get the documented answer. An awakeable completed again through the ingress
is 202 and ignored (Restate); a promise resolved again from a handler fails that
handler with TerminalError 409 "promise already completed".

Each race is run twice: with requests released together from threads (a real race), and
with the core's writer held (`commit.before_write`, `pause`) so that every completion
is decided while the first one's commit is still queued (seen from effects lines the
handlers write in the turn of the event loop in which the store decides).
"""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.conftest import BEHAVIOUR_APP, FAILPOINTS_ENV, read_lines, wait_for_lines
from tests.disk import EntryKind, read_disk

HOLD = "commit.before_write"
N = 6


@pytest.fixture
def racing(make_server):  # type: ignore[no-untyped-def]
    return make_server(target=BEHAVIOUR_APP, env=FAILPOINTS_ENV).start()


def _together(pool, n: int, request) -> list:  # type: ignore[no-untyped-def]
    """Start `request(i)` for i < n in threads released at once; the futures."""
    start = threading.Barrier(n)

    def one(i: int) -> httpx.Response:
        start.wait(timeout=10)
        return request(i)

    return [pool.submit(one, i) for i in range(n)]


def _answers(futures) -> list[httpx.Response]:  # type: ignore[no-untyped-def]
    return [f.result(timeout=30) for f in futures]


def _awakeable_result(server, inv: str, values: list[str]):  # type: ignore[no-untyped-def]
    """The invocation's result: one of the values, or the rejection."""
    result = server.get(f"/restate/invocation/{inv}/attach")
    won = result.json() if result.status_code == 200 else ("rejected", result.json())
    assert won in values + [("rejected", {"code": 500, "message": "no"})], won
    return result


def _check_awakeable_on_disk(server, inv: str, awakeable: str, result: httpx.Response) -> None:  # type: ignore
    """A later completion changes nothing; the one completion on disk is the winner's."""
    late = server.post(f"/restate/awakeables/{awakeable}/resolve", "late")
    assert late.status_code == 202  # accepted and ignored
    assert server.get(f"/restate/invocation/{inv}/output").content == result.content
    server.stop()

    def completion(d):  # type: ignore[no-untyped-def]
        (index,) = [i for i, e in enumerate(d.journal(inv)) if e.kind == EntryKind.AWAKEABLE]
        c = d.completions(inv)[index]
        return c.value, c.failure_code, c.failure_message

    expected = (result.content, 0, "") if result.status_code == 200 else (None, 500, "no")
    assert read_disk(server.data_dir, completion) == expected


def _waiting(server, effects_dir, tag: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A Signals/wait invocation waiting on its awakeable: (its id, the awakeable's id)."""
    inv = server.post("/Signals/wait/send", tag).json()["invocationId"]
    return inv, wait_for_lines(effects_dir / f"signal-{tag}", 1)[0]


def test_concurrent_ingress_completions_of_one_awakeable(racing, effects_dir, pool) -> None:
    server = racing
    inv, awakeable = _waiting(server, effects_dir, "a")

    def complete(i: int) -> httpx.Response:
        if i == N - 1:  # one of them rejects
            return httpx.post(f"{server.url}/restate/awakeables/{awakeable}/reject", content=b"no",
                              headers={"content-type": "text/plain"}, timeout=60)
        return server.post(f"/restate/awakeables/{awakeable}/resolve", f"v{i}", timeout=60)

    answers = _answers(_together(pool, N, complete))
    assert [(r.status_code, r.content) for r in answers] == [(202, b"")] * N
    result = _awakeable_result(server, inv, [f"v{i}" for i in range(N - 1)])
    _check_awakeable_on_disk(server, inv, awakeable, result)


def test_completions_of_one_awakeable_decided_while_the_first_is_not_written(racing, effects_dir, pool) -> None:
    """Every completion is decided while the writer is held (seen: each resolving handler
    has written its line; an ingress resolve is sent after that); none is answered before
    the release (the ingress one not within a second), and exactly one is applied."""
    server = racing
    inv, awakeable = _waiting(server, effects_dir, "h")
    server.failpoint(HOLD, "pause")
    by_handlers = _together(pool, N - 1, lambda i: server.post(
        "/Signals/resolve", {"id": awakeable, "value": f"v{i}"}, timeout=60))
    wait_for_lines(effects_dir / "resolving", N - 1)
    with pytest.raises(httpx.ReadTimeout):  # decided (already completed), answered only once durable
        server.post(f"/restate/awakeables/{awakeable}/resolve", "ingress", timeout=1.0)
    assert not any(f.done() for f in by_handlers)
    server.failpoint(HOLD, None)
    assert [r.json() for r in _answers(by_handlers)] == ["sent"] * (N - 1)
    result = _awakeable_result(server, inv, [f"v{i}" for i in range(N - 1)])  # a handler's came first
    _check_awakeable_on_disk(server, inv, awakeable, result)


@pytest.mark.parametrize("held", [False, True], ids=["threads", "writer-held"])
def test_concurrent_resolves_of_one_promise(racing, effects_dir, pool, held: bool) -> None:
    """writer-held: every resolve is decided (each handler has written its line) before
    the writer goes on."""
    server = racing
    server.post("/Approval/p/run/send", "p")
    wait_for_lines(effects_dir / "approval-p", 1)
    if held:
        server.failpoint(HOLD, "pause")
    futures = _together(pool, N, lambda i: server.post("/Approval/p/decide", f"d{i}", timeout=60))
    if held:
        wait_for_lines(effects_dir / "deciding-p", N)
        assert not any(f.done() for f in futures)
        server.failpoint(HOLD, None)
    answers = _answers(futures)
    winners = [r for r in answers if r.status_code == 200]
    losers = [r for r in answers if r.status_code != 200]
    assert len(winners) == 1, [r.text for r in answers]
    assert all(r.status_code == 409 and r.json() == {"code": 409, "message": "promise already completed"}
               for r in losers), [r.text for r in losers]
    decision = winners[0].json()
    assert server.get("/restate/workflow/Approval/p/attach").json() == {"prior": None, "tag": "p",
                                                                        "decision": decision}
    assert server.post("/Approval/p/current").json() == {"tag": "p", "decision": decision}
    assert read_lines(effects_dir / "approval-p") == ["started p"]
    server.stop()
    promise = read_disk(server.data_dir, lambda d: d.promises("Approval", "p")["decision"])
    assert promise.completed and promise.value == f'"{decision}"'.encode() and promise.waiters == []
