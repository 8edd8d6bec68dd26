"""Durable futures (Restate's `RestateDurableFuture` family), `SendHandle`
and `DurablePromise`.

A durable future names one awaitable journal entry of its machine; the
command is already journaled when the future exists. Awaiting it is an await
point of the machine (`Machine.wait_for`): flush, cancellation, wait,
replay. A failed completion raises `TerminalError`; a successful one is
decoded once and the value kept, so awaiting twice returns the same object.
The combinators (`_combinators`) work on these futures only.

Unlike Restate's abstract classes these are the concrete ones: handler code
only awaits them, passes them to combinators and checks `isinstance`.
"""
from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator, Generic, Optional, TypeVar

from ._awaiting import raise_failure
from ._errors import TerminalError
from ._entries import CANCEL_INVOCATION, COMPLETE_PROMISE, GET_PROMISE, PEEK_PROMISE, Completion, Entry
from ._serde import Codec, Serde

if TYPE_CHECKING:
    from ._machine import Machine

T = TypeVar("T")

_UNSET: Any = object()


class RestateDurableFuture(Generic[T], Awaitable[T]):
    """The result of a journaled command, available once the runtime completes it."""

    __slots__ = ("_m", "_index", "_decode", "_value")

    def __init__(self, machine: "Machine", index: int, decode: Callable[[bytes], Any]) -> None:
        self._m = machine
        self._index = index
        self._decode = decode
        self._value: Any = _UNSET

    def __await__(self) -> Generator[Any, Any, T]:
        return self._result().__await__()

    async def _result(self) -> T:
        c = await self._m.wait_for(self._index)
        if self._value is _UNSET:
            raw = raise_failure(c)
            self._value = self._decode(raw if raw is not None else b"")
        value: T = self._value
        return value

    def _is_completed(self) -> bool:
        return self._m.is_completed(self._index)

    def __repr__(self) -> str:
        state = "completed" if self._is_completed() else "pending"
        return f"<{type(self).__name__} entry={self._index} {state}>"


class RestateDurableRunFuture(RestateDurableFuture[T]):
    """`ctx.run`, `ctx.run_typed`, `ctx.time`: a durable step. Its body runs when the
    future is first awaited, or when a combinator needs it (combinators run the steps
    they are given one after another, in argument order, before they look at the other
    futures: the same order on every replay). Awaiting it again returns the same
    outcome without running anything. A step that is never awaited never runs."""

    __slots__ = ("_start", "_settled", "_error")

    def __init__(self, machine: "Machine", start: Callable[[], Awaitable[Any]]) -> None:
        super().__init__(machine, -1, _identity)
        self._start: Optional[Callable[[], Awaitable[Any]]] = start
        self._settled = False
        self._error: Optional[TerminalError] = None

    async def _settle(self) -> None:
        """Run (or replay) the step unless it already ran; keep its outcome."""
        if self._settled:
            return
        start = self._start
        if start is None:  # its first run is still going (awaited twice concurrently)
            raise TerminalError("a step's future was awaited again before its step finished")
        self._start = None
        try:
            self._value = await start()
        except TerminalError as exc:
            self._error = exc
        except BaseException:
            self._start = start  # not journaled (suspension, retry): may run again
            raise
        self._settled = True

    async def _result(self) -> T:
        await self._settle()
        if self._error is not None:
            raise self._error
        value: T = self._value
        return value

    def _is_completed(self) -> bool:
        return self._settled

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'completed' if self._settled else 'pending'}>"


def _identity(raw: bytes) -> Any:
    return raw


class RestateDurableSleepFuture(RestateDurableFuture[None]):
    """`ctx.sleep(...)`: completes when the timer fires."""

    __slots__ = ()


