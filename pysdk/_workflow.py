"""`Workflow`: keyed handlers whose main handler runs once per key (Restate's class).

`@wf.main()` registers the main handler (kind "workflow": exclusive on the
workflow key, reads and writes its state, gets a `WorkflowContext`); a
workflow has exactly one. `@wf.handler()` registers the others (kind
"shared": concurrent, read-only, `WorkflowSharedContext`), typically to
query progress or to resolve the workflow's durable promises. Reached at
`POST /{Workflow}/{key}/{handler}`.
"""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any, Callable, Optional

from ._limits import RateLimit
from ._serde import DEFAULT_SERDE, Serde
from ._service import F, RetryPolicyArg, _Base, _options

__all__ = ["Workflow"]


class Workflow(_Base):
    """A workflow: one main handler, run once per key, and shared handlers."""

    service_type = "workflow"

    def main(
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
        workflow_retention: Optional[timedelta] = None,
        enable_lazy_state: Optional[bool] = None,
        ingress_private: Optional[bool] = None,
        invocation_retry_policy: RetryPolicyArg = None,
        description: Optional[str] = None,
        concurrency: Optional[int] = None,
        concurrency_per_limit_key: Optional[int] = None,
        rate_limit: Optional[RateLimit] = None,
    ) -> Callable[[F], F]:
        """Register the main handler, `async def run(ctx: WorkflowContext[, input])`."""
        existing = self.main_handler
        if existing is not None:
            raise ValueError(f"Workflow {self.name!r} already has a main handler ({existing!r}); it can have one")
        options = _options(accept, content_type, description, metadata, inactivity_timeout, abort_timeout,
                           journal_retention, None, enable_lazy_state, ingress_private, invocation_retry_policy,
                           concurrency, concurrency_per_limit_key, rate_limit)
        if workflow_retention is not None:
            options = replace(options, workflow_retention=workflow_retention)
        return self._register("workflow", name, input_serde, output_serde, options)

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
        enable_lazy_state: Optional[bool] = None,
        ingress_private: Optional[bool] = None,
        invocation_retry_policy: RetryPolicyArg = None,
        description: Optional[str] = None,
        concurrency: Optional[int] = None,
        concurrency_per_limit_key: Optional[int] = None,
        rate_limit: Optional[RateLimit] = None,
    ) -> Callable[[F], F]:
        """Register a shared handler, `async def h(ctx: WorkflowSharedContext[, input])`."""
        return self._register(
            "shared", name, input_serde, output_serde,
            _options(accept, content_type, description, metadata, inactivity_timeout, abort_timeout,
                     journal_retention, idempotency_retention, enable_lazy_state, ingress_private,
                     invocation_retry_policy, concurrency, concurrency_per_limit_key, rate_limit),
        )

    @property
    def main_handler(self) -> Optional[str]:
        """The name of the main handler, once registered."""
        return next((s.name for s in self.handlers.values() if s.kind == "workflow"), None)

