"""The invocation retry policy: Restate's defaults and per-handler overrides."""

from datetime import timedelta

from pysdk import InvocationRetryPolicy
from runtime.retry import RetryPolicy


def test_default_backoff_doubles_from_50ms_and_caps_at_10s() -> None:
    policy = RetryPolicy()
    assert [policy.delay_s(n) for n in (1, 2, 3, 4)] == [0.05, 0.1, 0.2, 0.4]
    assert policy.delay_s(30) == 10.0
    assert not policy.exhausted(10_000)


def test_handler_policy_overrides_only_the_fields_it_sets() -> None:
    policy = RetryPolicy.overlay(
        InvocationRetryPolicy(initial_interval=timedelta(milliseconds=10), max_attempts=3), RetryPolicy())
    assert policy.delay_s(1) == 0.01
    assert policy.factor == 2.0 and policy.max_interval_s == 10.0
    assert not policy.exhausted(2) and policy.exhausted(3)
    assert RetryPolicy.overlay(None, policy) is policy
