"""Reading a data directory offline, for `stead inspect`: the invocations, one
invocation's journal, one key's state, with nothing but rocksdict.

A server that crashed, or will not start, can still be looked at: the directory is
opened read-only (RocksDB allows that beside a running writer too), and nothing goes
through runtime._core, so a broken extension or a store the core refuses can still be
read. This module has its own decoding of what it reads: the key layout of
core_rs/src/keys.rs (a 2-byte kind prefix, then big-endian fields, strings prefixed by
their u32 length, the last string of a key raw) and the few protobuf fields of
proto/stead/journal.proto it shows (the wire format by hand: no generated code).

What it returns has the admin API's JSON shapes and names (/tmp/spec/admin-api.md:
Invocation, JournalEntry, the state answer), so `stead inspect` shows it with the
renderers of `stead invocations` and `stead state`, and a script reads both alike.
"""

from __future__ import annotations

import base64
import json
import os
import struct
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Optional, TypeVar, cast

from rocksdict import AccessType, Options, Rdict

# The on-disk schema this reader decodes (core_rs SCHEMA_VERSION; a test keeps them equal).
SCHEMA_VERSION = 1

# EntryKind of journal.proto -> the admin API's kind names.
KINDS = {1: "GetState", 2: "SetState", 3: "ClearState", 4: "ClearAllState", 5: "GetStateKeys", 6: "Run",
         7: "Sleep", 8: "Call", 9: "OneWayCall", 10: "Awakeable", 11: "CompleteAwakeable", 12: "GetPromise",
         13: "PeekPromise", 14: "CompletePromise", 15: "Cancel", 16: "Combinator", 17: "CancelInvocation",
         18: "AttachInvocation"}
_SLEEP, _CALL, _SEND, _ATTACH = 7, 8, 9, 18
# Kinds whose result arrives later, as a completion row ("jc") beside the entry.
_AWAITABLE = {7, 8, 10, 12, 14, 18}

# InvocationStatus of journal.proto -> the admin API's status names.
STATUSES = {1: "pending", 2: "running", 3: "backing-off", 4: "completed", 5: "suspended", 6: "scheduled",
            7: "paused"}
_COMPLETED = 4


class InspectError(Exception):
    """A data directory that cannot be read: missing, not Stead's, or another schema."""


T = TypeVar("T")


