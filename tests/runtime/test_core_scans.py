"""runtime._core's introspection scans (`Store.scan_*`, `count_timers`) and the admin's writes
(`state_version` / `overwrite_state`, `purge_invocation`), through a real `_core.Store`. What the
scans return is checked against an independent reader of the data directory (tests/disk.py)."""

import time
from pathlib import Path
from typing import Any

import pytest

from runtime import _core
from tests.disk import DiskReader, Status

RUN: _core.Entry = (_core.ENTRY_RUN, "step", b"1", 0, None)
AWAKEABLE: _core.Entry = (_core.ENTRY_AWAKEABLE, None, None, 0, None)
COLUMNS = _core.INVOCATION_COLUMNS


def set_state(name: str, value: bytes) -> _core.Entry:
    return (_core.ENTRY_SET_STATE, name, value, 0, None)


def svc(inv_id: str, **links: Any) -> _core.Invocation:
    return _core.Invocation(inv_id, "Svc", "h", "", _core.KIND_SERVICE, b"{}", [], 1, **links)


def obj(inv_id: str, key: str = "k") -> _core.Invocation:
    return _core.Invocation(inv_id, "Obj", "h", key, _core.KIND_EXCLUSIVE, b"{}", [], 1)


def wf_run(inv_id: str, key: str) -> _core.Invocation:
    return _core.Invocation(inv_id, "Wf", "run", key, _core.KIND_WORKFLOW, b"{}", [], 1)


def store_at(path: Path) -> _core.Store:
    store = _core.Store(str(path), "wal")
    store.recover()
    return store


def sync(store: _core.Store) -> None:
    store.wait_durable(store.last_seq())


def as_dict(row: _core.InvocationRow) -> dict[str, object]:
    assert len(row) == len(COLUMNS)
    return dict(zip(COLUMNS, row))


def populate(store: _core.Store) -> None:
    """Invocations of several statuses, a journal with completions, state, an inbox, an
    idempotency row and workflow promises."""
    a = _core.Invocation("inv_a", "Svc", "greet", "", _core.KIND_SERVICE, b'"in"',
                         [("content-type", "application/json")], 11)
    store.progress(a, [RUN, AWAKEABLE])
    store.complete_awakeable("inv_a", 1, b'"v"', 0, None)
    store.complete(a, [], b'"ok"', 0, None)
    b = obj("inv_b")
    store.admit(b)
    store.progress(b, [set_state("s", b"1"), AWAKEABLE])
    assert not store.admit(obj("inv_c"))[0]
    d = svc("inv_d", idempotency_key="once")
    store.admit(d, True)
    store.complete(d, [], None, 500, "boom")
    run = wf_run("inv_r", "w")
    store.admit(run)
    reject: _core.Entry = (_core.ENTRY_COMPLETE_PROMISE, "r", None, 400, "no")
    store.progress(run, [(_core.ENTRY_GET_PROMISE, "p", None, 0, None),
                         (_core.ENTRY_COMPLETE_PROMISE, "q", b"v", 0, None), reject])
    sync(store)


def test_invocation_columns_name_the_fields_of_a_row() -> None:
    assert COLUMNS == (
        "id", "service", "handler", "key", "kind", "status", "retry_count", "created_ms",
        "modified_ms", "completed_ms", "next_retry_ms", "journal_len", "caller_id", "caller_entry",
        "idempotency_key", "cancel_requested", "deployment_id", "output", "failure_code",
        "failure_message", "input", "headers")
    assert _core.PURGE_NOT_COMPLETED == 0
    assert issubclass(_core.KeyBusyError, ValueError) and issubclass(_core.VersionMismatchError, ValueError)


