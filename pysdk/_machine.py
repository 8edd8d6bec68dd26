"""The replay state machine: one `Machine` per attempt of one invocation.

Every durable operation of a handler (state reads and writes, `ctx.run`
steps) goes through the machine, which holds the journal as recorded so far:

* While recorded entries remain (replay), each operation consumes the next
  one. Kind and name must match what the handler asks for, else the handler
  is not the one that wrote the journal and `NonDeterminismError` is raised.
  Replayed reads return the recorded value and replayed steps their recorded
  outcome, without running the action; replayed writes do not touch the
  state view, because the runtime loaded the state with their effects.
* After the last recorded entry (live), operations act on the machine's own
  copy of the object's state, and append new entries to `pending`. A step
  (`run`) executes, is recorded, and is made durable through
  `Backend.flush` before the handler sees its result: nothing the handler
  does next can depend on a result that could be lost.

Durable control flow (sleeps, calls, awakeables, promises) adds commands
whose outcome arrives later. A command is journaled when the context method
is called; the runtime delivers its completion with `complete(index, ...)`
(recorded completions are handed to the constructor for replay). Awaiting
one is an *await point*: there the machine flushes what is pending, observes
a requested cancellation (journaling CANCEL and raising
`TerminalError("cancelled", 409)`), and otherwise waits through
`Backend.wait` until the completion is there. `_awaiting` holds the rules
that keep await points deterministic on replay.

An attempt ends when it is suspended, killed or asked to replay: the runtime
then `close`s its machine before the handler unwinds, and from then on every
operation of the machine raises that same control-flow exception, so code in
a `finally` or an `except BaseException` of the handler can journal nothing
more (a `ctx.run` there does not even run its body).

Entries are 5-tuples (see `_entries`) so that handing them to the Rust core
costs no conversion. The machine knows nothing of storage or of the event
loop beyond the `Backend`; the runtime (in-process or over gRPC) drives it.
"""
from __future__ import annotations

import hashlib
import logging
import time
from inspect import isawaitable
from random import Random
from typing import Any, Callable, Optional, Protocol

import pydantic_core

from . import _retry
from ._awaiting import Awaiting
from ._entries import (AWAKEABLE, CANCEL, CLEAR_ALL, CLEAR_STATE, GET_STATE, RUN, SET_STATE, STATE_KEYS, Completion,
                       Entry, describe)
from ._errors import NonDeterminismError, ReplayRequested, RetryableError, Suspended, TerminalError
from ._retry import RunOptions, RunRetry
from ._serde import Codec, json_dumps

__all__ = ["Backend", "Child", "Completion", "Entry", "Lent", "Machine", "NonDeterminismError", "ReplayRequested", "Suspended"]

logger = logging.getLogger("pysdk")

_dumps = pydantic_core.to_json
_loads = pydantic_core.from_json
_monotonic = time.monotonic

Child = tuple[int, str, str, str, Optional[str], bytes, list[tuple[str, str]], str, int, bool]
"""A callee to start, from a CALL or SEND entry created live (`Machine.take_children`):

    (entry index, callee invocation id, service, handler, key or None,
     input bytes, headers, idempotency key or "", fire_ms (0 = now), is_send)

The callee id is `_ids.child_invocation_id(caller id, entry index)`; fire_ms
is the wall-clock start time in ms of a delayed send. The runtime must make
it durable in the same commit as the entry (`Backend.flush`)."""


class Lent(Protocol):
    """A committed state value the runtime lends decoded (see `Machine.get_value`)."""

    def take(self) -> Any:
        """The decoded value, which from now on belongs to the handler."""

    def encode(self, value: Any) -> bytes:
        """The JSON of `value` as it is now, set by the handler after it took this one
        (the lender may encode only what changed since)."""