# ---- protobuf wire format (varints and length-delimited fields are all journal.proto uses)


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, Any]]:
    """(field number, int or bytes) of each field in order; unknown fields are skipped by
    the callers, so a newer writer's additions do not stop this reader."""
    i = 0
    value: Any
    while i < len(buf):
        tag, i = _varint(buf, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = bytes(buf[i:i + n]), i + n
        elif wire == 1:
            value, i = struct.unpack_from("<Q", buf, i)[0], i + 8
        elif wire == 5:
            value, i = struct.unpack_from("<I", buf, i)[0], i + 4
        else:
            raise InspectError(f"unsupported protobuf wire type {wire}")
        yield number, value


# InvocationRecord fields: number -> (name, how to decode)
_TEXT, _INT, _RAW = "text", "int", "raw"
_RECORD = {1: ("id", _TEXT), 2: ("service", _TEXT), 3: ("handler", _TEXT), 4: ("key", _TEXT), 5: ("kind", _INT),
           6: ("input", _RAW), 8: ("status", _INT), 9: ("retry_count", _INT), 10: ("created_ms", _INT),
           11: ("modified_ms", _INT), 12: ("completed_ms", _INT), 13: ("output", _RAW),
           14: ("failure_code", _INT), 15: ("failure_message", _TEXT), 16: ("next_retry_ms", _INT),
           17: ("journal_len", _INT), 19: ("caller_id", _TEXT), 21: ("idempotency_key", _TEXT),
           22: ("cancel_requested", _INT), 24: ("deployment_id", _TEXT)}
_ENTRY = {1: ("kind", _INT), 2: ("name", _TEXT), 3: ("value", _RAW), 4: ("failure_code", _INT),
          5: ("failure_message", _TEXT)}


def _message(buf: bytes, layout: dict[int, tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, value in _fields(buf):
        if number == 7 and layout is _RECORD:  # repeated Header {name = 1, value = 2}
            header = dict(_fields(value))
            out.setdefault("headers", []).append(
                [header.get(1, b"").decode("utf-8", "replace"), header.get(2, b"").decode("utf-8", "replace")])
        elif number in layout:
            name, how = layout[number]
            out[name] = value.decode("utf-8", "replace") if how == _TEXT else value
    return out


# ---- values and times as the admin API shows them


def value_json(raw: Optional[bytes]) -> Any:
    """A stored value: its JSON when it is JSON, else {"base64": ...}; None when absent."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        return {"base64": base64.b64encode(raw).decode()}


def rfc3339(ms: int) -> Optional[str]:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _failure(code: int, message: str) -> Optional[dict[str, Any]]:
    return {"code": code, "message": message} if code else None


# ---- keys (core_rs/src/keys.rs)


def _lp(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">I", len(raw)) + raw


def _journal_index(key: bytes, prefix: bytes) -> int:
    rest = key[len(prefix):]
    if len(rest) != 4:
        raise InspectError(f"malformed journal key {key!r}")
    return cast(int, struct.unpack(">I", rest)[0])


class DataDir:
    """One read-only open of a data directory; `read` is the way to use it."""

    def __init__(self, path: str) -> None:
        if not os.path.isfile(os.path.join(path, "CURRENT")):
            raise InspectError(f"no Stead data directory at {path} (no RocksDB database there)")
        try:
            names = Rdict.list_cf(path)
            # error_if_log_file_exist=False: replay the WAL (in memory) rather than refuse it; a
            # crashed or running server's last writes are often only there.
            self.db = Rdict(path, options=Options(raw_mode=True), access_type=AccessType.read_only(False),
                            column_families={name: Options(raw_mode=True) for name in names})
        except Exception as exc:  # rocksdict raises plain Exceptions
            raise InspectError(f"cannot open {path} read-only: {exc}") from None
        missing = {"invocations", "journal", "state", "meta"} - set(names)
        if missing:
            self.close()
            raise InspectError(f"{path} is a RocksDB database but not a Stead data directory "
                               f"(no column families {', '.join(sorted(missing))})")
        raw = self.db.get_column_family("meta").get(b"mt" + b"schema_version")
        if raw is None or len(raw) != 4:
            self.close()
            raise InspectError(f"{path} is not a Stead data directory (no schema version)")
        found = struct.unpack(">I", raw)[0]
        if found != SCHEMA_VERSION:
            self.close()
            raise InspectError(f"{path} has schema version {found}; this stead reads version {SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def _scan(self, cf: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for k, v in self.db.get_column_family(cf).items(from_key=prefix):
            key, value = cast(bytes, k), cast(bytes, v)
            if not key.startswith(prefix):
                break
            yield key, value

    # ---- invocations

    def invocations(self, limit: Optional[int] = None) -> list[dict[str, Any]]:
        """Every invocation (or the first `limit`), in id order: that is, by creation time."""
        out = []
        for key, value in self._scan("invocations", b"iv"):
            inv_id = key[2:].decode("utf-8", "replace")
            doc = _invocation(_message(value, _RECORD), inv_id)
            doc["journal_size"] = self.journal_size(inv_id)
            out.append(doc)
            if limit is not None and len(out) >= limit:
                break
        return out

    def journal_size(self, inv_id: str) -> int:
        # Counted on disk: the record's journal_len is not kept up to date while it runs.
        prefix = b"jn" + _lp(inv_id)
        count = 0
        for key in self.db.get_column_family("journal").keys(from_key=prefix):
            if not cast(bytes, key).startswith(prefix):
                break
            count += 1
        return count

    def invocation(self, inv_id: str) -> Optional[dict[str, Any]]:
        """One invocation with its input, headers, result and journal; None if unknown."""
        raw = self.db.get_column_family("invocations").get(b"iv" + inv_id.encode())
        if raw is None:
            return None
        record = _message(raw, _RECORD)
        doc = _invocation(record, inv_id)
        doc["input"] = value_json(record.get("input", b""))
        doc["headers"] = record.get("headers", [])
        doc["output"] = value_json(record.get("output"))
        doc["failure"] = _failure(record.get("failure_code", 0), record.get("failure_message", ""))
        doc["journal"] = self.journal(inv_id)
        doc["journal_size"] = len(doc["journal"])
        return doc

    def journal(self, inv_id: str) -> list[dict[str, Any]]:
        """The entries in index order, each awaitable one with its completion if it arrived."""
        completions = {}
        prefix = b"jc" + _lp(inv_id)
        for key, value in self._scan("journal", prefix):
            completions[_journal_index(key, prefix)] = _message(value, _ENTRY)
        entries = []
        prefix = b"jn" + _lp(inv_id)
        for key, value in self._scan("journal", prefix):
            index = _journal_index(key, prefix)
            entries.append(_entry(index, _message(value, _ENTRY), completions.get(index)))
        return entries

    # ---- state

    def state(self, service: str, key: str) -> dict[str, Any]:
        prefix = b"st" + _lp(service) + _lp(key)
        state = {k[len(prefix):].decode("utf-8", "replace"): value_json(v) for k, v in self._scan("state", prefix)}
        return {"service": service, "object_key": key, "state": state}


# HandlerKind -> the service type it implies; a shared handler may be an object's or a
# workflow's, which the data directory alone does not tell.
_SERVICE_TYPES = {0: "service", 1: "virtual_object", 3: "workflow"}
_WAITS_FOR_TIMER = {3, 6}  # backing-off, scheduled: next_retry_ms is when their timer fires


def _invocation(r: dict[str, Any], inv_id: str) -> dict[str, Any]:
    service, handler, key, kind = r.get("service", ""), r.get("handler", ""), r.get("key", ""), r.get("kind", 0)
    status = r.get("status", 0)
    completed = status == _COMPLETED
    code = r.get("failure_code", 0)
    return {
        "id": r.get("id") or inv_id,
        "target": f"{service}/{key}/{handler}" if kind or key else f"{service}/{handler}",
        "target_service_name": service, "target_service_key": key if kind or key else None,
        "target_handler_name": handler, "target_service_ty": _SERVICE_TYPES.get(kind),
        "status": STATUSES.get(status, f"unknown({status})"),
        "created_at": rfc3339(r.get("created_ms", 0)), "modified_at": rfc3339(r.get("modified_ms", 0)),
        "completed_at": rfc3339(r.get("completed_ms", 0)) if completed else None,
        "next_retry_at": rfc3339(r.get("next_retry_ms", 0)) if status in _WAITS_FOR_TIMER else None,
        "retry_count": r.get("retry_count", 0),
        "journal_size": r.get("journal_len", 0),  # the record's; callers count the rows on disk
        "idempotency_key": r.get("idempotency_key") or None,
        "invoked_by": "service" if r.get("caller_id") else "ingress", "invoked_by_id": r.get("caller_id") or None,
        "pinned_deployment_id": r.get("deployment_id") or None,
        "cancel_requested": bool(r.get("cancel_requested")),
        "completion_result": ("failure" if code else "success") if completed else None,
        "completion_failure": f"[{code}] {r.get('failure_message', '')}" if completed and code else None,
    }


def _entry(index: int, e: dict[str, Any], completion: Optional[dict[str, Any]]) -> dict[str, Any]:
    kind, name, raw = e.get("kind", 0), e.get("name") or None, e.get("value")
    doc: dict[str, Any] = {
        "index": index, "kind": KINDS.get(kind, f"Unknown({kind})"), "name": name, "value": None,
        "failure": _failure(e.get("failure_code", 0), e.get("failure_message", "")),
        "completed": True, "completion": None, "invoked_id": None, "invoked_target": None, "wakeup_at": None,
    }
    if kind in (_CALL, _SEND):  # name: the target; value: the callee's id
        doc.update(invoked_target=name, invoked_id=raw.decode("utf-8", "replace") if raw else None)
    elif kind == _SLEEP and raw is not None and len(raw) == 8:  # value: the fire time, ms big-endian
        doc["wakeup_at"] = rfc3339(struct.unpack(">Q", raw)[0])
    elif kind == _ATTACH:  # name: the invocation attached to
        doc["invoked_id"] = name
    else:
        doc["value"] = value_json(raw)
    if kind in _AWAITABLE:
        doc["completed"] = completion is not None
        if completion is not None:
            doc["completion"] = {"value": value_json(completion.get("value")), "failure": _failure(
                completion.get("failure_code", 0), completion.get("failure_message", ""))}
    return doc


def _torn(exc: Exception) -> bool:
    """A read that raced the writer's own file changes (a flush, a compaction, a WAL switch)."""
    text = str(exc)
    return any(s in text for s in ("No such file", "IO error", "Corruption"))


def read(path: str, what: Callable[[DataDir], T], attempts: int = 5) -> T:
    """One read of a data directory, stopped or in use by a running server: a read torn by
    the running writer is tried again on a new open."""
    for attempt in range(attempts):
        try:
            data = DataDir(path)
        except InspectError as exc:
            if attempt + 1 < attempts and _torn(exc):
                time.sleep(0.05)
                continue
            raise
        try:
            return what(data)
        except InspectError:
            raise
        except Exception as exc:  # noqa: BLE001 - rocksdict's errors are plain Exceptions
            if attempt + 1 < attempts and _torn(exc):
                time.sleep(0.05)
                continue
            raise InspectError(f"reading {path} failed: {exc}") from None
        finally:
            data.close()
    raise AssertionError("unreachable")
