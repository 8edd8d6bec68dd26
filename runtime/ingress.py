"""The HTTP ingress: Restate's ingress API as a plain ASGI application.

    POST /{Service}/{handler}[/send]            call (or send: 202 {"invocationId","status"})
    POST /{Object|Workflow}/{key}/{handler}[/send]
         ?delay=10s on a send; header idempotency-key on either (not on a workflow's run: 400)
    POST /restate/awakeables/{id}/resolve|reject
    GET  /restate/invocation/{id}/attach|output
    GET  /restate/invocation/{Service}/{handler}/{idempotency key}/attach|output
    GET  /restate/invocation/{Object}/{key}/{handler}/{idempotency key}/attach|output
    GET  /restate/workflow/{Workflow}/{key}/attach|output
    GET  /restate/health                        {"status": "ok", "services": [...]}

Paths follow Restate's grammar: the service's kind decides the shape (keyed or not), then
the number of segments, so an object handler named `send` is `/{Object}/{key}/send`.
Segments are percent-decoded and must be UTF-8 (else 400); a path of the wrong shape is
400 naming the expected one; an unknown service or handler is 404. Handlers take POST or
GET (other methods 405); a handler or service declared `ingress_private` is 400 here
(handlers still call it). A workflow's run handler called again for a key that already
has a run is 409 "the workflow method was already invoked" (its /send form answers 202
"PreviouslyAccepted"; attach gives the result). Completing an awakeable that is already
completed is 202 and changes nothing; a malformed awakeable id is 400.

Bodies: beyond --max-body, 413 after reading and dropping a bounded amount of the rest
(so that a client that writes its whole body first reads the answer), then the connection
is closed. A client that goes away before its body is complete gets nothing admitted.

Errors are JSON bodies `{"code", "message"}`; an unfinished invocation's output is
Restate's 470 "not ready". Once the store has failed (crash-only: the server stops), every
request that is not answered otherwise is 503 "storage failed: <cause>; the server is
stopping: ..." (`storage_failed_message`, the admin API's too; runtime/server.py answers so
the requests still waiting when it fails). A response that reports a result or an acceptance is
sent only after the commits it depends on are durable (the invoker waits for them).
Nothing is written for a rejected request.
"""

from __future__ import annotations

import logging
from typing import Callable, Optional
from urllib.parse import parse_qs, unquote_to_bytes

import pydantic_core

from pysdk._app import App
from pysdk._errors import InputError
from pysdk._handler import HandlerSpec
from pysdk._ids import parse_awakeable_id
from pysdk._limits import LIMIT_KEY_HEADER, check_limit_key
from runtime import _core
from runtime.http import (CLOSE, ClientDisconnected, HttpError, Receive, Scope, Send, check_json_content_type,
                          error_body, header, json_body, lifespan, parse_duration_ms, plain_headers, read_body,
                          respond)
from runtime.invoker import Invoker
from runtime.results import Result, UnknownInvocation

log = logging.getLogger("stead.ingress")

INVOCATION_ID_HEADER = b"x-restate-id"
NOT_READY = 470
_KIND_NAMES = {"object": "virtual object", "workflow": "workflow"}
MAX_IDEMPOTENCY_KEY = 256
# Restate's wordings.
WORKFLOW_ALREADY_INVOKED = "the workflow method was already invoked"
NOT_PUBLIC = "the invoked service is not public"
IDEMPOTENCY_KEY_ON_WORKFLOW = ("cannot use the idempotency key with workflow handlers. The handler invocation "
                               "will already be idempotent by the workflow key itself.")


