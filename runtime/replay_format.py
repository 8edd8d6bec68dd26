"""The `stead.journal/1` format: one invocation's recorded journal as a JSON document
(docs/journal-format.md), written by `stead invocations export` and read by `stead replay
--journal` and `pysdk.testing.replay`.

`Journal` is the journal as the replay needs it (entries as the machine's 5-tuples, see
pysdk/_entries.py, with the completions of the awaitable ones); `to_document` and
`from_document` convert it to and from the document, losslessly: every value is kept
byte for byte, as JSON when it is the compact JSON Stead's default serde writes. A reader
checks what it reads and says where a document is wrong (`JournalFormatError`); it
ignores fields it does not know, so version 1 can gain optional fields.

Pure Python over pysdk: no runtime._core, so the SDK's tests can use it anywhere.
"""
from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import pydantic_core

from pysdk._entries import KIND_NAMES, SLEEP, Completion, Entry

__all__ = ["FORMAT", "KINDS", "STATUSES", "Journal", "JournalFormatError", "decode_value", "encode_value"]

FORMAT = "stead.journal/1"

# The format's entry kind names: the admin API's (Restate's journal entry names), by kind number.
KINDS: dict[int, str] = {
    1: "GetState", 2: "SetState", 3: "ClearState", 4: "ClearAllState", 5: "GetStateKeys", 6: "Run",
    7: "Sleep", 8: "Call", 9: "OneWayCall", 10: "Awakeable", 11: "CompleteAwakeable", 12: "GetPromise",
    13: "PeekPromise", 14: "CompletePromise", 15: "Cancel", 16: "Combinator", 17: "CancelInvocation",
    18: "AttachInvocation",
}
assert set(KINDS) == set(KIND_NAMES)
_KIND_NUMBERS = {name: number for number, name in KINDS.items()}
STATUSES = ("pending", "scheduled", "ready", "running", "paused", "backing-off", "suspended", "completed")


class JournalFormatError(ValueError):
    """A document that is not a `stead.journal/1` journal (what is wrong, and where)."""


# ---- the format ------------------------------------------------------------------------------


