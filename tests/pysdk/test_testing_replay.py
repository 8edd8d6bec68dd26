"""`pysdk.testing.replay`: golden histories replayed against the current code.

A journal recorded by a real runtime (the test harness, tests/apps/replay_v1.py) and
exported with `stead invocations export` replays against version 1 and is caught
against version 2 (a step renamed), with the entry index and both commands; one in
flight replays to its end. Journals recorded through the fake backend (fakes.py, held
to the runtime's rules by test_fake_contract.py) cover the rest of the handler API
(state, sleeps, awakeables, combinators, failed steps, time and randomness) and the
rules at the end of a journal. A document written here by hand freezes the format.
"""
from __future__ import annotations

import asyncio
import contextlib
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

import pysdk
import pysdk.testing
from pysdk import ObjectContext, RunOptions, TerminalError, VirtualObject, app
from pysdk._entries import AWAKEABLE
from pysdk._errors import NonDeterminismError, Suspended
from pysdk._machine import Machine
from pysdk.testing import Command, Journal, JournalFormatError, ReplayMismatchError, replay, replay_journal
from tests.apps import replay_v1, replay_v2

from .fakes import FakeBackend, drive, run


@pytest.fixture
def no_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The effects directory of the steps of tests/apps/replay_v*.py; nothing may be
    written there once the test starts replaying (`replaying()`)."""
    monkeypatch.setenv("STEAD_TEST_EFFECTS", str(tmp_path / "recording"))
    yield tmp_path / "recording"


def replaying(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "replaying"
    monkeypatch.setenv("STEAD_TEST_EFFECTS", str(path))
    return path


# ---- golden histories from a real runtime -----------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_exported_journal_is_a_golden_history(tmp_path: Path, no_effects: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    async with pysdk.create_test_harness(replay_v1.application) as env:
        assert await env.client.object_call(replay_v1.checkout, key="o1", arg=5) == "charged 5"
        approval = await env.client.object_send(replay_v1.checkout_approved, key="a1", arg=7)
        listed = await asyncio.to_thread(_invocations, env.admin_api_url)
        [checkout] = [inv["id"] for inv in listed if inv["target"] == "Orders/o1/checkout"]
        exports = {"checkout": tmp_path / "checkout.json", "approval": tmp_path / "approval.json"}
        # Both have three entries (GetState, Run, SetState; Run, Awakeable, SetState); a send
        # returns before its handler journals anything: exported once they are there.
        await asyncio.to_thread(_export, env.admin_api_url, checkout, exports["checkout"], 3)
        await asyncio.to_thread(_export, env.admin_api_url, approval.invocation_id, exports["approval"], 3)

    effects = replaying(monkeypatch, tmp_path)
    ok = replay(replay_v1.application, exports["checkout"])  # in a running loop: on a thread of its own
    assert (ok.result, ok.replayed, ok.next) == ("ok", 3, Command("Return"))
    in_flight = replay(replay_v1.application, str(exports["approval"]))
    assert in_flight.result == "ok" and in_flight.next == Command("Await", "entry 1 (Awakeable)")

    with pytest.raises(ReplayMismatchError) as caught:
        replay(replay_v2.application, exports["checkout"])
    assert (caught.value.index, caught.value.recorded, caught.value.new) == (
        1, Command("Run", "charge"), Command("Run", "charge-card"))
    assert 'journal entry 1 was recorded as Run "charge", but the handler now does Run "charge-card"' in str(
        caught.value)
    assert isinstance(caught.value, NonDeterminismError)
    with pytest.raises(ReplayMismatchError, match="journal entry 0 was recorded as Run"):
        await pysdk.testing.replay_async(replay_v2.application, exports["approval"])
    assert not effects.exists(), "a step body ran during a replay"


def _invocations(url: str) -> list[dict[str, Any]]:
    import httpx

    return httpx.get(f"{url}/invocations").json()["invocations"]


def _export(url: str, inv_id: str, path: Path, entries: int) -> None:
    from runtime.cli import main
    from tests.conftest import wait_until

    def export() -> bool:
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["invocations", "export", inv_id, "--admin-url", url, "-o", str(path)]) == 0
        return len(json.loads(path.read_text())["entries"]) >= entries

    wait_until(export, what=f"{entries} entries in {inv_id}'s journal")


# ---- journals recorded through the fake backend -----------------------------------------


flows = VirtualObject("Flows")


def fails() -> None:
    raise TerminalError("card declined", 402)


@flows.handler()
async def everything(ctx: ObjectContext, n: int) -> dict[str, Any]:
    seen = await ctx.get("seen") or 0
    ctx.set("seen", seen + 1)
    keys = await ctx.state_keys()
    a = await ctx.run_typed("a", lambda: n + 1, RunOptions())
    nap = ctx.sleep(timedelta(seconds=30))
    approval_id, approval = ctx.awakeable()
    await pysdk.gather(nap, approval)
    picked = await pysdk.select(first=ctx.sleep(timedelta(seconds=1)), second=ctx.sleep(timedelta(hours=1)))
    stamp = await ctx.time()
    try:
        await ctx.run("declined", fails)
        declined = None
    except TerminalError as exc:
        declined = exc.message
    ctx.clear_all()
    return {"seen": seen, "keys": keys, "a": a, "approval": await approval, "picked": picked[0],
            "stamp": stamp, "uuid": str(ctx.uuid()), "declined": declined, "id": approval_id}


flows_app = app([flows])


def completer(b: FakeBackend, m: Machine) -> None:
    """The runtime's part while recording: every awaited entry completes (the shortest sleep first)."""
    for index in sorted(m.awaiting)[:1] if len(m.awaiting) > 1 else m.awaiting:
        b.deliver(index, b'"approved"' if b.journal[index][0] == AWAKEABLE else b"")


