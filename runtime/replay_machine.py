"""The replay-only machine: a recorded journal replayed against the current code of its
handler without running anything for real (`replay_journal`), for `stead replay`
(runtime/replay.py) and `pysdk.testing.replay`.

`_ReplayMachine` is a pysdk `Machine` (pysdk/_machine.py, which does the comparing: kind
and name of every command against the recorded entry at its index, NonDeterminismError
otherwise), with two changes:

* the first operation past the recorded entries stops the handler there (`_JournalEnd`,
  control flow like `Suspended`): nothing live happens, so no step body, sleep or call
  runs, and the operation is remembered as what the handler does next;
* a mismatch is remembered as (index, recorded command, new command), for the report.

Its `Backend` (`_ReplayBackend`) is only reached past the end of the journal (a flush, a
wait for a completion the journal does not have, a step's body, a promise peek), and
stops the replay there too. Recorded completions are handed to the machine up front,
as the runtime's recovery does (runtime/invoker.py `_recorded`).

Where the journal ends, an invocation in flight would go on live: the replay is fine.
A successfully completed invocation's journal is its whole history (`Journal.whole`):
the handler must return exactly there. A handler that raises anything else than a
`TerminalError` would be retried by the runtime: an "error".
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn, Optional

import pydantic_core

from pysdk._app import App
from pysdk._entries import (CANCEL, CLEAR_ALL, COMBINATOR, GET_STATE, PEEK_PROMISE, RUN, STATE_KEYS, Completion,
                            Entry)
from pysdk._errors import NonDeterminismError, SdkInternalBaseException, TerminalError
from pysdk._machine import Machine
from runtime.replay_format import KINDS, Journal

__all__ = ["Command", "ReplayMismatchError", "ReplayResult", "replay_journal"]

_loads = pydantic_core.from_json

# ---- the result of a replay ----------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    """What a handler does at a journal index, or what is recorded there: an entry kind (the
    format's names) and its name; or the end of the handler: "Return" (it returned),
    "Failure" (it failed terminally; name: the message), "Await" (it waits for entry `name`)."""

    kind: str
    name: Optional[str] = None

    def __str__(self) -> str:
        return self.kind if self.name is None else f"{self.kind} {json.dumps(self.name, ensure_ascii=False)}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name}


def _command(kind: int, name: Optional[str]) -> Command:
    return Command(KINDS.get(kind, f"Unknown({kind})"), name)


RETURN = Command("Return")


@dataclass
class ReplayResult:
    """The replay of one journal. `result`: "ok", "mismatch" (the code no longer matches the
    journal: `index`, `recorded`, `new`), "error" (the handler raised something that would
    make the invocation retry, or its input no longer parses: `message`) or "skipped"
    (`message` says why). `replayed`: the entries the handler went through; `next`, for a
    replay that ended with the journal, what the handler does next (live)."""

    id: str
    target: str
    status: str
    entries: int
    result: str = "ok"
    replayed: int = 0
    index: Optional[int] = None
    recorded: Optional[Command] = None
    new: Optional[Command] = None
    message: str = ""
    next: Optional[Command] = None
    # What the handler raised, for a result "error" that comes from the handler.
    error: Optional[BaseException] = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        """One line for people: what failed, and where."""
        head = f"{self.id} {self.target} ({self.status})"
        if self.result == "mismatch":
            return f"{head}: entry {self.index}: recorded {self.recorded}, now {self.new}"
        if self.result in ("error", "skipped"):
            return f"{head}: {self.message}"
        return f"{head}: replayed {self.replayed} of {self.entries} entries" + (
            f", then {self.next}" if self.next is not None else "")

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "target": self.target, "status": self.status, "entries": self.entries,
                "result": self.result, "replayed": self.replayed, "index": self.index,
                "recorded": self.recorded.to_json() if self.recorded else None,
                "new": self.new.to_json() if self.new else None, "message": self.message or None,
                "next": self.next.to_json() if self.next else None}


class ReplayMismatchError(NonDeterminismError):
    """The handler no longer matches a recorded journal: at entry `index`, `recorded` is
    what the journal holds and `new` what the handler does now."""

    def __init__(self, result: ReplayResult) -> None:
        super().__init__(f"invocation {result.id} ({result.target}): journal entry {result.index} was "
                         f"recorded as {result.recorded}, but the handler now does {result.new}")
        self.result = result
        self.index = result.index
        self.recorded = result.recorded
        self.new = result.new


# ---- the replay-only machine ------------------------------------------------------------------------


class _JournalEnd(SdkInternalBaseException):
    """The handler reached the end of the journal: the replay stops there (control flow, so
    that `except Exception` in the handler cannot swallow it)."""

    _default_message = "the replay reached the end of the recorded journal"


class _ReplayMachine(Machine):
    """A `Machine` that only replays: the first operation past the recorded entries stops
    the handler (`_JournalEnd`) and is remembered as `stopped`; a mismatch is remembered
    as `diverged` = (index, recorded command, new command)."""

    stopped: Optional[Command] = None
    diverged: Optional[tuple[int, Command, Command]] = None

    def _stop(self, command: Command) -> NoReturn:
        if self.stopped is None:
            self.stopped = command
        self.close(_JournalEnd)
        raise _JournalEnd()

    def _past_end(self, kind: int, name: Optional[str]) -> None:
        self._check_open()
        if self.journal_index >= self._replay_len:
            self._stop(_command(kind, name))

    def _mismatch(self, index: int, kind: int, name: Optional[str]) -> NonDeterminismError:
        entry = self._replay[index]
        self.diverged = (index, _command(entry[0], entry[1]), _command(kind, name))
        return super()._mismatch(index, kind, name)

    def check_replay_complete(self) -> None:
        entry = self._replay[self.journal_index]
        self.diverged = (self.journal_index, _command(entry[0], entry[1]), RETURN)
        super().check_replay_complete()

    def get_state(self, name: str) -> Optional[bytes]:
        self._past_end(GET_STATE, name)
        return super().get_state(name)

    def _replayed(self, kind: int, name: str) -> bool:
        self._past_end(kind, name)
        return super()._replayed(kind, name)

    def clear_all(self) -> None:
        self._past_end(CLEAR_ALL, None)
        super().clear_all()

    def state_keys(self) -> list[str]:
        self._past_end(STATE_KEYS, None)
        return super().state_keys()

    async def run(self, name: str, *args: Any) -> Any:
        self._past_end(RUN, name)
        return await super().run(name, *args)

    def command(self, kind: int, name: Optional[str], build: Any) -> tuple[int, Entry]:
        self._past_end(kind, name)
        return super().command(kind, name, build)

    async def wait_for(self, index: int) -> Completion:
        i = self.journal_index
        if i < self._replay_len and index not in self._completions:
            kind, name, value = self._replay[i][:3]
            if kind != CANCEL and not (kind == COMBINATOR and value is not None and _loads(value) == [index]):
                # The first run did not wait here (its next entry is another command).
                self.diverged = (i, _command(kind, name), self._await(index))
        return await super().wait_for(index)

    async def wait_any(self, indices: list[int]) -> list[int]:
        self._check_open()
        if self.journal_index >= self._replay_len:  # it would wait for the first of these
            self._stop(Command("Await", " or ".join(str(self._await(i).name) for i in indices)))
        i = self.journal_index
        kind, _, value = self._replay[i][:3]
        if kind == COMBINATOR:
            done = _loads(value) if value else []
            if not done or not set(done) <= set(indices):
                self.diverged = (i, Command(KINDS[COMBINATOR], f"entries {done}"),
                                 Command(KINDS[COMBINATOR], f"entries {sorted(indices)}"))
        return await super().wait_any(indices)

    def _await(self, index: int) -> Command:
        entry = self._replay[index] if index < self._replay_len else None
        return Command("Await", f"entry {index}" + (f" ({_command(entry[0], entry[1])})" if entry else ""))

    def awaited(self) -> Command:
        """What the handler waits for, past the end of the journal."""
        return self._await(self.awaiting[0]) if self.awaiting else Command("Await")


class _ReplayBackend:
    """The `Backend` of a replay: the machine calls it only past the end of the journal (to
    make new entries durable, to wait for a completion the journal does not have, to run a
    step's body, to peek a promise), and every call stops the replay there."""

    async def flush(self, machine: Machine) -> None:
        pending = machine._pending
        m = _as_replay(machine)
        m._stop(_command(pending[0][0], pending[0][1]) if pending else Command("Flush"))

    async def wait(self, machine: Machine) -> None:
        m = _as_replay(machine)
        m._stop(m.awaited())

    async def barrier(self, machine: Machine) -> None:
        _as_replay(machine)._stop(Command("Run"))

    def check_target(self, service: str, handler: str, key: Optional[str], is_send: bool) -> None:
        raise AssertionError("a replay never builds a new call")  # `command` stops first

    async def peek_promise(self, machine: Machine, name: str) -> Optional[Completion]:
        _as_replay(machine)._stop(_command(PEEK_PROMISE, name))


def _as_replay(machine: Machine) -> _ReplayMachine:
    assert isinstance(machine, _ReplayMachine)
    return machine


_BACKEND = _ReplayBackend()
DEFAULT_TIMEOUT_S = 10.0


async def replay_journal(app: App, journal: Journal, *, timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> ReplayResult:
    """Replay one journal against `app`'s handler for it, and say how it went (never raises
    for what the handler does; see `ReplayResult`). `timeout`: how long the handler may take,
    in case it awaits something outside the journal (a plain `asyncio.sleep`, a socket)."""
    result = ReplayResult(id=journal.id, target=journal.target, status=journal.status, entries=len(journal.entries))
    spec = app.lookup(journal.service, journal.handler)
    if spec is None:
        if journal.service not in app.services:
            result.result, result.message = "skipped", f"service {journal.service} is not in the app"
        elif journal.completed:
            result.result, result.message = "skipped", f"handler {journal.target} is no longer in the app"
        else:
            result.result = "error"
            result.message = f"handler {journal.service}/{journal.handler} is no longer in the app: it would fail (404)"
        return result
    if journal.completed and not journal.entries:
        result.result, result.message = "skipped", "no journal was kept (it completed without a durable point)"
        return result
    try:
        value = spec.parse_input(journal.input)
    except Exception as exc:  # noqa: BLE001 - the runtime fails such an invocation (400)
        result.result, result.message = "error", f"its stored input no longer parses: {exc}"
        return result
    machine = _ReplayMachine(
        invocation_id=journal.id, key=journal.key or "", handler_kind=spec.kind, state={},
        replay=journal.entries, backend=_BACKEND, headers=list(journal.headers), body=journal.input,
        completions=journal.completions, cancelled=journal.cancel_requested,
        idempotency_key=journal.idempotency_key or "",
    )
    end: Command = RETURN
    started = time.monotonic()
    try:
        if timeout is None:
            await spec.invoke(machine, value)
        else:
            await asyncio.wait_for(spec.invoke(machine, value), timeout)
    except _JournalEnd:
        end = machine.stopped or Command("Await")
    except NonDeterminismError as exc:
        result.replayed = machine.journal_index
        _diverged(result, machine, exc, journal)
        return result
    except TerminalError as exc:
        end = Command("Failure", f"[{exc.status_code}] {exc.message}")
    except TimeoutError as exc:
        if timeout is None or time.monotonic() - started < timeout:  # the handler's own
            result.result, result.message, result.error = "error", f"the handler raised {exc!r}", exc
            return result
        result.result = "error"
        result.message = (f"the handler did not finish replaying within {timeout:g}s: it awaits something "
                          "that is not in the journal (a plain asyncio sleep, a socket?)")
        result.replayed = machine.journal_index
        return result
    except Exception as exc:  # noqa: BLE001 - a failure the runtime would retry
        result.result, result.message = "error", f"the handler raised {type(exc).__name__}: {exc} (it would be retried)"
        result.replayed = machine.journal_index
        result.error = exc
        return result
    finally:
        machine.attempt_ended()
    if machine.stopped is not None:  # stopped at the end of the journal, whatever it raised then
        end = machine.stopped
    result.replayed = consumed = machine.journal_index
    if consumed < len(journal.entries):  # it ended (failed terminally) before the end of the journal
        kind, name = journal.entries[consumed][:2]
        result.result, result.index, result.recorded, result.new = "mismatch", consumed, _command(kind, name), end
    elif journal.whole and end != RETURN:  # it goes on (or fails) where the first run returned
        result.result, result.index, result.recorded, result.new = "mismatch", consumed, RETURN, end
    else:
        result.next = end
    return result


def _diverged(result: ReplayResult, machine: _ReplayMachine, exc: NonDeterminismError, journal: Journal) -> None:
    result.result, result.message = "mismatch", str(exc)
    if machine.diverged is not None:
        result.index, result.recorded, result.new = machine.diverged
        return
    # An await the journal does not support (a completion missing, another combinator).
    index = machine.journal_index
    result.index = index
    if index < len(journal.entries):
        result.recorded = _command(*journal.entries[index][:2])
    else:
        result.recorded = RETURN
    result.new = Command("Await")
