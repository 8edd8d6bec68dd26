"""OpenTelemetry traces of invocations, exported over OTLP/HTTP (`--otlp-endpoint`).

Off unless configured: the server then builds no `Tracing`, this module (and the
OpenTelemetry SDK) is not even imported, and the hot paths test one attribute for
None. When on:

  ingress {target}            one per ingress request, a child of the request's
                              `traceparent` header if it has one; its context is
                              written into the new invocation's headers
  attempt {target}            one per attempt of an invocation (first run, retry,
                              resumption), a child of the context in the invocation's
                              headers, with stead.invocation.id / .target / .attempt
    run {step}                a child per `ctx.run` step run live: from the barrier
                              before its body to its result being durable
    call|send {target}        a child per call or send a handler makes; its context is
                              written into the callee's headers (`traceparent`), which
                              are journaled with the callee, so the callee's attempts,
                              retries and resumptions after a crash are its children

Replayed entries make no spans: they did not run again. A step run by a handler in a
deployment starts at the flush that journals it (the runtime does not see its body
start).
"""

from __future__ import annotations

import contextvars
import logging
import os
from time import time_ns
from typing import Any, Optional
from urllib.parse import urlsplit

from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from pysdk._errors import ReplayRequested, TerminalError
from runtime import _core
from runtime.logs import target as target_of

log = logging.getLogger("stead.tracing")

TRACE_HEADERS = ("traceparent", "tracestate")
EXPORT_TIMEOUT_S = 2.0
# The ingress span of the request being served in the current task.
_ingress_span: contextvars.ContextVar[Optional[Span]] = contextvars.ContextVar("stead_ingress_span", default=None)


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL of an endpoint given as a base (http://host:4318) or in full."""
    endpoint = endpoint.rstrip("/")
    return endpoint if urlsplit(endpoint).path.endswith("/v1/traces") else endpoint + "/v1/traces"


class Tracing:
    def __init__(self, endpoint: str, *, exporter: Any = None) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": "stead"}))
        if exporter is None:
            # A collector that is down costs a shutdown at most this long (unless the
            # standard variable says otherwise), not the exporter's 10 s of retries.
            timeout = None if "OTEL_EXPORTER_OTLP_TIMEOUT" in os.environ else EXPORT_TIMEOUT_S
            exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=timeout)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("stead.runtime")
        self.propagator = TraceContextTextMapPropagator()

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporter."""
        self.provider.shutdown()

    def _parent(self, headers: Any) -> Context:
        carrier = {name.lower(): value for name, value in headers if name.lower() in TRACE_HEADERS}
        return self.propagator.extract(carrier) if carrier else Context()

    def _inject(self, span: Span, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, set_span_in_context(span))
        kept = [(n, v) for n, v in headers if n.lower() not in TRACE_HEADERS]
        return kept + list(carrier.items())

    # ---- ingress ----------------------------------------------------------------------

    def ingress(self, scope: dict[str, Any]) -> tuple[Span, contextvars.Token]:
        """Start the span of one ingress request (ended by `end_ingress`)."""
        headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]
                   if n in (b"traceparent", b"tracestate")]
        span = self.tracer.start_span(
            f"ingress {scope['method']}", context=self._parent(headers), kind=SpanKind.SERVER,
            attributes={"http.request.method": scope["method"], "url.path": scope["path"]})
        return span, _ingress_span.set(span)

    def end_ingress(self, span: Span, token: contextvars.Token) -> None:
        _ingress_span.reset(token)
        span.end()

    def new_invocation(self, inv_id: str, target: str, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The headers of a new invocation made by the ingress request in progress: its
        span's context replaces the request's own."""
        span = _ingress_span.get()
        if span is None:
            return headers
        span.update_name(f"ingress {target}")
        span.set_attribute("stead.invocation.id", inv_id)
        span.set_attribute("stead.invocation.target", target)
        return self._inject(span, headers)

    # ---- attempts -----------------------------------------------------------------------

    def attempt(self, inv: _core.Invocation, attempt: int) -> "AttemptTrace":
        target = target_of(inv)
        span = self.tracer.start_span(
            f"attempt {target}", context=self._parent(inv.headers), kind=SpanKind.SERVER,
            attributes={"stead.invocation.id": inv.id, "stead.invocation.target": target,
                        "stead.invocation.attempt": attempt})
        return AttemptTrace(self, span)


class AttemptTrace:
    """The span of one attempt and its children not ended yet (they end once the commit
    that journals them is durable)."""

    __slots__ = ("tracing", "span", "context", "step_started", "pending", "outcome")

    def __init__(self, tracing: Tracing, span: Span) -> None:
        self.tracing = tracing
        self.span = span
        self.context = set_span_in_context(span)
        self.step_started = 0
        self.pending: list[Span] = []
        self.outcome = "completed"

    def step_starting(self) -> None:
        """The barrier before a live step's body: the step starts now."""
        self.step_started = time_ns()

    def journaled(self, entries: list[_core.Entry]) -> None:
        """Spans of the steps among entries about to be committed."""
        for kind, name, _value, code, message in entries:
            if kind != _core.ENTRY_RUN:
                continue
            span = self.tracing.tracer.start_span(
                f"run {name}", context=self.context, start_time=self.step_started or None,
                attributes={"stead.step.name": name or ""})
            self.step_started = 0
            if code:
                span.set_status(Status(StatusCode.ERROR, f"[{code}] {message or ''}"))
            self.pending.append(span)

    def call(self, callee_id: str, service: str, handler: str, key: Optional[str], is_send: bool,
             headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Start the span of a call or send; return the callee's headers carrying its context."""
        target = f"{service}/{key}/{handler}" if key else f"{service}/{handler}"
        span = self.tracing.tracer.start_span(
            f"{'send' if is_send else 'call'} {target}", context=self.context,
            kind=SpanKind.PRODUCER if is_send else SpanKind.CLIENT,
            attributes={"stead.callee.id": callee_id, "stead.callee.target": target})
        self.pending.append(span)
        return self.tracing._inject(span, headers)

    def durable(self) -> None:
        """What was journaled so far is durable: end its spans."""
        pending = self.pending
        if pending:
            self.pending = []
            for span in pending:
                span.end()

    def ended_by(self, closed: Optional[type[BaseException]], exc: BaseException) -> None:
        """How the attempt's handler ended, if not by returning: closed (suspended, killed,
        replay requested, ...) or by raising `exc`."""
        if closed is ReplayRequested:
            return  # the same attempt goes on, by replay
        if closed is not None:
            self.outcome = closed.__name__.lower()
        elif isinstance(exc, Exception):
            self.outcome = "failed" if isinstance(exc, TerminalError) else "retrying"
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))

    def end(self) -> None:
        self.durable()
        self.span.set_attribute("stead.attempt.outcome", self.outcome)
        self.span.end()
