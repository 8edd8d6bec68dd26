"""Restate's introspection tables, built as Arrow tables from what the store holds.

Each table keeps Restate's name, column names, column order and Arrow types
(restate crates/storage-query-datafusion/src/*/schema.rs, and the `sys_invocation`
view of context.rs), so that a query written for Restate, by hand or by Restate's
CLI, reads Stead unchanged. A column is filled only from what Stead really records;
a column Stead has nothing for (partition keys, trace ids, Restate server versions,
retention of an invocation, the reason of a failed attempt, ...) is NULL, never a
guess. Where Stead's meaning differs slightly, the builder says so.

The builders take plain rows (the tuples of `Store.scan_*`) so they can be checked
without a store; `runtime/sql.py` decides which tables a query needs and builds
only those.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Optional, Protocol

import pyarrow as pa

from runtime import _core
from runtime.admin_views import AWAITABLE, ENTRY_NAMES, SERVICE_TYPES, STATUS_NAMES, target
from runtime.deployments import LOCAL_DEPLOYMENT_ID

STR = pa.large_string()
BIN = pa.large_binary()
TS = pa.timestamp("ms", tz="+00:00")  # Restate's TimestampMillisecond: UTC, ms
U32, U64, BOOL = pa.uint32(), pa.uint64(), pa.bool_()
DUR = pa.duration("ms")
U32_LIST = pa.list_(pa.field("item", U32))
STR_LIST = pa.list_(pa.field("item", STR))


def _schema(*columns: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(name, ty) for name, ty in columns])


SCHEMAS: dict[str, pa.Schema] = {
    "sys_invocation": _schema(
        ("id", STR), ("vqueue_id", STR), ("target", STR), ("target_service_name", STR),
        ("target_service_key", STR), ("target_handler_name", STR), ("target_service_ty", STR), ("scope", STR),
        ("limit_key", STR), ("idempotency_key", STR), ("invoked_by", STR), ("invoked_by_service_name", STR),
        ("invoked_by_id", STR), ("invoked_by_subscription_id", STR), ("invoked_by_target", STR),
        ("restarted_from", STR), ("pinned_deployment_id", STR), ("pinned_service_protocol_version", U32),
        ("trace_id", STR), ("journal_size", U32), ("journal_commands_size", U32), ("created_at", TS),
        ("created_using_restate_version", STR), ("modified_at", TS), ("inboxed_at", TS), ("scheduled_at", TS),
        ("scheduled_start_at", TS), ("running_at", TS), ("completed_at", TS), ("completion_retention", DUR),
        ("journal_retention", DUR), ("suspended_waiting_for_completions", U32_LIST),
        ("suspended_waiting_for_signals", U32_LIST), ("suspended_waiting_future_json", STR),
        ("retry_count", U64), ("last_start_at", TS), ("next_retry_at", TS), ("last_attempt_deployment_id", STR),
        ("last_attempt_server", STR), ("last_failure", STR), ("last_failure_error_code", STR),
        ("last_failure_related_entry_index", U64), ("last_failure_related_entry_name", STR),
        ("last_failure_related_entry_type", STR), ("last_failure_related_command_index", U64),
        ("last_failure_related_command_name", STR), ("last_failure_related_command_type", STR),
        ("last_awaiting_on_future_json", STR), ("status", STR), ("completion_result", STR),
        ("completion_failure", STR)),
    "sys_journal": _schema(
        ("partition_key", U64), ("id", STR), ("index", U32), ("entry_type", STR), ("name", STR),
        ("completed", BOOL), ("invoked_id", STR), ("invoked_target", STR), ("sleep_wakeup_at", TS),
        ("promise_name", STR), ("raw", BIN), ("raw_length", U64), ("version", U32), ("entry_json", STR),
        ("entry_lite_json", STR), ("appended_at", TS)),
    "state": _schema(
        ("partition_key", U64), ("scope", STR), ("service_name", STR), ("service_key", STR), ("key", STR),
        ("key_length", U64), ("value_utf8", STR), ("value", BIN), ("value_length", U64)),
    "sys_inbox": _schema(
        ("partition_key", U64), ("service_name", STR), ("service_key", STR), ("id", STR),
        ("sequence_number", U64), ("created_at", TS)),
    "sys_idempotency": _schema(
        ("partition_key", U64), ("service_name", STR), ("service_key", STR), ("service_handler", STR),
        ("idempotency_key", STR), ("invocation_id", STR)),
    "sys_promise": _schema(
        ("partition_key", U64), ("scope", STR), ("service_name", STR), ("service_key", STR), ("key", STR),
        ("completed", BOOL), ("completion_success_value", BIN), ("completion_success_value_utf8", STR),
        ("completion_failure", STR)),
    "sys_service": _schema(
        ("name", STR), ("revision", U64), ("public", BOOL), ("ty", STR), ("deployment_id", STR)),
    "sys_deployment": _schema(
        ("id", STR), ("ty", STR), ("endpoint", STR), ("created_at", TS), ("min_service_protocol_version", U32),
        ("max_service_protocol_version", U32), ("services", STR_LIST)),
}

# Restate's sys_invocation is a view joining these two; queries that name them (Restate's
# CLI does, for cancel/kill and `services status`) get them as views over ours.
VIEWS: dict[str, str] = {
    "sys_invocation_status": """SELECT
        CAST(NULL AS UBIGINT) AS partition_key, id, vqueue_id,
        CASE status WHEN 'pending' THEN 'inboxed' WHEN 'running' THEN 'invoked'
                    WHEN 'backing-off' THEN 'invoked' ELSE status END AS status,
        completion_result, completion_failure, target, target_service_name, target_service_key,
        target_handler_name, target_service_ty, scope, limit_key, idempotency_key, invoked_by, invoked_by_id,
        invoked_by_subscription_id, invoked_by_service_name, invoked_by_target, restarted_from,
        pinned_deployment_id, pinned_service_protocol_version, trace_id, journal_size, journal_commands_size,
        created_at, created_using_restate_version, modified_at, inboxed_at, scheduled_at, scheduled_start_at,
        running_at, completed_at, completion_retention, journal_retention, suspended_waiting_for_completions,
        suspended_waiting_for_signals, suspended_waiting_future_json
        FROM sys_invocation""",
    "sys_invocation_state": """SELECT
        CAST(NULL AS UBIGINT) AS partition_key, id, status = 'running' AS in_flight, retry_count,
        last_start_at, last_attempt_deployment_id, last_attempt_server, next_retry_at, last_failure,
        last_failure_error_code, last_failure_related_command_index, last_failure_related_command_name,
        last_failure_related_command_type, last_failure_related_entry_index, last_failure_related_entry_name,
        last_failure_related_entry_type, last_awaiting_on_future_json
        FROM sys_invocation WHERE status IN ('running', 'backing-off')""",
}

TABLES = frozenset(SCHEMAS) | frozenset(VIEWS)
# Tables whose scan can be narrowed to the rows a query requires: one invocation's journal
# (`WHERE id = '...'`: Restate's CLI describes an invocation so), one service's or one
# object's state and promises (`WHERE service_name = '...' [AND service_key = '...']`).
NARROWABLE = frozenset({"sys_journal", "state", "sys_promise"})


class Source(Protocol):
    """What the builders read: the store's scans (RocksDB, written commits; the GIL is
    released, so they run in a worker thread) and a snapshot, taken on the event loop, of
    what only the runtime knows."""

    def scan_invocations(self, after: str = "", limit: int = 0) -> list[tuple[Any, ...]]: ...
    def scan_journal(self, inv_id: str = "") -> list[tuple[Any, ...]]: ...
    def scan_completions(self, inv_id: str = "") -> list[tuple[Any, ...]]: ...
    def scan_state(self, service: str = "", key: str = "") -> list[tuple[Any, ...]]: ...
    def scan_inbox(self) -> list[tuple[Any, ...]]: ...
    def scan_idempotency(self) -> list[tuple[Any, ...]]: ...
    def scan_promises(self, service: str = "", key: str = "") -> list[tuple[Any, ...]]: ...
    def get_invocation(self, inv_id: str) -> Optional[_core.Invocation]: ...


class Catalog(Protocol):
    """The runtime's view of services and deployments at the time of the query."""

    live: list[tuple[Any, ...]]  # in-memory invocations without a record yet, as scan rows
    services: list[tuple[str, bool, str, Optional[str]]]  # (name, public, ty, deployment id)
    deployments: list[tuple[str, str, int, int, int, list[str]]]  # (id, uri, created ms, min, max, services)
    service_types: dict[str, str]  # name -> "service" | "virtual_object" | "workflow"


