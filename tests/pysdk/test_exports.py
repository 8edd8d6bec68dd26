"""The public surface is frozen: changing it must be a visible, deliberate edit."""
import pysdk
import pysdk.asyncio
import pysdk.context
import pysdk.exceptions
import pysdk.retry_policy
import pysdk.serde

EXPECTED = [
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


def test_all_is_frozen() -> None:
    assert sorted(pysdk.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    for name in pysdk.__all__:
        assert getattr(pysdk, name) is not None


def test_no_public_name_leaks_outside_all() -> None:
    # ("@py_builtins", "@pytest_ar": pytest rewrites the asserts of the plugin's distribution.)
    public = {n for n in vars(pysdk) if not n.startswith(("_", "@"))}
    # Submodules (imported ones become attributes of the package; pytest imports the plugin).
    modules = {"asyncio", "context", "exceptions", "retry_policy", "serde", "client", "client_types", "harness",
               "pytest_plugin", "testing"}
    assert public - set(pysdk.__all__) - modules == set()


def test_restate_module_mirrors() -> None:
    assert sorted(pysdk.serde.__all__) == ["BytesSerde", "DefaultSerde", "JsonSerde", "PydanticJsonSerde", "Serde"]
    assert sorted(pysdk.exceptions.__all__) == [
        "RetryableError", "SdkInternalBaseException", "TerminalError", "is_internal_exception",
    ]
    assert sorted(pysdk.context.__all__) == [
        "AttemptFinishedEvent", "Context", "DurablePromise", "ObjectContext", "ObjectSharedContext", "Request",
        "RestateDurableCallFuture", "RestateDurableFuture", "RestateDurableSleepFuture", "RunOptions",
        "SendHandle", "WorkflowContext", "WorkflowSharedContext",
    ]
    assert sorted(pysdk.asyncio.__all__) == ["as_completed", "gather", "select", "wait_completed"]
    assert sorted(pysdk.retry_policy.__all__) == ["InvocationRetryPolicy", "OnMaxAttempts"]


def test_mirrors_are_the_same_objects() -> None:
    for module in (pysdk.context, pysdk.asyncio, pysdk.exceptions, pysdk.retry_policy, pysdk.serde):
        for name in module.__all__:
            if hasattr(pysdk, name):
                assert getattr(module, name) is getattr(pysdk, name)


# Names of Restate's Python SDK that a ported handler imports, by the module Restate has
# them in (`restate`, `restate.exceptions`, `restate.context`); RetryableError, only in
# `restate.exceptions` there, is also at the top here, like TerminalError.
RESTATE_SURFACE = {
    pysdk: ["RetryableError", "SdkInternalBaseException", "TerminalError", "is_internal_exception"],
    pysdk.exceptions: ["RetryableError", "SdkInternalBaseException", "TerminalError", "is_internal_exception"],
    pysdk.context: ["AttemptFinishedEvent", "Request"],
}


def test_restate_surface_is_exported() -> None:
    for module, names in RESTATE_SURFACE.items():
        for name in names:
            assert name in module.__all__, f"{module.__name__}.{name} is not in __all__"
