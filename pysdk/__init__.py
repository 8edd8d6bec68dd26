"""Stead's Python SDK: what handler authors import.

The names, signatures and semantics follow Restate's Python SDK, so that a
Restate handler ports by changing `restate` to `pysdk` in its imports
(`pysdk.serde`, `pysdk.exceptions`, `pysdk.context` and `pysdk.retry_policy`
mirror the Restate modules of the same names).

Everything else lives in private modules; `tests/pysdk/test_exports.py`
freezes this list, so adding or removing a public name is a deliberate act.
"""
from ._app import App, app
from ._context import Context, ObjectContext, ObjectSharedContext, Request
from ._errors import TerminalError
from ._retry import InvocationRetryPolicy, OnMaxAttempts, RunOptions
from ._service import Service, VirtualObject

__all__ = [
    "App",
    "Context",
    "InvocationRetryPolicy",
    "ObjectContext",
    "ObjectSharedContext",
    "OnMaxAttempts",
    "Request",
    "RunOptions",
    "Service",
    "TerminalError",
    "VirtualObject",
    "app",
]
