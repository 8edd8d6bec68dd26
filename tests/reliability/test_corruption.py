"""Corruption (issue 11, part 5): bytes damaged while the server is stopped.

- WAL: a byte flipped in a complete record of the write-ahead log (the last one, or one
  in the middle): the server refuses to start, naming the damaged log, and nothing
  acknowledged is silently dropped (core_rs/src/db.rs: kTolerateCorruptedTailRecords).
- A torn WAL tail (the last log cut in the middle of its last record, as a crash in the
  middle of a write leaves it): the server starts, recovered to the last complete group
  commit: every write acknowledged before it is there, the torn group not at all.
- SST: a byte flipped in a data block of a table file (made by the flush of the WAL at
  the next start: no option is needed to force one). RocksDB finds it only when a read
  loads that block: the request is answered 503 naming the file, never with the damaged
  value, and the server stops (crash-only: any storage error does) naming it; started
  again, it serves what is intact and refuses the damaged value again.
- A journal value overwritten with garbage (rocksdict, while stopped): the invocation is
  failed with an error naming it and the entry, and the server keeps serving the others.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rocksdict import AccessType, DBCompressionType, Options, Rdict

from tests.conftest import BEHAVIOUR_APP, SteadServer, read_lines, wait_until
from tests.disk import CFS, EntryKind, lp, read_disk, wait_on_disk
from tests.reliability.storage_faults import flip_byte, sst_files, wal_files, wal_records

CART_APP = "examples.cart:application"


@pytest.fixture
def mode() -> str:
    """One run of each test (the default app's replay mode adds nothing here)."""
    return "normal"


def _add(server: SteadServer, cart: str, n: int, size: int = 100) -> list[tuple[str, str]]:
    """`n` acknowledged adds, one after another (one group commit each): (item, invocation id)."""
    acked = []
    for i in range(n):
        item = f"{cart}-{i:03d}-{os.urandom(size).hex()}"
        resp = server.post(f"/Cart/{cart}/add", item)
        assert resp.status_code == 200 and resp.json() == i + 1, resp.text
        acked.append((item, resp.headers["x-restate-id"]))
    return acked


def _refused_start(server: SteadServer) -> str:
    """Start the server on its damaged directory: it must exit (3) instead; its output."""
    with pytest.raises(RuntimeError, match="exited with 3"):
        server.restart()
    return server.log()


def _files(data: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in data.iterdir() if p.is_file() and not p.name.startswith("LOG")}


# ---- the write-ahead log -------------------------------------------------------------------


@pytest.mark.parametrize("where", ["last", "middle"])
def test_a_flipped_byte_in_the_wal_refuses_to_start_naming_the_log(make_server, where: str) -> None:
    server = make_server(target=CART_APP).start()
    acked = _add(server, "c", 20)
    server.kill()  # everything is in the WAL still (no flush before 64 MiB)
    wal = wal_files(server.data_dir)[-1]
    records = wal_records(wal)
    last = records[-1]
    assert any(acked[-1][0].encode() in wal.read_bytes()[o:o + n] for o, n in last.payload)
    record = last if where == "last" else records[len(records) // 2]
    offset, length = record.payload[-1]
    flip_byte(wal, offset + length // 2)
    before = _files(server.data_dir)

    log = _refused_start(server)
    assert "is damaged" in log and "Corruption" in log and wal.name in log, log
    assert "refusing to open it" in log
    # Refused, and left as it was (for a backup, or RocksDB's repair tools).
    assert _files(server.data_dir) == before


def test_a_torn_wal_tail_recovers_to_the_last_complete_group(make_server) -> None:
    server = make_server(target=CART_APP).start()
    acked = _add(server, "c", 20)
    server.kill()
    wal = wal_files(server.data_dir)[-1]
    last = wal_records(wal)[-1]
    data = wal.read_bytes()
    # The last group commit is the last add (its item first appears there).
    assert any(acked[-1][0].encode() in data[o:o + n] for o, n in last.payload)
    assert acked[-1][0].encode() not in data[:last.start]
    cut = last.start + (last.end - last.start) // 2
    os.truncate(wal, cut)

    server.restart()
    kept = [item for item, _ in acked[:-1]]
    assert _state(server, "c") == kept
    for n, (_, inv_id) in enumerate(acked[:-1], start=1):
        assert server.get(f"/restate/invocation/{inv_id}/output").json() == n
    # The torn group is gone as a whole: neither its state nor its invocation.
    assert server.get(f"/restate/invocation/{acked[-1][1]}/output").status_code == 404
    assert server.post("/Cart/c/add", "again").json() == len(kept) + 1
    server.stop()
    assert read_disk(server.data_dir, lambda d: d.state("Cart", "c")["items"]) == [*kept, "again"]


def _state(server: SteadServer, key: str) -> list[str]:
    resp = server.admin("GET", f"/services/Cart/state/{key}")
    assert resp.status_code == 200, resp.text
    return resp.json()["state"].get("items", [])


# ---- a table file --------------------------------------------------------------------------


def test_a_flipped_byte_in_an_sst_is_refused_naming_the_file_never_read_as_a_value(make_server) -> None:
    server = make_server(target=CART_APP).start()
    _add(server, "c", 10, size=1000)
    _add(server, "other", 3)
    server.stop()
    # The next start replays the WAL into memtables and flushes them: a table file per
    # column family. A graceful stop then leaves them as they are (nothing new to flush).
    server.restart()
    server.stop()
    ssts = sst_files(server.data_dir, b"st")
    assert len(ssts) == 1, ssts
    sst = ssts[0]
    # Cart c's items (20 KB) are the first data block, Cart other's a later one.
    flip_byte(sst, 200)

    server.restart()  # the damage is in a data block: found by the read that loads it
    assert server.post("/Cart/other/count", timeout=10).json() == 3
    resp = server.post("/Cart/c/count", timeout=10)
    # Refused, naming the file; never answered with what the damaged block holds.
    assert resp.status_code == 503, resp.text
    message = resp.json()["message"]
    assert "Corruption: block checksum mismatch" in message and sst.name in message, message
    # Crash-only: a storage error stops the server, naming the file.
    assert server.proc.wait(timeout=30) == 3
    assert "stead: storage failed, stopping: Corruption: block checksum mismatch" in server.log()

    # Started again, it serves what is intact and refuses the damaged value again.
    server.restart()
    assert server.admin("GET", "/services/Cart/state/other").json()["state"]["items"][0].startswith("other-000-")
    resp = server.admin("GET", "/services/Cart/state/c")
    assert resp.status_code == 503 and sst.name in resp.json()["message"], resp.text
    assert server.proc.wait(timeout=30) == 3


# ---- a journal value -------------------------------------------------------------------------


def _overwrite(data: Path, key: bytes, value: bytes) -> None:
    """Write one row of the journal column family with rocksdict while the server is stopped
    (uncompressed, so that the server's RocksDB, built with lz4 only, reads what it flushes)."""
    def opts() -> Options:
        o = Options(raw_mode=True)
        o.set_compression_type(DBCompressionType.none())
        return o

    db = Rdict(str(data), options=opts(), column_families={name: opts() for name in CFS},
               access_type=AccessType.read_write())
    try:
        db.get_column_family("journal")[key] = value
    finally:
        db.close()


GARBAGE = b"\xff" * 7 + b"\x07garbage"  # not a JournalEntry: an unterminated varint tag


def test_a_garbage_journal_value_refuses_that_invocation_and_the_others_go_on(make_server, effects_dir) -> None:
    server = make_server(target=BEHAVIOUR_APP).start()
    ids = {tag: server.post("/Signals/wait/send", tag).json()["invocationId"] for tag in ("bad", "good")}
    for tag in ids:
        wait_until(lambda tag=tag: read_lines(effects_dir / f"signal-{tag}"), what=f"{tag} waiting")

    def journaled(d):  # type: ignore[no-untyped-def]
        return all(any(e.kind == EntryKind.RUN for e in d.journal(i)) for i in ids.values())

    wait_on_disk(server.data_dir, journaled, what="both steps journaled")
    journal = read_disk(server.data_dir, lambda d: d.journal(ids["bad"]))
    index = next(i for i, e in enumerate(journal) if e.kind == EntryKind.RUN)
    server.kill()
    _overwrite(server.data_dir, b"jn" + lp(ids["bad"]) + index.to_bytes(4, "big"), GARBAGE)

    server.restart()  # the damaged invocation does not stop the server
    good = read_lines(effects_dir / "signal-good")[-1]
    assert server.post(f"/restate/awakeables/{good}/resolve", "fine").status_code == 202
    assert server.get(f"/restate/invocation/{ids['good']}/attach", timeout=30).json() == "fine"
    # The damaged one is not run on entries it did not record: it fails, naming the entry.
    damaged = f"journal entry {index} of invocation {ids['bad']} is damaged"
    out = server.get(f"/restate/invocation/{ids['bad']}/attach", timeout=30)
    assert out.status_code == 500 and damaged in out.json()["message"], out.text
    log = server.log()
    assert damaged in log, log
    # Reading it is refused the same way, and the server goes on serving.
    described = server.admin("GET", f"/invocations/{ids['bad']}")
    assert described.status_code == 500 and damaged in described.json()["message"], described.text
    assert server.post("/Queue/q/enter", "after").status_code == 200
    assert server.proc.poll() is None
