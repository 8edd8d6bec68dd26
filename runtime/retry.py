"""Invocation retry policy: exponential backoff for handler failures that are not terminal.

Defaults are Restate's: first retry after 50 ms, interval doubling, capped at 10 s,
no limit on attempts unless the handler's policy sets one. When the attempts run out, the
invocation fails (on_max_attempts unset or "kill"), or is paused until someone resumes it
(on_max_attempts "pause", as in Restate: its journal and key are kept, its caller waits).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    initial_interval_s: float = 0.05
    factor: float = 2.0
    max_interval_s: float = 10.0
    max_attempts: int | None = None
    # What happens when the attempts run out: "kill" (fail the invocation) or "pause".
    on_max_attempts: str = "kill"

    def delay_s(self, retry_count: int) -> float:
        """Delay before retry number `retry_count` (1 = the first retry)."""
        delay = self.initial_interval_s * (self.factor ** max(0, retry_count - 1))
        return min(delay, self.max_interval_s)

    def exhausted(self, retry_count: int) -> bool:
        return self.max_attempts is not None and retry_count >= self.max_attempts

    @property
    def pauses(self) -> bool:
        """Whether running out of attempts pauses the invocation rather than failing it."""
        return self.on_max_attempts == "pause"

    @classmethod
    def overlay(cls, policy: object, default: "RetryPolicy") -> "RetryPolicy":
        """A pysdk InvocationRetryPolicy (Restate's fields; unset ones None) over `default`."""
        if policy is None:
            return default

        def seconds(value: object, fallback: float) -> float:
            if value is None:
                return fallback
            total = getattr(value, "total_seconds", None)
            return float(total()) if total is not None else float(value)  # type: ignore[arg-type]

        on_max = getattr(policy, "on_max_attempts", None)
        return cls(
            initial_interval_s=seconds(getattr(policy, "initial_interval", None), default.initial_interval_s),
            factor=float(getattr(policy, "exponentiation_factor", None) or default.factor),
            max_interval_s=seconds(getattr(policy, "max_interval", None), default.max_interval_s),
            max_attempts=getattr(policy, "max_attempts", None) or default.max_attempts,
            # pysdk's OnMaxAttempts ("PAUSE"/"KILL"), or the same as a string.
            on_max_attempts=(default.on_max_attempts if on_max is None
                             else str(getattr(on_max, "value", on_max)).lower()),
        )