def record(spec: Any, body: bytes, *, finish: bool = True) -> Journal:
    """A journal of `spec` recorded through the fake backend: completed, or (finish=False)
    in flight, suspended at its first wait."""
    b = FakeBackend(app=flows_app, caller=("Flows", "k"))
    status, output, failure = "completed", None, None
    if finish:
        b.on_wait = completer
        try:
            output = run(drive(spec, body, b, invocation_id="inv_" + "ab" * 16))
        except TerminalError as exc:
            failure = (exc.status_code, exc.message)
    else:
        with pytest.raises(Suspended):
            run(drive(spec, body, b, invocation_id="inv_" + "ab" * 16))
        status = "suspended"
    return Journal(id="inv_" + "ab" * 16, service="Flows", handler=spec.name, key="k", status=status, input=body,
                   entries=list(b.journal), completions=dict(b.completions), output=output, failure=failure)


def test_every_kind_of_entry_replays_and_round_trips_the_format() -> None:
    journal = record(flows.handlers["everything"], b"4")
    assert journal.whole and len(journal.entries) > 10
    result = run(replay_journal(flows_app, journal))
    assert (result.result, result.replayed, result.next) == ("ok", len(journal.entries), Command("Return"))
    doc = journal.to_document()
    again = Journal.from_document(json.loads(json.dumps(doc)))
    assert again == journal and again.to_document() == doc


def test_what_the_code_does_differently_is_named() -> None:
    journal = record(flows.handlers["everything"], b"4")
    changed = VirtualObject("Flows")

    @changed.handler(name="everything")
    async def returns_early(ctx: ObjectContext, n: int) -> int:
        await ctx.get("seen")
        return n

    with pytest.raises(ReplayMismatchError) as caught:
        replay(app([changed]), journal)
    assert (caught.value.index, caught.value.recorded, caught.value.new) == (
        1, Command("SetState", "seen"), Command("Return"))


def test_the_end_of_a_journal() -> None:
    """In flight, a replay ends where the journal does; a journal of a successful completion
    is the whole history: more commands after its end, or another outcome, do not match."""
    v1, v2 = VirtualObject("Flows"), VirtualObject("Flows")

    @v1.handler(name="h")
    async def h1(ctx: ObjectContext) -> str:
        return await ctx.run("one", lambda: "1")

    @v2.handler(name="h")
    async def h2(ctx: ObjectContext) -> str:
        await ctx.run("one", lambda: "1")
        return await ctx.run("two", lambda: "2")

    whole = record(v1.handlers["h"], b"")
    result = run(replay_journal(app([v2]), whole))
    assert (result.result, result.index, result.recorded, result.new) == (
        "mismatch", 1, Command("Return"), Command("Run", "two"))
    whole.status = "running"  # the same entries, in flight: it goes on live from there
    result = run(replay_journal(app([v2]), whole))
    assert (result.result, result.next) == ("ok", Command("Run", "two"))

    in_flight = record(flows.handlers["everything"], b"4", finish=False)
    assert in_flight.status == "suspended"
    result = run(replay_journal(flows_app, in_flight))
    assert result.result == "ok" and result.next is not None and result.next.kind == "Await"


