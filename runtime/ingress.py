"""The HTTP ingress: Restate's ingress API as a plain ASGI application.

    POST /{Service}/{handler}[/send]            call (or send: 202 {"invocationId","status"})
    POST /{Object|Workflow}/{key}/{handler}[/send]
         ?delay=10s on a send; header idempotency-key on either
    POST /restate/awakeables/{id}/resolve|reject
    GET  /restate/invocation/{id}/attach|output
    GET  /restate/invocation/{Service}/{handler}/{idempotency key}/attach|output
    GET  /restate/invocation/{Object}/{key}/{handler}/{idempotency key}/attach|output
    GET  /restate/workflow/{Workflow}/{key}/attach|output
    GET  /restate/health

Errors are JSON bodies `{"code", "message"}`; an unfinished invocation's output is
Restate's 470 "not ready". A response that reports a result or an acceptance is
sent only after the commits it depends on are durable (the invoker waits for them).
Nothing is written for a rejected request.
"""

from __future__ import annotations

import logging
from typing import Optional
from urllib.parse import parse_qs, unquote

import pydantic_core

from pysdk._app import App
from pysdk._errors import InputError
from pysdk._handler import HandlerSpec
from pysdk._ids import parse_awakeable_id
from runtime.http import (HttpError, Receive, Scope, Send, check_json_content_type, error_body, header,
                          json_body, lifespan, parse_duration_ms, plain_headers, read_body, respond)
from runtime.invoker import Invoker
from runtime.results import Result, UnknownInvocation

log = logging.getLogger("stead.ingress")

INVOCATION_ID_HEADER = b"x-restate-id"
NOT_READY = 470
_KIND_NAMES = {"object": "virtual object", "workflow": "workflow"}
MAX_IDEMPOTENCY_KEY = 256


def _part(raw: bytes) -> str:
    return unquote(raw.decode("latin-1"))


