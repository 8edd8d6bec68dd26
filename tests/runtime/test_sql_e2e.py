"""`POST /query` on the admin port of a real `stead serve`, over real HTTP: Restate's
introspection tables checked against what real invocations of tests/apps/behaviourapp.py
did (a key held by an awakeable with a second invocation in its inbox, steps and a sleep,
a call and a send, a workflow's state and promise, an idempotency key, a terminal
failure), and against the data directory read independently (tests/disk.py); a JOIN and
an aggregate; the Arrow answer Restate's CLI asks for; 400s for bad or non-read-only SQL,
after which the server keeps serving.

The handlers run in-process and in a deployment (`placement`); replay mode is not
repeated here (the tables read the same rows either way)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from runtime.admin_views import ENTRY_NAMES, STATUS_NAMES
from runtime.deployments import LOCAL_DEPLOYMENT_ID
from tests.conftest import BEHAVIOUR_APP, SteadServer, wait_for_lines, wait_until
from tests.disk import DiskReader, read_disk

ARROW = "application/vnd.apache.arrow.stream"
RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def mode() -> str:
    """Overrides the conftest's normal/replay parametrization: one run per placement."""
    return "normal"


@pytest.fixture
def srv(make_server, placement: str) -> SteadServer:  # type: ignore[no-untyped-def]
    return make_server(target=BEHAVIOUR_APP, placement=placement).start()


def post_query(server: SteadServer, sql: str, accept: str | None = "application/json") -> httpx.Response:
    """POST /query; accept None: no Accept header at all (httpx would send */*)."""
    with httpx.Client(timeout=30.0) as client:
        if accept is None:
            del client.headers["accept"]
        else:
            client.headers["accept"] = accept
        return client.post(f"{server.admin_url}/query", json={"query": sql})


def query(server: SteadServer, sql: str) -> list[dict[str, Any]]:
    resp = post_query(server, sql)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/json"  # Restate's CLI compares it exactly
    return resp.json()["rows"]


def one(server: SteadServer, sql: str) -> dict[str, Any]:
    rows = query(server, sql)
    assert len(rows) == 1, rows
    return rows[0]


def called(server: SteadServer, path: str, body: object, **kw: Any) -> str:
    """A request-response call that succeeded; its invocation id."""
    resp = server.post(path, body, **kw)
    assert resp.status_code == 200, resp.text
    return resp.headers["x-restate-id"]


