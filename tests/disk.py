"""An independent reader of a data directory: rocksdict, not core_rs.

Tests use it to check what is really on disk (after a crash, with the server
gone), so the check does not go through the code under test. The key layout is
core_rs/src/keys.rs's (DESIGN.md, Storage): a 2-byte kind prefix, then
big-endian fields, strings prefixed by their u32 length, the last string of a
key written raw. Values of the `invocations` and `journal` column families and
of `promises` are the protobuf messages of proto/stead/journal.proto, decoded
here by hand (a few lines of wire format; no generated code, no dependency on
the protobuf package).

It can also open the directory of a running server (RocksDB allows read-only
opens beside the writer): a test waits for a durable point that way
(`wait_on_disk`) before it kills the server there.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, TypeVar, cast

from rocksdict import AccessType, Options, Rdict

# The column families of a data directory: the one list tests use.
CFS = ["invocations", "journal", "state", "inbox", "timers", "idempotency", "promises", "meta"]

# Entry indices of timers that are not journal entries (keys.rs).
RETRY_TIMER_ENTRY = 0xFFFF_FFFF
SCHEDULED_TIMER_ENTRY = 0xFFFF_FFFE


class EntryKind(enum.IntEnum):
    UNSPECIFIED = 0
    GET_STATE = 1
    SET_STATE = 2
    CLEAR_STATE = 3
    CLEAR_ALL = 4
    STATE_KEYS = 5
    RUN = 6
    SLEEP = 7
    CALL = 8
    SEND = 9
    AWAKEABLE = 10
    COMPLETE_AWAKEABLE = 11
    GET_PROMISE = 12
    PEEK_PROMISE = 13
    COMPLETE_PROMISE = 14
    CANCEL = 15
    COMBINATOR = 16
    CANCEL_INVOCATION = 17
    ATTACH_INVOCATION = 18


class Status(enum.IntEnum):
    UNSPECIFIED = 0
    INBOXED = 1
    RUNNING = 2
    BACKING_OFF = 3
    COMPLETED = 4
    SUSPENDED = 5
    SCHEDULED = 6
    PAUSED = 7


def lp(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">I", len(raw)) + raw


# ---- protobuf wire format (varint and length-delimited fields are all proto/ uses) ----


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field in order; a repeated or re-set field appears again."""
    i = 0
    while i < len(buf):
        tag, i = _varint(buf, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(buf, i)
            yield number, value
        elif wire == 2:
            n, i = _varint(buf, i)
            yield number, bytes(buf[i:i + n])
            i += n
        elif wire == 1:
            yield number, struct.unpack("<Q", buf[i:i + 8])[0]
            i += 8
        elif wire == 5:
            yield number, struct.unpack("<I", buf[i:i + 4])[0]
            i += 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


@dataclass
class Entry:
    """A JournalEntry: a journal row, or a completion row ("jc") of an awaitable entry."""
    kind: EntryKind = EntryKind.UNSPECIFIED
    name: str = ""
    value: bytes | None = None
    failure_code: int = 0
    failure_message: str = ""

    @classmethod
    def decode(cls, buf: bytes) -> "Entry":
        e = cls()
        for number, value in _fields(buf):
            if number == 1:
                e.kind = EntryKind(int(value))  # type: ignore[arg-type]
            elif number == 2:
                e.name = value.decode()  # type: ignore[union-attr]
            elif number == 3:
                e.value = value  # type: ignore[assignment]
            elif number == 4:
                e.failure_code = value  # type: ignore[assignment]
            elif number == 5:
                e.failure_message = value.decode()  # type: ignore[union-attr]
        return e

    def json(self) -> object:
        assert self.value is not None, self
        return json.loads(self.value)


_INVOCATION_INTS = {5: "kind", 8: "status", 9: "retry_count", 10: "created_ms", 11: "modified_ms",
                    12: "completed_ms", 14: "failure_code", 16: "next_retry_ms", 17: "journal_len",
                    18: "inbox_seq", 20: "caller_entry", 22: "cancel_requested", 23: "retention_ms"}
_INVOCATION_STRS = {1: "id", 2: "service", 3: "handler", 4: "key", 15: "failure_message", 19: "caller_id",
                    21: "idempotency_key", 24: "deployment_id"}


@dataclass
class Invocation:
    """An InvocationRecord: a row of the `invocations` column family."""
    id: str = ""
    service: str = ""
    handler: str = ""
    key: str = ""
    kind: int = 0
    input: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    status: Status = Status.UNSPECIFIED
    retry_count: int = 0
    created_ms: int = 0
    modified_ms: int = 0
    completed_ms: int = 0
    output: bytes | None = None
    failure_code: int = 0
    failure_message: str = ""
    next_retry_ms: int = 0
    journal_len: int = 0
    inbox_seq: int = 0
    caller_id: str = ""
    caller_entry: int = 0
    idempotency_key: str = ""
    cancel_requested: int = 0
    retention_ms: int | None = None  # absent: the server's default retention
    deployment_id: str = ""  # the deployment it is pinned to; "": in-process handlers

    @classmethod
    def decode(cls, buf: bytes) -> "Invocation":
        inv = cls()
        for number, value in _fields(buf):
            if number in _INVOCATION_INTS:
                setattr(inv, _INVOCATION_INTS[number], value)
            elif number in _INVOCATION_STRS:
                setattr(inv, _INVOCATION_STRS[number], value.decode())  # type: ignore[union-attr]
            elif number == 6:
                inv.input = value  # type: ignore[assignment]
            elif number == 7:
                header = dict(_fields(value))  # type: ignore[arg-type]
                inv.headers.append((header.get(1, b"").decode(), header.get(2, b"").decode()))  # type: ignore
            elif number == 13:
                inv.output = value  # type: ignore[assignment]
        inv.status = Status(inv.status)
        return inv

    @property
    def target(self) -> str:
        return f"{self.service}/{self.key}/{self.handler}" if self.key else f"{self.service}/{self.handler}"


@dataclass
class Promise:
    """A PromiseRecord: a row of the `promises` column family."""
    completed: bool = False
    value: bytes | None = None
    failure_code: int = 0
    failure_message: str = ""
    waiters: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def decode(cls, buf: bytes) -> "Promise":
        p = cls()
        for number, value in _fields(buf):
            if number == 1:
                p.completed = bool(value)
            elif number == 2:
                p.value = value  # type: ignore[assignment]
            elif number == 3:
                p.failure_code = value  # type: ignore[assignment]
            elif number == 4:
                p.failure_message = value.decode()  # type: ignore[union-attr]
            elif number == 5:
                w = dict(_fields(value))  # type: ignore[arg-type]
                p.waiters.append((w.get(1, b"").decode(), w.get(2, 0)))  # type: ignore[union-attr,arg-type]
        return p


@dataclass(frozen=True)
class Timer:
    fire_ms: int
    invocation_id: str
    entry: int


class _Key:
    """Cursor over one key, the mirror of keys.rs's Reader."""

    def __init__(self, key: bytes, kind: bytes) -> None:
        assert key[:2] == kind, (key, kind)
        self.rest = key[2:]

    def take(self, n: int) -> bytes:
        assert len(self.rest) >= n, "malformed key"
        head, self.rest = self.rest[:n], self.rest[n:]
        return head

    def u32(self) -> int:
        return struct.unpack(">I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.take(8))[0]

    def lp(self) -> str:
        return self.take(self.u32()).decode()

    def rest_str(self) -> str:
        out, self.rest = self.rest.decode(), b""
        return out

    def end(self) -> None:
        assert not self.rest, "trailing bytes in key"


class DiskReader:
    def __init__(self, data_dir: Path) -> None:
        opts = Options(raw_mode=True)
        self.db = Rdict(str(data_dir), options=opts, access_type=AccessType.read_only(),
                        column_families={name: Options(raw_mode=True) for name in CFS})

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "DiskReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cf(self, name: str) -> Rdict:
        return self.db.get_column_family(name)

    def _scan(self, cf: str, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for k, v in self.cf(cf).items(from_key=prefix):  # raw mode: keys and values are bytes
            key, value = cast(bytes, k), cast(bytes, v)
            if not key.startswith(prefix):
                break
            yield key, value

    # ---- state

    def state(self, service: str, key: str) -> dict[str, object]:
        prefix = b"st" + lp(service) + lp(key)
        return {k[len(prefix):].decode(): json.loads(v) for k, v in self._scan("state", prefix)}

    # ---- invocations

    def invocation_records(self) -> list[bytes]:
        return [v for _, v in self._scan("invocations", b"iv")]

    def invocations(self) -> dict[str, Invocation]:
        """Every invocation on disk, by id (the key holds the id raw)."""
        out = {}
        for k, v in self._scan("invocations", b"iv"):
            inv = Invocation.decode(v)
            assert inv.id == _Key(k, b"iv").rest_str(), "invocation key and record disagree"
            out[inv.id] = inv
        return out

    def invocation(self, inv_id: str) -> Invocation | None:
        raw = self.cf("invocations").get(b"iv" + inv_id.encode())
        return None if raw is None else Invocation.decode(raw)

    # ---- journal and completions (both in the journal column family)

    def journal(self, inv_id: str) -> list[Entry]:
        """The journal of one invocation, in index order; the indices must be 0..n-1."""
        entries: list[Entry] = []
        for k, v in self._scan("journal", b"jn" + lp(inv_id)):
            r = _Key(k, b"jn")
            assert r.lp() == inv_id
            index = r.u32()
            r.end()
            assert index == len(entries), f"journal of {inv_id} has a hole at {len(entries)}"
            entries.append(Entry.decode(v))
        return entries

    def completions(self, inv_id: str) -> dict[int, Entry]:
        """Completions of awaitable entries of one invocation, by entry index."""
        out = {}
        for k, v in self._scan("journal", b"jc" + lp(inv_id)):
            r = _Key(k, b"jc")
            assert r.lp() == inv_id
            out[r.u32()] = Entry.decode(v)
            r.end()
        return out

    # ---- inbox, timers, idempotency, promises

    def inbox(self, service: str, key: str) -> list[str]:
        """Invocation ids queued on one object key, in arrival (sequence) order."""
        out = []
        for k, v in self._scan("inbox", b"ib" + lp(service) + lp(key)):
            r = _Key(k, b"ib")
            assert (r.lp(), r.lp()) == (service, key)
            r.u64()
            r.end()
            out.append(v.decode())
        return out

    def inboxes(self) -> dict[tuple[str, str], list[str]]:
        out: dict[tuple[str, str], list[str]] = {}
        for k, v in self._scan("inbox", b"ib"):
            r = _Key(k, b"ib")
            out.setdefault((r.lp(), r.lp()), []).append(v.decode())
        return out

    def timers(self) -> list[Timer]:
        """Every timer row, in fire-time order."""
        out = []
        for k, _ in self._scan("timers", b"tm"):
            r = _Key(k, b"tm")
            fire_ms = r.u64()
            inv_id = r.lp()
            entry = r.u32()
            r.end()
            out.append(Timer(fire_ms, inv_id, entry))
        return out

    def idempotency(self) -> dict[tuple[str, str, str, str], str]:
        """(service, key, handler, idempotency key) -> invocation id."""
        out = {}
        for k, v in self._scan("idempotency", b"id"):
            r = _Key(k, b"id")
            row = (r.lp(), r.lp(), r.lp(), r.lp())
            r.end()
            out[row] = v.decode()
        return out

    def promises(self, workflow: str, key: str) -> dict[str, Promise]:
        prefix = b"pr" + lp(workflow) + lp(key)
        return {k[len(prefix):].decode(): Promise.decode(v) for k, v in self._scan("promises", prefix)}

    def schema_version(self) -> int:
        return struct.unpack(">I", cast(bytes, self.cf("meta")[b"mt" + b"schema_version"]))[0]


T = TypeVar("T")


def read_disk(data_dir: Path, read: Callable[[DiskReader], T]) -> T:
    """One read of a data directory (stopped, killed, or in use by a running server)."""
    with DiskReader(data_dir) as disk:
        return read(disk)


def wait_on_disk(data_dir: Path, predicate: Callable[[DiskReader], T], timeout: float = 20.0,
                 what: str = "a durable point") -> T:
    """Wait until `predicate` holds on what a running server has written: the way a crash
    test chooses its kill point when the handler has nothing else to show. A read that
    races the writer's own file changes (a flush, a WAL switch) is tried again."""
    from tests.conftest import wait_until

    def check() -> T | None:
        try:
            return read_disk(data_dir, predicate)
        except Exception as exc:  # noqa: BLE001 - a torn read of a live directory: read again
            if "No such file" in str(exc) or "Corruption" in str(exc) or "IO error" in str(exc):
                return None
            raise

    return cast(T, wait_until(check, timeout, what))