def encode_value(raw: Optional[bytes]) -> Optional[dict[str, Any]]:
    """Bytes as the format holds them, losslessly and readably: {"json": value} when they are
    the compact JSON Stead's default serde writes, {"text": ...} other UTF-8, else
    {"base64": ...}; None for no value."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        pass
    else:
        if pydantic_core.to_json(value) == raw:
            return {"json": value}
    try:
        return {"text": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode()}


def decode_value(doc: Any, where: str) -> Optional[bytes]:
    if doc is None:
        return None
    if isinstance(doc, dict) and len(doc) == 1:
        (form, value), = doc.items()
        if form == "json":
            return pydantic_core.to_json(value)
        if form == "text" and isinstance(value, str):
            return value.encode()
        if form == "base64" and isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                raise JournalFormatError(f"{where}: not base64: {value[:40]!r}") from None
    raise JournalFormatError(f'{where}: a value is null, {{"json": ...}}, {{"text": "..."}} or '
                             f'{{"base64": "..."}}, got {json.dumps(doc)[:80]}')


def _failure_doc(code: int, message: Optional[str]) -> Optional[dict[str, Any]]:
    return {"code": code, "message": message or ""} if code or message is not None else None


def _failure(doc: Any, where: str) -> tuple[int, Optional[str]]:
    """(code, message) of a failure; (0, None) for none."""
    if doc is None:
        return 0, None
    if (isinstance(doc, dict) and isinstance(doc.get("code"), int) and not isinstance(doc["code"], bool)
            and isinstance(doc.get("message", ""), str)):
        return doc["code"], doc.get("message", "")
    raise JournalFormatError(f'{where}: a failure is null or {{"code": int, "message": str}}, '
                             f'got {json.dumps(doc)[:80]}')


def _entry_doc(index: int, entry: Entry) -> dict[str, Any]:
    kind, name, value, code, message = entry
    doc = {"index": index, "kind": KINDS[kind], "name": name, "value": encode_value(value),
           "failure": _failure_doc(code, message)}
    if kind == SLEEP and value is not None and len(value) == 8:  # for people; readers ignore it
        ms = int.from_bytes(value, "big")
        doc["wakeup_at"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
    return doc


@dataclass
class Journal:
    """One invocation's recorded journal: its target, input and headers, its entries as the
    machine replays them (5-tuples, see pysdk/_entries.py), the completions of its awaitable
    entries, and its outcome once completed."""

    id: str
    service: str
    handler: str
    key: Optional[str]
    status: str
    input: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    entries: list[Entry] = field(default_factory=list)
    completions: dict[int, Completion] = field(default_factory=dict)
    idempotency_key: Optional[str] = None
    cancel_requested: bool = False
    output: Optional[bytes] = None       # completed successfully: the handler's output
    failure: Optional[tuple[int, str]] = None  # completed with a failure: (code, message)

    @property
    def target(self) -> str:
        return f"{self.service}/{self.handler}" if self.key is None else f"{self.service}/{self.key}/{self.handler}"

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def whole(self) -> bool:
        """Whether this is the invocation's whole history: it completed successfully, so its
        handler returned where the journal ends (a failed one may have been killed or given
        up mid-way)."""
        return self.completed and self.failure is None and bool(self.entries)

    def to_document(self) -> dict[str, Any]:
        """The `stead.journal/1` document (docs/journal-format.md)."""
        return {
            "format": FORMAT,
            "id": self.id,
            "target": self.target,
            "service": self.service,
            "handler": self.handler,
            "key": self.key,
            "status": self.status,
            "input": encode_value(self.input),
            "headers": [[name, value] for name, value in self.headers],
            "idempotency_key": self.idempotency_key,
            "cancel_requested": self.cancel_requested,
            "output": encode_value(self.output) if self.completed and self.failure is None else None,
            "failure": _failure_doc(*self.failure) if self.failure is not None else None,
            "entries": [_entry_doc(i, entry) for i, entry in enumerate(self.entries)],
            "completions": [{"index": i, "value": encode_value(value), "failure": _failure_doc(code, message)}
                            for i, (value, code, message) in sorted(self.completions.items())],
        }

    @classmethod
    def from_document(cls, doc: Any, source: str = "journal") -> "Journal":
        """Read a `stead.journal/1` document; `JournalFormatError` says what is wrong."""
        if not isinstance(doc, dict):
            raise JournalFormatError(f"{source}: a journal is a JSON object, got {type(doc).__name__}")
        fmt = doc.get("format")
        if fmt != FORMAT:
            raise JournalFormatError(f"{source}: not a Stead journal of format {FORMAT!r} (format: {fmt!r})")

        def text(name: str, optional: bool = False) -> Any:
            value = doc.get(name)
            if isinstance(value, str) or (optional and value is None):
                return value
            raise JournalFormatError(f"{source}: {name!r} must be a string{' or null' if optional else ''}, "
                                     f"got {json.dumps(value)[:80]}")

        status = text("status")
        if status not in STATUSES:
            raise JournalFormatError(f"{source}: unknown status {status!r} (one of {', '.join(STATUSES)})")
        headers = doc.get("headers", [])
        if not (isinstance(headers, list) and all(isinstance(h, list) and len(h) == 2
                                                  and all(isinstance(x, str) for x in h) for h in headers)):
            raise JournalFormatError(f"{source}: 'headers' must be a list of [name, value] strings")
        entries: list[Entry] = []
        raw_entries = doc.get("entries")
        if not isinstance(raw_entries, list):
            raise JournalFormatError(f"{source}: 'entries' must be a list")
        for i, e in enumerate(raw_entries):
            where = f"{source}: entry {i}"
            if not isinstance(e, dict):
                raise JournalFormatError(f"{where}: an entry is a JSON object")
            if e.get("index", i) != i:
                raise JournalFormatError(f"{where}: has index {e.get('index')!r}; entries are listed in "
                                         "index order from 0")
            kind = _KIND_NUMBERS.get(e["kind"]) if isinstance(e.get("kind"), str) else None
            if kind is None:
                raise JournalFormatError(f"{where}: unknown kind {e.get('kind')!r} "
                                         f"(one of {', '.join(KINDS.values())})")
            name = e.get("name")
            if name is not None and not isinstance(name, str):
                raise JournalFormatError(f"{where}: 'name' must be a string or null")
            code, message = _failure(e.get("failure"), where)
            entries.append((kind, name, decode_value(e.get("value"), where), code, message))
        completions: dict[int, Completion] = {}
        raw_completions = doc.get("completions", [])
        if not isinstance(raw_completions, list):
            raise JournalFormatError(f"{source}: 'completions' must be a list")
        for c in raw_completions:
            index = c.get("index") if isinstance(c, dict) else None
            if not isinstance(index, int) or isinstance(index, bool) or index < 0:
                raise JournalFormatError(f"{source}: a completion is {{\"index\": int, \"value\", \"failure\"}}, "
                                         f"got {json.dumps(c)[:80]}")
            where = f"{source}: completion of entry {index}"
            code, message = _failure(c.get("failure"), where)
            completions[index] = (decode_value(c.get("value"), where), code, message)
        key = text("key", optional=True)
        failure = None
        if status == "completed" and doc.get("failure") is not None:
            code, message = _failure(doc.get("failure"), f"{source}: failure")
            failure = (code, message or "")
        return cls(
            id=text("id"), service=text("service"), handler=text("handler"), key=key, status=status,
            input=decode_value(doc.get("input"), f"{source}: input") or b"",
            headers=[(h[0], h[1]) for h in headers], entries=entries, completions=completions,
            idempotency_key=text("idempotency_key", optional=True) if "idempotency_key" in doc else None,
            cancel_requested=bool(doc.get("cancel_requested", False)),
            output=decode_value(doc.get("output"), f"{source}: output") if failure is None else None,
            failure=failure,
        )

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"]) -> "Journal":
        """Read a journal file; `JournalFormatError` for one that is not JSON or not a journal."""
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise JournalFormatError(f"{os.fspath(path)}: not JSON ({exc})") from None
        return cls.from_document(doc, os.fspath(path))
