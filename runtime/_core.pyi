"""Stub of the Rust extension `runtime._core` (core_rs/src/py/). Checked with mypy.stubtest.

The boundary is crossed a small, constant number of times per invocation: once to
build its `Invocation`, once per durable point (`progress`), once at the end
(`complete`). Journal entries cross as 5-tuples `Entry`; values cross as bytes.
"""
import os
from typing import Optional, Self, final

__all__ = [
    "Entry",
    "SCHEMA_VERSION",
    "ENTRY_GET_STATE",
    "ENTRY_SET_STATE",
    "ENTRY_CLEAR_STATE",
    "ENTRY_CLEAR_ALL",
    "ENTRY_STATE_KEYS",
    "ENTRY_RUN",
    "KIND_SERVICE",
    "KIND_EXCLUSIVE",
    "KIND_SHARED",
    "STATUS_INBOXED",
    "STATUS_RUNNING",
    "STATUS_BACKING_OFF",
    "STATUS_COMPLETED",
    "StorageError",
    "SchemaVersionError",
    "Invocation",
    "Store",
]

# A journal entry: (kind, name, value, code, message). Kinds are the ENTRY_* constants.
# Also defined at runtime, so it can be used in annotations evaluated at runtime.
Entry = tuple[int, Optional[str], Optional[bytes], int, Optional[str]]

SCHEMA_VERSION: int

# Journal entry kinds (proto/stead/journal.proto EntryKind; never renumbered).
ENTRY_GET_STATE: int  # (k, name, value or None, 0, None)
ENTRY_SET_STATE: int  # (k, name, value, 0, None)
ENTRY_CLEAR_STATE: int  # (k, name, None, 0, None)
ENTRY_CLEAR_ALL: int  # (k, None, None, 0, None)
ENTRY_STATE_KEYS: int  # (k, None, JSON list of names, 0, None)
ENTRY_RUN: int  # (k, step name, result bytes or None, failure code or 0, failure message or None)

# Handler kinds.
KIND_SERVICE: int  # stateless
KIND_EXCLUSIVE: int  # virtual object exclusive handler: one at a time per key, may write state
KIND_SHARED: int  # virtual object shared handler: concurrent, read-only

# Invocation statuses (proto/stead/journal.proto InvocationStatus).
STATUS_INBOXED: int
STATUS_RUNNING: int
STATUS_BACKING_OFF: int
STATUS_COMPLETED: int

class StorageError(Exception):
    """RocksDB failed (I/O error, corruption, disk full) or the writer thread stopped."""

class SchemaVersionError(StorageError):
    """The data directory was written by a Stead with another schema version."""

