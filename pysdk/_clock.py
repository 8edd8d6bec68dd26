"""The SDK's wall clock: what `ctx.time()` records and what a sleep's or a delayed send's
fire time is computed from.

It is `time.time()`, plus an offset when a source of one is installed: the time-skipping
test harness (pysdk/harness.py) installs the runtime's (`runtime._core.clock_offset_ms`,
core_rs/src/clock.rs), so handlers served in-process read the same virtual clock as the
runtime's timers. The SDK does not import the runtime itself; without the harness nothing
is installed and this is the system clock.
"""
from __future__ import annotations

import time as _time
from typing import Callable, Optional

_offset_ms: Optional[Callable[[], int]] = None


def time() -> float:
    """Now, in seconds since the Unix epoch."""
    source = _offset_ms
    now = _time.time()
    return now if source is None else now + source() / 1000


def now_ms() -> int:
    """Now, in milliseconds since the Unix epoch."""
    source = _offset_ms
    now = _time.time_ns() // 1_000_000
    return now if source is None else now + source()


def use_offset(source: Optional[Callable[[], int]]) -> None:
    """Install (or, with None, remove) the source of the offset in milliseconds."""
    global _offset_ms
    _offset_ms = source