def test_a_handler_that_fails_or_hangs_is_an_error() -> None:
    journal = record(flows.handlers["everything"], b"4")
    broken, hangs = VirtualObject("Flows"), VirtualObject("Flows")

    @broken.handler(name="everything")
    async def b(ctx: ObjectContext, n: int) -> int:
        await ctx.get("seen")
        raise KeyError("oops")

    @hangs.handler(name="everything")
    async def h(ctx: ObjectContext, n: int) -> int:
        await asyncio.sleep(30)  # not durable: not in any journal
        return n

    with pytest.raises(KeyError):
        replay(app([broken]), journal)
    result = run(replay_journal(app([hangs]), journal, timeout=0.05))
    assert result.result == "error" and "did not finish replaying within 0.05s" in result.message
    unparsable = Journal.from_document({**journal.to_document(), "input": {"text": "four"}})
    result = run(replay_journal(flows_app, unparsable))
    assert result.result == "error" and "stored input no longer parses" in result.message


# ---- the format ----------------------------------------------------------------------------

GOLDEN = {
    "format": "stead.journal/1",
    "id": "inv_0123456789abcdef0123456789abcdef",
    "target": "Orders/o9/checkout",
    "service": "Orders",
    "handler": "checkout",
    "key": "o9",
    "status": "completed",
    "input": {"json": 12},
    "headers": [["content-type", "application/json"]],
    "idempotency_key": None,
    "cancel_requested": False,
    "output": {"json": "charged 12"},
    "failure": None,
    "entries": [
        {"index": 0, "kind": "GetState", "name": "total", "value": {"json": 30}, "failure": None},
        {"index": 1, "kind": "Run", "name": "charge", "value": {"json": "charged 12"}, "failure": None},
        {"index": 2, "kind": "SetState", "name": "total", "value": {"json": 42}, "failure": None},
    ],
    "completions": [],
}


def test_a_document_written_by_hand(tmp_path: Path, no_effects: Path) -> None:
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(GOLDEN))
    assert replay(replay_v1.application, path).replayed == 3
    with pytest.raises(ReplayMismatchError, match='entry 1 was recorded as Run "charge"'):
        replay(replay_v2.application, GOLDEN)
    assert Journal.load(path).to_document() == GOLDEN
    assert not no_effects.exists()


@pytest.mark.parametrize("raw", [None, b"", b"null", b'{"a":1}', b'{"a": 1}', b"inv_x", b"\x00\xff", b"1.5"])
def test_values_round_trip_exactly(raw: Any) -> None:
    encoded = pysdk.testing.encode_value(raw)
    assert pysdk.testing.decode_value(json.loads(json.dumps(encoded)), "v") == raw


@pytest.mark.parametrize("change, message", [
    ({"format": "stead.journal/2"}, "not a Stead journal of format 'stead.journal/1'"),
    ({"status": "sleeping"}, "unknown status 'sleeping'"),
    ({"entries": [{"index": 1, "kind": "Run", "name": "x"}]}, "entry 0: has index 1"),
    ({"entries": [{"index": 0, "kind": "Run", "name": "x", "value": {"json": 1, "text": "1"}}]}, "entry 0: a value is"),
    ({"entries": [{"index": 0, "kind": "Run", "name": "x", "failure": {"code": "x"}}]}, "entry 0: a failure is"),
    ({"completions": [{"value": None}]}, "a completion is"),
    ({"input": {"base64": "!!"}}, "input: not base64"),
])
def test_malformed_documents_are_refused_clearly(change: dict[str, Any], message: str) -> None:
    with pytest.raises(JournalFormatError, match=message.replace("(", r"\(")):
        Journal.from_document({**GOLDEN, **change}, "golden.json")
