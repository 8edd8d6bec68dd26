"""`Service` and `VirtualObject`: named groups of handlers (Restate's classes).

A Service's handlers are stateless and run concurrently. A VirtualObject's
handlers are bound to a key: exclusive ones (the default) run one at a time
per key and may write the key's state; shared ones run concurrently and only
read it. The decorator registers a `HandlerSpec` and returns the function
itself, so handlers stay directly callable (in tests, say).
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable, Mapping, Optional, TypeVar, Union

from ._commands import HANDLER_ATTR
from ._handler import HandlerOptions, HandlerSpec, validate_name
from ._limits import RateLimit, limit_options
from ._retry import InvocationRetryPolicy
from ._serde import DEFAULT_SERDE, Serde

F = TypeVar("F", bound=Callable[..., Any])
RetryPolicyArg = Union[InvocationRetryPolicy, Mapping[str, Any], None]


class _Base:
    service_type: str = ""

    def __init__(
        self,
        name: str,
        description: Optional[str] = None,
        metadata: Optional[dict[str, str]] = None,
        inactivity_timeout: Optional[timedelta] = None,
        abort_timeout: Optional[timedelta] = None,
        journal_retention: Optional[timedelta] = None,
        idempotency_retention: Optional[timedelta] = None,
        ingress_private: Optional[bool] = None,
        invocation_retry_policy: RetryPolicyArg = None,
        enable_lazy_state: Optional[bool] = None,
        concurrency: Optional[int] = None,
        concurrency_per_limit_key: Optional[int] = None,
        rate_limit: Optional[RateLimit] = None,
    ) -> None:
        self.name = validate_name(type(self).__name__, name)
        # Limits across all the service's handlers (runtime/queues.py).
        limits = limit_options(f"{type(self).__name__} {name!r}", concurrency, concurrency_per_limit_key, rate_limit)
        self.concurrency = limits.concurrency
        self.concurrency_per_limit_key = limits.concurrency_per_limit_key
        self.rate_limit = limits.rate_limit
        self.description = description
        self.metadata = metadata
        self.inactivity_timeout = inactivity_timeout
        self.abort_timeout = abort_timeout
        self.journal_retention = journal_retention
        self.idempotency_retention = idempotency_retention
        self.ingress_private = ingress_private
        self.enable_lazy_state = enable_lazy_state
        self.invocation_retry_policy = InvocationRetryPolicy.from_value(invocation_retry_policy)
        self.handlers: dict[str, HandlerSpec] = {}

    def _register(
        self,
        kind: str,
        name: Optional[str],
        input_serde: Serde[Any],
        output_serde: Serde[Any],
        options: HandlerOptions,
    ) -> Callable[[F], F]:
        def decorate(fn: F) -> F:
            spec = HandlerSpec(
                service_name=self.name,
                service_type=self.service_type,
                kind=kind,
                fn=fn,
                name=name,
                input_serde=input_serde,
                output_serde=output_serde,
                options=options,
            )
            if spec.name in self.handlers:
                raise ValueError(f"{type(self).__name__} {self.name!r} already has a handler named {spec.name!r}")
            self.handlers[spec.name] = spec
            try:
                setattr(fn, HANDLER_ATTR, spec)
            except (AttributeError, TypeError):
                pass
            return fn

        return decorate

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, handlers={sorted(self.handlers)})"


def _options(
    accept: str, content_type: str, description: Optional[str], metadata: Optional[dict[str, str]],
    inactivity_timeout: Optional[timedelta], abort_timeout: Optional[timedelta],
    journal_retention: Optional[timedelta], idempotency_retention: Optional[timedelta],
    enable_lazy_state: Optional[bool], ingress_private: Optional[bool], invocation_retry_policy: RetryPolicyArg,
    concurrency: Optional[int] = None, concurrency_per_limit_key: Optional[int] = None,
    rate_limit: Optional[RateLimit] = None,
) -> HandlerOptions:
    limits = limit_options("handler", concurrency, concurrency_per_limit_key, rate_limit)
    return HandlerOptions(
        accept=accept, content_type=content_type, description=description, metadata=metadata,
        inactivity_timeout=inactivity_timeout, abort_timeout=abort_timeout,
        journal_retention=journal_retention, idempotency_retention=idempotency_retention,
        enable_lazy_state=enable_lazy_state, ingress_private=ingress_private,
        invocation_retry_policy=InvocationRetryPolicy.from_value(invocation_retry_policy),
        concurrency=limits.concurrency, concurrency_per_limit_key=limits.concurrency_per_limit_key,
        rate_limit=limits.rate_limit,
    )


class Service(_Base):
    """Stateless handlers, reached at `POST /{Service}/{handler}`."""

    service_type = "service"

    def handler(
        self,
        name: Optional[str] = None,
        accept: str = "application/json",
        content_type: str = "application/json",
        input_serde: Serde[Any] = DEFAULT_SERDE,
        output_serde: Serde[Any] = DEFAULT_SERDE,
        metadata: Optional[dict[str, str]] = None,
        inactivity_timeout: Optional[timedelta] = None,
        abort_timeout: Optional[timedelta] = None,
        journal_retention: Optional[timedelta] = None,
        idempotency_retention: Optional[timedelta] = None,
        ingress_private: Optional[bool] = None,
        invocation_retry_policy: RetryPolicyArg = None,
        description: Optional[str] = None,
        concurrency: Optional[int] = None,
        concurrency_per_limit_key: Optional[int] = None,
        rate_limit: Optional[RateLimit] = None,
    ) -> Callable[[F], F]:
        """Register an `async def handler(ctx: Context[, input])`."""
        return self._register(
            "service", name, input_serde, output_serde,
            _options(accept, content_type, description, metadata, inactivity_timeout, abort_timeout,
                     journal_retention, idempotency_retention, None, ingress_private, invocation_retry_policy,
                     concurrency, concurrency_per_limit_key, rate_limit),
        )


class VirtualObject(_Base):
    """Keyed handlers with state, reached at `POST /{Object}/{key}/{handler}`."""

    service_type = "object"

    def handler(
        self,
        name: Optional[str] = None,
        kind: Optional[str] = "exclusive",
        accept: str = "application/json",
        content_type: str = "application/json",
        input_serde: Serde[Any] = DEFAULT_SERDE,
        output_serde: Serde[Any] = DEFAULT_SERDE,
        metadata: Optional[dict[str, str]] = None,
        inactivity_timeout: Optional[timedelta] = None,
        abort_timeout: Optional[timedelta] = None,
        journal_retention: Optional[timedelta] = None,
        idempotency_retention: Optional[timedelta] = None,
        enable_lazy_state: Optional[bool] = None,
        ingress_private: Optional[bool] = None,
        invocation_retry_policy: RetryPolicyArg = None,
        description: Optional[str] = None,
        concurrency: Optional[int] = None,
        concurrency_per_limit_key: Optional[int] = None,
        rate_limit: Optional[RateLimit] = None,
    ) -> Callable[[F], F]:
        """Register an `async def handler(ctx: ObjectContext[, input])` (kind
        "exclusive", the default) or `(ctx: ObjectSharedContext[, input])` (kind "shared")."""
        if kind is None:
            kind = "exclusive"
        if kind not in ("exclusive", "shared"):
            raise ValueError(
                f"VirtualObject {self.name!r}: handler kind must be 'exclusive' or 'shared', got {kind!r}"
            )
        return self._register(
            kind, name, input_serde, output_serde,
            _options(accept, content_type, description, metadata, inactivity_timeout, abort_timeout,
                     journal_retention, idempotency_retention, enable_lazy_state, ingress_private,
                     invocation_retry_policy, concurrency, concurrency_per_limit_key, rate_limit),
        )
