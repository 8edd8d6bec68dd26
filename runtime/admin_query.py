"""The admin API's `POST /query`: SQL over Restate's introspection tables (runtime/sql.py),
in Restate's shape.

Request: `{"query": "SELECT ..."}`. The answer's format follows the Accept header as
Restate's does, so Restate's CLI reads it: `application/json` answers
`{"rows": [{column: value, ...}]}`; `application/vnd.apache.arrow.stream`, and any
Accept that names no JSON type (`*/*`: what Restate's CLI sends for `restate sql`),
answer an Arrow IPC stream. Without an Accept header the answer is JSON.

JSON values are written as Restate's (arrow-json) writer writes them: timestamps as
RFC 3339 in UTC with milliseconds ("2026-11-27T12:00:00.123Z"), bytes as lowercase hex
strings (Restate's CLI decodes state values as hex), integers and booleans as such;
NULL is written as null.

Errors: 400 `{"message": <DuckDB's message>, "restate_code": null}` for a query that
does not parse, names an unknown table or column, is not a single read-only query, or
runs past the time limit; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import json
import math
import weakref
from typing import Any, Callable, Optional

import pyarrow as pa

from runtime import sql
from runtime.http import HttpError, Receive, Scope, Send, check_json_content_type, header, read_body
from runtime.invoker import Invoker

MAX_BODY = 1024 * 1024
ARROW = "application/vnd.apache.arrow.stream"

_engines: "weakref.WeakKeyDictionary[Invoker, sql.Engine]" = weakref.WeakKeyDictionary()


async def handle_query(invoker: Invoker, scope: Scope, receive: Receive, send: Send) -> None:
    if scope["method"] != "POST":
        raise HttpError(405, f"method {scope['method']} not allowed: POST /query")
    headers = scope["headers"]
    check_json_content_type(headers)
    body = await read_body(headers, receive, MAX_BODY)
    engine = _engines.get(invoker)
    if engine is None:
        engine = _engines[invoker] = sql.Engine(invoker.store)
    try:
        table = await engine.query(_query_text(body), sql.snapshot(invoker))
    except sql.QueryError as exc:
        await _answer(send, 400, _error(str(exc)), "application/json")
        return
    if wants_arrow(header(headers, b"accept")):
        await _answer(send, 200, await asyncio.to_thread(arrow_stream, table), ARROW)
    else:
        await _answer(send, 200, await asyncio.to_thread(json_rows, table), "application/json")


def _query_text(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise sql.QueryError(f'expected a JSON body {{"query": "SELECT ..."}}: {exc}') from None
    query = doc.get("query") if isinstance(doc, dict) else None
    if not isinstance(query, str) or not query.strip():
        raise sql.QueryError('expected a JSON body {"query": "SELECT ..."}')
    return query


def _error(message: str) -> bytes:
    return json.dumps({"message": message, "restate_code": None}).encode()


async def _answer(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type.encode())]})
    await send({"type": "http.response.body", "body": body})


def wants_arrow(accept: Optional[bytes]) -> bool:
    """Arrow when asked for by name, or when the Accept header names no JSON type (Restate
    answers Arrow to anything but `application/json`); JSON without an Accept header."""
    if accept is None:
        return False
    types = {part.split(";", 1)[0].strip().lower() for part in accept.decode("latin-1").split(",")}
    if ARROW in types:
        return True
    return not any(t == "application/json" or t.endswith("+json") for t in types)


def arrow_stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------- JSON rows

def _timestamp(value: datetime.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(datetime.timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}" + (
        "Z" if value.tzinfo is not None else "")


def _duration(value: Any) -> str:
    """ISO 8601, as arrow-json writes durations and intervals."""
    if isinstance(value, datetime.timedelta):
        return f"PT{value.total_seconds():g}S"
    months, days, nanos = value.months, value.days, value.nanoseconds  # MonthDayNano
    return f"P{months}M{days}DT{nanos / 1e9:g}S"


def _plain(value: Any) -> Any:
    """A value of a nested or unusual type as JSON (the common types are converted by column)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime.datetime):
        return _timestamp(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):  # a map
            return {str(k): _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    if isinstance(value, datetime.timedelta) or hasattr(value, "nanoseconds"):
        return _duration(value)
    return str(value)


def _converter(ty: pa.DataType) -> Optional[Callable[[Any], Any]]:
    if pa.types.is_string(ty) or pa.types.is_large_string(ty) or pa.types.is_boolean(ty) or pa.types.is_integer(ty):
        return None
    if pa.types.is_timestamp(ty):
        return lambda v: None if v is None else _timestamp(v)
    if pa.types.is_binary(ty) or pa.types.is_large_binary(ty):
        return lambda v: None if v is None else v.hex()
    return _plain


def json_rows(table: pa.Table) -> bytes:
    """`{"rows": [...]}`, one object per row, columns in order, NULL as null."""
    names = table.column_names
    columns = []
    for f, column in zip(table.schema, table.columns):
        values = column.to_pylist()
        convert = _converter(f.type)
        columns.append(values if convert is None else [convert(v) for v in values])
    rows = [dict(zip(names, values)) for values in zip(*columns)] if columns else []
    return json.dumps({"rows": rows}, separators=(",", ":"), ensure_ascii=False).encode()
