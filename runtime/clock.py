"""The runtime's wall clock: the system clock plus one process-wide offset held in core_rs
(core_rs/src/clock.rs), so that Python (`now_ms` here, `runtime.ids.now_ms`) and Rust (the
timers' and records' times) always agree.

The offset is 0 except under a time-skipping test harness (pysdk/harness.py
`create_test_harness(app, time_skipping=True)`), the one owner that moves it, through
`skip_ms`. Moving it wakes every timer loop registered with `wake_on_advance` (one per
invoker, each on its own event loop), so a timer made due fires at once rather than at its
real-time deadline.

`skip_ms(ms)` moves the clock the way Temporal's time-skipping environment does: not in one
jump but from timer to timer, each time waiting until the runtimes are quiescent (nothing
runs; every invocation in memory waits for a completion; every write is durable; no timer
is due). So a loop of weekly sleeps advanced by 30 days wakes four times, each sleep's
fire time computed from the clock as it was when the previous one woke. It blocks (call it
from a thread other than the runtimes').

Monotonic clocks (the watchdog's inactivity and abort timeouts, in-step retry delays of
`ctx.run`) measure real durations and do not follow it.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Protocol, TypeVar

from runtime import _core

T = TypeVar("T")

SETTLE_POLL_S = 0.002
SETTLE_TIMEOUT_S = 10.0


class Timers(Protocol):
    """What `skip_ms` asks of a runtime (runtime/invoker.py `Invoker`), on its own loop."""

    def next_timer_ms(self) -> Optional[int]: ...

    def quiescent(self) -> bool: ...


_lock = threading.Lock()
_moving = threading.Lock()  # one mover at a time: `skip_ms` (advance) and `skip_next` (automatic mode)
_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event, Optional[Timers]]] = set()


def now_ms() -> int:
    """Now, in milliseconds since the Unix epoch, by the runtime's clock."""
    return time.time_ns() // 1_000_000 + _core.clock_offset_ms()


def offset_ms() -> int:
    return _core.clock_offset_ms()


def set_offset_ms(ms: int) -> None:
    """Set the offset (the harness: back to 0 at its exit) and wake the waiters."""
    _core.set_clock_offset_ms(ms)
    _wake()


def skip_ms(ms: int, settle_timeout_s: float = SETTLE_TIMEOUT_S) -> int:
    """Move the clock forward by `ms` (>= 0), from timer to timer (see the module's
    docstring), and return once the runtimes are quiescent at the end; the new offset.
    TimeoutError if they stay busy for `settle_timeout_s` (real seconds) at some step."""
    if ms < 0:
        raise ValueError(f"the clock only moves forward: cannot advance it by {ms} ms")
    with _moving:
        return _skip_ms(ms, settle_timeout_s)


def skip_next(wanted: Callable[[], bool], settle_timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
    """The automatic mode's step (pysdk/_autoskip.py): once the runtimes are quiescent, move
    the clock to the next timer if `wanted()` still says so. True if the clock moved;
    TimeoutError if the runtimes stay busy for `settle_timeout_s`."""
    with _moving:
        _settle(settle_timeout_s)
        due = [t for t in _ask(lambda timers: timers.next_timer_ms()) if t is not None]
        if not due or not wanted():
            return False
        needed = min(due) - time.time_ns() // 1_000_000
        if needed > _core.clock_offset_ms():
            _core.set_clock_offset_ms(needed)
        _wake()
        return True


def _skip_ms(ms: int, settle_timeout_s: float) -> int:
    end = _core.clock_offset_ms() + ms
    while True:
        _settle(settle_timeout_s)
        due = [t for t in _ask(lambda timers: timers.next_timer_ms()) if t is not None]
        if not due:
            break
        needed = min(due) - time.time_ns() // 1_000_000  # the offset at which it is due
        if needed > end:
            break
        if needed > _core.clock_offset_ms():
            _core.set_clock_offset_ms(needed)
        _wake()
    if end > _core.clock_offset_ms():
        _core.set_clock_offset_ms(end)
    _wake()
    _settle(settle_timeout_s)
    return _core.clock_offset_ms()


def _settle(timeout_s: float) -> None:
    """Wait until every registered runtime is quiescent, twice in a row."""
    deadline = time.monotonic() + timeout_s
    calm = 0
    while calm < 2:
        calm = calm + 1 if all(_ask(lambda timers: timers.quiescent())) else 0
        if calm < 2:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the runtime did not become quiescent within {timeout_s}s (a handler "
                                   "still runs, or keeps working without waiting on a durable timer)")
            time.sleep(SETTLE_POLL_S)


def _ask(question: Callable[[Timers], T]) -> list[T]:
    """`question` of each registered runtime, asked on its own loop."""
    with _lock:
        waiters = [(loop, timers) for loop, _, timers in _waiters if timers is not None]
    pending: list[concurrent.futures.Future[Any]] = []
    for loop, timers in waiters:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def ask(fut: concurrent.futures.Future[Any] = fut, timers: Timers = timers) -> None:
            try:
                fut.set_result(question(timers))
            except BaseException as exc:  # noqa: BLE001 - handed to the asking thread
                fut.set_exception(exc)

        try:
            loop.call_soon_threadsafe(ask)
        except RuntimeError:  # that loop closed meanwhile: its runtime is gone
            continue
        pending.append(fut)
    return [fut.result(SETTLE_TIMEOUT_S) for fut in pending]


def _wake() -> None:
    with _lock:
        waiters = list(_waiters)
    for loop, event, _ in waiters:
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:  # that loop closed meanwhile
            pass


@contextmanager
def wake_on_advance(event: asyncio.Event, timers: Optional[Timers] = None) -> Iterator[None]:
    """Set `event` (on the running loop) whenever the clock is moved, while inside; `skip_ms`
    asks `timers`, on this loop, for its next timer and whether it is quiescent."""
    waiter = (asyncio.get_running_loop(), event, timers)
    with _lock:
        _waiters.add(waiter)
    try:
        yield
    finally:
        with _lock:
            _waiters.discard(waiter)