class Ingress:
    def __init__(self, app: App, invoker: Invoker, *, max_body_bytes: int = 32 * 1024 * 1024) -> None:
        self.app = app
        self.invoker = invoker
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        try:
            await self._handle(scope, receive, send)
        except HttpError as exc:
            await respond(send, exc.status, error_body(exc.status, exc.message))
        except Exception as exc:
            # A bug or a storage failure: the client still gets a JSON error, and nothing
            # claims success (responses are only sent after a durable commit).
            log.exception("internal error serving %s %s", scope["method"], scope["path"])
            await respond(send, 500, error_body(500, f"internal error: {exc}"))

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        parts = raw.split(b"?", 1)[0].split(b"/")
        if len(parts) >= 3 and parts[1] == b"restate":
            await self._restate(scope, parts, receive, send)
            return
        spec, key, is_send = self._route(parts)
        if scope["method"] != "POST":
            raise HttpError(405, f"method {scope['method']} not allowed: handlers are invoked with POST")
        headers = scope["headers"]
        delay_ms = self._delay(scope, is_send)
        idem = _idempotency_key(headers)
        body = await read_body(headers, receive, self.max_body_bytes)
        if body:
            check_json_content_type(headers)
        try:
            value = spec.parse_input(body)
        except InputError as exc:
            raise HttpError(400, f"invalid input for {spec.service_name}/{spec.name}: {exc}") from None
        invoker = self.invoker
        existing = invoker.existing(spec, key, idem) if (idem or spec.kind == "workflow") else None
        if is_send:
            if existing is not None:
                await _accepted(send, existing, "PreviouslyAccepted")
                return
            inv = invoker.new_invocation(spec, key, body, plain_headers(headers), idem)
            await invoker.send(spec, inv, value, delay_ms)
            await _accepted(send, inv.id, "Accepted")
            return
        if existing is not None:
            await _result(send, existing, await invoker.results.attach(existing))
            return
        inv = invoker.new_invocation(spec, key, body, plain_headers(headers), idem)
        await _result(send, inv.id, await invoker.call(spec, inv, value))

    def _route(self, parts: list[bytes]) -> tuple[HandlerSpec, str, bool]:
        is_send = len(parts) > 3 and parts[-1] == b"send"
        if is_send:
            parts = parts[:-1]
        if len(parts) < 3 or not parts[1]:
            raise HttpError(404, "expected /{service}/{handler} or /{object}/{key}/{handler}")
        service = _part(parts[1])
        kind = self.app.service_type(service)
        if kind is None:
            raise HttpError(404, f"service '{service}' not found")
        if kind == "service":
            if len(parts) != 3:
                raise HttpError(404, f"'{service}' is a service: call POST /{service}/{{handler}}")
            key, handler = "", _part(parts[2])
        else:
            if len(parts) != 4:
                raise HttpError(404, f"'{service}' is a {_KIND_NAMES.get(kind, kind)}: "
                                     f"call POST /{service}/{{key}}/{{handler}}")
            key, handler = _part(parts[2]), _part(parts[3])
        spec = self.app.lookup(service, handler)
        if spec is None:
            raise HttpError(404, f"handler '{handler}' not found in '{service}'")
        return spec, key, is_send

    def _delay(self, scope: Scope, is_send: bool) -> int:
        query = scope.get("query_string") or b""
        if not query:
            return 0
        params = parse_qs(query.decode("latin-1"), keep_blank_values=True)
        values = params.get("delay")
        if values is None:
            return 0
        if not is_send:
            raise HttpError(400, "?delay= applies to sends only (POST .../{handler}/send?delay=...)")
        try:
            return parse_duration_ms(values[-1])
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None

    # ---- /restate/... -----------------------------------------------------------------

    async def _restate(self, scope: Scope, parts: list[bytes], receive: Receive, send: Send) -> None:
        section = parts[2]
        method = scope["method"]
        if section == b"health" and len(parts) == 3:
            await respond(send, 200, b'{"status":"ok"}')
            return
        if section == b"awakeables" and len(parts) == 5 and parts[4] in (b"resolve", b"reject"):
            if method != "POST":
                raise HttpError(405, f"method {method} not allowed: awakeables are completed with POST")
            await self._awakeable(scope, _part(parts[3]), parts[4] == b"resolve", receive, send)
            return
        if section in (b"invocation", b"workflow") and len(parts) >= 5 and parts[-1] in (b"attach", b"output"):
            if method != "GET":
                raise HttpError(405, f"method {method} not allowed: use GET for attach and output")
            inv_id = self._target_id(section, [_part(p) for p in parts[3:-1]])
            await self._attach_or_output(inv_id, parts[-1] == b"attach", send)
            return
        raise HttpError(404, f"unknown path {scope['path']}")

    async def _awakeable(self, scope: Scope, awakeable: str, resolve: bool, receive: Receive, send: Send) -> None:
        try:
            inv_id, index = parse_awakeable_id(awakeable)
        except ValueError as exc:
            raise HttpError(404, str(exc)) from None
        headers = scope["headers"]
        body = await read_body(headers, receive, self.max_body_bytes)
        if resolve:
            if body:
                check_json_content_type(headers)
                _check_json(body)
            value, code, message = body or b"null", 0, None
        else:
            value, code, message = None, 500, body.decode("utf-8", "replace") or "rejected"
        store = self.invoker.store
        seq = store.complete_awakeable(inv_id, index, value, code, message)
        if seq == -1:
            raise HttpError(404, f"awakeable {awakeable} not found")
        if seq == 0:
            raise HttpError(409, f"awakeable {awakeable} is already completed")
        await self.invoker.signal(seq)
        await respond(send, 202, b"")

    def _target_id(self, section: bytes, names: list[str]) -> str:
        if section == b"invocation" and len(names) == 1:
            return names[0]
        if section == b"workflow":
            if len(names) != 2 or self.app.service_type(names[0]) != "workflow":
                raise HttpError(404, "expected /restate/workflow/{Workflow}/{key}/attach|output")
            spec = self._main(names[0])
            inv_id = self.invoker.existing(spec, names[1], "")
        else:
            service = names[0]
            kind = self.app.service_type(service)
            if kind is None:
                raise HttpError(404, f"service '{service}' not found")
            want = 3 if kind == "service" else 4
            if len(names) != want:
                raise HttpError(404, "expected /restate/invocation/{service}[/{key}]/{handler}/"
                                     "{idempotency key}/attach|output")
            key = "" if kind == "service" else names[1]
            spec = self.app.lookup(service, names[-2])
            if spec is None:
                raise HttpError(404, f"handler '{names[-2]}' not found in '{service}'")
            inv_id = self.invoker.existing(spec, key, names[-1])
        if inv_id is None:
            raise HttpError(404, "no invocation found for " + "/".join(names))
        return inv_id

    def _main(self, workflow: str) -> HandlerSpec:
        for spec in self.app.services[workflow].handlers.values():
            if spec.kind == "workflow":
                return spec
        raise HttpError(404, f"workflow '{workflow}' has no main handler")

    async def _attach_or_output(self, inv_id: str, attach: bool, send: Send) -> None:
        results = self.invoker.results
        try:
            if attach:
                result: Optional[Result] = await results.attach(inv_id)
            else:
                result = results.output(inv_id)
        except UnknownInvocation:
            raise HttpError(404, f"invocation {inv_id} not found") from None
        if result is None:
            raise HttpError(NOT_READY, f"invocation {inv_id} is not completed yet")
        await _result(send, inv_id, result)


def _idempotency_key(headers: list[tuple[bytes, bytes]]) -> str:
    raw = header(headers, b"idempotency-key")
    if raw is None:
        return ""
    key = raw.decode("latin-1")
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise HttpError(400, f"invalid idempotency-key header: expected 1 to {MAX_IDEMPOTENCY_KEY} "
                             "printable characters")
    return key


def _check_json(body: bytes) -> None:
    try:
        pydantic_core.from_json(body)
    except ValueError as exc:
        raise HttpError(400, f"invalid JSON: {exc}") from None


async def _accepted(send: Send, inv_id: str, status: str) -> None:
    await respond(send, 202, json_body({"invocationId": inv_id, "status": status}),
                  (INVOCATION_ID_HEADER, inv_id.encode()))


async def _result(send: Send, inv_id: str, result: Result) -> None:
    output, code, message = result
    id_header = (INVOCATION_ID_HEADER, inv_id.encode())
    if output is not None:
        await respond(send, 200, output, id_header)
    else:
        status = code if 400 <= code <= 599 else 500
        await respond(send, status, error_body(code, message or ""), id_header)

