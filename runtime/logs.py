"""Logging of `stead serve`: one line per record on stderr, as text or as JSON objects.

Every record emitted while an invocation attempt runs carries that invocation's id,
target (Service/handler or Object/key/handler) and attempt number (1 for its first
try, +1 per retry), without any change to the log calls themselves: the invoker
marks the attempt in a context variable (`ATTEMPT`) for as long as the attempt
runs, asyncio gives every task its own copy of the context, and a filter on the
handler copies the fields onto each record it formats. Text lines end in
` [inv=... target=... attempt=N]`; JSON lines have `inv`, `target` and `attempt`.

The ready line (`announce`) bypasses the level: it is printed whatever --log-level
says, in the chosen format.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
from typing import Any, Optional

from runtime import _core

# (invocation, attempt number) of the attempt running in the current task, if any: set
# by the invoker (directly: `ATTEMPT.set((inv, n))`, reset with its token).
ATTEMPT: contextvars.ContextVar[Optional[tuple[_core.Invocation, int]]] = contextvars.ContextVar(
    "stead_attempt", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def target(inv: _core.Invocation) -> str:
    """Service/handler, or Object/key/handler for keyed services (Restate's target)."""
    if inv.kind == _core.KIND_SERVICE:
        return f"{inv.service}/{inv.handler}"
    return f"{inv.service}/{inv.key}/{inv.handler}"


class InvocationFilter(logging.Filter):
    """Adds `inv`, `target` and `attempt` to every record emitted inside an attempt
    (None outside one). A filter on the handler, so records of every logger get them."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = ATTEMPT.get()
        if current is None:
            record.inv = record.target = record.attempt = None
        else:
            inv, attempt = current
            record.inv = inv.id
            record.target = target(inv)
            record.attempt = attempt
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        inv = getattr(record, "inv", None)
        if inv is not None:
            line += f" [inv={inv} target={getattr(record, 'target')} attempt={getattr(record, 'attempt')}]"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (RFC 3339, UTC, ms), level, logger, message, and
    inv/target/attempt inside an attempt; exc (the traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out: dict[str, Any] = {
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        inv = getattr(record, "inv", None)
        if inv is not None:
            out["inv"] = inv
            out["target"] = getattr(record, "target")
            out["attempt"] = getattr(record, "attempt")
        fields = getattr(record, "fields", None)
        if fields:
            out.update(fields)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


_handler: Optional[logging.Handler] = None


def configure(level: str = "warning", fmt: str = "text") -> logging.Handler:
    """Log to stderr at `level`, as `fmt` ("text" or "json"): one root handler, which
    replaces any other (uvicorn's loggers propagate to it: the server gives uvicorn no
    logging config of its own)."""
    global _handler
    if fmt not in ("text", "json"):
        raise ValueError(f"log format must be text or json, got {fmt!r}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(InvocationFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _handler = handler
    return handler


def announce(logger: logging.Logger, message: str, **fields: Any) -> None:
    """Write one WARNING record whatever the level is (the ready line); `fields` are
    extra keys of its JSON object."""
    record = logger.makeRecord(logger.name, logging.WARNING, "(stead)", 0, message, (), None,
                               extra={"fields": fields})
    handler = _handler
    # Logging not configured through `configure` (tests, embedding), or configured by an
    # earlier server of this process whose stream is gone (a CLI run under click's test
    # runner): print to the stderr of now.
    stream = getattr(handler, "stream", None)
    if handler is None or handler not in logging.getLogger().handlers or getattr(stream, "closed", False):
        print(message, file=sys.stderr, flush=True)
        return
    handler.handle(record)
    handler.flush()
