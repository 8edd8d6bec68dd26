"""Invocation retry policy, under the module name Restate uses (`restate.retry_policy`)."""
from ._retry import InvocationRetryPolicy, OnMaxAttempts

__all__ = ["InvocationRetryPolicy", "OnMaxAttempts"]