@final
class Invocation:
    """One call of one handler. Immutable fields are set once; the rest is kept by the store."""

    def __new__(
        cls,
        id: str,
        service: str,
        handler: str,
        key: str,
        kind: int,
        input: bytes,
        headers: list[tuple[str, str]],
        created_ms: int,
    ) -> Self: ...
    @property
    def id(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def handler(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def kind(self) -> int: ...
    @property
    def input(self) -> bytes: ...
    @property
    def headers(self) -> list[tuple[str, str]]: ...
    @property
    def created_ms(self) -> int: ...
    @property
    def status(self) -> int:
        """One of STATUS_*; 0 until admitted."""
    @property
    def retry_count(self) -> int: ...
    @property
    def journal_len(self) -> int:
        """Entries durable (or queued for commit) in the journal: the index of the next one."""
    @property
    def persisted(self) -> bool:
        """Whether its record has been written (queued) to the invocations table."""

@final
class Store:
    """The data directory. Owns RocksDB and the group-commit writer thread.

    Every write method queues one commit and returns its sequence number at once
    (the GIL is not held by the writer). The commit is durable when
    `durable_seq() >= seq`; the writer makes `notify_fd()` readable once per group.
    """

    def __new__(cls, path: str | os.PathLike[str], durability: str = "sync") -> Self:
        """Open or create. durability: "sync" (fsync per group) or "wal" (no fsync).
        Raises SchemaVersionError, StorageError, ValueError (unknown durability)."""
    def close(self) -> None:
        """Drain the writer (every queued commit is written), stop it, close RocksDB.
        Idempotent; afterwards every other method raises StorageError. Remove notify_fd
        from the event loop first: the fd is closed with the store."""
    def notify_fd(self) -> int:
        """An eventfd that becomes readable when durable_seq advances."""
    def drain_notify(self) -> int:
        """Reset notify_fd and return durable_seq. Raises StorageError if the writer failed."""
    def durable_seq(self) -> int: ...
    def last_seq(self) -> int:
        """Highest sequence number handed out so far."""
    def wait_durable(self, seq: int) -> int:
        """Block (GIL released) until durable_seq() >= seq; returns durable_seq. For tests and
        synchronous tools; the server waits on notify_fd. Raises StorageError if the writer failed
        or the store was closed first."""
    def groups_written(self) -> int:
        """Group commits written so far (one WriteBatch and one WAL sync each)."""

    # Admission: per-key exclusivity with a durable inbox.
    def admit(self, inv: Invocation) -> tuple[bool, int]:
        """(True, 0) if it may run now (services, shared handlers, a free key: nothing is
        written); (False, seq) if its key is busy: it is appended to the key's inbox in
        commit seq (inbox row + record with status inboxed)."""

    # Durable points.
    def progress(self, inv: Invocation, entries: list[Entry]) -> int:
        """Append entries to the journal (from inv.journal_len), writing the record first
        if not persisted (status running). For KIND_EXCLUSIVE, SET/CLEAR/CLEAR_ALL entries
        are applied to the state table in the same commit. Returns seq."""
    def backoff(self, inv: Invocation, retry_count: int, fire_ms: int) -> int:
        """Record a failed attempt: status backing-off, retry_count, a retry timer at fire_ms
        (timers table + in-memory index). Entries not yet made durable are dropped by the caller."""
    def resume(self, inv: Invocation) -> int:
        """Mark a backing-off invocation running again (status only; its timer row is deleted)."""
    def complete(
        self,
        inv: Invocation,
        entries: list[Entry],
        output: Optional[bytes],
        failure_code: int,
        failure_message: Optional[str],
    ) -> tuple[int, Optional[Invocation]]:
        """One commit: the remaining entries (journal rows only if already persisted; state
        effects always, for KIND_EXCLUSIVE), the completed record with output or failure,
        and for KIND_EXCLUSIVE the hand-over of the key: the next inboxed invocation (if any)
        leaves the inbox, becomes running, and is returned. Returns (seq, next).
        Completing an invocation that is still inboxed (e.g. cancelled) takes it out of
        its key's inbox and hands nothing over."""

    # Reads (GIL released).
    def load_state(self, service: str, key: str) -> list[tuple[str, bytes]]:
        """Every state entry of one object key, as stored (committed-and-written commits only)."""
    def load_journal(self, inv_id: str) -> list[Entry]: ...
    def get_invocation(self, inv_id: str) -> Optional[Invocation]: ...
    def get_output(self, inv_id: str) -> Optional[tuple[Optional[bytes], int, Optional[str]]]:
        """For a completed invocation: (output, failure_code, failure_message)."""

    # Recovery and timers.
    def recover(self) -> list[Invocation]:
        """Unfinished invocations that must run now: status running (in id order). Also
        rebuilds key ownership and inbox queues and the timer index (backing-off ones wait
        for their timers). Call once, after open, before any admit (a second call raises
        ValueError)."""
    def next_timer_ms(self) -> Optional[int]: ...
    def pop_due(self, now_ms: int) -> list[Invocation]:
        """Backing-off invocations whose retry timer is due (removed from the index)."""

    def purge_completed(self, completed_before_ms: int, limit: int) -> int:
        """Delete up to `limit` completed invocations (record and journal) completed before
        the given time. Returns how many were deleted."""