class RestateDurableCallFuture(RestateDurableFuture[T]):
    """`ctx.*_call(...)`: completes with the callee's result or terminal failure."""

    __slots__ = ("_callee",)

    def __init__(self, machine: "Machine", index: int, decode: Callable[[bytes], Any], callee: str) -> None:
        super().__init__(machine, index, decode)
        self._callee = callee

    async def invocation_id(self) -> str:
        """The callee's invocation id (known at once: it is derived, not assigned)."""
        return self._callee

    async def cancel_invocation(self) -> None:
        """Shortcut for `ctx.cancel_invocation(await f.invocation_id())`."""
        cancel_invocation(self._m, self._callee)


class SendHandle:
    """`ctx.*_send(...)`: the callee's invocation id; a send has no result."""

    __slots__ = ("_m", "_callee")

    def __init__(self, machine: "Machine", callee: str) -> None:
        self._m = machine
        self._callee = callee

    async def invocation_id(self) -> str:
        return self._callee

    async def cancel_invocation(self) -> None:
        """Shortcut for `ctx.cancel_invocation(await handle.invocation_id())`."""
        cancel_invocation(self._m, self._callee)

    def __repr__(self) -> str:
        return f"<SendHandle {self._callee}>"


class DurablePromise(Generic[T]):
    """A workflow's named promise: resolved or rejected once per workflow key,
    by any handler of the workflow; `value()` waits for it durably."""

    __slots__ = ("name", "serde", "_m", "_codec")

    def __init__(self, machine: "Machine", name: str, serde: Serde[T], codec: Codec) -> None:
        self.name = name
        self.serde = serde
        self._m = machine
        self._codec = codec

    def value(self) -> RestateDurableFuture[T]:
        """A durable future of the promise's value (journals GET_PROMISE now)."""
        name = self.name
        index, _ = self._m.command(GET_PROMISE, name, lambda i: (GET_PROMISE, name, None, 0, None))
        return RestateDurableFuture(self._m, index, self._codec.loads)

    def __await__(self) -> Generator[Any, Any, T]:
        return self.value().__await__()

    async def resolve(self, value: T) -> None:
        """Resolve the promise; `TerminalError` (409) if it is already completed."""
        codec = self._codec
        await self._complete(lambda i: (COMPLETE_PROMISE, self.name, codec.dumps(value), 0, None))

    async def reject(self, message: str, code: int = 500) -> None:
        """Reject the promise; `TerminalError` (409) if it is already completed."""
        await self._complete(lambda i: (COMPLETE_PROMISE, self.name, None, code, message))

    async def _complete(self, build: Callable[[int], Entry]) -> None:
        m = self._m
        index, _ = m.command(COMPLETE_PROMISE, self.name, build)
        raise_failure(await m.wait_for(index))

    async def peek(self) -> Optional[T]:
        """The value if the promise is resolved, None if it is not completed yet;
        a rejected promise raises its `TerminalError`. Journaled (PEEK_PROMISE
        holds the outcome), so a replay sees what the first run saw."""
        m, name = self._m, self.name
        m._check_open()
        c: Optional[Completion] = None
        if m.next_recorded() is None:  # live: ask the runtime (on replay the entry holds the answer)
            c = await m.backend.peek_promise(m, name)
            m._check_open()  # closed while the runtime answered: journal nothing

        def build(i: int) -> Entry:
            return (PEEK_PROMISE, name, None, 0, None) if c is None else (PEEK_PROMISE, name, c[0], c[1], c[2])

        _, entry = m.command(PEEK_PROMISE, name, build)
        if entry[2] is None and entry[3] == 0 and entry[4] is None:
            return None
        raw = raise_failure((entry[2], entry[3], entry[4]))
        return typing.cast(Optional[T], self._codec.loads(raw if raw is not None else b""))

    def __repr__(self) -> str:
        return f"DurablePromise({self.name!r})"


def cancel_invocation(m: "Machine", invocation_id: str) -> None:
    """Journal CANCEL_INVOCATION: the runtime cancels `invocation_id` once it is durable."""
    m.command(CANCEL_INVOCATION, invocation_id, lambda i: (CANCEL_INVOCATION, invocation_id, None, 0, None))