def build(name: str, source: Source, catalog: Catalog, equal: dict[str, str]) -> pa.Table:
    """Table `name`; `equal`: column values every row the query reads has (sql.Plan), which
    narrow the scan where the store can (see NARROWABLE)."""
    if name == "sys_journal":
        inv_id = equal.get("id", "")
        return journal(source.scan_journal(inv_id), source.scan_completions(inv_id))
    if name in ("state", "sys_promise"):
        service = equal.get("service_name", "")
        key = equal.get("service_key", "") if service else ""
        scan = source.scan_state if name == "state" else source.scan_promises
        rows = scan(service, key)
        return state(rows) if name == "state" else promises(rows)
    return _BUILDERS[name](source, catalog)


def empty(name: str) -> pa.Table:
    return SCHEMAS[name].empty_table()


# ---------------------------------------------------------------- helpers

def _table(name: str, n: int, columns: dict[str, Any]) -> pa.Table:
    """The table `name` with these columns filled and every other one NULL."""
    schema = SCHEMAS[name]
    arrays = [pa.array(columns[f.name], f.type) if f.name in columns else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    # Column by column: several times faster than zip(*rows) over wide rows.
    return [[r[i] for r in rows] for i in range(width)]


def _utf8(raw: Optional[bytes]) -> Optional[str]:
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _failure(code: int, message: Optional[str]) -> str:
    """Restate's InvocationError display: `[code] message`."""
    return f"[{code}] {message or ''}"


def _service_ty(catalog: Catalog, service: str, kind: int) -> Optional[str]:
    """From the catalog; for a service no longer served, what the handler kind implies
    (a shared handler can belong to an object or a workflow: unknown then)."""
    ty = catalog.service_types.get(service)
    if ty is not None:
        return ty
    return {_core.KIND_SERVICE: "service", _core.KIND_EXCLUSIVE: "virtual_object",
            _core.KIND_WORKFLOW: "workflow"}.get(kind)


def _key(ty: Optional[str], key: str) -> Optional[str]:
    """Restate's service_key: NULL for a plain service."""
    return None if ty == "service" or (ty is None and not key) else key


# ---------------------------------------------------------------- sys_invocation

_INVOCATION_READ = ("id", "service", "handler", "key", "kind", "status", "retry_count", "created_ms", "modified_ms",
                    "completed_ms", "next_retry_ms", "journal_len", "caller_id", "idempotency_key", "deployment_id",
                    "failure_code", "failure_message")

def invocations(rows: Sequence[tuple[Any, ...]], catalog: Catalog) -> pa.Table:
    """Restate's sys_invocation from `scan_invocations` rows (plus the live ones).

    Stead records created, modified (the last status change), completed and next-retry
    (or scheduled start) times; so `inboxed_at` / `scheduled_at` are known while the
    invocation is inboxed / scheduled (its last change was that), and `running_at` and
    `last_start_at` are NULL. `retry_count` is Stead's count of failed attempts (Restate
    counts attempts since its leader started). `invoked_by` is 'service' for the callee of
    a call; an invocation without a caller is shown as 'ingress' (a one-way send from a
    handler does not record its sender)."""
    where = {name: _core.INVOCATION_COLUMNS.index(name) for name in _INVOCATION_READ}
    c = {name: [r[i] for r in rows] for name, i in where.items()}  # not input, output, headers
    n = len(rows)
    known = {pair: _service_ty(catalog, *pair) for pair in set(zip(c["service"], c["kind"]))}
    tys = [known[pair] for pair in zip(c["service"], c["kind"])]
    targets = [target(s, k, h, ty) for s, k, h, ty in zip(c["service"], c["key"], c["handler"], tys)]
    status = c["status"]
    queued = getattr(catalog, "queued", frozenset())  # waiting in a limit's queue: "ready"
    completed = [s == _core.STATUS_COMPLETED for s in status]
    failed = [done and code != 0 for done, code in zip(completed, c["failure_code"])]
    by_id = dict(zip(c["id"], zip(c["service"], targets))) if any(c["caller_id"]) else {}
    callers = [by_id.get(cid, (None, None)) if cid else (None, None) for cid in c["caller_id"]]

    def when(ms: Sequence[int], wanted: int) -> list[Optional[int]]:
        return [m if s == wanted and m else None for m, s in zip(ms, status)]

    started = [s not in (_core.STATUS_INBOXED, _core.STATUS_SCHEDULED) for s in status]
    return _table("sys_invocation", n, {
        "id": c["id"],
        "target": targets,
        "target_service_name": c["service"],
        "target_service_key": [_key(ty, k) for ty, k in zip(tys, c["key"])],
        "target_handler_name": c["handler"],
        "target_service_ty": tys,
        "idempotency_key": [k or None for k in c["idempotency_key"]],
        "invoked_by": ["service" if cid else "ingress" for cid in c["caller_id"]],
        "invoked_by_service_name": [svc for svc, _ in callers],
        "invoked_by_id": [cid or None for cid in c["caller_id"]],
        "invoked_by_target": [t for _, t in callers],
        "pinned_deployment_id": [d or None for d in c["deployment_id"]],
        "journal_size": c["journal_len"],
        "created_at": c["created_ms"],
        "modified_at": [m or None for m in c["modified_ms"]],
        "inboxed_at": when(c["modified_ms"], _core.STATUS_INBOXED),
        "scheduled_at": when(c["modified_ms"], _core.STATUS_SCHEDULED),
        "scheduled_start_at": when(c["next_retry_ms"], _core.STATUS_SCHEDULED),
        "completed_at": [m if done and m else None for m, done in zip(c["completed_ms"], completed)],
        "retry_count": c["retry_count"],
        "next_retry_at": when(c["next_retry_ms"], _core.STATUS_BACKING_OFF),
        "last_attempt_deployment_id": [d or None if s else None for d, s in zip(c["deployment_id"], started)],
        "status": [STATUS_NAMES.get(0 if s == _core.STATUS_RUNNING and i in queued else s, f"unknown({s})")
                   for i, s in zip(c["id"], status)],
        "completion_result": [("failure" if f else "success") if done else None for done, f in zip(completed, failed)],
        "completion_failure": [_failure(code, msg) if f else None
                               for f, code, msg in zip(failed, c["failure_code"], c["failure_message"])],
    })


def _invocations(source: Source, catalog: Catalog) -> pa.Table:
    rows = source.scan_invocations("", 0)
    if catalog.live:
        known = {r[0] for r in rows}
        rows = sorted([*rows, *(r for r in catalog.live if r[0] not in known)], key=lambda r: r[0])
    return invocations(rows, catalog)


# ---------------------------------------------------------------- sys_journal

def journal(entries: Sequence[tuple[Any, ...]], completions: Iterable[tuple[Any, ...]]) -> pa.Table:
    """Restate's sys_journal (version 1 rows) from `scan_journal` and `scan_completions`.

    Stead's journal has no input entry: index 0 is the handler's first entry (Restate's
    index 0 is the input). `name` is the entry's name in Stead's journal: a step's name, a
    sleep's name, the state key of a state entry, the promise of a promise entry, the
    awakeable id of a CompleteAwakeable, the target invocation of CancelInvocation and
    AttachInvocation. `completed` is set for the entries that complete later (sleep, call,
    awakeable, promise get/complete, attach) and true for those that carry their result
    inline (GetState, GetStateKeys, PeekPromise); NULL for the others, as in Restate.
    `raw`, `appended_at` and the JSON columns are NULL: Stead does not keep Restate's
    encoding of an entry nor its append time."""
    done = {(c[0], c[1]) for c in completions}
    ids, index, types, names, completed, invoked_id, invoked_target, wakeup, promise = ([] for _ in range(9))
    inline = (_core.ENTRY_GET_STATE, _core.ENTRY_STATE_KEYS, _core.ENTRY_PEEK_PROMISE)
    promises = (_core.ENTRY_GET_PROMISE, _core.ENTRY_PEEK_PROMISE, _core.ENTRY_COMPLETE_PROMISE)
    for inv_id, i, kind, name, value, _code, _message in entries:
        ids.append(inv_id)
        index.append(i)
        types.append(ENTRY_NAMES.get(kind, f"Unknown({kind})"))
        completed.append((inv_id, i) in done if kind in AWAITABLE else True if kind in inline else None)
        call = kind in (_core.ENTRY_CALL, _core.ENTRY_SEND)
        names.append(None if call else name)
        invoked_target.append(name if call else None)
        if call:
            invoked_id.append(_utf8(value))
        elif kind in (_core.ENTRY_CANCEL_INVOCATION, _core.ENTRY_ATTACH_INVOCATION):
            invoked_id.append(name)
        else:
            invoked_id.append(None)
        sleep = kind == _core.ENTRY_SLEEP and value is not None and len(value) == 8
        wakeup.append(int.from_bytes(value, "big") if sleep else None)
        promise.append(name if kind in promises else None)
    n = len(ids)
    return _table("sys_journal", n, {
        "id": ids, "index": index, "entry_type": types, "name": names, "completed": completed,
        "invoked_id": invoked_id, "invoked_target": invoked_target, "sleep_wakeup_at": wakeup,
        "promise_name": promise, "version": [1] * n})


# ---------------------------------------------------------------- state, inbox, idempotency, promises

def state(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Restate's `state`: one row per state entry of an object or workflow key."""
    service, key, name, value = _columns(rows, 4)
    return _table("state", len(rows), {
        "service_name": service, "service_key": key, "key": name,
        "key_length": [len(k.encode()) for k in name], "value_utf8": [_utf8(v) for v in value],
        "value": value, "value_length": [len(v) for v in value]})


def inbox(rows: Sequence[tuple[Any, ...]], created: Sequence[Optional[int]]) -> pa.Table:
    """Restate's sys_inbox: the invocations waiting for their key, in order."""
    service, key, seq, inv_id = _columns(rows, 4)
    return _table("sys_inbox", len(rows), {
        "service_name": service, "service_key": key, "id": inv_id, "sequence_number": seq,
        "created_at": created})


def _inbox(source: Source, catalog: Catalog) -> pa.Table:
    rows = source.scan_inbox()
    created = []
    for row in rows:  # point reads: an inbox is short next to the invocations table
        inv = source.get_invocation(row[3])
        created.append(inv.created_ms if inv is not None else None)
    return inbox(rows, created)


def idempotency(rows: Sequence[tuple[Any, ...]], catalog: Catalog) -> pa.Table:
    """Restate's sys_idempotency (dropped in Restate 1.7, still read by older tools).
    Stead also registers each workflow run under the empty idempotency key (a workflow
    key runs once); Restate does not show those here, nor does Stead."""
    rows = [r for r in rows if r[3]]
    service, key, handler, idem, inv_id = _columns(rows, 5)
    return _table("sys_idempotency", len(rows), {
        "service_name": service,
        "service_key": [_key(catalog.service_types.get(s), k) for s, k in zip(service, key)],
        "service_handler": handler, "idempotency_key": idem, "invocation_id": inv_id})


def promises(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Restate's sys_promise: durable promises of workflows, resolved, rejected or awaited."""
    service, key, name, completed, value, code, message = _columns(rows, 7)
    return _table("sys_promise", len(rows), {
        "service_name": service, "service_key": key, "key": name, "completed": completed,
        "completion_success_value": [v if done and not c else None for v, done, c in zip(value, completed, code)],
        "completion_success_value_utf8": [_utf8(v) if done and not c else None
                                          for v, done, c in zip(value, completed, code)],
        "completion_failure": [_failure(c, m) if done and c else None
                               for done, c, m in zip(completed, code, message)]})


# ---------------------------------------------------------------- sys_service, sys_deployment

def services(catalog: Catalog) -> pa.Table:
    """Restate's sys_service. Stead keeps one revision of each service (the one it serves
    now); a service served in-process names the in-process app's deployment
    (runtime/deployments.py LOCAL_DEPLOYMENT_ID), as GET /services does."""
    rows = catalog.services
    name, public, ty, deployment = _columns(rows, 4)
    return _table("sys_service", len(rows), {
        "name": name, "revision": [1] * len(rows), "public": public, "ty": ty, "deployment_id": deployment})


def deployments(catalog: Catalog) -> pa.Table:
    """Restate's sys_deployment: registered deployments (reached over HTTP/2 at `endpoint`;
    the protocol versions are Stead's deployment protocol's)."""
    rows = catalog.deployments
    dep_id, uri, created, low, high, names = _columns(rows, 6)
    return _table("sys_deployment", len(rows), {
        "id": dep_id, "ty": ["http"] * len(rows), "endpoint": uri, "created_at": created,
        "min_service_protocol_version": low, "max_service_protocol_version": high, "services": names})


def catalog_rows(app: Any, registry: Any) -> tuple[list[tuple[str, bool, str, Optional[str]]],
                                                   list[tuple[str, str, int, int, int, list[str]]]]:
    """sys_service and sys_deployment rows from the runtime's catalog (runtime/deployments.py)."""
    svcs = [(svc.name, not getattr(svc, "ingress_private", False),
             SERVICE_TYPES.get(svc.service_type, svc.service_type),
             getattr(svc, "deployment_id", None) or (LOCAL_DEPLOYMENT_ID if registry is not None else None))
            for svc in app.services.values()]
    deps = [] if registry is None else [
        (d.id, d.uri, d.created_ms, d.min_protocol_version, d.max_protocol_version, [s.name for s in d.services])
        for d in registry.deployments.values()]
    local = None if registry is None else registry.local_summary()
    if local is not None:  # the in-process app, as GET /deployments lists it
        deps.insert(0, (local["id"], local["uri"], registry.started_ms, local["min_protocol_version"],
                        local["max_protocol_version"], [s["name"] for s in local["services"]]))
    return svcs, deps


_BUILDERS = {
    "sys_invocation": _invocations,
    "sys_inbox": _inbox,
    "sys_idempotency": lambda source, catalog: idempotency(source.scan_idempotency(), catalog),
    "sys_service": lambda source, catalog: services(catalog),
    "sys_deployment": lambda source, catalog: deployments(catalog),
}