def test_the_tables_show_what_the_invocations_did(srv: SteadServer, effects_dir: Path, placement: str) -> None:
    s = srv
    # Queue/q1 held by a handler waiting for an awakeable; a second invocation queues behind it.
    hold = s.post("/Queue/q1/hold/send", "awakeable").json()["invocationId"]
    wait_for_lines(effects_dir / "queue-q1-waiting", 1)
    queued = s.post("/Queue/q1/enter/send", "second").json()["invocationId"]
    nap = called(s, "/Lane/l1/nap", 20)  # a step, a durable sleep, a step
    forwarder = called(s, "/Forwarder/call_enter", {"key": "q2", "tag": "c"})  # a call
    # A one-way send, from an invocation sent (persisted from its start: an invocation that
    # completes in its first commit keeps no journal rows).
    sender = s.post("/Forwarder/send_enter/send", {"key": "q3", "tag": "s"}).json()["invocationId"]
    assert s.get(f"/restate/invocation/{sender}/attach").status_code == 200
    sent = s.post("/Forwarder/send_enter", {"key": "q3", "tag": "s2"}).json()
    run = s.post("/Approval/w1/run/send", "t1").json()["invocationId"]  # a workflow and its promise
    wait_for_lines(effects_dir / "approval-w1", 1)
    assert s.post("/Approval/w1/decide", "yes").status_code == 200
    assert s.get(f"/restate/invocation/{run}/attach").status_code == 200
    stamp = called(s, "/Once/stamp", "i1", headers={"idempotency-key": "key-1"})
    failed = s.post("/Queue/q4/hold", "bogus")
    assert failed.status_code == 400, failed.text
    failed_id = failed.headers["x-restate-id"]
    assert s.get(f"/restate/invocation/{sent}/attach").status_code == 200

    # The inbox holds the second invocation of Queue/q1 while its key is held.
    inbox = wait_until(lambda: query(s, "SELECT * FROM sys_inbox"), what="a row in sys_inbox")
    assert [(r["service_name"], r["service_key"], r["id"]) for r in inbox] == [("Queue", "q1", queued)]
    assert isinstance(inbox[0]["sequence_number"], int) and RFC3339_MS.match(inbox[0]["created_at"])

    invs = {r["id"]: r for r in query(s, "SELECT * FROM sys_invocation")}
    held, waiting = invs[hold], invs[queued]
    assert (held["target"], held["target_service_ty"], held["target_service_key"]) == (
        "Queue/q1/hold", "virtual_object", "q1")
    assert held["status"] in ("running", "suspended") and held["completion_result"] is None
    assert (waiting["status"], waiting["target"]) == ("pending", "Queue/q1/enter")
    assert RFC3339_MS.match(waiting["inboxed_at"]) and waiting["completed_at"] is None
    for inv_id in (nap, forwarder, sender, run, stamp):
        assert (invs[inv_id]["status"], invs[inv_id]["completion_result"]) == ("completed", "success"), inv_id
        assert RFC3339_MS.match(invs[inv_id]["completed_at"]) and RFC3339_MS.match(invs[inv_id]["created_at"])
    assert (invs[nap]["target"], invs[nap]["journal_size"]) == ("Lane/l1/nap", 3)
    assert (invs[forwarder]["target"], invs[forwarder]["target_service_key"]) == ("Forwarder/call_enter", None)
    assert (invs[run]["target"], invs[run]["target_service_ty"]) == ("Approval/w1/run", "workflow")
    assert invs[stamp]["idempotency_key"] == "key-1" and invs[nap]["idempotency_key"] is None
    assert (invs[failed_id]["status"], invs[failed_id]["completion_result"], invs[failed_id]["completion_failure"]) \
        == ("completed", "failure", "[400] unknown way to hold: bogus")
    assert {r["invoked_by"] for r in (invs[nap], invs[hold], invs[run])} == {"ingress"}
    # In-process services belong to the in-process app's deployment (as GET /deployments says);
    # only invocations of a remote deployment are pinned (in-process ones run where they are).
    deployment = s.admin("GET", "/deployments").json()["deployments"][0]["id"]
    pinned = None if placement == "local" else deployment
    assert {invs[i]["pinned_deployment_id"] for i in (nap, forwarder, hold, run, stamp)} == {pinned}
    for column in ("trace_id", "last_failure", "created_using_restate_version", "completion_retention"):
        assert {r[column] for r in invs.values()} == {None}

    # The call: its Call entry names the callee, which names its caller.
    call = one(s, f"SELECT * FROM sys_journal WHERE id = '{forwarder}' AND entry_type = 'Call'")
    assert (call["invoked_target"], call["completed"], call["name"]) == ("Queue/q2/enter", True, None)
    callee = invs[call["invoked_id"]]
    assert (callee["target"], callee["status"], callee["invoked_by"]) == ("Queue/q2/enter", "completed", "service")
    assert (callee["invoked_by_id"], callee["invoked_by_target"], callee["invoked_by_service_name"]) == (
        forwarder, "Forwarder/call_enter", "Forwarder")
    send = one(s, f"SELECT * FROM sys_journal WHERE id = '{sender}'")
    assert (send["entry_type"], send["invoked_target"], send["completed"]) == ("OneWayCall", "Queue/q3/enter", None)
    assert invs[send["invoked_id"]]["target"] == "Queue/q3/enter"

    # Journals in order, with their kinds and names.
    def journal(inv_id: str) -> list[tuple[Any, ...]]:
        return [(r["index"], r["entry_type"], r["name"], r["completed"]) for r in query(
            s, f"SELECT index, entry_type, name, completed FROM sys_journal WHERE id = '{inv_id}' ORDER BY index")]

    assert journal(nap) == [(0, "Run", "before", None), (1, "Sleep", None, True), (2, "Run", "after", None)]
    sleep = one(s, f"SELECT sleep_wakeup_at, version FROM sys_journal WHERE id = '{nap}' AND entry_type = 'Sleep'")
    assert RFC3339_MS.match(sleep["sleep_wakeup_at"]) and sleep["version"] == 1
    held_journal = journal(hold)
    assert ("Awakeable", False) in [(t, c) for _, t, _, c in held_journal]
    assert [(t, n) for _, t, n, _ in held_journal if t == "Run"] == [("Run", "publish"), ("Run", "waiting")]
    assert [(t, n) for _, t, n, _ in journal(run) if t in ("Run", "GetPromise")] == [
        ("Run", "started"), ("GetPromise", "decision")]
    assert one(s, f"SELECT promise_name FROM sys_journal WHERE id = '{run}' AND entry_type = 'GetPromise'") == {
        "promise_name": "decision"}

    # Every invocation and journal entry on disk, read independently, is in the tables as it is there.
    def on_disk(disk: DiskReader) -> dict[str, Any]:
        return {i: (inv.status, [(k, ENTRY_NAMES[e.kind]) for k, e in enumerate(disk.journal(i))])
                for i, inv in disk.invocations().items()}

    disk = read_disk(s.data_dir, on_disk)
    assert set(disk) <= set(invs)
    rows = query(s, "SELECT id, index, entry_type FROM sys_journal ORDER BY id, index")
    for inv_id, (status, entries) in disk.items():
        if inv_id != hold:  # it may suspend between the two reads
            assert invs[inv_id]["status"] == STATUS_NAMES[status], inv_id
        assert [(r["index"], r["entry_type"]) for r in rows if r["id"] == inv_id] == entries, inv_id

    # State, idempotency, promises.
    state = {(r["service_name"], r["service_key"], r["key"]): json.loads(r["value_utf8"]) for r in query(
        s, "SELECT service_name, service_key, key, value_utf8 FROM state")}
    assert state[("Queue", "q1", "order")] == ["hold"]
    assert state[("Queue", "q2", "order")] == ["c"] and state[("Queue", "q3", "order")] == ["s", "s2"]
    assert state[("Approval", "w1", "tag")] == "t1"
    raw = one(s, "SELECT value, value_length FROM state WHERE service_key = 'q1'")
    assert bytes.fromhex(raw["value"]) == b'["hold"]' and raw["value_length"] == 8  # bytes as hex, as Restate
    assert query(s, "SELECT service_name, service_key, service_handler, idempotency_key, invocation_id "
                    "FROM sys_idempotency") == [
        {"service_name": "Once", "service_key": None, "service_handler": "stamp", "idempotency_key": "key-1",
         "invocation_id": stamp}]
    assert query(s, "SELECT service_name, service_key, key, completed, completion_success_value_utf8, "
                    "completion_failure FROM sys_promise") == [
        {"service_name": "Approval", "service_key": "w1", "key": "decision", "completed": True,
         "completion_success_value_utf8": '"yes"', "completion_failure": None}]

    # Services and deployments, from the runtime's catalog.
    services = {r["name"]: r for r in query(s, "SELECT * FROM sys_service")}
    assert (services["Queue"]["ty"], services["Approval"]["ty"], services["Once"]["ty"]) == (
        "virtual_object", "workflow", "service")
    assert {r["deployment_id"] for r in services.values()} == {deployment}
    deployments = query(s, "SELECT id, ty, endpoint, services FROM sys_deployment")
    if placement == "local":
        assert [(d["id"], d["endpoint"]) for d in deployments] == [(LOCAL_DEPLOYMENT_ID, "stead://in-process")]
        assert set(deployments[0]["services"]) == set(services)
    else:
        assert [(d["id"], d["endpoint"]) for d in deployments] == [(deployment, s.deployment.uri)]  # type: ignore[attr-defined]
        assert set(deployments[0]["services"]) == set(services)

    # A JOIN and an aggregate.
    assert query(s, "SELECT i.target_handler_name AS handler, count(*) AS entries, max(j.index) AS last "
                    "FROM sys_invocation i JOIN sys_journal j ON j.id = i.id "
                    "WHERE i.target_service_name = 'Lane' GROUP BY handler") == [
        {"handler": "nap", "entries": 3, "last": 2}]
    counts = {r["status"]: r["n"] for r in query(s, "SELECT status, count(*) AS n FROM sys_invocation GROUP BY status")}
    assert counts == {st: sum(1 for r in invs.values() if r["status"] == st) for st in counts}
    assert counts["pending"] == 1
    per_key = one(s, "SELECT count(*) AS n FROM sys_inbox x JOIN sys_invocation i USING (id) "
                     "WHERE i.status = 'pending' AND x.service_key = 'q1'")
    assert per_key == {"n": 1}

    # Released: the held invocation completes, the queued one runs, the inbox empties.
    awakeable = wait_for_lines(effects_dir / "queue-q1-awakeable", 1)[0]
    assert s.post(f"/restate/awakeables/{awakeable}/resolve", "go").status_code == 202
    assert s.get(f"/restate/invocation/{queued}/attach").json() == ["hold", "second"]
    assert query(s, "SELECT * FROM sys_inbox") == []
    done = {r["id"]: r["status"] for r in query(s, f"SELECT id, status FROM sys_invocation "
                                                   f"WHERE id IN ('{hold}', '{queued}')")}
    assert done == {hold: "completed", queued: "completed"}
    assert ("Awakeable", True) in [(t, c) for _, t, _, c in journal(hold)]


