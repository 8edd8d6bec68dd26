"""SQL over Restate's introspection tables, on DuckDB.

A query is parsed by DuckDB itself: `extract_statements` says whether it is one
read-only statement (a SELECT, WITH, VALUES, DESCRIBE, SHOW, ...: nothing else runs),
and `json_serialize_sql` gives its syntax tree, from which the tables it names are
read (in joins, subqueries, CTEs alike; a hand-written scanner would miss some).
Only those tables are built, from the store's scans, as Arrow tables, and
registered on a fresh in-memory connection for this query alone, so a query
costs what its tables cost and queries share nothing. A query that reads the
catalog (information_schema, SHOW, DESCRIBE: Restate's CLI checks columns that
way) also gets every other table, empty, so that their columns are listed.

A table named once, as the only source of a SELECT that requires `column =
'constant'`, is scanned for those rows only where the store can (one invocation's
journal: how Restate's CLI describes an invocation; one object's state). Restate's
engine is DataFusion, and its CLI writes two forms of DataFusion's dialect that
DuckDB reads otherwise; they are rewritten in the syntax tree (`_datafusion_forms`).

The connection can reach nothing but those tables: no files, no extensions, no
Python objects by name, and its settings are locked before the query runs. The
query runs in a worker thread (DuckDB releases the GIL), one thread of DuckDB,
with a memory limit and a time limit after which it is interrupted.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Optional

import duckdb
import pyarrow as pa

from runtime import _core, admin_views, sql_tables

TIMEOUT_S = 30.0
MEMORY_LIMIT = "512MB"
MAX_CONCURRENT = 2  # queries at once; more wait (each may hold a copy of its tables)

_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "threads": 1,
    "memory_limit": MEMORY_LIMIT,
    "enable_external_access": False,  # no files, no network, no ATTACH
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "python_enable_replacements": False,  # a table name never resolves to a Python variable
    "arrow_large_buffer_size": True,  # strings and bytes out as Restate types them (large_*)
}
_CATALOG_SCHEMAS = {"information_schema", "pg_catalog"}


class QueryError(Exception):
    """The query is refused or failed on its own account (answered 400 with DuckDB's message)."""


class QueryTimeout(QueryError):
    pass


@dataclass
class Snapshot:
    """What the tables need from the runtime besides the store, taken on the event loop
    (the dicts it reads change there)."""

    live: list[tuple[Any, ...]] = field(default_factory=list)
    services: list[tuple[str, bool, str, Optional[str]]] = field(default_factory=list)
    deployments: list[tuple[str, str, int, int, int, list[str]]] = field(default_factory=list)
    service_types: dict[str, str] = field(default_factory=dict)
    queued: frozenset[str] = frozenset()  # ids waiting in a limit's queue: "ready" (runtime/queues.py)


def snapshot(invoker: Any) -> Snapshot:
    """The invoker's catalog, registry and the invocations running in memory that have
    no record yet (the store does not know them; they are running)."""
    live = []
    for attempt in invoker.live.values():
        inv = attempt.inv
        if not inv.persisted:
            row = admin_views.live_row(inv, inv.created_ms)  # running since its admission
            live.append(tuple(row[c] for c in _core.INVOCATION_COLUMNS))
    services, deployments = sql_tables.catalog_rows(invoker.app, invoker.registry)
    types = {name: ty for name, _public, ty, _dep in services}
    queued = frozenset(w.inv.id for w in invoker.queues.waiters())
    return Snapshot(live, services, deployments, types, queued)


@dataclass
class Plan:
    """What a query reads: our tables it names, whether it reads the catalog, and for a
    table named once, in a SELECT whose only source it is and whose WHERE requires
    `column = 'constant'` (all conjuncts), those columns: the scan can be narrowed to
    them (one invocation's journal, one object's state) without changing the answer."""

    tables: set[str] = field(default_factory=set)
    catalog: bool = False
    equal: dict[str, dict[str, str]] = field(default_factory=dict)
    sql: str = ""  # what runs: the query, or its DataFusion forms rewritten (see _datafusion_forms)


def parse(sql: str, con: duckdb.DuckDBPyConnection) -> Plan:
    """The plan of `sql`. QueryError unless it is exactly one read-only statement that
    parses. `con` is any connection (for its parser)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(str(exc)) from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one SQL statement, got {len(statements)}")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise QueryError(f"only queries (SELECT) are allowed, not {statements[0].type.name}")
    row = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
    tree = json.loads(row[0]) if row else {"error": True, "error_message": "no syntax tree"}
    if tree.get("error"):
        raise QueryError(tree.get("error_message") or "the query does not parse")
    plan = Plan(sql=sql)
    if _datafusion_forms(tree):
        row = con.execute("SELECT json_deserialize_sql(?::JSON)", [json.dumps(tree)]).fetchone()
        plan.sql = row[0] if row else sql
    seen: dict[str, int] = {}
    unknown: set[str] = set()  # names that are neither ours nor a CTE's: an error, worded below
    ctes: set[str] = set()
    stack: list[Any] = [tree["statements"]]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "BASE_TABLE":
            schema = (node.get("schema_name") or "").lower()
            table = (node.get("table_name") or "").lower()
            if schema in ("", "main") and table in sql_tables.TABLES:
                plan.tables.add(table)
                seen[table] = seen.get(table, 0) + 1
            elif schema in _CATALOG_SCHEMAS:
                plan.catalog = True
            elif schema in ("", "main"):
                unknown.add(table)
        elif kind == "SHOW_REF":
            plan.catalog = True
        elif kind == "SELECT_NODE":
            _equalities(node, plan)
        if "cte_map" in node:
            ctes.update(m["key"].lower() for m in node["cte_map"].get("map", []))
        elif kind == "TABLE_FUNCTION" or node.get("class") == "FUNCTION":
            fn = (node.get("function_name") or "").lower()
            if fn.startswith(("duckdb_", "pragma_")):
                plan.catalog = True
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    plan.equal = {t: cols for t, cols in plan.equal.items() if seen.get(t) == 1}
    if unknown - ctes:
        plan.catalog = True  # the query fails; DuckDB's "did you mean" then names our tables
    return plan


def _datafusion_forms(tree: Any) -> bool:
    """Rewrite, in DuckDB's syntax tree, the forms of DataFusion's dialect (Restate's engine)
    that Restate's CLI writes and DuckDB reads otherwise: a derived table without an alias
    keeps the alias of the one table it selects from (`FROM (SELECT * FROM sys_invocation
    inv LIMIT n) WHERE inv.status ...`, `restate invocations list --service`), and
    FIRST_VALUE / LAST_VALUE used as aggregates are DuckDB's first / last (`restate
    services status`). True if anything was rewritten."""
    changed = False
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if node.get("type") == "SUBQUERY" and not node.get("alias"):
            inner = ((node.get("subquery") or {}).get("node") or {}).get("from_table") or {}
            if inner.get("type") == "BASE_TABLE" and inner.get("alias"):
                node["alias"] = inner["alias"]
                changed = True
        if node.get("class") == "FUNCTION" and node.get("function_name", "").lower() in ("first_value", "last_value"):
            name = node["function_name"].lower().removesuffix("_value")
            node["function_name"] = name
            if isinstance((node.get("qualified_name") or {}).get("path"), list):
                node["qualified_name"]["path"][-1] = name
            changed = True
        stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
    return changed


def _equalities(node: dict[str, Any], plan: Plan) -> None:
    source, where = node.get("from_table") or {}, node.get("where_clause")
    table = (source.get("table_name") or "").lower()
    if source.get("type") != "BASE_TABLE" or table not in sql_tables.NARROWABLE or where is None:
        return
    names = {table, (source.get("alias") or "").lower()} - {""}
    terms = where["children"] if where.get("type") == "CONJUNCTION_AND" else [where]
    found: dict[str, str] = {}
    for term in terms:
        if term.get("type") != "COMPARE_EQUAL":
            continue
        for col, const in ((term.get("left"), term.get("right")), (term.get("right"), term.get("left"))):
            if (col or {}).get("class") != "COLUMN_REF" or (const or {}).get("type") != "VALUE_CONSTANT":
                continue
            path = [p.lower() for p in col["column_names"]]
            literal = const.get("literal") or {}
            ours = len(path) == 1 or (len(path) == 2 and path[0] in names)
            if ours and literal.get("kind") in ("STRING", "VARCHAR"):
                found.setdefault(path[-1], literal.get("text", ""))
    if found:
        plan.equal[table] = found


class Query:
    """One query on its own connection; `run` in a worker thread, `interrupt` from anywhere."""

    def __init__(self, sql: str, source: sql_tables.Source, snap: Snapshot) -> None:
        self.sql = sql
        self.source = source
        self.snap = snap
        self._con: Optional[duckdb.DuckDBPyConnection] = None
        self._interrupted = False

    def run(self) -> pa.Table:
        with duckdb.connect(":memory:", config=_CONFIG) as con:
            plan = parse(self.sql, con)
            needed = set(plan.tables)
            if needed & set(sql_tables.VIEWS):
                needed.add("sys_invocation")
            con.execute("SET TimeZone = 'UTC'")
            for name in sql_tables.SCHEMAS:
                if name in needed:
                    con.register(name, sql_tables.build(name, self.source, self.snap, plan.equal.get(name, {})))
                elif plan.catalog:
                    con.register(name, sql_tables.empty(name))
            if "sys_invocation" in needed or plan.catalog:
                for view, body in sql_tables.VIEWS.items():
                    con.execute(f"CREATE TEMP VIEW {view} AS {body}")
            con.execute("SET lock_configuration = true")
            self._con = con
            try:
                if self._interrupted:
                    raise QueryTimeout("the query was interrupted")
                relation = con.sql(plan.sql)
                if relation is None:  # parse() lets only queries through
                    raise QueryError("the statement returns no rows")
                return restate_types(relation.to_arrow_table())
            except duckdb.InterruptException:
                raise QueryTimeout("the query was interrupted") from None
            except (duckdb.InternalException, duckdb.FatalException, duckdb.OutOfMemoryException):
                raise
            except duckdb.Error as exc:
                raise QueryError(str(exc)) from None
            finally:
                self._con = None

    def interrupt(self) -> None:
        self._interrupted = True
        con = self._con
        if con is not None:
            con.interrupt()


def restate_types(table: pa.Table) -> pa.Table:
    """DuckDB's Arrow answer in Restate's types where DuckDB's differ: timestamps are
    microseconds in DuckDB, milliseconds in UTC ("+00:00") in Restate (sub-millisecond
    parts of computed times are dropped); lists are large in DuckDB's answer, plain in
    Restate's."""
    fields, arrays, changed = [], [], False
    for f, column in zip(table.schema, table.columns):
        ty = f.type
        if pa.types.is_timestamp(ty):
            ty = pa.timestamp("ms", tz="+00:00") if ty.tz is not None else pa.timestamp("ms")
        elif pa.types.is_large_list(ty):
            ty = pa.list_(ty.value_field)
        if ty != f.type:
            column = column.cast(ty, safe=False)
            changed = True
        fields.append(f.with_type(ty))
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields)) if changed else table


class Engine:
    """Runs queries for one runtime: at most MAX_CONCURRENT at once, each bounded in time."""

    def __init__(self, store: sql_tables.Source, timeout_s: float = TIMEOUT_S) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)

    async def query(self, sql: str, snap: Snapshot) -> pa.Table:
        """The answer as an Arrow table; QueryError (bad, refused or too long a query)."""
        async with self._slots:
            q = Query(sql, self.store, snap)
            task = asyncio.ensure_future(asyncio.to_thread(q.run))
            try:
                return await asyncio.wait_for(asyncio.shield(task), self.timeout_s)
            except TimeoutError:
                while not task.done():  # again until it stops: one may land before DuckDB starts
                    q.interrupt()
                    await asyncio.wait([task], timeout=0.1)
                try:
                    return task.result()  # it may have finished meanwhile
                except QueryTimeout:
                    raise QueryTimeout(f"the query was interrupted: it ran longer than {self.timeout_s:g} s, "
                                       "the limit for one query") from None
            except asyncio.CancelledError:
                q.interrupt()  # the client went away or the server stops: free the thread soon
                raise
