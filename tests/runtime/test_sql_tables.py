"""The SQL engine (runtime/sql.py) and its table builders (runtime/sql_tables.py) against
a fake store with the scan methods' shapes: the conversion of rows to Restate's columns,
which tables a query builds, what is refused. The end-to-end tests over a real server
are in test_sql_e2e.py."""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import pyarrow as pa
import pytest

from runtime import _core, sql, sql_tables
from runtime.admin_query import json_rows, wants_arrow
from runtime.sql import Engine, Query, QueryError, QueryTimeout, Snapshot

T0 = 1_700_000_000_000  # ms


def inv_row(inv_id: str, service: str, handler: str, key: str, kind: int, status: int, **kw: Any) -> tuple[Any, ...]:
    row: dict[str, Any] = {
        "id": inv_id, "service": service, "handler": handler, "key": key, "kind": kind, "status": status,
        "retry_count": 0, "created_ms": T0, "modified_ms": T0 + 1, "completed_ms": 0, "next_retry_ms": 0,
        "journal_len": 0, "caller_id": "", "caller_entry": 0, "idempotency_key": "", "cancel_requested": False,
        "deployment_id": "", "output": None, "failure_code": 0, "failure_message": None, "input": b"{}",
        "headers": []}
    row.update(kw)
    return tuple(row[c] for c in _core.INVOCATION_COLUMNS)