def _part(raw: bytes) -> str:
    """One path segment, percent-decoded, as UTF-8 (strictly: two different invalid
    segments must not name the same key)."""
    try:
        return (unquote_to_bytes(raw) if b"%" in raw else raw).decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("latin-1")
        raise HttpError(400, f"bad path, cannot decode '{shown}': not valid UTF-8 after percent-decoding") from None


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
        tracing = self.invoker.tracing
        traced = None
        if tracing is not None and not scope["path"].startswith("/restate/"):
            traced = tracing.ingress(scope)  # a span per handler request (runtime/tracing.py)
        try:
            await self._handle(scope, receive, send)
        except ClientDisconnected:
            # Gone before its body was complete: nothing was admitted, nobody to answer.
            log.debug("client disconnected during %s %s", scope["method"], scope["path"])
        except HttpError as exc:
            if exc.close:
                await respond(send, exc.status, error_body(exc.status, exc.message), CLOSE)
            else:
                await respond(send, exc.status, error_body(exc.status, exc.message))
        except Exception as exc:
            # A bug too: the client still gets a JSON error, and nothing claims success
            # (responses are only sent after a durable commit).
            await answer_error(self.invoker, exc, scope, send, error_body, log)
        finally:
            if traced is not None:
                tracing.end_ingress(*traced)  # type: ignore[union-attr]

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        parts = raw.split(b"?", 1)[0].split(b"/")
        if len(parts) >= 3 and parts[1] == b"restate":
            await self._restate(scope, parts, receive, send)
            return
        spec, key, is_send = self._route(parts)
        method = scope["method"]
        if method != "POST" and method != "GET":
            raise HttpError(405, f"method {method} not allowed: handlers are invoked with POST (or GET)")
        if self._private(spec):
            raise HttpError(400, NOT_PUBLIC)
        headers = scope["headers"]
        delay_ms = self._delay(scope, is_send)
        idem = _idempotency_key(headers)
        stored_headers = _stored_headers(scope, headers)
        workflow_run = spec.kind == "workflow"
        if idem and workflow_run:
            raise HttpError(400, IDEMPOTENCY_KEY_ON_WORKFLOW)
        body = await read_body(headers, receive, self.max_body_bytes)
        if body:
            check_json_content_type(headers)
        try:
            value = spec.parse_input(body)
        except InputError as exc:
            raise HttpError(400, f"invalid input for {spec.service_name}/{spec.name}: {exc}") from None
        invoker = self.invoker
        # None: a new invocation is admitted below (no wait for a purge that deleted the row).
        existing = await invoker.existing(spec, key, idem, then_admits=True) if (idem or workflow_run) else None
        if is_send:
            if existing is not None:
                # barrier: this acceptance depends on the commit that registered `existing`.
                await _accepted(send, existing, "PreviouslyAccepted")
                return
            inv = invoker.new_invocation(spec, key, body, stored_headers, idem)
            await invoker.send(spec, inv, value, delay_ms)
            await _accepted(send, inv.id, "Accepted")
            return
        if existing is not None:
            if workflow_run:
                # barrier: this refusal depends on the commit that registered `existing`.
                raise HttpError(409, WORKFLOW_ALREADY_INVOKED)
            await _result(send, existing, await invoker.results.attach(existing))
            return
        inv = invoker.new_invocation(spec, key, body, stored_headers, idem)
        await _result(send, inv.id, await invoker.call(spec, inv, value))

    def _route(self, parts: list[bytes]) -> tuple[HandlerSpec, str, bool]:
        """Restate's grammar: the service's kind decides the shape, then the segment count:
        /{service}/{handler}[/send], /{object|workflow}/{key}/{handler}[/send]. So an object
        handler named `send` is /{object}/{key}/send, and its send form .../send/send."""
        # parts[0] is the empty segment before the leading slash.
        if len(parts) < 2 or not parts[1]:
            raise HttpError(404, "not found: expected /{service}/{handler} or /{object}/{key}/{handler}")
        service = _part(parts[1])
        kind = self.app.service_type(service)
        if kind is None:
            raise HttpError(404, f"service '{service}' not found")
        keyed = kind != "service"
        call_len = 4 if keyed else 3
        if len(parts) == call_len:
            is_send = False
        elif len(parts) == call_len + 1 and parts[-1] == b"send":
            is_send = True
        elif keyed:
            raise HttpError(400, f"bad path: '{service}' is a {_KIND_NAMES.get(kind, kind)}: expected "
                                 f"/{service}/{{key}}/{{handler}} or /{service}/{{key}}/{{handler}}/send")
        else:
            raise HttpError(400, f"bad path: '{service}' is a service: expected "
                                 f"/{service}/{{handler}} or /{service}/{{handler}}/send")
        if keyed:
            key, handler = _part(parts[2]), _part(parts[3])
        else:
            key, handler = "", _part(parts[2])
        spec = self.app.lookup(service, handler)
        if spec is None:
            raise HttpError(404, f"handler '{handler}' not found in '{service}'")
        return spec, key, is_send

    def _private(self, spec: HandlerSpec) -> bool:
        """`ingress_private` on the handler, else on its service: reachable from handlers only."""
        private = spec.options.ingress_private
        if private is None:
            private = self.app.services[spec.service_name].ingress_private
        return bool(private)

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
            if method != "GET":
                raise HttpError(405, f"method {method} not allowed: use GET /restate/health")
            await respond(send, 200, json_body({"status": "ok", "services": list(self.app.services)}))
            return
        if section == b"awakeables" and len(parts) == 5 and parts[4] in (b"resolve", b"reject"):
            if method != "POST":
                raise HttpError(405, f"method {method} not allowed: awakeables are completed with POST")
            await self._awakeable(scope, _part(parts[3]), parts[4] == b"resolve", receive, send)
            return
        if section in (b"invocation", b"workflow") and len(parts) >= 5 and parts[-1] in (b"attach", b"output"):
            if method != "GET":
                raise HttpError(405, f"method {method} not allowed: use GET for attach and output")
            inv_id = await self._target_id(section, [_part(p) for p in parts[3:-1]])
            await self._attach_or_output(inv_id, parts[-1] == b"attach", send)
            return
        raise HttpError(404, f"unknown path {scope['path']}")

    async def _awakeable(self, scope: Scope, awakeable: str, resolve: bool, receive: Receive, send: Send) -> None:
        try:
            inv_id, index = parse_awakeable_id(awakeable)
        except ValueError:
            raise HttpError(400, f"bad awakeable id '{awakeable}'") from None
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
        status, seq = store.complete_awakeable(inv_id, index, value, code, message)
        if status == _core.SIGNAL_UNKNOWN:
            raise HttpError(404, f"awakeable {awakeable} not found")
        # Applied, or already completed: Restate accepts and ignores a second completion.
        # Either way the answer waits for the commit it depends on.
        await self.invoker.signal(seq)
        await respond(send, 202, b"")

    async def _target_id(self, section: bytes, names: list[str]) -> str:
        if section == b"invocation" and len(names) == 1:
            return names[0]
        if section == b"workflow":
            if len(names) != 2:
                raise HttpError(400, "bad path: expected /restate/workflow/{Workflow}/{key}/attach|output")
            if self.app.service_type(names[0]) != "workflow":
                raise HttpError(404, f"workflow '{names[0]}' not found")
            spec = self._main(names[0])
            inv_id = await self.invoker.existing(spec, names[1], "")
        else:
            service = names[0]
            kind = self.app.service_type(service)
            if kind is None:
                raise HttpError(404, f"service '{service}' not found")
            want = 3 if kind == "service" else 4
            if len(names) != want:
                raise HttpError(400, "bad path: expected /restate/invocation/{id}/attach|output or "
                                     "/restate/invocation/{service}[/{key}]/{handler}/{idempotency key}/attach|output")
            key = "" if kind == "service" else names[1]
            target = self.app.lookup(service, names[-2])
            if target is None:
                raise HttpError(404, f"handler '{names[-2]}' not found in '{service}'")
            inv_id = await self.invoker.existing(target, key, names[-1])
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
                result = await results.output(inv_id)
        except UnknownInvocation:
            raise HttpError(404, f"invocation {inv_id} not found") from None
        if result is None:
            raise HttpError(NOT_READY, f"invocation {inv_id} is not completed yet")
        await _result(send, inv_id, result)


