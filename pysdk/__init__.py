"""Stead's Python SDK: what handler authors import.

The names, signatures and semantics follow Restate's Python SDK, so that a
Restate handler ports by changing `restate` to `pysdk` in its imports
(`pysdk.serde`, `pysdk.exceptions`, `pysdk.context`, `pysdk.asyncio` and
`pysdk.retry_policy` mirror the Restate modules of the same names). `Saga`
is Stead's own addition.

Everything else lives in private modules; `tests/pysdk/test_exports.py`
freezes this list, so adding or removing a public name is a deliberate act.

The test harness and the ingress client (`pysdk.harness`, `pysdk.client`, as Restate's
`restate.harness` and `restate.client`) are exported here as Restate exports them, but
imported only when first used: a handler's process does not load the runtime or httpx.
"""
import typing as _typing

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
from ._limits import RateLimit
from ._retry import InvocationRetryPolicy, OnMaxAttempts, RunOptions
from ._saga import Saga
from ._schedules import CatchupPolicy, OverlapPolicy, Schedule
from ._service import Service, VirtualObject
from ._workflow import Workflow

if _typing.TYPE_CHECKING:
    from .client import create_client
    from .client_types import HttpError, RestateClient, RestateClientSendHandle
    from .harness import HarnessEnvironment, create_test_harness, test_harness

# Loaded on first use (module __getattr__ below): name -> submodule.
_LAZY = {
    "HarnessEnvironment": "harness",
    "create_test_harness": "harness",
    "test_harness": "harness",
    "create_client": "client",
    "HttpError": "client_types",
    "RestateClient": "client_types",
    "RestateClientSendHandle": "client_types",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "App",
    "CatchupPolicy",
    "Context",
    "DurablePromise",
    "HarnessEnvironment",
    "HttpError",
    "InvocationRetryPolicy",
    "ObjectContext",
    "ObjectSharedContext",
    "OnMaxAttempts",
    "OverlapPolicy",
    "RateLimit",
    "Request",
    "RestateClient",
    "RestateClientSendHandle",
    "RestateDurableCallFuture",
    "RestateDurableFuture",
    "RestateDurableSleepFuture",
    "RetryableError",
    "RunOptions",
    "Saga",
    "Schedule",
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
    "create_client",
    "create_test_harness",
    "gather",
    "is_internal_exception",
    "select",
    "test_harness",
    "wait_completed",
]
