"""Stead's Python SDK: what handler authors import.

The names, signatures and semantics follow Restate's Python SDK, so that a
Restate handler ports by changing `restate` to `pysdk` in its imports
(`pysdk.serde`, `pysdk.exceptions`, `pysdk.context`, `pysdk.asyncio` and
`pysdk.retry_policy` mirror the Restate modules of the same names). `Saga`
is Stead's own addition.

Everything else lives in private modules; `tests/pysdk/test_exports.py`
freezes this list, so adding or removing a public name is a deliberate act.
"""
from ._app import App, app
from ._combinators import as_completed, gather, select, wait_completed
from ._context import (
    Context,
    ObjectContext,
    ObjectSharedContext,
    Request,
    WorkflowContext,
    WorkflowSharedContext,
)
from ._errors import RetryableError, SdkInternalBaseException, TerminalError, is_internal_exception
from ._futures import (
    DurablePromise,
    RestateDurableCallFuture,
    RestateDurableFuture,
    RestateDurableSleepFuture,
    SendHandle,
)
from ._retry import InvocationRetryPolicy, OnMaxAttempts, RunOptions
from ._saga import Saga
from ._service import Service, VirtualObject
from ._workflow import Workflow

__all__ = [
    "App",
    "Context",
    "DurablePromise",
    "InvocationRetryPolicy",
    "ObjectContext",
    "ObjectSharedContext",
    "OnMaxAttempts",
    "Request",
    "RestateDurableCallFuture",
    "RestateDurableFuture",
    "RestateDurableSleepFuture",
    "RetryableError",
    "RunOptions",
    "Saga",
    "SdkInternalBaseException",
    "SendHandle",
    "Service",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
    "app",
    "as_completed",
    "gather",
    "is_internal_exception",
    "select",
    "wait_completed",
]
