"""The HTTP ingress: Restate's ingress API as a plain ASGI application.

Paths (Restate's): `POST /{Service}/{handler}` and `POST /{Object}/{key}/{handler}`,
JSON bodies, `GET /restate/health`. Errors are JSON bodies `{"code", "message"}`.
Every response that reports a result is sent only after the commits that result
depends on are durable (the invoker waits for them).

No framework on purpose: routing is one split of the path and a dict lookup, and
the whole request costs a handful of ASGI messages.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Awaitable, Callable
from urllib.parse import unquote

from pysdk._app import App
from pysdk._errors import InputError
from runtime.invoker import Invoker

log = logging.getLogger("stead.ingress")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]
INVOCATION_ID_HEADER = b"x-restate-id"


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_body(code: int, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


class Ingress:
    def __init__(self, app: App, invoker: Invoker, *, max_body_bytes: int = 32 * 1024 * 1024) -> None:
        self.app = app
        self.invoker = invoker
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await _lifespan(receive, send)
            return
        try:
            await self._handle(scope, receive, send)
        except HttpError as exc:
            await _respond(send, exc.status, error_body(exc.status, exc.message))
        except Exception as exc:
            # A bug or a storage failure: the client still gets a JSON error, and nothing
            # claims success (responses are only sent after a durable commit).
            log.exception("internal error serving %s %s", scope["method"], scope["path"])
            await _respond(send, 500, error_body(500, f"internal error: {exc}"))

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or scope["path"].encode()
        parts = raw.split(b"?", 1)[0].split(b"/")
        if len(parts) == 3 and parts[1] == b"restate" and parts[2] == b"health":
            await _respond(send, 200, b'{"status":"ok"}')
            return
        spec, key = self._route(parts)
        if scope["method"] != "POST":
            raise HttpError(405, f"method {scope['method']} not allowed: handlers are invoked with POST")
        headers = scope["headers"]
        body = await self._read_body(headers, receive)
        if body:
            _check_content_type(headers)
        try:
            value = spec.parse_input(body)
        except InputError as exc:
            raise HttpError(400, f"invalid input for {spec.service_name}/{spec.name}: {exc}") from None
        inv_id, (output, code, message) = await self.invoker.call(
            spec, key, body, value, _plain_headers(headers))
        id_header = (INVOCATION_ID_HEADER, inv_id.encode())
        if output is not None:
            await _respond(send, 200, output, id_header)
        else:
            status = code if 400 <= code <= 599 else 500
            await _respond(send, status, error_body(code, message or ""), id_header)

    def _route(self, parts: list[bytes]) -> tuple[Any, str]:
        if len(parts) < 3 or not parts[1]:
            raise HttpError(404, "expected /{service}/{handler} or /{object}/{key}/{handler}")
        service = unquote(parts[1].decode("latin-1"))
        kind = self.app.service_type(service)
        if kind is None:
            raise HttpError(404, f"service '{service}' not found")
        if kind == "service":
            if len(parts) != 3:
                raise HttpError(404, f"'{service}' is a service: call POST /{service}/{{handler}}")
            key, handler = "", unquote(parts[2].decode("latin-1"))
        else:
            if len(parts) != 4:
                raise HttpError(404, f"'{service}' is a virtual object: call POST /{service}/{{key}}/{{handler}}")
            key, handler = unquote(parts[2].decode("latin-1")), unquote(parts[3].decode("latin-1"))
        spec = self.app.lookup(service, handler)
        if spec is None:
            raise HttpError(404, f"handler '{handler}' not found in '{service}'")
        return spec, key

    async def _read_body(self, headers: list[tuple[bytes, bytes]], receive: Receive) -> bytes:
        limit = self.max_body_bytes
        for name, value in headers:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise HttpError(400, "invalid content-length header") from None
                if declared > limit:
                    raise HttpError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _check_content_type(headers: list[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media != b"application/json" and not media.endswith(b"+json"):
                raise HttpError(415, f"unsupported content-type '{value.decode('latin-1')}': "
                                     "handlers accept application/json")
            return


def _plain_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]


async def _respond(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    headers = JSON_HEADERS if not extra else [*JSON_HEADERS, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