class Backend(Protocol):
    """What the runtime provides to the machine (protocol v3: v2 plus `barrier`)."""

    async def flush(self, machine: "Machine") -> None:
        """Make `machine.take_pending()` (journal rows and state effects) and
        `machine.take_children()` (the callees to start) durable in one
        commit; return once it is."""

    async def wait(self, machine: "Machine") -> None:
        """Return once the runtime has called `machine.complete(...)` or
        `machine.cancel()` since this wait began (not necessarily for an index
        in `machine.awaiting`: the machine checks and loops). May raise
        `Suspended`: the coroutine is dropped and resumed later by replay."""

    async def barrier(self, machine: "Machine") -> None:
        """Return once everything this attempt has observed so far (state it
        read, promises it peeked, completions it was given) is durable: called
        before anything leaves the process on the attempt's behalf (the body of
        a `ctx.run`). Costs nothing when it already is."""

    def check_target(self, service: str, handler: str, key: Optional[str], is_send: bool) -> None:
        """Raise `TerminalError` (404) for an unknown target, and for a call
        (not a send) to the caller's own exclusive key, which would deadlock."""

    async def peek_promise(self, machine: "Machine", name: str) -> Optional[Completion]:
        """The outcome of the workflow promise `name` if it is completed, else None
        (async: a remote runtime answers over the deployment stream)."""