def test_scan_invocations_agrees_with_the_disk_and_pages(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    populate(store)
    rows = [as_dict(r) for r in store.scan_invocations()]
    assert [r["id"] for r in rows] == ["inv_a", "inv_b", "inv_c", "inv_d", "inv_r"]
    by_id = {r["id"]: r for r in rows}
    a = by_id["inv_a"]
    assert (a["service"], a["handler"], a["key"], a["kind"]) == ("Svc", "greet", "", _core.KIND_SERVICE)
    assert (a["status"], a["output"], a["failure_code"], a["failure_message"]) == (_core.STATUS_COMPLETED, b'"ok"', 0, None)
    assert (a["input"], a["headers"], a["created_ms"], a["journal_len"]) == (b'"in"', [("content-type", "application/json")], 11, 2)
    assert isinstance(a["completed_ms"], int) and a["completed_ms"] > 0
    assert a["cancel_requested"] is False and a["next_retry_ms"] == 0
    assert by_id["inv_b"]["journal_len"] == 2, "the journal's length (the record lags while running)"
    assert by_id["inv_c"]["status"] == _core.STATUS_INBOXED
    d = by_id["inv_d"]
    assert (d["output"], d["failure_code"], d["failure_message"], d["idempotency_key"]) == (None, 500, "boom", "once")
    with DiskReader(tmp_path) as disk:
        on_disk = disk.invocations()
    assert set(on_disk) == set(by_id)
    for inv_id, rec in on_disk.items():
        row = by_id[inv_id]
        assert (row["status"], row["service"], row["key"], row["deployment_id"]) == (int(rec.status), rec.service, rec.key, rec.deployment_id)
        assert (row["input"], row["headers"], row["modified_ms"]) == (rec.input, rec.headers, rec.modified_ms)
    # Pages: after an id, at most `limit`.
    assert [r[0] for r in store.scan_invocations("", 2)] == ["inv_a", "inv_b"]
    assert [r[0] for r in store.scan_invocations("inv_b", 2)] == ["inv_c", "inv_d"]
    assert [r[0] for r in store.scan_invocations(after="inv_d")] == ["inv_r"]
    assert store.scan_invocations("inv_r") == []
    store.close()


def test_get_invocation_row_is_the_scanned_row(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    populate(store)
    for row in store.scan_invocations():
        assert store.get_invocation_row(row[0]) == row
    assert store.get_invocation_row("inv_nope") is None
    assert store.get_invocation_row("inv_") is None  # a prefix of ids is no id
    store.close()


def test_scans_of_the_other_tables_agree_with_the_disk(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    populate(store)
    with DiskReader(tmp_path) as disk:
        for inv_id in ["inv_a", "inv_b", "inv_r"]:
            entries = store.scan_journal(inv_id)
            assert [(i, e[0]) for i, e in enumerate(entries)] == [(i, inv_id) for i in range(len(entries))]
            assert [e[1] for e in entries] == list(range(len(entries)))
            assert [(e[2], e[4], e[5]) for e in entries] == [
                (int(d.kind), d.value, d.failure_code) for d in disk.journal(inv_id)]
            assert [e[2:] for e in entries] == store.load_journal(inv_id)
            completions = store.scan_completions(inv_id)
            assert [c[1:] for c in completions] == store.load_completions(inv_id)
            assert {c[1]: c[2] for c in completions} == {i: d.value for i, d in disk.completions(inv_id).items()}
        assert disk.state("Obj", "k") == {"s": 1}
        assert disk.inboxes() == {("Obj", "k"): ["inv_c"]}
        assert disk.idempotency() == {("Svc", "", "h", "once"): "inv_d", ("Wf", "w", "run", ""): "inv_r"}
    assert store.scan_completions("inv_a") == [("inv_a", 1, b'"v"', 0, None)]
    assert len(store.scan_journal()) == 2 + 2 + 3
    assert store.scan_journal("inv_nope") == [] and store.scan_completions("inv_nope") == []
    assert store.scan_state() == [("Obj", "k", "s", b"1")]
    assert store.scan_state("Obj") == store.scan_state("Obj", "k") == [("Obj", "k", "s", b"1")]
    assert store.scan_state("Obj", "other") == [] and store.scan_state("Nope") == []
    with pytest.raises(ValueError):
        store.scan_state("", "k")
    ((service, key, seq, inv_id),) = store.scan_inbox()
    assert (service, key, inv_id) == ("Obj", "k", "inv_c") and isinstance(seq, int)
    assert sorted(store.scan_idempotency()) == [("Svc", "", "h", "once", "inv_d"), ("Wf", "w", "run", "", "inv_r")]
    assert store.scan_promises() == [
        ("Wf", "w", "p", False, None, 0, None),
        ("Wf", "w", "q", True, b"v", 0, None),
        ("Wf", "w", "r", True, None, 400, "no"),
    ]
    assert store.scan_promises("Wf", "w") == store.scan_promises("Wf") == store.scan_promises()
    assert store.scan_promises("Wf", "x") == []
    with pytest.raises(ValueError):
        store.scan_promises(key="w")
    store.close()


def test_scans_after_reopen_are_the_same(tmp_path: Path) -> None:
    def scan_all(store: _core.Store) -> list[object]:
        return [store.scan_invocations(), store.scan_journal(), store.scan_completions(), store.scan_state(),
                store.scan_inbox(), store.scan_idempotency(), store.scan_promises()]

    store = store_at(tmp_path)
    populate(store)
    before = scan_all(store)
    store.close()
    store = store_at(tmp_path)
    assert scan_all(store) == before
    store.close()


def test_count_timers(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    assert store.count_timers() == 0
    store.progress(svc("inv_s"), [(_core.ENTRY_SLEEP, None, (50).to_bytes(8, "big"), 0, None)])
    r = svc("inv_r")
    store.progress(r, [RUN])
    store.backoff(r, 1, 60)
    store.schedule(svc("inv_d"), 70)
    assert store.count_timers() == 3
    assert store.fire_timers(55) == 1
    assert store.count_timers() == 2
    store.close()


def test_overwrite_state_with_its_version(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    empty = store.state_version("Obj", "k")
    assert isinstance(empty, str) and empty == store.state_version("Obj", "other")
    o = obj("inv_o")
    store.admit(o)
    store.progress(o, [set_state("s", b"1"), AWAKEABLE])
    sync(store)
    current = store.state_version("Obj", "k")
    assert current != empty
    last = store.last_seq()
    # Owned by a running exclusive invocation: refused, with or without a version.
    with pytest.raises(_core.KeyBusyError, match="inv_o"):
        store.overwrite_state("Obj", "k", [("s", b"2")], current)
    with pytest.raises(_core.KeyBusyError):
        store.overwrite_state("Obj", "k", [("s", b"2")])
    assert store.last_seq() == last
    store.complete(o, [], None, 0, None)
    sync(store)
    # A stale version: refused.
    with pytest.raises(_core.VersionMismatchError):
        store.overwrite_state("Obj", "k", [("s", b"2")], empty)
    with pytest.raises(ValueError):  # both are ValueErrors
        store.overwrite_state("Obj", "k", [("s", b"2")], expected_version="nope")
    assert store.last_seq() == last + 1, "only the completion was written"
    assert store.load_state("Obj", "k")[0] == [("s", b"1")]
    # The current version: the whole state is replaced in one commit.
    version, seq = store.overwrite_state("Obj", "k", [("t", b"2"), ("u", b"3")], current)
    assert seq == last + 2
    assert version == store.state_version("Obj", "k") != current
    assert store.load_state("Obj", "k")[0] == [("t", b"2"), ("u", b"3")]
    store.wait_durable(seq)
    with DiskReader(tmp_path) as disk:
        assert disk.state("Obj", "k") == {"t": 2, "u": 3}
    store.close()
    store = store_at(tmp_path)
    assert store.state_version("Obj", "k") == version, "stable across restarts"
    store.close()


def test_purge_invocation(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    assert store.purge_invocation("inv_nope") == (_core.SIGNAL_UNKNOWN, 0)
    running = svc("inv_run")
    store.progress(running, [RUN])
    done = svc("inv_done", idempotency_key="once")
    store.admit(done, True)
    store.progress(done, [RUN, AWAKEABLE])
    store.complete_awakeable("inv_done", 1, b"1", 0, None)
    store.complete(done, [], b"2", 0, None)
    sync(store)
    last = store.last_seq()
    assert store.purge_invocation("inv_run")[0] == _core.PURGE_NOT_COMPLETED
    assert store.last_seq() == last, "nothing written"
    answer, seq = store.purge_invocation("inv_done")
    assert (answer, seq) == (_core.SIGNAL_APPLIED, last + 1)
    store.wait_durable(seq)
    with DiskReader(tmp_path) as disk:
        assert disk.invocation("inv_done") is None
        assert disk.journal("inv_done") == [] and disk.completions("inv_done") == {}
        assert disk.idempotency() == {}
        run_rec = disk.invocation("inv_run")
        assert run_rec is not None and run_rec.status == Status.RUNNING
    assert store.purge_invocation("inv_done") == (_core.SIGNAL_UNKNOWN, 0)
    assert store.cancel("inv_done") == (_core.SIGNAL_UNKNOWN, 0)
    assert store.get_output("inv_done") is None
    assert [r[0] for r in store.scan_invocations()] == ["inv_run"]
    store.close()


def test_scan_of_100k_invocations(tmp_path: Path) -> None:
    n = 100_000
    store = store_at(tmp_path)
    headers = [("content-type", "application/json")]
    for i in range(n):
        inv = _core.Invocation(f"inv_{i:08}", "Svc", "h", "", _core.KIND_SERVICE, b'{"n":1}', headers, 1)
        store.complete(inv, [], b'"ok"', 0, None)
    sync(store)
    t = time.perf_counter()
    rows = store.scan_invocations()
    took = time.perf_counter() - t
    assert len(rows) == n and rows[-1][0] == f"inv_{n - 1:08}"
    print(f"scan_invocations of {n} invocations (rows as Python tuples): {took * 1e3:.0f} ms")
    store.close()
