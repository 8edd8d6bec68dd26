"""Commands, completions, await points and cancellation: the part of the
`Machine` behind durable control flow (it is a base class of `Machine`).

A command (SLEEP, CALL, AWAKEABLE, GET_PROMISE, ...) is journaled when the
context method is called, through `command`; awaitable ones are completed
later by the runtime (`complete`), or come with the recorded completions on
replay. Awaiting one (`wait_for`) or several (`wait_any`, the combinators)
is an *await point*:

* Live, a requested cancellation is observed there first: CANCEL is
  journaled and flushed and `TerminalError("cancelled", 409)` raised, once;
  later awaits behave normally, so compensations can run. Otherwise a
  completed future returns at once; else pending entries are flushed (the
  command must be durable before anything can complete it) and the machine
  waits through `Backend.wait`, looping until the index is complete.
* `wait_any` journals COMBINATOR (the indices seen completed, in order of
  completion) when it resolves live, and resolves from that entry on replay,
  so the same futures win whatever order the completions come in later.
* On replay, a future is complete iff its completion is known. Awaiting one
  whose completion is missing while recorded entries still follow is a
  `NonDeterminismError`, unless the next entry is CANCEL: the first run
  observed its cancellation there, so the replay raises it there too.

Several awaits can happen at one journal index (`f1 = call(); f2 = sleep();
await f1; saga.add(...); await f2`): a CANCEL recorded at that index would
then be ambiguous on replay (which await raised it?). So when a CANCEL or a
COMBINATOR is journaled live, each plain await that resolved at the same
index first gets its own `COMBINATOR [i]` entry, and on replay a plain await
consumes a `COMBINATOR [i]` naming its own index. Plain awaits journal
nothing otherwise, so a sleep or a call costs one entry.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NoReturn, Optional, cast

import pydantic_core

from ._entries import CANCEL, COMBINATOR, RUN, Completion, Entry, describe
from ._errors import NonDeterminismError, TerminalError

if TYPE_CHECKING:
    from ._machine import Backend, Child, Machine

__all__ = ["Awaiting", "cancelled_error", "raise_failure"]

_dumps = pydantic_core.to_json
_loads = pydantic_core.from_json

CANCELLED_MESSAGE = "cancelled"
CANCELLED_CODE = 409


def cancelled_error() -> TerminalError:
    return TerminalError(CANCELLED_MESSAGE, CANCELLED_CODE)


class Awaiting:
    """Base of `Machine`: the attributes are set by `Machine.__init__`."""

    invocation_id: str
    journal_index: int
    always_replay: bool
    backend: "Backend"
    awaiting: list[int]
    _replay: list[Entry]
    _replay_len: int
    _pending: list[Entry]
    _completions: dict[int, Completion]
    _cancel_pending: bool
    _children: list["Child"]
    _resolved_at: int
    _resolved: list[int]

    def _check_open(self) -> None:
        raise NotImplementedError

    def _mismatch(self, index: int, kind: int, name: Optional[str]) -> NonDeterminismError:
        raise NotImplementedError

    async def _flush(self) -> None:
        raise NotImplementedError

    # -- what the runtime calls ------------------------------------------------

    def complete(self, index: int, value: Optional[bytes], code: int, message: Optional[str]) -> None:
        """Deliver the completion of entry `index`; a second delivery is ignored."""
        if index not in self._completions:
            self._completions[index] = (value, code, message)

    def cancel(self) -> None:
        """Cancellation was requested: the next await point raises it."""
        self._cancel_pending = True

    def take_children(self) -> list["Child"]:
        """The callees of CALL/SEND entries created live since the last call."""
        children = self._children
        self._children = []
        return children

    # -- commands -----------------------------------------------------------------

    def command(self, kind: int, name: Optional[str], build: Callable[[int], Entry]) -> tuple[int, Entry]:
        """Journal a command: replayed, the recorded entry (kind and name must
        match); live, `build(index)` makes it (it may raise before anything
        is recorded, e.g. for an unknown call target)."""
        i = self.journal_index
        if i < self._replay_len:
            entry = self._replay[i]
            if entry[0] != kind or entry[1] != name:
                raise self._mismatch(i, kind, name)
            self.journal_index = i + 1
            return i, entry
        entry = build(i)
        self.journal_index = i + 1
        self._pending.append(entry)
        return i, entry

    def next_recorded(self) -> Optional[Entry]:
        """The recorded entry the next operation will consume, or None when live."""
        i = self.journal_index
        return self._replay[i] if i < self._replay_len else None

    def journal_failure(self, name: str, code: int, message: str) -> None:
        """Journal a failed RUN entry `name` live (a refused call: see `_commands`)."""
        self._check_open()
        self.journal_index += 1
        self._pending.append((RUN, name, None, code, message))

    def add_child(self, child: "Child") -> None:
        self._check_open()
        self._children.append(child)

    def is_completed(self, index: int) -> bool:
        return index in self._completions

    # -- await points ----------------------------------------------------------------

    async def wait_for(self, index: int) -> Completion:
        """Await the completion of entry `index` (an await point)."""
        self._check_open()
        i = self.journal_index
        if i < self._replay_len:
            entry = self._replay[i]
            kind = entry[0]
            if kind == CANCEL:
                self._replayed_cancel(i)
            if kind == COMBINATOR and entry[2] is not None and _loads(entry[2]) == [index]:
                self.journal_index = i + 1
                return self._recorded(index, i)
            c = self._completions.get(index)
            if c is None:
                raise NonDeterminismError(
                    f"invocation {self.invocation_id}: the handler awaits entry {index} "
                    f"({self._describe_index(index)}), which has no recorded completion, but the "
                    f"journal continues with entry {i}, {describe(kind, entry[1])}"
                )
            self._note_resolved(index)
            return c
        while True:
            self._check_open()
            if self._cancel_pending:
                await self._observe_cancel()
            c = self._completions.get(index)
            if c is not None:
                self._note_resolved(index)
                return c
            await self._block([index])

    async def wait_any(self, indices: list[int]) -> list[int]:
        """Await until at least one of `indices` is complete (an await point);
        return the completed ones in the order they completed, as journaled."""
        self._check_open()
        i = self.journal_index
        if i < self._replay_len:
            entry = self._replay[i]
            if entry[0] == CANCEL:
                self._replayed_cancel(i)
            if entry[0] != COMBINATOR:
                raise self._mismatch(i, COMBINATOR, None)
            done = _loads(entry[2]) if entry[2] else []
            if not done or not set(done) <= set(indices):
                raise NonDeterminismError(
                    f"invocation {self.invocation_id}: journal entry {i} records a combinator over "
                    f"entries {done}, but the handler now waits on entries {indices}"
                )
            self.journal_index = i + 1
            for index in done:
                self._recorded(index, i)
            return list(done)
        wanted = set(indices)
        while True:
            self._check_open()
            if self._cancel_pending:
                await self._observe_cancel()
            done = [index for index in self._completions if index in wanted]
            if done:
                self._record_resolved()
                self.journal_index += 1
                self._pending.append((COMBINATOR, None, _dumps(done), 0, None))
                return done
            await self._block(indices)

    async def _block(self, indices: list[int]) -> None:
        self._check_open()
        if self._pending:
            await self._flush()
            return  # re-check: something may have arrived during the flush
        self.awaiting = indices
        try:
            await self.backend.wait(cast("Machine", self))
        finally:
            self.awaiting = []

    def _recorded(self, index: int, at: int) -> Completion:
        c = self._completions.get(index)
        if c is None:
            raise NonDeterminismError(
                f"invocation {self.invocation_id}: journal entry {at} records entry {index} "
                f"({self._describe_index(index)}) as completed, but its completion is missing"
            )
        return c

    def _describe_index(self, index: int) -> str:
        if index < self._replay_len:
            entry = self._replay[index]
            return describe(entry[0], entry[1])
        return "a live command"

    # -- which await resolved where --------------------------------------------------

    def _note_resolved(self, index: int) -> None:
        if self._resolved_at != self.journal_index:
            self._resolved_at = self.journal_index
            self._resolved = [index]
        else:
            self._resolved.append(index)

    def _record_resolved(self) -> None:
        """Before a CANCEL or COMBINATOR: pin the plain awaits resolved at this
        index, so the replay can tell them from the one that journals it."""
        if self._resolved_at == self.journal_index and self._resolved:
            for index in self._resolved:
                self._pending.append((COMBINATOR, None, _dumps([index]), 0, None))
                self.journal_index += 1
        self._resolved_at = -1
        self._resolved = []

    # -- cancellation -------------------------------------------------------------------

    async def _observe_cancel(self) -> NoReturn:
        self._check_open()
        self._cancel_pending = False
        self._record_resolved()
        self.journal_index += 1
        self._pending.append((CANCEL, None, None, 0, None))
        await self._flush()
        raise cancelled_error()

    def _replayed_cancel(self, i: int) -> NoReturn:
        self.journal_index = i + 1
        raise cancelled_error()


def raise_failure(c: Completion) -> Any:
    """Raise the TerminalError a failed completion stands for; return its value otherwise."""
    value, code, message = c
    if code != 0 or (value is None and message is not None):
        raise TerminalError(message or "", code or 500)
    return value

