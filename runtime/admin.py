"""The admin API, on its own port (loopback unless --admin-host says otherwise), in
Restate's paths and shapes where Restate has them:

    GET    /health, /version
    GET    /ui[/{asset}]                                     the web UI (runtime/admin_ui.py, runtime/ui/)
    GET    /services[/{name}[/openapi]]                      runtime/admin_services.py
    GET    /services/{service}/state/{key}                   runtime/admin_state.py
    POST   /services/{service}/state
    GET    /invocations[/{id}]                               runtime/admin_invocations.py
    PATCH  /invocations/{id}/cancel|kill|purge|pause|resume
    DELETE /invocations/{id}?mode=cancel|kill               (Restate's older form)
    POST   /query                                            runtime/admin_query.py (SQL)
    GET    /metrics                                          runtime/metrics.py (Prometheus)
    POST   /deployments, GET /deployments[/{id}], DELETE /deployments/{id}: admin_deployments.py
    POST   /schedules, GET /schedules[/{id}], PATCH|DELETE /schedules/{id}: admin_schedules.py
    GET    /limits                                           runtime/admin_limits.py (queues)
    PUT    /debug/failpoints/{name}     body: actions in the `fail` crate's syntax (e.g. pause);
    DELETE /debug/failpoints/{name}     only with STEAD_DEBUG_FAILPOINTS=1 and an extension built
                                        with the failpoints feature (tests hold or fail the writer)

Every answer leaves only once every commit queued before it is durable (one wait, in
the send path of `Admin`), since the reads behind it see written, not yet synced,
commits (refusals wait only for the commits they rest on). Errors are Restate's admin shape, {"message", "restate_code"} (plus "code", the HTTP
status): 400 bad input, 401 missing token, 404 unknown, 405 method, 409 conflict; 503 once
the store failed (the ingress's "storage failed: ..." message: the server is stopping).
Every path is also answered under Restate's version prefixes (/v1 ... /v4), which
Restate's CLI puts in front of the paths once GET /version told it the range.
With an admin token (--admin-token), every request that changes something (any
method but GET and HEAD, except POST /query, which only reads) must carry
"Authorization: Bearer <token>"; a refused request changes nothing.
"""

from __future__ import annotations

import asyncio
import hmac
import importlib
import json
import logging
import os
from typing import Awaitable, Callable
from urllib.parse import parse_qs, unquote

from runtime import _core, admin_deployments, admin_invocations, admin_services, admin_state, admin_ui, metrics
from runtime import admin_limits, admin_schedules
from runtime.http import HttpError, Receive, Scope, Send, header, json_body, lifespan, read_body, respond
from runtime.ingress import answer_error
from runtime.invoker import Invoker

log = logging.getLogger("stead.admin")


# Restate's admin API revisions whose paths this API answers (its CLI prefixes them).
API_VERSIONS = tuple(f"v{n}" for n in range(admin_services.MIN_API_VERSION, admin_services.MAX_API_VERSION + 1))


def error_body(status: int, message: str) -> bytes:
    return json.dumps({"code": status, "message": message, "restate_code": None}).encode()