def storage_failure(invoker: Invoker, exc: BaseException) -> Optional[BaseException]:
    """The storage failure behind `exc`, if a request failed because of one: a StorageError
    (the writer stopped, or the store failed under this request), or any error once the
    store has failed (the server is then stopping, and what a request was doing when its
    commit could not be made durable fails in whatever way it fails). A StorageError that
    reaches a request first stops the server like any other (crash-only)."""
    if isinstance(exc, _core.CorruptError) and invoker.failed is None:
        return None  # damaged data read: refused (damaged_message), the store did not fail
    if isinstance(exc, _core.StorageError):
        invoker.storage_failed(exc)
        return invoker.failed or exc
    return invoker.failed


async def answer_error(invoker: Invoker, exc: BaseException, scope: Scope, send: Send,
                       body: Callable[[int, str], bytes], logger: logging.Logger) -> None:
    """The answer of the ingress and the admin API to a request that failed with `exc`:
    503 and the failure once the store failed (crash-only: the server is stopping), 500
    naming what is damaged for damaged data, else a 500 "internal error" (logged with its
    traceback: a bug)."""
    failure = storage_failure(invoker, exc)
    if failure is not None:
        await respond(send, 503, body(503, storage_failed_message(failure)))
        return
    damaged = damaged_message(exc)
    if damaged is not None:
        logger.error("%s %s refused: %s", scope["method"], scope["path"], damaged)
        await respond(send, 500, body(500, damaged))
        return
    logger.exception("internal error serving %s %s", scope["method"], scope["path"])
    await respond(send, 500, body(500, f"internal error: {exc}"))


