"""Backoff math of ctx.run retries (Restate's RunOptions defaults)."""
from datetime import timedelta

from pysdk import RunOptions
from pysdk._retry import RunRetry, backoff_delays


def test_default_schedule_doubles_from_50ms_capped_at_10s() -> None:
    delays = backoff_delays(RunOptions(), 12)
    assert delays[:4] == [0.05, 0.1, 0.2, 0.4]
    assert max(delays) == 10.0 and delays[-1] == 10.0


def test_custom_schedule() -> None:
    opts: RunOptions[None] = RunOptions(initial_retry_interval=timedelta(seconds=1),
                                        retry_interval_factor=3, max_retry_interval=timedelta(seconds=5))
    assert backoff_delays(opts, 4) == [1.0, 3.0, 5.0, 5.0]


def test_limits() -> None:
    retry = RunRetry(RunOptions(max_attempts=2))
    assert retry.next_delay(1, 0.0) == 0.05
    assert retry.next_delay(2, 0.0) is None
    retry = RunRetry(RunOptions(max_duration=timedelta(seconds=1)))
    assert retry.next_delay(1, 0.99) is not None and retry.next_delay(1, 0.99) <= 0.01 + 1e-9
    assert retry.next_delay(5, 1.0) is None
    # the deprecated name still works
    assert RunRetry(RunOptions(max_retry_duration=timedelta(seconds=2))).max_duration == 2.0


def test_unlimited_by_default() -> None:
    retry = RunRetry(RunOptions())
    assert all(retry.next_delay(n, 1e6) is not None for n in range(1, 1000))
