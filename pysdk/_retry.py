"""Retry configuration: `RunOptions` for `ctx.run` and `InvocationRetryPolicy`
for whole invocations, with Restate's field names, plus the backoff math.

`ctx.run` retries a failing step in place (the handler stays suspended in
the `await`), with exponential backoff: the first retry waits
`initial_retry_interval` (50 ms), each next one `retry_interval_factor` (2)
times longer, capped at `max_retry_interval` (10 s). Without `max_attempts`
or `max_duration` it retries forever, as Restate does; when either is
exhausted the failure becomes terminal and is journaled as such.

The invocation-level policy is only carried here (per service and per
handler); applying it is the runtime's job.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any, Generic, Mapping, Optional, TypeVar, Union

from ._serde import DEFAULT_SERDE, Serde

T = TypeVar("T")

DEFAULT_INITIAL_INTERVAL = 0.05  # seconds
DEFAULT_FACTOR = 2.0
DEFAULT_MAX_INTERVAL = 10.0


@dataclass
class RunOptions(Generic[T]):
    """Options of one `ctx.run_typed` step (Restate's fields and defaults)."""

    serde: Serde[T] = DEFAULT_SERDE
    """Encodes the step's result; the default serde picks a codec from `type_hint`."""
    type_hint: Optional[Any] = None
    """Type of the result (used to rebuild models on replay); else the action's
    return annotation is used."""
    max_attempts: Optional[int] = None
    """Attempts including the first, before the failure becomes a TerminalError."""
    max_duration: Optional[timedelta] = None
    """Time spent retrying, before the failure becomes a TerminalError."""
    initial_retry_interval: Optional[timedelta] = None
    """Delay before the first retry (default 50 ms)."""
    max_retry_interval: Optional[timedelta] = None
    """Upper bound of a delay (default 10 s)."""
    retry_interval_factor: Optional[float] = None
    """Growth of the delay at each retry (default 2)."""
    max_retry_duration: Optional[timedelta] = None
    """Deprecated: use max_duration."""


DEFAULT_RUN_OPTIONS: RunOptions[Any] = RunOptions()


class OnMaxAttempts(str, Enum):
    """What happens to an invocation that exhausted its attempts."""

    PAUSE = "PAUSE"
    KILL = "KILL"


@dataclass(frozen=True)
class InvocationRetryPolicy:
    """How the runtime retries a failed invocation (per service or per handler).

    Unset fields take the server's defaults. Restate's SDK declares this as a
    TypedDict; keyword construction is the same, and `from_value` also accepts
    such a dict.
    """

    initial_interval: Optional[timedelta] = None
    exponentiation_factor: Optional[float] = None
    max_interval: Optional[timedelta] = None
    max_attempts: Optional[int] = None
    on_max_attempts: Optional[OnMaxAttempts] = None

    def __post_init__(self) -> None:
        if isinstance(self.on_max_attempts, str) and not isinstance(self.on_max_attempts, OnMaxAttempts):
            try:
                value = OnMaxAttempts(self.on_max_attempts.upper())
            except ValueError:
                raise ValueError(
                    f"on_max_attempts must be 'pause' or 'kill', got {self.on_max_attempts!r}"
                ) from None
            object.__setattr__(self, "on_max_attempts", value)
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.exponentiation_factor is not None and self.exponentiation_factor < 1:
            raise ValueError(f"exponentiation_factor must be >= 1, got {self.exponentiation_factor}")

    @classmethod
    def from_value(
        cls, value: Union["InvocationRetryPolicy", Mapping[str, Any], None]
    ) -> Optional["InvocationRetryPolicy"]:
        if value is None or isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = set(value) - set(cls.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown InvocationRetryPolicy fields: {sorted(unknown)}")
            return cls(**value)
        raise TypeError(f"invocation_retry_policy must be an InvocationRetryPolicy, got {type(value).__name__}")


def _seconds(value: Optional[timedelta], default: float) -> float:
    return default if value is None else value.total_seconds()


class RunRetry:
    """Backoff state of one failing step; created at its first failure only."""

    __slots__ = ("max_attempts", "max_duration", "delay", "factor", "max_interval")

    def __init__(self, options: RunOptions[Any]) -> None:
        self.max_attempts = options.max_attempts
        duration = options.max_duration if options.max_duration is not None else options.max_retry_duration
        self.max_duration = None if duration is None else duration.total_seconds()
        self.delay = _seconds(options.initial_retry_interval, DEFAULT_INITIAL_INTERVAL)
        self.factor = DEFAULT_FACTOR if options.retry_interval_factor is None else options.retry_interval_factor
        self.max_interval = _seconds(options.max_retry_interval, DEFAULT_MAX_INTERVAL)

    def next_delay(self, attempts: int, elapsed: float) -> Optional[float]:
        """Seconds to wait before the next attempt, or None to give up.

        `attempts` made so far, `elapsed` seconds since the first one started.
        """
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return None
        delay = min(self.delay, self.max_interval)
        if self.max_duration is not None:
            remaining = self.max_duration - elapsed
            if remaining <= 0:
                return None
            delay = min(delay, remaining)
        self.delay = min(self.delay * self.factor, self.max_interval)
        return delay


def backoff_delays(options: RunOptions[Any], n: int) -> list[float]:
    """The first `n` delays of a step's schedule, ignoring its limits (for docs and tests)."""
    retry = RunRetry(options)
    retry.max_attempts = None
    retry.max_duration = None
    return [retry.next_delay(i + 1, 0.0) or 0.0 for i in range(n)]


# Indirection so tests (and a future injected clock) can replace the sleep.
sleep = asyncio.sleep
