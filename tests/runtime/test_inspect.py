"""`stead inspect DATA_DIR`: a data directory read offline (runtime/inspect.py), after
a SIGKILL and beside a running server, checked against what the requests did and
against tests/disk.py (an independent reader); its refusals; and its decoding of
every field it shows, on a directory written by hand."""

from __future__ import annotations

import json
import signal
import struct
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from rocksdict import Options, Rdict

from runtime import _core, inspect
from tests.conftest import FLOW_APP, SteadServer, wait_for_lines, wait_until
from tests.disk import CFS, Status, lp, read_disk, wait_on_disk
from tests.runtime.test_cli import stead

STATUS_NAMES = {Status.INBOXED: "pending", Status.RUNNING: "running", Status.BACKING_OFF: "backing-off",
                Status.COMPLETED: "completed", Status.SUSPENDED: "suspended", Status.SCHEDULED: "scheduled"}


@pytest.fixture
def mode() -> str:
    """One mode: what is on disk does not depend on forced replay (the flow tests cover it)."""
    return "normal"


def inspect_json(data_dir: Path, *args: str) -> Any:
    out = stead("inspect", str(data_dir), *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def ms(rfc3339: str) -> int:
    return round(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)


def test_inspect_after_sigkill_shows_what_the_requests_did(make_server) -> None:  # type: ignore[no-untyped-def]
    server: SteadServer = make_server(target=FLOW_APP).start()
    assert server.post("/Counter/c1/add", 5).json() == 5
    assert server.post("/Counter/c1/add", 2).json() == 7
    assert server.post("/Counter/a%20b%2F%C3%BC/add", 4).json() == 4  # a key with a space, a / and a ü
    assert server.post("/Caller/k/call_add", 3).json() == 3
    failed = server.post("/Counter/c2/fail", "boom")
    assert failed.status_code >= 400
    before = int(time.time() * 1000)
    nap = server.post("/Timers/nap/send", 600_000).json()["invocationId"]
    stamp = server.post("/Caller/k2/send_later", 600_000).json()  # the scheduled send's id
    # Kill once the nap's sleep is on disk (its journal: Run "start", Sleep "nap").
    wait_on_disk(server.data_dir, lambda d: len(d.journal(nap)) == 2, what="the nap's sleep entry")
    server.kill()

    on_disk = read_disk(server.data_dir, lambda d: {i: (inv, d.journal(i)) for i, inv in d.invocations().items()})
    listed = {inv["id"]: inv for inv in inspect_json(server.data_dir)["invocations"]}
    assert set(listed) == set(on_disk) and nap in listed and stamp in listed
    for inv_id, (record, journal) in on_disk.items():
        row = listed[inv_id]
        assert row["target"] == record.target
        assert row["status"] == STATUS_NAMES[record.status]
        assert ms(row["created_at"]) == record.created_ms
        assert row["journal_size"] == len(journal)

    by_target: dict[str, list[dict[str, Any]]] = {}
    for row in listed.values():
        by_target.setdefault(row["target"], []).append(row)
    assert [r["completion_result"] for r in by_target["Counter/c1/add"]] == ["success", "success"]
    [fail] = by_target["Counter/c2/fail"]
    assert fail["status"] == "completed" and fail["completion_result"] == "failure"
    assert fail["completion_failure"] == f"[{failed.status_code}] boom"
    assert listed[nap]["status"] in ("running", "suspended") and listed[nap]["journal_size"] == 2
    assert listed[stamp]["target"] == "Timers/stamp" and listed[stamp]["status"] == "scheduled"
    assert before + 600_000 <= ms(listed[stamp]["next_retry_at"]) <= int(time.time() * 1000) + 600_000

    # One invocation: the nap's journal, its sleep pending until its wake-up time.
    doc = inspect_json(server.data_dir, "--invocation", nap)
    assert doc["id"] == nap and doc["input"] == 600_000
    assert [(e["index"], e["kind"], e["name"]) for e in doc["journal"]] == [(0, "Run", "start"), (1, "Sleep", "nap")]
    run, sleep = doc["journal"]
    assert run["completed"] and isinstance(run["value"], float)
    assert not sleep["completed"] and sleep["completion"] is None
    # Slept from "start": a wake-up is whole ms from the clock then (a floor), so from the
    # step's float time it is compared with its floor, not its rounding (1 ms off otherwise).
    assert 0 <= ms(sleep["wakeup_at"]) - (int(run["value"] * 1000) + 600_000) < 5000
    # A call: the caller's Call entry names the callee, which ran as an invocation of its own.
    [caller] = by_target["Caller/k/call_add"]
    doc = inspect_json(server.data_dir, "--invocation", caller["id"])
    [call] = doc["journal"]
    assert call["kind"] == "Call" and call["invoked_target"] == "Counter/k/add"
    assert call["completed"] and call["completion"] == {"value": 3, "failure": None}
    callee = listed[call["invoked_id"]]
    assert callee["target"] == "Counter/k/add" and callee["invoked_by"] == "service"
    assert callee["invoked_by_id"] == caller["id"]
    assert doc["output"] == 3 and doc["failure"] is None

    # For people: the table has every id; a journal reads as one.
    out = stead("inspect", str(server.data_dir))
    assert out.returncode == 0, out.stderr
    assert all(inv_id in out.stdout for inv_id in listed) and f"{len(listed)} invocations" in out.stdout
    out = stead("inspect", str(server.data_dir), "--invocation", nap)
    assert out.returncode == 0, out.stderr
    assert "Journal (2 entries)" in out.stdout
    [sleep_line] = [line for line in out.stdout.splitlines() if "Sleep" in line]
    assert "nap" in sleep_line and "until " in sleep_line and "pending" in sleep_line

    # One key's state, as the handlers left it.
    for key, total in [("c1", 7), ("a b/ü", 4)]:
        doc = inspect_json(server.data_dir, "--service", "Counter", "--key", key)
        assert doc == {"service": "Counter", "object_key": key, "state": {"total": total}}
        assert doc["state"] == read_disk(server.data_dir, lambda d: d.state("Counter", key))
    assert inspect_json(server.data_dir, "--service", "Counter", "--key", "never")["state"] == {}
    out = stead("inspect", str(server.data_dir), "--service", "Counter", "--key", "c1")
    assert out.returncode == 0 and "total" in out.stdout and "7" in out.stdout

    # --limit: the first ones in id order.
    assert [i["id"] for i in inspect_json(server.data_dir, "--limit", "2")["invocations"]] == sorted(listed)[:2]


def test_inspect_beside_a_running_server(make_server, effects_dir: Path) -> None:  # type: ignore[no-untyped-def]
    server: SteadServer = make_server(target=FLOW_APP).start()
    assert server.post("/Counter/live/add", 1).json() == 1
    held = server.post("/Timers/gated_stamp/send", "t").json()["invocationId"]
    wait_for_lines(effects_dir / "gates", 1)

    listed = {inv["id"]: inv for inv in inspect_json(server.data_dir)["invocations"]}
    assert listed[held]["status"] in ("running", "suspended") and listed[held]["completed_at"] is None
    assert inspect_json(server.data_dir, "--service", "Counter", "--key", "live")["state"] == {"total": 1}
    # The read-only open did not disturb the writer: the server goes on, and a new read sees it.
    (effects_dir / "stamp-t").touch()
    assert server.post("/Counter/live/add", 2).json() == 3
    wait_until(lambda: inspect_json(server.data_dir, "--invocation", held)["status"] == "completed", 20,
               "the held invocation completed")
    assert inspect_json(server.data_dir, "--service", "Counter", "--key", "live")["state"] == {"total": 3}
    assert server.stop() == -signal.SIGTERM  # graceful: it re-raises the signal when done


def test_inspect_refusals(tmp_path: Path, make_server) -> None:  # type: ignore[no-untyped-def]
    out = stead("inspect", str(tmp_path / "missing"))
    assert out.returncode == 1 and out.stderr.startswith("stead: no Stead data directory at ")
    assert "Traceback" not in out.stderr

    other = tmp_path / "other"  # a RocksDB database that is not Stead's
    Rdict(str(other), options=_options()).close()
    out = stead("inspect", str(other))
    assert out.returncode == 1 and "not a Stead data directory" in out.stderr and "Traceback" not in out.stderr

    newer = _write_dir(tmp_path / "newer", {"meta": {b"mtschema_version": struct.pack(">I", 99)}})
    out = stead("inspect", str(newer))
    assert out.returncode == 1 and "schema version 99" in out.stderr and "Traceback" not in out.stderr

    server: SteadServer = make_server(target=FLOW_APP).start()
    server.stop()
    out = stead("inspect", str(server.data_dir), "--invocation", "inv_nope")
    assert out.returncode == 1 and out.stderr.startswith("stead: no invocation inv_nope in ")
    for args in (["--service", "Counter"], ["--key", "k"], ["--invocation", "x", "--service", "S", "--key", "k"],
                 ["--limit", "0"]):
        out = stead("inspect", str(server.data_dir), *args)
        assert out.returncode == 2 and out.stderr.startswith("Usage: stead inspect"), (args, out.stderr)


def test_schema_version_is_the_cores() -> None:
    assert inspect.SCHEMA_VERSION == _core.SCHEMA_VERSION


# ---------------------------------------------------------------- decoding, on a directory written by hand


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def pb(*fields: tuple[int, int | str | bytes]) -> bytes:
    """A protobuf message: varints for ints, length-delimited for text and bytes."""
    out = b""
    for number, value in fields:
        if isinstance(value, int):
            out += _varint(number << 3) + _varint(value)
        else:
            raw = value.encode() if isinstance(value, str) else value
            out += _varint(number << 3 | 2) + _varint(len(raw)) + raw
    return out


def _write_dir(path: Path, rows: dict[str, dict[bytes, bytes]]) -> Path:
    db = Rdict(str(path), options=_options(), column_families={cf: Options(raw_mode=True) for cf in CFS})
    for cf, kv in rows.items():
        for k, v in kv.items():
            db.get_column_family(cf)[k] = v
    db.close()
    return path


def _options() -> Options:
    opts = Options(raw_mode=True)
    opts.create_if_missing(True)
    opts.create_missing_column_families(True)
    return opts


def test_decoding_of_every_field_shown(tmp_path: Path) -> None:
    inv, callee = "inv_0000000000010000000000000000000001", "inv_callee"
    record = pb((1, inv), (2, "Shop"), (3, "buy"), (4, "k/1"), (5, 1), (6, b'{"n": 1}'),
                (7, pb((1, "x-a"), (2, "1"))), (7, pb((1, "x-b"), (2, "2"))), (8, 3), (9, 4),
                (10, 1_700_000_000_123), (11, 1_700_000_001_000), (16, 1_700_000_060_000), (17, 9),
                (19, "inv_parent"), (21, "idem-1"), (22, 1), (24, "dp_1"), (99, "a field from a newer writer"))
    done = pb((1, "inv_done"), (2, "Shop"), (3, "ping"), (8, 4), (10, 1), (12, 1_700_000_002_000),
              (14, 409), (15, "killed"))
    entries = [
        pb((1, 2), (2, "cart"), (3, b"\xff\x00not json")),             # SetState, bytes that are not JSON
        pb((1, 6), (2, "charge"), (4, 500), (5, "declined")),           # a failed Run
        pb((1, 8), (2, "Svc/key/h"), (3, callee.encode())),            # Call, completed
        pb((1, 7), (2, "nap"), (3, struct.pack(">Q", 1_700_000_100_000))),  # Sleep, pending
        pb((1, 18), (2, "inv_other")),                                   # AttachInvocation
        pb((1, 14), (2, "p")),                                           # CompletePromise, rejected
        pb((1, 16), (3, b"[2, 5]")),                                     # Combinator
        pb((1, 1), (2, "empty")),                                        # GetState of nothing
    ]
    jn = {b"jn" + lp(inv) + struct.pack(">I", i): e for i, e in enumerate(entries)}
    jc = {b"jc" + lp(inv) + struct.pack(">I", 2): pb((1, 8), (3, b'"ok"')),
          b"jc" + lp(inv) + struct.pack(">I", 5): pb((1, 14), (4, 400), (5, "no"))}
    data = _write_dir(tmp_path / "data", {
        "meta": {b"mtschema_version": struct.pack(">I", inspect.SCHEMA_VERSION)},
        "invocations": {b"iv" + inv.encode(): record, b"ivinv_done": done},
        "journal": {**jn, **jc, b"jn" + lp(inv + "x") + struct.pack(">I", 0): pb((1, 6))},  # another's row
        "state": {b"st" + lp("Shop") + lp("k/1") + b"a": b"[1]", b"st" + lp("Shop") + lp("k/1") + b"b": b"\x01",
                  b"st" + lp("Shop") + lp("k/10") + b"a": b"2"},  # another key with the same prefix text
    })

    doc = inspect.read(str(data), lambda d: d.invocation(inv))
    assert doc is not None
    assert {k: v for k, v in doc.items() if k != "journal"} == {
        "id": inv, "target": "Shop/k/1/buy", "target_service_name": "Shop", "target_service_key": "k/1",
        "target_handler_name": "buy", "target_service_ty": "virtual_object", "status": "backing-off",
        "created_at": "2023-11-14T22:13:20.123Z", "modified_at": "2023-11-14T22:13:21.000Z", "completed_at": None,
        "next_retry_at": "2023-11-14T22:14:20.000Z", "retry_count": 4, "journal_size": 8,
        "idempotency_key": "idem-1", "invoked_by": "service", "invoked_by_id": "inv_parent",
        "pinned_deployment_id": "dp_1", "cancel_requested": True, "completion_result": None,
        "completion_failure": None, "input": {"n": 1}, "headers": [["x-a", "1"], ["x-b", "2"]], "output": None,
        "failure": None}
    blank: dict[str, Any] = {"name": None, "value": None, "failure": None, "completed": True, "completion": None,
             "invoked_id": None, "invoked_target": None, "wakeup_at": None}
    entry_fields: list[dict[str, Any]] = [
        {"kind": "SetState", "name": "cart", "value": {"base64": "/wBub3QganNvbg=="}},
        {"kind": "Run", "name": "charge", "failure": {"code": 500, "message": "declined"}},
        {"kind": "Call", "name": "Svc/key/h", "invoked_target": "Svc/key/h", "invoked_id": callee,
         "completion": {"value": "ok", "failure": None}},
        {"kind": "Sleep", "name": "nap", "wakeup_at": "2023-11-14T22:15:00.000Z", "completed": False},
        {"kind": "AttachInvocation", "name": "inv_other", "invoked_id": "inv_other", "completed": False},
        {"kind": "CompletePromise", "name": "p", "completion": {"value": None,
                                                                "failure": {"code": 400, "message": "no"}}},
        {"kind": "Combinator", "value": [2, 5]},
        {"kind": "GetState", "name": "empty"},
    ]
    assert doc["journal"] == [{"index": i, **blank, **e} for i, e in enumerate(entry_fields)]
    listed = inspect.read(str(data), lambda d: d.invocations())
    assert [(i["id"], i["journal_size"]) for i in listed] == [(inv, 8), ("inv_done", 0)]
    assert listed[1]["target"] == "Shop/ping" and listed[1]["target_service_key"] is None
    assert listed[1]["completion_failure"] == "[409] killed" and listed[1]["completed_at"] is not None
    assert inspect.read(str(data), lambda d: d.state("Shop", "k/1")) == {
        "service": "Shop", "object_key": "k/1", "state": {"a": [1], "b": {"base64": "AQ=="}}}

    # The renderers show it whole: the failure, the call, bytes that are not JSON.
    out = stead("inspect", str(data), "--invocation", inv)
    assert out.returncode == 0, out.stderr
    for text in ["Shop/k/1/buy", "backing-off (cancel requested)", "failed [500] declined", f"-> {callee}",
                 "<10 bytes, not JSON>", "until 2023-11-14T22:15:00.000Z", "failed [400] no", "[2,5]",
                 "Journal (8 entries)"]:
        assert text in out.stdout, (text, out.stdout)


def test_read_opens_the_directory_read_only(tmp_path: Path) -> None:
    data = _write_dir(tmp_path / "data", {"meta": {b"mtschema_version": struct.pack(">I", 1)}})

    def try_write(d: inspect.DataDir) -> None:
        with pytest.raises(Exception, match="(?i)read.?only|not supported"):
            d.db.get_column_family("state")[b"x"] = b"y"

    inspect.read(str(data), try_write)
    assert read_disk(data, lambda d: d.cf("state").get(b"x")) is None