class FakeStore:
    """The store's scan methods over fixed rows; records which scans ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.narrowed: dict[str, tuple[str, ...]] = {}
        self.invocations = [
            inv_row("inv_a", "Greeter", "greet", "", _core.KIND_SERVICE, _core.STATUS_COMPLETED,
                    completed_ms=T0 + 5, journal_len=3, output=b'"hi"'),
            inv_row("inv_b", "Cart", "add", "k1", _core.KIND_EXCLUSIVE, _core.STATUS_RUNNING,
                    caller_id="inv_a", caller_entry=1, journal_len=1, deployment_id="dp_1"),
            inv_row("inv_c", "Cart", "add", "k1", _core.KIND_EXCLUSIVE, _core.STATUS_INBOXED,
                    idempotency_key="idem-1"),
            inv_row("inv_d", "Cart", "add", "k2", _core.KIND_EXCLUSIVE, _core.STATUS_COMPLETED,
                    completed_ms=T0 + 9, failure_code=409, failure_message="killed"),
            inv_row("inv_e", "Greeter", "greet", "", _core.KIND_SERVICE, _core.STATUS_BACKING_OFF,
                    retry_count=2, next_retry_ms=T0 + 60_000),
            inv_row("inv_f", "Greeter", "greet", "", _core.KIND_SERVICE, _core.STATUS_SCHEDULED,
                    next_retry_ms=T0 + 30_000),
        ]

    def scan_invocations(self, after: str = "", limit: int = 0) -> list[tuple[Any, ...]]:
        self.calls.append("invocations")
        return list(self.invocations)

    def scan_journal(self, inv_id: str = "") -> list[tuple[Any, ...]]:
        self.calls.append("journal")
        self.narrowed["journal"] = (inv_id,)
        rows = [("inv_a", 0, _core.ENTRY_RUN, "fetch", b'"x"', 0, None),
                ("inv_a", 1, _core.ENTRY_CALL, "Cart/k1/add", b"inv_b", 0, None),
                ("inv_a", 2, _core.ENTRY_SLEEP, None, (T0 + 100).to_bytes(8, "big"), 0, None),
                ("inv_b", 0, _core.ENTRY_GET_STATE, "items", b"[]", 0, None)]
        return [r for r in rows if r[0] == inv_id or not inv_id]

    def scan_completions(self, inv_id: str = "") -> list[tuple[Any, ...]]:
        self.calls.append("completions")
        return [r for r in [("inv_a", 1, b"1", 0, None)] if r[0] == inv_id or not inv_id]

    def scan_state(self, service: str = "", key: str = "") -> list[tuple[Any, ...]]:
        self.calls.append("state")
        self.narrowed["state"] = (service, key)
        rows = [("Cart", "k1", "items", b'["apple"]'), ("Cart", "k1", "blob", b"\xff\x00"),
                ("Cart", "k2", "items", b"[]")]
        return [r for r in rows if (not service or r[0] == service) and (not key or r[1] == key)]

    def scan_inbox(self) -> list[tuple[Any, ...]]:
        self.calls.append("inbox")
        return [("Cart", "k1", 7, "inv_c")]

    def scan_idempotency(self) -> list[tuple[Any, ...]]:
        self.calls.append("idempotency")
        return [("Cart", "k1", "add", "idem-1", "inv_c"), ("Signup", "w1", "run", "", "inv_w")]

    def scan_promises(self, service: str = "", key: str = "") -> list[tuple[Any, ...]]:
        self.calls.append("promises")
        return [("Signup", "w1", "link", True, b'"s3cret"', 0, None),
                ("Signup", "w2", "link", True, None, 400, "bad link"),
                ("Signup", "w3", "link", False, None, 0, None)]

    def get_invocation(self, inv_id: str) -> Optional[Any]:
        return next((type("Inv", (), {"created_ms": r[7]})() for r in self.invocations if r[0] == inv_id), None)


SNAP = Snapshot(
    live=[inv_row("inv_live", "Greeter", "greet", "", _core.KIND_SERVICE, _core.STATUS_RUNNING)],
    services=[("Greeter", True, "service", None), ("Cart", True, "virtual_object", "dp_1"),
              ("Signup", False, "workflow", None)],
    deployments=[("dp_1", "http://127.0.0.1:9", T0, 1, 1, ["Cart"])],
    service_types={"Greeter": "service", "Cart": "virtual_object", "Signup": "workflow"})


def run(query: str, store: Optional[FakeStore] = None) -> list[dict[str, Any]]:
    return Query(query, store or FakeStore(), SNAP).run().to_pylist()


def test_invocations_in_restates_columns() -> None:
    rows = {r["id"]: r for r in run("SELECT * FROM sys_invocation ORDER BY id")}
    assert list(rows) == ["inv_a", "inv_b", "inv_c", "inv_d", "inv_e", "inv_f", "inv_live"]
    a, b, c, d, e, f = (rows[i] for i in ("inv_a", "inv_b", "inv_c", "inv_d", "inv_e", "inv_f"))
    assert (a["target"], a["target_service_key"], a["target_service_ty"]) == ("Greeter/greet", None, "service")
    assert (a["status"], a["completion_result"], a["completion_failure"]) == ("completed", "success", None)
    assert a["completed_at"].timestamp() * 1000 == T0 + 5 and a["journal_size"] == 3
    assert (b["target"], b["status"], b["invoked_by"], b["invoked_by_id"]) == (
        "Cart/k1/add", "running", "service", "inv_a")
    assert (b["invoked_by_service_name"], b["invoked_by_target"]) == ("Greeter", "Greeter/greet")
    assert (b["pinned_deployment_id"], b["last_attempt_deployment_id"]) == ("dp_1", "dp_1")
    assert (c["status"], c["idempotency_key"], c["invoked_by"]) == ("pending", "idem-1", "ingress")
    assert c["inboxed_at"].timestamp() * 1000 == T0 + 1 and c["completed_at"] is None
    assert (d["completion_result"], d["completion_failure"]) == ("failure", "[409] killed")
    assert (e["status"], e["retry_count"]) == ("backing-off", 2)
    assert e["next_retry_at"].timestamp() * 1000 == T0 + 60_000
    assert f["status"] == "scheduled" and f["scheduled_start_at"].timestamp() * 1000 == T0 + 30_000
    assert rows["inv_live"]["status"] == "running"
    for column in ("trace_id", "last_failure", "running_at", "completion_retention", "partition_key"):
        assert all(r.get(column) is None for r in rows.values())


def test_journal_state_inbox_idempotency_promises() -> None:
    journal = run("SELECT id, index, entry_type, name, completed, invoked_id, invoked_target, sleep_wakeup_at, "
                  "version FROM sys_journal ORDER BY id, index")
    assert [(j["id"], j["index"], j["entry_type"], j["name"]) for j in journal] == [
        ("inv_a", 0, "Run", "fetch"), ("inv_a", 1, "Call", None), ("inv_a", 2, "Sleep", None),
        ("inv_b", 0, "GetState", "items")]
    assert [j["completed"] for j in journal] == [None, True, False, True]
    assert (journal[1]["invoked_id"], journal[1]["invoked_target"]) == ("inv_b", "Cart/k1/add")
    assert journal[2]["sleep_wakeup_at"].timestamp() * 1000 == T0 + 100
    assert {j["version"] for j in journal} == {1}

    state = run("SELECT * FROM state WHERE service_key = 'k1' ORDER BY key")
    assert [(s["key"], s["value_utf8"], s["value"], s["value_length"]) for s in state] == [
        ("blob", None, b"\xff\x00", 2), ("items", '["apple"]', b'["apple"]', 9)]
    inbox = run("SELECT * FROM sys_inbox")
    assert [(i["service_name"], i["service_key"], i["id"], i["sequence_number"]) for i in inbox] == [
        ("Cart", "k1", "inv_c", 7)]
    assert inbox[0]["created_at"].timestamp() * 1000 == T0
    assert run("SELECT service_name, service_key, service_handler, idempotency_key, invocation_id "
               "FROM sys_idempotency") == [{"service_name": "Cart", "service_key": "k1", "service_handler": "add",
                                            "idempotency_key": "idem-1", "invocation_id": "inv_c"}]
    promises = run("SELECT service_key, completed, completion_success_value_utf8, completion_failure "
                   "FROM sys_promise ORDER BY service_key")
    assert promises == [
        {"service_key": "w1", "completed": True, "completion_success_value_utf8": '"s3cret"',
         "completion_failure": None},
        {"service_key": "w2", "completed": True, "completion_success_value_utf8": None,
         "completion_failure": "[400] bad link"},
        {"service_key": "w3", "completed": False, "completion_success_value_utf8": None, "completion_failure": None}]


def test_services_deployments_and_views() -> None:
    assert run("SELECT name, ty, public, deployment_id FROM sys_service ORDER BY name") == [
        {"name": "Cart", "ty": "virtual_object", "public": True, "deployment_id": "dp_1"},
        {"name": "Greeter", "ty": "service", "public": True, "deployment_id": None},
        {"name": "Signup", "ty": "workflow", "public": False, "deployment_id": None}]
    dep = run("SELECT id, ty, endpoint, services FROM sys_deployment")
    assert dep == [{"id": "dp_1", "ty": "http", "endpoint": "http://127.0.0.1:9", "services": ["Cart"]}]
    statuses = run("SELECT id, status FROM sys_invocation_status ORDER BY id")
    assert [s["status"] for s in statuses] == ["completed", "invoked", "inboxed", "completed", "invoked",
                                               "scheduled", "invoked"]
    assert [s["id"] for s in run("SELECT id FROM sys_invocation_state WHERE in_flight ORDER BY id")] == [
        "inv_b", "inv_live"]


def test_only_the_tables_a_query_names_are_built() -> None:
    store = FakeStore()
    run("SELECT count(*) FROM sys_journal j JOIN state s ON s.service_key = j.id", store)
    assert sorted(store.calls) == ["completions", "journal", "state"]
    store = FakeStore()
    run("WITH x AS (SELECT id FROM sys_inbox) SELECT * FROM x WHERE id IN (SELECT invocation_id FROM sys_idempotency)",
        store)
    assert sorted(store.calls) == ["idempotency", "inbox"]
    store = FakeStore()
    # Restate's CLI checks columns through information_schema: every table is listed, none is scanned.
    count = run("SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_name = 'sys_journal' "
                "AND column_name IN ('promise_name', 'version', 'entry_json', 'appended_at')", store)
    assert count == [{"n": 4}] and store.calls == []


@pytest.mark.parametrize("query, scan, narrowed", [
    ("SELECT * FROM sys_journal WHERE id = 'inv_a'", "journal", ("inv_a",)),
    ("SELECT index FROM sys_journal sj WHERE sj.id = 'inv_b' AND index >= 0 ORDER BY index DESC", "journal",
     ("inv_b",)),
    ("WITH j AS (SELECT * FROM sys_journal WHERE 'inv_a' = id) SELECT count(*) FROM j", "journal", ("inv_a",)),
    ("SELECT * FROM sys_journal WHERE id = 'inv_a' OR index = 0", "journal", ("",)),
    ("SELECT * FROM sys_journal WHERE id = 'inv_a' UNION ALL SELECT * FROM sys_journal", "journal", ("",)),
    ("SELECT * FROM sys_journal j JOIN sys_invocation i ON i.id = j.id WHERE j.id = 'inv_a'", "journal", ("",)),
    ("SELECT * FROM sys_journal j WHERE x.id = 'inv_a'", None, None),  # not j's column: refused by DuckDB
    ("SELECT key FROM state WHERE service_name = 'Cart' AND service_key = 'k1'", "state", ("Cart", "k1")),
    ("SELECT key FROM state WHERE service_name = 'Cart'", "state", ("Cart", "")),
    ("SELECT key FROM state WHERE service_key = 'k1'", "state", ("", "")),
])
def test_a_scan_is_narrowed_only_where_the_answer_cannot_change(
        query: str, scan: Optional[str], narrowed: Optional[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch) -> None:
    store = FakeStore()
    if scan is None:
        with pytest.raises(QueryError):
            run(query, store)
        return
    answer = run(query, store)
    assert store.narrowed[scan] == narrowed
    monkeypatch.setattr(sql_tables, "NARROWABLE", frozenset())
    unnarrowed = FakeStore()
    assert run(query, unnarrowed) == answer  # the same rows from whole scans
    assert set(unnarrowed.narrowed[scan]) == {""}


def test_using_join_aggregate_and_types() -> None:
    rows = run("SELECT target_service_name AS svc, count(*) AS n, sum(journal_size) AS entries "
               "FROM sys_invocation GROUP BY ALL ORDER BY svc")
    assert rows == [{"svc": "Cart", "n": 3, "entries": 1}, {"svc": "Greeter", "n": 4, "entries": 3}]
    joined = run("SELECT id, count(j.index) AS n FROM sys_invocation JOIN sys_journal j USING (id) GROUP BY id "
                 "ORDER BY id")
    assert joined == [{"id": "inv_a", "n": 3}, {"id": "inv_b", "n": 1}]
    table = Query("SELECT created_at, now() AS t, target FROM sys_invocation LIMIT 1", FakeStore(), SNAP).run()
    assert table.schema.field("created_at").type == pa.timestamp("ms", tz="+00:00")
    assert table.schema.field("t").type == pa.timestamp("ms", tz="+00:00")
    assert table.schema.field("target").type == pa.large_string()


@pytest.mark.parametrize("query", [
    "DELETE FROM sys_invocation", "SELECT 1; SELECT 2", "PRAGMA version", "COPY (SELECT 1) TO '/tmp/x.csv'",
    "SET threads = 4", "ATTACH '/tmp/x.db'", "CREATE TABLE t AS SELECT 1", "INSTALL httpfs", "", "SELEC 1",
    "SELECT * FROM read_csv('/etc/passwd')", "SELECT * FROM glob('/*')", "SELECT nope FROM sys_invocation",
    "SELECT * FROM nope", "SELECT * FROM secret_rows",
])
def test_refused(query: str) -> None:
    secret_rows = pa.table({"x": [1]})  # noqa: F841  (a Python name a query must not reach)
    with pytest.raises(QueryError):
        run(query)


def test_the_datafusion_forms_restates_cli_writes() -> None:
    # `restate invocations list --service Cart`: the alias of a derived table's only table.
    assert run("SELECT COUNT(1) AS n FROM (SELECT * FROM sys_invocation inv LIMIT 50000) "
               "WHERE inv.target_service_name IN ('Cart') AND status != 'completed'") == [{"n": 2}]
    # `restate services status`: FIRST_VALUE as an aggregate (a window function in DuckDB).
    assert run("SELECT target_service_name, COUNT(1) AS n, FIRST_VALUE(id ORDER BY created_at DESC, id) AS newest, "
               "LAST_VALUE(id ORDER BY id) AS last FROM sys_invocation_status WHERE status == 'inboxed' "
               "GROUP BY target_service_name") == [
        {"target_service_name": "Cart", "n": 1, "newest": "inv_c", "last": "inv_c"}]
    # Window functions stay window functions.
    assert run("SELECT first_value(id) OVER (ORDER BY id DESC) AS f FROM sys_invocation LIMIT 1") == [{"f": "inv_live"}]


def test_an_unknown_table_is_named_with_ours_as_suggestions() -> None:
    with pytest.raises(QueryError, match='(?s)sys_invocatio does not exist.*"sys_invocation"'):
        run("SELECT * FROM sys_invocatio")


def test_read_only_forms_allowed() -> None:
    assert run("VALUES (1)") == [{"col0": 1}]
    assert {r["column_name"] for r in run("DESCRIBE sys_inbox")} >= {"service_name", "id", "sequence_number"}
    assert "sys_promise" in {r["name"] for r in run("SHOW TABLES")}


def test_a_long_query_is_interrupted() -> None:
    async def main() -> None:
        engine = Engine(FakeStore(), timeout_s=0.3)  # type: ignore[arg-type]
        with pytest.raises(QueryTimeout):
            await engine.query("SELECT count(*) FROM range(100000000000) a", SNAP)
        assert (await engine.query("SELECT 42 AS x", SNAP)).to_pylist() == [{"x": 42}]

    asyncio.run(main())


def test_json_rows_and_accept() -> None:
    table = Query("SELECT id, created_at, completed_at, journal_size FROM sys_invocation WHERE id = 'inv_a'",
                  FakeStore(), SNAP).run()
    assert json_rows(table) == (b'{"rows":[{"id":"inv_a","created_at":"2023-11-14T22:13:20.000Z",'
                                b'"completed_at":"2023-11-14T22:13:20.005Z","journal_size":3}]}')
    blob = Query("SELECT value FROM state WHERE key = 'blob'", FakeStore(), SNAP).run()
    assert json_rows(blob) == b'{"rows":[{"value":"ff00"}]}'
    assert not wants_arrow(None) and not wants_arrow(b"application/json")
    assert wants_arrow(b"*/*") and wants_arrow(b"application/vnd.apache.arrow.stream")
    assert not wants_arrow(b"application/json, */*;q=0.5")


def test_tables_and_schemas_agree() -> None:
    assert set(sql_tables.SCHEMAS) | set(sql_tables.VIEWS) == sql_tables.TABLES
    assert sql.TIMEOUT_S > 0