def test_arrow_answers_restates_cli_queries_and_refusals(srv: SteadServer) -> None:
    s = srv
    ids = [called(s, "/Lane/k/nap", 1) for _ in range(2)]
    sql = "SELECT id, created_at, journal_size, retry_count, status FROM sys_invocation ORDER BY id"
    as_json = query(s, sql)
    for accept in (ARROW, "*/*"):  # Restate's CLI sends reqwest's default, */*, for `restate sql`
        resp = post_query(s, sql, accept)
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == ARROW
        table = pa.ipc.open_stream(resp.content).read_all()
        assert table.column("id").to_pylist() == [r["id"] for r in as_json] == sorted(ids)
        assert table.schema.field("created_at").type == pa.timestamp("ms", tz="+00:00")
        assert table.schema.field("id").type == pa.large_string()
        assert (table.schema.field("journal_size").type, table.schema.field("retry_count").type) == (
            pa.uint32(), pa.uint64())
    # What `restate invocations list` and `check_columns_exists` read first: a count as Int64.
    count = pa.ipc.open_stream(post_query(s, "SELECT COUNT(1) FROM (SELECT * FROM sys_invocation inv LIMIT 50000) "
                                             "WHERE status != 'completed'", "*/*").content).read_all()
    assert count.schema.field(0).type == pa.int64() and count.column(0).to_pylist() == [0]
    assert one(s, "SELECT COUNT(*) AS n FROM information_schema.columns WHERE table_name = 'sys_journal' "
                  "AND column_name IN ('promise_name', 'version', 'entry_json', 'appended_at')") == {"n": 4}
    assert post_query(s, "SELECT 1 AS x", None).json() == {"rows": [{"x": 1}]}  # no Accept: JSON

    # `restate invocations list --service Lane --all` (Restate CLI 1.7, for a server older than 1.5,
    # as Stead's version reads), word for word: DataFusion's forms included.
    order = "ORDER BY inv.created_at DESC, inv.id"
    where = "WHERE inv.target_service_name IN ('Lane')"
    count = post_query(s, f"SELECT COUNT(1) FROM (SELECT\n *\n FROM sys_invocation inv\n LIMIT 50000\n )\n {where}",
                       "*/*")
    assert pa.ipc.open_stream(count.content).read_all().column(0).to_pylist() == [2]
    listed = query(s, f"""WITH invocations as (SELECT inv.id, inv.target, inv.target_service_ty,
        inv.target_service_name, idempotency_key, inv.status, inv.created_at,
        inv.modified_at as state_modified_at, inv.pinned_deployment_id,
        inv.retry_count as num_retries, inv.last_failure as last_failure_message,
        inv.last_failure_related_entry_index as last_failure_entry_index,
        inv.last_failure_related_entry_name as last_failure_entry_name,
        inv.last_failure_related_entry_type as last_failure_entry_ty, inv.last_attempt_deployment_id,
        inv.last_attempt_server, inv.next_retry_at, inv.last_start_at, inv.invoked_by_id, inv.invoked_by_target,
        inv.trace_id, inv.completion_result, inv.completion_failure
        FROM sys_invocation inv {where} {order} LIMIT 100)
        SELECT inv.*, dp.id IS NOT NULL as pinned_deployment_exists
        FROM sys_deployment dp RIGHT JOIN invocations inv ON dp.id = inv.pinned_deployment_id {order}""")
    assert [(r["id"], r["target"], r["status"], r["completion_result"]) for r in listed] == [
        (i, "Lane/k/nap", "completed", "success") for i in sorted(ids, reverse=True)]
    assert {r["pinned_deployment_exists"] for r in listed} == {r["pinned_deployment_id"] is not None for r in listed}
    # `restate services status`: FIRST_VALUE as an aggregate, as DataFusion has it.
    status = one(s, "SELECT target_service_name, target_handler_name, status, COUNT(1) as num_invocations, "
                    "MIN(created_at) as oldest_at, FIRST_VALUE(id ORDER BY created_at ASC) as oldest_invocation "
                    "FROM sys_invocation WHERE target_service_name IN ('Lane') "
                    "GROUP BY target_service_name, target_handler_name, status ORDER BY target_handler_name")
    oldest = min(r["created_at"] for r in listed)
    assert (status["target_handler_name"], status["status"], status["num_invocations"], status["oldest_at"]) == (
        "nap", "completed", 2, oldest)
    assert status["oldest_invocation"] in [r["id"] for r in listed if r["created_at"] == oldest]

    for bad, words in [
        ("SELEC id FROM sys_invocation", "syntax error"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELECT no_such_column FROM sys_invocation", "no_such_column"),
        ("DELETE FROM sys_invocation", "only queries"),
        ("SELECT 1; SELECT 2", "exactly one"),
        ("CREATE TABLE t AS SELECT 1", "only queries"),
        ("SELECT * FROM read_csv('/etc/passwd')", "disabled"),
    ]:
        resp = post_query(s, bad)
        assert resp.status_code == 400, (bad, resp.text)
        body = resp.json()
        assert set(body) == {"message", "restate_code"} and body["restate_code"] is None, body
        assert words in body["message"], (bad, body)
    resp = httpx.post(f"{s.admin_url}/query", content=b"{not json", timeout=30.0)
    assert resp.status_code == 400 and "JSON" in resp.json()["message"]
    assert httpx.get(f"{s.admin_url}/health", timeout=10.0).status_code == 200
    assert one(s, "SELECT count(*) AS n FROM sys_invocation") == {"n": 2}
