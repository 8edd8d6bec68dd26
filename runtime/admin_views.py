"""How the admin API shows what the store holds: invocations, journal entries, state
values and times, in Restate's names (sys_invocation's columns, its status strings,
its journal entry names) so that people and tools that know Restate read them as such.

Values are bytes in the store. They are shown as the JSON they hold when they parse
as JSON (Stead's default serde writes JSON), else as `{"base64": ...}`: nothing is
hidden and nothing is guessed.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Optional

from runtime import _core

STATUS_NAMES = {
    _core.STATUS_INBOXED: "pending",
    _core.STATUS_SCHEDULED: "scheduled",
    _core.STATUS_RUNNING: "running",
    _core.STATUS_BACKING_OFF: "backing-off",
    _core.STATUS_SUSPENDED: "suspended",
    _core.STATUS_PAUSED: "paused",
    _core.STATUS_COMPLETED: "completed",
    0: "ready",  # built, not admitted through the store yet
}

SERVICE_TYPES = {"service": "service", "object": "virtual_object", "workflow": "workflow"}

ENTRY_NAMES = {
    _core.ENTRY_GET_STATE: "GetState",
    _core.ENTRY_SET_STATE: "SetState",
    _core.ENTRY_CLEAR_STATE: "ClearState",
    _core.ENTRY_CLEAR_ALL: "ClearAllState",
    _core.ENTRY_STATE_KEYS: "GetStateKeys",
    _core.ENTRY_RUN: "Run",
    _core.ENTRY_SLEEP: "Sleep",
    _core.ENTRY_CALL: "Call",
    _core.ENTRY_SEND: "OneWayCall",
    _core.ENTRY_AWAKEABLE: "Awakeable",
    _core.ENTRY_COMPLETE_AWAKEABLE: "CompleteAwakeable",
    _core.ENTRY_GET_PROMISE: "GetPromise",
    _core.ENTRY_PEEK_PROMISE: "PeekPromise",
    _core.ENTRY_COMPLETE_PROMISE: "CompletePromise",
    _core.ENTRY_CANCEL: "Cancel",
    _core.ENTRY_COMBINATOR: "Combinator",
    _core.ENTRY_CANCEL_INVOCATION: "CancelInvocation",
    _core.ENTRY_ATTACH_INVOCATION: "AttachInvocation",
}

# Entries whose result arrives later, as a completion row.
AWAITABLE = frozenset({_core.ENTRY_SLEEP, _core.ENTRY_CALL, _core.ENTRY_AWAKEABLE, _core.ENTRY_GET_PROMISE,
                       _core.ENTRY_COMPLETE_PROMISE, _core.ENTRY_ATTACH_INVOCATION})


def iso(ms: Optional[int]) -> Optional[str]:
    """RFC 3339 in UTC with milliseconds; None for an unset time (0)."""
    if not ms:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def value_json(raw: Optional[bytes]) -> Any:
    """The JSON a value holds, or {"base64": ...} when it is not JSON; None for no value."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {"base64": base64.b64encode(raw).decode()}


def failure(code: int, message: Optional[str]) -> Optional[dict[str, Any]]:
    return {"code": code, "message": message or ""} if code else None


def target(service: str, key: str, handler: str, service_ty: Optional[str]) -> str:
    keyed = service_ty in ("virtual_object", "workflow") or (service_ty is None and bool(key))
    return f"{service}/{key}/{handler}" if keyed else f"{service}/{handler}"


def invocation(row: dict[str, Any], service_ty: Optional[str]) -> dict[str, Any]:
    """The summary of one invocation from a row of `Store.scan_invocations` (a dict by
    `_core.INVOCATION_COLUMNS`), in sys_invocation's names."""
    status = row["status"]
    completed = status == _core.STATUS_COMPLETED
    code = row["failure_code"]
    keyed = service_ty in ("virtual_object", "workflow")
    return {
        "id": row["id"],
        "target": target(row["service"], row["key"], row["handler"], service_ty),
        "target_service_name": row["service"],
        "target_service_key": row["key"] if keyed or row["key"] else None,
        "target_handler_name": row["handler"],
        "target_service_ty": service_ty,
        "status": STATUS_NAMES.get(status, f"unknown({status})"),
        "created_at": iso(row["created_ms"]),
        "modified_at": iso(row["modified_ms"]),
        "completed_at": iso(row["completed_ms"]) if completed else None,
        "next_retry_at": iso(row["next_retry_ms"]) if status in (_core.STATUS_BACKING_OFF,
                                                                 _core.STATUS_SCHEDULED) else None,
        "retry_count": row["retry_count"],
        "journal_size": row["journal_len"],
        "idempotency_key": row["idempotency_key"] or None,
        "invoked_by": "service" if row["caller_id"] else "ingress",
        "invoked_by_id": row["caller_id"] or None,
        "pinned_deployment_id": row["deployment_id"] or None,
        "cancel_requested": bool(row["cancel_requested"]),
        "completion_result": ("failure" if code else "success") if completed else None,
        "completion_failure": f"[{code}] {row['failure_message'] or ''}" if completed and code else None,
    }


def live_row(inv: _core.Invocation, now_ms: int) -> dict[str, Any]:
    """A row for an invocation running in memory that has no record yet (it has not
    reached a durable point), with the same keys as a scanned row."""
    return {
        "id": inv.id, "service": inv.service, "handler": inv.handler, "key": inv.key, "kind": inv.kind,
        "status": _core.STATUS_RUNNING, "retry_count": inv.retry_count, "created_ms": inv.created_ms,
        "modified_ms": now_ms, "completed_ms": 0, "next_retry_ms": 0, "journal_len": inv.journal_len,
        "caller_id": inv.caller_id, "caller_entry": inv.caller_entry, "idempotency_key": inv.idempotency_key,
        "cancel_requested": inv.cancel_requested, "deployment_id": inv.deployment, "output": None,
        "failure_code": 0, "failure_message": None, "input": inv.input, "headers": inv.headers,
    }


def journal(entries: list[tuple[int, Optional[str], Optional[bytes], int, Optional[str]]],
            completions: dict[int, tuple[Optional[bytes], int, Optional[str]]]) -> list[dict[str, Any]]:
    """The journal decoded entry by entry, each awaitable entry with its completion."""
    out = []
    for index, (kind, name, value, code, message) in enumerate(entries):
        item: dict[str, Any] = {"index": index, "kind": ENTRY_NAMES.get(kind, f"Unknown({kind})"), "name": name,
                                "value": None, "failure": failure(code, message), "completed": True,
                                "completion": None, "invoked_id": None, "invoked_target": None,
                                "wakeup_at": None}
        if kind in (_core.ENTRY_CALL, _core.ENTRY_SEND):
            item["invoked_id"] = value.decode(errors="replace") if value else None
            item["invoked_target"] = name
        elif kind == _core.ENTRY_SLEEP and value is not None and len(value) == 8:
            item["wakeup_at"] = iso(int.from_bytes(value, "big"))
        elif kind == _core.ENTRY_ATTACH_INVOCATION:
            item["invoked_id"] = name
        else:
            item["value"] = value_json(value)
        if kind in AWAITABLE:
            done = completions.get(index)
            item["completed"] = done is not None
            if done is not None:
                item["completion"] = {"value": value_json(done[0]), "failure": failure(done[1], done[2])}
        out.append(item)
    return out