def damaged_message(exc: BaseException) -> Optional[str]:
    """The message of a request refused because what it read is damaged (a journal entry,
    a record that does not decode), if that is why it failed."""
    return str(exc).removeprefix("corrupt data: ") if isinstance(exc, _core.CorruptError) else None


# What core_rs puts in front of RocksDB's words (core_rs/src/error.rs).
_PREFIXES = ("commit writer stopped after a storage failure: ", "storage error: ")


def storage_cause(failure: BaseException) -> str:
    """What failed, without the wrappers' prefixes: RocksDB's own words (like "IO error: No
    space left on device: While appending to file: .../000004.log ...")."""
    cause = str(failure)
    for prefix in _PREFIXES:
        cause = cause.removeprefix(prefix)
    return cause


def storage_failed_message(failure: BaseException) -> str:
    """The message of every 503 the ingress and the admin API answer once the store failed.
    The outcome of the request is unknown: its commit may or may not be on disk (a write
    that failed half-way, an fsync that failed), and recovery at the next start decides it;
    a client retries with its idempotency key."""
    return (f"storage failed: {storage_cause(failure)}; the server is stopping: the outcome is "
            "unknown until it restarts and recovers")


def _idempotency_key(headers: list[tuple[bytes, bytes]]) -> str:
    raw = header(headers, b"idempotency-key")
    if raw is None:
        return ""
    key = raw.decode("latin-1")
    if not key or len(key) > MAX_IDEMPOTENCY_KEY or not key.isprintable():
        raise HttpError(400, f"invalid idempotency-key header: expected 1 to {MAX_IDEMPOTENCY_KEY} "
                             "printable characters")
    return key


LIMIT_KEY_HEADER_B = LIMIT_KEY_HEADER.encode()


def _stored_headers(scope: Scope, headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """The request's headers as the invocation keeps them, with the limit key (Restate's
    `x-restate-limit-key` header, or its `limit-key` query parameter; the header wins)
    checked and kept as that header (runtime/queues.py reads it)."""
    plain = plain_headers(headers)
    raw = header(headers, LIMIT_KEY_HEADER_B)
    given = raw.decode("latin-1") if raw is not None else None
    from_query = False
    query = scope.get("query_string")
    if given is None and query and b"limit-key" in query:
        values = parse_qs(query.decode("latin-1"), keep_blank_values=True).get("limit-key")
        if values:
            given, from_query = values[-1], True
    if given is not None:
        try:
            check_limit_key(given)
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        if from_query:
            plain.append((LIMIT_KEY_HEADER, given))
    return plain


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

