"""Traces (runtime/tracing.py) from a real `stead serve --otlp-endpoint`, received by a
small OTLP/HTTP collector on loopback that decodes what it is sent with
opentelemetry-proto's types: a span per attempt, child spans for steps and calls, the
context carried from an incoming `traceparent` and across calls between handlers."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                       ExportTraceServiceResponse)

from tests.conftest import wait_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Collector:
    """Records the spans POSTed to /v1/traces: dicts of name, ids (hex), attributes."""

    def __init__(self) -> None:
        self.spans: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                collector.received(self.path, body)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()

    def received(self, path: str, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}.get("service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {}
                    for a in span.attributes:
                        v = a.value
                        attributes[a.key] = v.int_value if v.HasField("int_value") else v.string_value
                    spans.append({"name": span.name, "trace": span.trace_id.hex(), "id": span.span_id.hex(),
                                  "parent": span.parent_span_id.hex(), "attributes": attributes,
                                  "service": service, "start": span.start_time_unix_nano,
                                  "end": span.end_time_unix_nano, "status": span.status.code})
        with self._lock:
            self.paths.append(path)
            self.spans.extend(spans)

    def named(self, prefix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [s for s in self.spans if s["name"].startswith(prefix)]

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


@pytest.fixture
def traced(make_server, collector: Collector):  # type: ignore[no-untyped-def]
    # Export batches every 50 ms instead of every 5 s.
    return make_server(extra_args=["--otlp-endpoint", f"http://127.0.0.1:{collector.port}"],
                       env={"OTEL_BSP_SCHEDULE_DELAY": "50"}).start()


def test_calls_between_handlers_continue_the_incoming_trace(traced, collector: Collector) -> None:  # type: ignore[no-untyped-def]
    resp = traced.post("/Gatekeeper/outer", "ann", headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    assert resp.status_code == 200, resp.text
    assert resp.json() == ["secret for ann", "inner for ann"]
    outer_id = resp.headers["x-restate-id"]

    def callees() -> list[dict[str, Any]]:
        return [s for s in collector.named("attempt ") if s["attributes"]["stead.invocation.target"]
                in ("Hidden/secret", "Gatekeeper/inner")]

    # The ingress span ends last: after the attempts of outer, its calls and their callees.
    wait_until(lambda: collector.named("ingress Gatekeeper/outer"), 20, "the request's spans")
    assert set(collector.paths) == {"/v1/traces"}
    (ingress,) = collector.named("ingress Gatekeeper/outer")
    assert (ingress["trace"], ingress["parent"]) == (TRACE_ID, PARENT_ID)  # the caller's trace goes on
    assert ingress["attributes"]["stead.invocation.id"] == outer_id
    assert ingress["service"] == "stead"

    outer = [s for s in collector.named("attempt Gatekeeper/outer")]
    assert outer, collector.spans
    for span in outer:  # the first attempt, and (forced replay) every resumption
        assert (span["trace"], span["parent"]) == (TRACE_ID, ingress["id"])
        assert span["attributes"]["stead.invocation.id"] == outer_id
        assert span["attributes"]["stead.invocation.attempt"] == 1
    outer_ids = {s["id"] for s in outer}

    calls = {s["name"]: s for s in collector.named("call ")}
    assert set(calls) == {"call Hidden/secret", "call Gatekeeper/inner"}
    for name, call in calls.items():
        assert call["trace"] == TRACE_ID
        assert call["parent"] in outer_ids  # made by an attempt of outer
        target = name.removeprefix("call ")
        attempts = [s for s in callees() if s["attributes"]["stead.invocation.target"] == target]
        assert attempts
        for attempt in attempts:  # the callee's attempts are children of the call
            assert (attempt["trace"], attempt["parent"]) == (TRACE_ID, call["id"])
            assert attempt["attributes"]["stead.invocation.id"] == call["attributes"]["stead.callee.id"]


def test_a_step_is_a_child_of_its_attempt_and_retries_are_attempts(traced, collector: Collector) -> None:  # type: ignore[no-untyped-def]
    resp = traced.post("/Flaky/handler_until", 1)  # the handler fails once: two attempts
    assert resp.status_code == 200, resp.text
    resp = traced.post("/Flaky/step_until", 0)
    assert resp.status_code == 200, resp.text
    step_inv = resp.headers["x-restate-id"]

    # The ingress span of a request ends last (after its invocation's attempt and steps).
    wait_until(lambda: collector.named("ingress Flaky/step_until") and collector.named("ingress Flaky/handler_until"),
               20, "the spans of both requests")
    retried = collector.named("attempt Flaky/handler_until")
    assert sorted(s["attributes"]["stead.invocation.attempt"] for s in retried) == [1, 2]
    assert len({s["trace"] for s in retried}) == 1  # one invocation, one trace
    first = next(s for s in retried if s["attributes"]["stead.invocation.attempt"] == 1)
    assert first["attributes"]["stead.attempt.outcome"] == "retrying"
    assert first["status"] == 2  # STATUS_CODE_ERROR

    (ingress,) = collector.named("ingress Flaky/step_until")
    assert ingress["parent"] == ""  # no incoming traceparent: a new trace
    attempts = [s for s in collector.named("attempt Flaky/step_until")]
    assert attempts and all(a["parent"] == ingress["id"] for a in attempts)
    assert all(a["attributes"]["stead.invocation.id"] == step_inv for a in attempts)
    (step,) = collector.named("run attempt")
    assert step["trace"] == ingress["trace"]
    assert step["parent"] in {a["id"] for a in attempts}
    assert step["start"] <= step["end"]
