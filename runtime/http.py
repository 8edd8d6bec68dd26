"""Small ASGI helpers shared by the ingress and the admin API: JSON errors,
responses, bounded body reads, header and duration parsing.

No framework on purpose: a request costs a handful of ASGI messages.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any, Awaitable, Callable

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

JSON_HEADERS = [(b"content-type", b"application/json")]


class HttpError(Exception):
    """Answered as `status` with a JSON body {"code", "message"}; with `close`, the
    connection is closed after the answer (the rest of the request was not read)."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


class ClientDisconnected(Exception):
    """The client went away before its request body was complete. Nothing may be admitted
    from a partial body, and no answer can reach the client: the request is dropped."""


def error_body(code: int, message: str) -> bytes:
    return json.dumps({"code": code, "message": message}).encode()


def json_body(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


async def respond(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    headers = JSON_HEADERS if not extra else [*JSON_HEADERS, *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# After a 413, what is still coming is read and dropped, up to this many bytes and this long,
# so that a client that writes its whole body before reading (urllib, many others) reads the
# 413 instead of a connection reset (closing a socket with unread data resets it).
DRAIN_MAX_BYTES = 8 * 1024 * 1024
DRAIN_TIMEOUT_S = 5.0
CLOSE = (b"connection", b"close")


async def read_body(headers: list[tuple[bytes, bytes]], receive: Receive, limit: int) -> bytes:
    """The whole request body; 413 beyond `limit` bytes (declared or received), after which the
    connection is closed; ClientDisconnected if the client goes away before the body is complete
    (uvicorn reports it as `http.disconnect`, whatever part of the body had arrived)."""
    declared = -1
    for name, value in headers:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = -2
            if declared < 0:
                raise HttpError(400, "invalid content-length header", close=True)
    if declared > limit:
        # A client that asked `expect: 100-continue` waits for this answer before sending the
        # body: reading would ask it for the body (uvicorn answers 100 on the first receive).
        if header(headers, b"expect") is None:
            await _drain(receive, declared)
        raise HttpError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes",
                        close=True)
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnected()
    body = message.get("body", b"")
    if not message.get("more_body") and len(body) <= limit:
        return body
    chunks = [body]
    size = len(body)
    while True:
        if size > limit:  # a body without content-length (chunked), or longer than declared
            if message.get("more_body"):
                await _drain(receive, declared)
            raise HttpError(413, f"request body exceeds the limit of {limit} bytes", close=True)
        if not message.get("more_body"):
            return b"".join(chunks)
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)


async def _drain(receive: Receive, declared: int) -> None:
    """Read and drop the rest of a refused body, within DRAIN_MAX_BYTES and DRAIN_TIMEOUT_S;
    not at all when the declared length alone is beyond that (the client will see a reset)."""
    if declared > DRAIN_MAX_BYTES:
        return
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            size = 0
            while size <= DRAIN_MAX_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
                size += len(message.get("body", b""))
    except TimeoutError:
        return


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for n, v in headers:
        if n == name:
            return v
    return None


def check_json_content_type(headers: list[tuple[bytes, bytes]]) -> None:
    value = header(headers, b"content-type")
    if value is not None:
        media = value.split(b";", 1)[0].strip().lower()
        if media != b"application/json" and not media.endswith(b"+json"):
            raise HttpError(415, f"unsupported content-type '{value.decode('latin-1')}': "
                                 "handlers accept application/json")


def plain_headers(headers: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    return [(n.decode("latin-1"), v.decode("latin-1")) for n, v in headers]


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_HUMAN = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_ISO = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")
MAX_DELAY_MS = 10 * 365 * 86_400_000


def parse_duration_ms(text: str) -> int:
    """Milliseconds from `1500` (ms), a duration like `10s`, `1m30s`, `250ms`, `2h`, `1d`,
    or ISO 8601 like `PT10S` (what Restate's ingress accepts for ?delay=). ValueError if not."""
    text = text.strip()
    if text.isdigit():
        ms = int(text)
    elif (m := _ISO.fullmatch(text.upper())) and text.upper() not in ("P", "PT"):
        d, h, mi, s = m.groups()
        ms = int(((int(d or 0) * 24 + int(h or 0)) * 60 + int(mi or 0)) * 60_000 + float(s or 0) * 1000)
    else:
        pos, ms_f = 0, 0.0
        for match in _HUMAN.finditer(text):
            if match.start() != pos:
                break
            ms_f += float(match.group(1)) * _UNITS_MS[match.group(2)]
            pos = match.end()
        if pos != len(text) or not text:
            raise ValueError(f"invalid duration {text!r}: expected milliseconds or a duration like 10s, 1m30s, PT10S")
        ms = int(ms_f)
    if ms > MAX_DELAY_MS:
        raise ValueError(f"duration {text!r} is too long (at most 10 years)")
    return ms


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