class Admin:
    def __init__(self, invoker: Invoker, *, ingress_url: str = "", token: str = "") -> None:
        self.invoker = invoker
        self.ingress_url = ingress_url
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        invoker = self.invoker
        # What says nothing about stored data need not wait: health, and the failpoints
        # that tests use to hold the writer (their answers must come while it is held).
        head = scope["path"].strip("/").split("/", 1)[0]
        barrier = head not in ("health", "debug")

        async def durable_send(message: dict) -> None:
            # The barrier, once for every answer: nothing leaves before every commit queued
            # until now is durable. The admin API's reads (scans, records, state) see written
            # commits, which may not be synced yet, and its answers say what they saw.
            if barrier and message["type"] == "http.response.start":
                await invoker.commits.wait(invoker.store.last_seq())
            await send(message)

        try:
            try:
                await self._handle(scope, receive, durable_send)
            except HttpError as exc:
                # Refusals wait for the commits they rest on where they rest on one (signals,
                # purge); an unknown id is answered without waiting for the writer.
                await respond(send, exc.status, error_body(exc.status, exc.message))
        except Exception as exc:
            # Crash-only, as in the ingress: once the store failed, 503 and the failure.
            await answer_error(invoker, exc, scope, send, error_body, log)

    def _authorize(self, scope: Scope, parts: list[str]) -> None:
        if not self._token or scope["method"] in ("GET", "HEAD") or parts == ["query"]:
            return
        given = header(scope["headers"], b"authorization") or b""
        scheme, _, token = given.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self._token):
            raise HttpError(401, "this admin API needs a token: send \"Authorization: Bearer <token>\" "
                                 "(the server's --admin-token)")

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Segments of the raw path, each decoded: a key may hold an encoded "/" (%2F).
        raw = (scope.get("raw_path") or scope["path"].encode()).split(b"?", 1)[0]
        try:
            parts = [unquote(p.decode("ascii"), errors="strict") for p in raw.strip(b"/").split(b"/")]
        except UnicodeError:
            raise HttpError(400, "the path is not valid UTF-8 (percent-encoded)") from None
        if len(parts) > 1 and parts[0] in API_VERSIONS:
            parts = parts[1:]  # Restate's versioned paths (/v2/services, ...): the same resources
        method = scope["method"]
        self._authorize(scope, parts)
        head = parts[0]
        if parts == ["health"]:
            await respond(send, 200, b'{"status":"ok"}')
        elif head == "ui":
            await admin_ui.handle(parts, method, send)
        elif parts == ["metrics"] and method == "GET":
            body, content_type = metrics.render(self.invoker.metrics)
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", content_type.encode())]})
            await send({"type": "http.response.body", "body": body})
        elif parts == ["query"]:
            # DuckDB and pyarrow (~50 MiB) load with the first query, in a worker thread.
            admin_query = await asyncio.to_thread(importlib.import_module, "runtime.admin_query")
            await admin_query.handle_query(self.invoker, scope, receive, send)
        elif head == "deployments":
            await admin_deployments.handle(self.invoker, parts, scope, receive, send)
        elif head == "schedules":
            await admin_schedules.handle(self.invoker, parts, scope, receive, send)
        elif head == "limits":
            await admin_limits.handle(self.invoker, parts, method, send)
        elif parts == ["version"] or (head == "services" and (len(parts) < 3 or parts[2] != "state")):
            await admin_services.handle(self.invoker, parts, method, self.ingress_url, send)
        elif head == "services" and len(parts) == 4 and method == "GET":
            await admin_state.get(self.invoker, parts[1], parts[3], send)
        elif head == "services" and len(parts) == 3 and method == "POST":
            await admin_state.post(self.invoker, parts[1], scope, receive, send)
        elif head == "services":
            raise HttpError(405 if len(parts) in (3, 4) else 404,
                            "use GET /services/{service}/state/{key} or POST /services/{service}/state")
        elif head == "invocations":
            await self._invocations(parts, method, scope, send)
        elif len(parts) == 3 and parts[:2] == ["debug", "failpoints"] and _failpoints_enabled():
            await self._failpoint(parts[2], method, scope, receive, send)
        else:
            raise HttpError(404, f"unknown admin path {scope['path']}")

    async def _invocations(self, parts: list[str], method: str, scope: Scope, send: Send) -> None:
        invoker = self.invoker
        if len(parts) == 1 and method == "GET":
            page = await admin_invocations.list_invocations(invoker, scope.get("query_string") or b"")
            await respond(send, 200, json_body(page))
        elif len(parts) == 2 and method == "GET":
            await respond(send, 200, json_body(await admin_invocations.describe(invoker, parts[1])))
        elif len(parts) == 2 and method == "DELETE":
            mode = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get("mode", ["cancel"])[-1]
            if mode not in ("cancel", "kill"):
                raise HttpError(400, f"mode must be cancel or kill, got {mode!r}")
            await admin_invocations.refuse_schedule_ticks(invoker, parts[1], mode)
            await admin_invocations.signal(invoker, parts[1], mode, send)
        elif len(parts) == 3 and parts[2] in ("cancel", "kill", "purge", "pause", "resume"):
            if method != "PATCH":
                raise HttpError(405, f"method {method} not allowed: use PATCH /invocations/{{id}}/{parts[2]}")
            if parts[2] in ("cancel", "kill", "pause"):
                await admin_invocations.refuse_schedule_ticks(invoker, parts[1], parts[2])
            if parts[2] == "purge":
                await admin_invocations.purge(invoker, parts[1], send)
            elif parts[2] == "pause":
                await admin_invocations.pause(invoker, parts[1], send)
            elif parts[2] == "resume":
                await admin_invocations.resume(invoker, parts[1], scope.get("query_string") or b"", send)
            else:
                await admin_invocations.signal(invoker, parts[1], parts[2], send)
        elif len(parts) in (1, 2):
            raise HttpError(405, f"method {method} not allowed on /{'/'.join(parts)}")
        else:
            raise HttpError(404, f"unknown admin path {scope['path']}")

    async def _failpoint(self, name: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        if method == "PUT":
            actions = (await read_body(scope["headers"], receive, 4096)).decode("utf-8", "replace")
            try:
                _core.set_failpoint(name, actions)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from None
        elif method == "DELETE":
            _core.remove_failpoint(name)
        else:
            raise HttpError(405, f"method {method} not allowed: PUT or DELETE a failpoint")
        log.warning("failpoint %s %s", name, "set" if method == "PUT" else "removed")
        await respond(send, 200, json_body({"failpoint": name}))


def _failpoints_enabled() -> bool:
    return os.environ.get("STEAD_DEBUG_FAILPOINTS") == "1" and _core.failpoints_enabled()


class Router:
    """One ASGI app for both listening sockets: the admin port gets the admin API."""

    def __init__(self, ingress, admin: Callable[[Scope, Receive, Send], Awaitable[None]],  # type: ignore[no-untyped-def]
                 admin_port: int) -> None:
        self.ingress = ingress
        self.admin = admin
        self.admin_port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if server is not None and server[1] == self.admin_port:
            await self.admin(scope, receive, send)
        else:
            await self.ingress(scope, receive, send)
