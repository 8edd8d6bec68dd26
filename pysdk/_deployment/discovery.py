"""Discovery: what a deployment serves, as the runtime's `Discover` call gets it.

`discover(app)` describes every service of the App (its type, its handlers and
their kinds) with Restate's options as the service and handler definitions set
them (timeouts, retentions, `ingress_private`, `enable_lazy_state`, the
invocation retry policy; unset ones are left out, meaning the runtime's
default), descriptions, metadata, content types, and, best effort, the JSON
Schemas of a handler's input and output from its type hints (pydantic's
`TypeAdapter`; None when there is no hint or no schema can be made).

This SDK speaks protocol versions `MIN_PROTOCOL_VERSION`..`MAX_PROTOCOL_VERSION`
(proto/stead/deployment.proto: 1, an Invoke stream per attempt; 2, Sessions as
well); `check_versions` refuses a request whose range does not overlap them.
"""
from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Optional

import pydantic

from .._handler import HandlerOptions, HandlerSpec
from .._limits import RateLimit
from .._proto.stead.deployment import v1 as pb
from .._retry import InvocationRetryPolicy

if TYPE_CHECKING:
    from .._app import App

__all__ = ["PROTOCOL_VERSION", "MIN_PROTOCOL_VERSION", "MAX_PROTOCOL_VERSION", "SDK", "check_versions", "discover"]

MIN_PROTOCOL_VERSION = 1
MAX_PROTOCOL_VERSION = 2
PROTOCOL_VERSION = MAX_PROTOCOL_VERSION  # the newest


def _sdk() -> str:
    try:
        from importlib.metadata import version
        return f"stead-pysdk {version('stead')}"
    except Exception:  # noqa: BLE001 - not installed as a distribution (a source checkout)
        return "stead-pysdk 0.1.0"


SDK = _sdk()


def check_versions(min_version: int, max_version: int) -> Optional[str]:
    """None if [min_version, max_version] includes a version this SDK speaks, else why not."""
    if min_version <= MAX_PROTOCOL_VERSION and MIN_PROTOCOL_VERSION <= max_version:
        return None
    return (f"protocol versions {min_version}..{max_version} asked for, but this deployment ({SDK}) "
            f"speaks {MIN_PROTOCOL_VERSION}..{MAX_PROTOCOL_VERSION}")


def _ms(value: Optional[timedelta]) -> Optional[int]:
    return None if value is None else max(0, int(round(value.total_seconds() * 1000)))


def _retry_policy(policy: Optional[InvocationRetryPolicy]) -> Optional[pb.RetryPolicy]:
    if policy is None:
        return None
    on_max = policy.on_max_attempts
    return pb.RetryPolicy(
        initial_interval_ms=_ms(policy.initial_interval),
        exponentiation_factor=policy.exponentiation_factor,
        max_interval_ms=_ms(policy.max_interval),
        max_attempts=policy.max_attempts,
        on_max_attempts=None if on_max is None else str(getattr(on_max, "value", on_max)).upper(),
    )


def _options(src: Any, workflow_retention: Optional[timedelta] = None) -> pb.Options:
    """Options from a service definition or a `HandlerOptions` (same attribute names)."""
    return pb.Options(
        inactivity_timeout_ms=_ms(getattr(src, "inactivity_timeout", None)),
        abort_timeout_ms=_ms(getattr(src, "abort_timeout", None)),
        journal_retention_ms=_ms(getattr(src, "journal_retention", None)),
        idempotency_retention_ms=_ms(getattr(src, "idempotency_retention", None)),
        workflow_retention_ms=_ms(workflow_retention),
        ingress_private=getattr(src, "ingress_private", None),
        enable_lazy_state=getattr(src, "enable_lazy_state", None),
        retry_policy=_retry_policy(getattr(src, "invocation_retry_policy", None)),
        concurrency=getattr(src, "concurrency", None),
        concurrency_per_limit_key=getattr(src, "concurrency_per_limit_key", None),
        rate_limit=_rate_limit(getattr(src, "rate_limit", None)),
    )


def _rate_limit(rate: Optional[RateLimit]) -> Optional[pb.RateLimit]:
    return None if rate is None else pb.RateLimit(starts=rate.starts, period_ms=rate.period_ms)


def _schema(hint: Any) -> Optional[str]:
    if hint is None:
        return None
    try:
        return json.dumps(pydantic.TypeAdapter(hint).json_schema(), sort_keys=True)
    except Exception:  # noqa: BLE001 - best effort: some hints have no JSON schema
        return None


def handler_schemas(spec: HandlerSpec) -> tuple[Optional[str], Optional[str]]:
    """The JSON Schemas (as JSON text) of a handler's input and output, from its type
    hints or its serde's; None where there is no hint or no schema can be made."""
    input_hint = spec.input_type if spec.accepts_input else None
    if spec.accepts_input and input_hint is None:
        input_hint = getattr(spec.input_serde, "type_hint", None)
    output_hint = spec.output_type if spec.output_type is not None else getattr(spec.output_serde, "type_hint", None)
    return _schema(input_hint), _schema(output_hint)


def _handler(spec: HandlerSpec) -> pb.HandlerInfo:
    opts: HandlerOptions = spec.options
    input_schema, output_schema = handler_schemas(spec)
    return pb.HandlerInfo(
        name=spec.name,
        kind=spec.kind,
        options=_options(opts, opts.workflow_retention),
        description=opts.description,
        metadata=dict(opts.metadata or {}),
        input_schema=input_schema,
        output_schema=output_schema,
        accept=opts.accept,
        content_type=opts.content_type,
    )


def discover(app: "App") -> pb.DiscoverResponse:
    services = []
    for name, svc in app.services.items():
        services.append(pb.ServiceInfo(
            name=name,
            type=svc.service_type,
            handlers=[_handler(spec) for spec in svc.handlers.values()],
            options=_options(svc),
            description=svc.description,
            metadata=dict(svc.metadata or {}),
        ))
    return pb.DiscoverResponse(min_protocol_version=MIN_PROTOCOL_VERSION, max_protocol_version=MAX_PROTOCOL_VERSION,
                               services=services, sdk=SDK)