class Machine(Awaiting):
    """Journal, live state view and replay cursor of one invocation attempt."""

    def __init__(
        self,
        *,
        invocation_id: str,
        key: str,
        handler_kind: str,
        state: dict[str, bytes],
        replay: list[Entry],
        backend: Backend,
        headers: list[tuple[str, str]],
        attempt: int = 0,
        always_replay: bool = False,
        body: bytes = b"",
        completions: Optional[dict[int, Completion]] = None,
        cancelled: bool = False,
        decoded: Optional[dict[str, Lent]] = None,
        idempotency_key: str = "",
    ) -> None:
        self.invocation_id = invocation_id
        self.idempotency_key = idempotency_key
        # Set by `ctx.request()` (an asyncio.Event-like `AttemptFinishedEvent`): set when
        # this attempt ends, however it ends.
        self.attempt_finished: Optional[Any] = None
        self.key = key
        self.handler_kind = handler_kind
        self.state: dict[str, bytes] = dict(state)
        # Decoded values (default JSON) of committed state, lent by the runtime; each is
        # handed to the handler by the first `get_value` of its name (and so leaves here).
        self.decoded: dict[str, Lent] = decoded if decoded is not None else {}
        # Lent values the handler took, by name: they encode what it sets under that name.
        self._taken: dict[str, Lent] = {}
        # The last value set under each name with the default JSON serde, with the bytes it
        # was serialized to at the `set` and the lent value that encoded it (or None). The
        # runtime may keep such a value decoded for the key's next writer (see
        # runtime/state_values.py), once it has checked that the value still equals its bytes
        # and that nothing else holds it. A later set as bytes or clear of the name drops it.
        self.written: dict[str, tuple[Any, bytes, Optional[Lent]]] = {}
        # Set by `close`: the control-flow exception every later operation raises.
        self._closed: Optional[type[BaseException]] = None
        self.headers = headers
        self.attempt = attempt
        self.always_replay = always_replay
        self.body = body
        self.journal_index = 0
        self._replay = replay
        self._replay_len = len(replay)
        self.backend = backend
        self._pending: list[Entry] = []
        self._random: Optional[Random] = None
        # durable control flow (see _awaiting)
        self._completions: dict[int, Completion] = dict(completions) if completions else {}
        self._cancel_pending = cancelled
        self._children: list[Child] = []
        self.awaiting: list[int] = []
        self._resolved_at = -1
        self._resolved: list[int] = []

    # -- what the runtime reads -------------------------------------------

    @property
    def replaying(self) -> bool:
        """Whether recorded entries remain to be consumed."""
        return self.journal_index < self._replay_len

    def take_pending(self) -> list[Entry]:
        """The entries recorded live since the last call, in order (and forget them).
        A closed machine has nothing to hand over: its entries are dropped."""
        pending = self._pending
        self._pending = []
        return pending if self._closed is None else []

    def close(self, reason: type[BaseException]) -> None:
        """End this attempt (suspended, killed, replay requested): drop what is pending,
        and make every later operation raise `reason`, so that nothing the handler does
        while it unwinds reaches the journal. The first reason stays."""
        if self._closed is None:
            self._closed = reason
            self._pending = []
            self._children = []
            self.attempt_ended()

    def attempt_ended(self) -> None:
        """Signal `ctx.request().attempt_finished_event` (the attempt is over)."""
        if self.attempt_finished is not None:
            self.attempt_finished.set()

    @property
    def closed(self) -> Optional[type[BaseException]]:
        """Why the attempt was closed, or None while it is open."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed is not None:
            raise self._closed()

    def check_replay_complete(self) -> None:
        """Called when the handler returned: every recorded entry must have been used."""
        if self.journal_index < self._replay_len:
            entry = self._replay[self.journal_index]
            raise NonDeterminismError(
                f"invocation {self.invocation_id}: the handler returned after "
                f"{self.journal_index} journal entries, but the journal has "
                f"{self._replay_len}; entry {self.journal_index} is {describe(entry[0], entry[1])}"
            )

    # -- replay cursor ------------------------------------------------------

    def _mismatch(self, index: int, kind: int, name: Optional[str]) -> NonDeterminismError:
        entry = self._replay[index]
        return NonDeterminismError(
            f"invocation {self.invocation_id}: journal entry {index} was recorded as "
            f"{describe(entry[0], entry[1])}, but the handler now does {describe(kind, name)} "
            f"(the handler code or its inputs changed since the entry was written)"
        )

    # -- state ----------------------------------------------------------------

    def get_state(self, name: str) -> Optional[bytes]:
        self._check_open()
        i = self.journal_index
        self.journal_index = i + 1
        if i < self._replay_len:
            entry = self._replay[i]
            if entry[0] != GET_STATE or entry[1] != name:
                self.journal_index = i
                raise self._mismatch(i, GET_STATE, name)
            return entry[2]
        value = self.state.get(name)
        self._pending.append((GET_STATE, name, value, 0, None))
        return value

    def get_value(self, name: str) -> Any:
        """`get_state` decoded with the default JSON serde. A committed value the
        runtime lent decoded is handed over as is (this handler now owns it: the
        runtime lends only values that nothing else holds); otherwise the bytes are
        decoded, so every call returns a value that nothing else holds."""
        self._check_open()
        if self.journal_index >= self._replay_len and name in self.decoded:
            self.journal_index += 1
            self._pending.append((GET_STATE, name, self.state.get(name), 0, None))
            lent = self._taken[name] = self.decoded.pop(name)
            return lent.take()
        raw = self.get_state(name)
        return _loads(raw) if raw else None

    def _replayed(self, kind: int, name: str) -> bool:
        """Consume the next journal index for a state write: True if it was recorded
        (replay: the write is already in the loaded state), after checking it matches."""
        self._check_open()
        i = self.journal_index
        if i < self._replay_len:
            entry = self._replay[i]
            if entry[0] != kind or entry[1] != name:
                raise self._mismatch(i, kind, name)
            self.journal_index = i + 1
            return True
        self.journal_index = i + 1
        return False

    def set_state(self, name: str, value: bytes) -> None:
        if self._replayed(SET_STATE, name):
            return
        self.decoded.pop(name, None)
        self._taken.pop(name, None)
        self.written.pop(name, None)
        self.state[name] = value
        self._pending.append((SET_STATE, name, value, 0, None))

    def set_value(self, name: str, value: Any) -> None:
        """`set_state` with the default JSON serde: the value is serialized here, so
        what is stored is the value as it is at the call (Restate's semantics), whatever
        the handler does with it afterwards. A lent value the handler took encodes it
        (the lender may encode only the items appended since)."""
        if self._replayed(SET_STATE, name):
            return
        self.decoded.pop(name, None)
        lent = self._taken.get(name)
        raw = json_dumps(value) if lent is None else lent.encode(value)
        self.written[name] = (value, raw, lent)
        self.state[name] = raw
        self._pending.append((SET_STATE, name, raw, 0, None))

    def clear_state(self, name: str) -> None:
        if self._replayed(CLEAR_STATE, name):
            return
        self.decoded.pop(name, None)
        self._taken.pop(name, None)
        self.written.pop(name, None)
        self.state.pop(name, None)
        self._pending.append((CLEAR_STATE, name, None, 0, None))

    def clear_all(self) -> None:
        self._check_open()
        i = self.journal_index
        self.journal_index = i + 1
        if i < self._replay_len:
            if self._replay[i][0] != CLEAR_ALL:
                self.journal_index = i
                raise self._mismatch(i, CLEAR_ALL, None)
            return
        self.decoded.clear()
        self._taken.clear()
        self.written.clear()
        self.state.clear()
        self._pending.append((CLEAR_ALL, None, None, 0, None))

    def state_keys(self) -> list[str]:
        self._check_open()
        i = self.journal_index
        self.journal_index = i + 1
        if i < self._replay_len:
            entry = self._replay[i]
            if entry[0] != STATE_KEYS:
                self.journal_index = i
                raise self._mismatch(i, STATE_KEYS, None)
            return list(_loads(entry[2])) if entry[2] else []
        keys = sorted(self.state)
        self._pending.append((STATE_KEYS, None, _dumps(keys), 0, None))
        return keys

    # -- steps ------------------------------------------------------------------

    async def run(
        self,
        name: str,
        action: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        codec: Codec,
        options: RunOptions[Any],
    ) -> Any:
        """Run (or replay) the step `name`; return its result as decoded from
        its journaled bytes, so a live run and its replays return equal values.

        The body is an external effect: before it runs, an awakeable journaled but not
        yet durable is made durable (the body may hand its id to whoever resolves it),
        and everything the attempt has observed must be durable (`Backend.barrier`)."""
        self._check_open()
        i = self.journal_index
        if i < self._replay_len:
            entry = self._replay[i]
            if entry[0] != RUN or entry[1] != name:
                if entry[0] == CANCEL:
                    self._replayed_cancel(i)
                raise self._mismatch(i, RUN, name)
            self.journal_index = i + 1
            value = entry[2]
            if value is None and (entry[3] != 0 or entry[4] is not None):
                raise TerminalError(entry[4] or "", entry[3])
            return codec.loads(value) if value is not None else None

        if self._cancel_pending:  # the start of a live step is an await point
            await self._observe_cancel()
        if any(e[0] == AWAKEABLE for e in self._pending):
            await self._flush()
        await self.backend.barrier(self)
        started = _monotonic()
        retry: Optional[RunRetry] = None
        attempts = 0
        while True:
            self._check_open()
            attempts += 1
            try:
                result = action(*args, **kwargs)
                if isawaitable(result):
                    result = await result
            except TerminalError as exc:
                return await self._fail_run(name, exc.status_code, exc.message, exc)
            except Exception as exc:  # noqa: BLE001 - any other failure is retried
                if retry is None:
                    retry = RunRetry(options)
                delay = retry.next_delay(attempts, _monotonic() - started)
                if delay is None:
                    message = f"run {name!r} failed after {attempts} attempt(s): {type(exc).__name__}: {exc}"
                    code = exc.status_code if isinstance(exc, RetryableError) else 500
                    return await self._fail_run(name, code, message, exc)
                if isinstance(exc, RetryableError) and exc.retry_after is not None:
                    delay = max(0.0, exc.retry_after.total_seconds())  # the error's own delay (Restate)
                logger.warning(
                    "invocation %s: run %r attempt %d failed (%s: %s); retrying in %.3fs",
                    self.invocation_id, name, attempts, type(exc).__name__, exc, delay,
                )
                await _retry.sleep(delay)
                continue
            self._check_open()  # closed while the body ran: its result is not journaled
            try:
                value = codec.dumps(result)
            except Exception as exc:  # noqa: BLE001 - retrying cannot fix an unencodable value
                message = f"run {name!r}: cannot serialize its result: {type(exc).__name__}: {exc}"
                return await self._fail_run(name, 500, message, exc)
            self.journal_index = i + 1
            self._pending.append((RUN, name, value, 0, None))
            await self._flush()
            return codec.loads(value)

    async def _fail_run(self, name: str, code: int, message: str, cause: BaseException) -> Any:
        """Journal the step's terminal failure, make it durable, raise it."""
        self._check_open()
        self.journal_index += 1
        self._pending.append((RUN, name, None, code, message))
        await self._flush()
        raise TerminalError(message, code) from cause

    async def _flush(self) -> None:
        self._check_open()
        await self.backend.flush(self)
        if self.always_replay:
            self.close(ReplayRequested)
            raise ReplayRequested()

    # -- deterministic randomness -------------------------------------------------

    def random(self) -> Random:
        """One generator per invocation, seeded from its id: equal on every replay."""
        rnd = self._random
        if rnd is None:
            seed = int.from_bytes(hashlib.sha256(self.invocation_id.encode()).digest()[:8], "big")
            rnd = self._random = Random(seed)
        return rnd
