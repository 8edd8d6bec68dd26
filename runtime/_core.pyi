"""Stub of the Rust extension `runtime._core` (core_rs/src/py/). Checked with mypy.stubtest.

The boundary is crossed a small, constant number of times per invocation: once to
build its `Invocation`, once per durable point (`progress`), once at the end
(`complete`). Journal entries cross as 5-tuples `Entry`; values cross as bytes.

The durability barrier: every read of data that may not be durable yet (the idempotency,
promise and purged-state overlays, the answers of signals) also returns the sequence number
of the commit it depends on; wait until `durable_seq() >= seq` before anything leaves the process
on its account (0: already durable).
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
    "ENTRY_SLEEP",
    "ENTRY_CALL",
    "ENTRY_SEND",
    "ENTRY_AWAKEABLE",
    "ENTRY_COMPLETE_AWAKEABLE",
    "ENTRY_GET_PROMISE",
    "ENTRY_PEEK_PROMISE",
    "ENTRY_COMPLETE_PROMISE",
    "ENTRY_CANCEL",
    "ENTRY_COMBINATOR",
    "ENTRY_CANCEL_INVOCATION",
    "ENTRY_ATTACH_INVOCATION",
    "KIND_SERVICE",
    "KIND_EXCLUSIVE",
    "KIND_SHARED",
    "KIND_WORKFLOW",
    "STATUS_INBOXED",
    "STATUS_RUNNING",
    "STATUS_BACKING_OFF",
    "STATUS_COMPLETED",
    "STATUS_SUSPENDED",
    "STATUS_SCHEDULED",
    "STATUS_PAUSED",
    "WAKE_RUN",
    "WAKE_DELIVER",
    "WAKE_CANCEL",
    "WAKE_KILL",
    "WAKE_DONE",
    "WAKE_PAUSE",
    "SIGNAL_APPLIED",
    "SIGNAL_ALREADY_COMPLETED",
    "SIGNAL_UNKNOWN",
    "SIGNAL_NOT_STARTED",
    "SIGNAL_UNCHANGED",
    "PURGE_NOT_COMPLETED",
    "INVOCATION_COLUMNS",
    "InvocationRow",
    "Wake",
    "Completion",
    "Output",
    "StorageError",
    "SchemaVersionError",
    "CorruptError",
    "NotRunningError",
    "KeyBusyError",
    "VersionMismatchError",
    "failpoints_enabled",
    "set_failpoint",
    "remove_failpoint",
    "clock_offset_ms",
    "set_clock_offset_ms",
    "Invocation",
    "Store",
    "is_plain_json",
    "is_flat_json_list",
    "list_extends",
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
# Awaitable entries (SLEEP, CALL, AWAKEABLE, GET_PROMISE, COMPLETE_PROMISE, ATTACH_INVOCATION) are
# *pending* once journaled; their result arrives later as a `Completion` row (see `load_completions`).
ENTRY_SLEEP: int  # (k, name or None, fire time: 8-byte big-endian ms since epoch, 0, None)
ENTRY_CALL: int  # (k, target label, callee invocation id (utf-8), 0, None); completion = callee's result
ENTRY_SEND: int  # (k, target label, callee invocation id (utf-8), 0, None); never completed
ENTRY_AWAKEABLE: int  # (k, None, None, 0, None); completion = resolve value or rejection
ENTRY_COMPLETE_AWAKEABLE: int  # (k, awakeable id, value, 0, None) resolve | (k, id, None, code, message) reject
ENTRY_GET_PROMISE: int  # (k, promise name, None, 0, None); completion = the promise's value or failure
ENTRY_PEEK_PROMISE: int  # (k, name, value | None, code, message | None): the outcome, inline (like GET_STATE)
ENTRY_COMPLETE_PROMISE: int  # (k, name, value, 0, None) resolve | (k, name, None, code, message) reject;
#                              completion = (b"", 0, None) accepted | (None, 409, msg) already completed
ENTRY_CANCEL: int  # (k, None, None, 0, None): the handler observed its cancellation here
ENTRY_COMBINATOR: int  # (k, None, JSON list of entry indices, in the order seen completed, 0, None)
ENTRY_CANCEL_INVOCATION: int  # (k, target invocation id, None, 0, None): ctx.cancel_invocation
ENTRY_ATTACH_INVOCATION: int  # (k, target invocation id, None, 0, None): ctx.attach_invocation;
#                               completion = the target's result: (output, 0, None) | (None, code, message)

# Handler kinds.
KIND_SERVICE: int  # stateless
KIND_EXCLUSIVE: int  # virtual object exclusive handler: one at a time per key, may write state
KIND_SHARED: int  # virtual object / workflow shared handler: concurrent, read-only
KIND_WORKFLOW: int  # workflow main handler: exclusive on its key (may write state), runs once per key

# Invocation statuses (proto/stead/journal.proto InvocationStatus).
STATUS_INBOXED: int
STATUS_RUNNING: int
STATUS_BACKING_OFF: int
STATUS_COMPLETED: int
STATUS_SUSPENDED: int  # waiting for a completion with its coroutine dropped; resumed by replay
STATUS_SCHEDULED: int  # a delayed send: waits for its timer, then is admitted
STATUS_PAUSED: int  # started, runs nothing until resumed (`Store.pause`, or retries ran out with
#                     on_max_attempts "pause"): keeps its key, journal and pending entries; its
#                     completions are stored without waking it; survives restarts

# Completion of an awaitable entry: (entry index, value, failure code, failure message).
# Success: value is bytes (b"" for a fired sleep), code 0. Failure: value None, code != 0.
# An awakeable resolved before its entry was journaled has a completion at an index beyond
# the journal (see `Store.complete_awakeable`).
Completion = tuple[int, Optional[bytes], int, Optional[str]]

# A result or a promise outcome: (value, 0, None) success | (None, code, message) failure.
Output = tuple[Optional[bytes], int, Optional[str]]

# What the runtime must do after a write; see `Store.take_wakes`.
# (what, invocation, entry index, value, code, message, seq)
Wake = tuple[int, "Invocation", int, Optional[bytes], int, Optional[str], int]
WAKE_RUN: int  # start (new callee, admitted delayed send, retry due, key handed over by kill) or resume by
#              replay (was suspended or backing off); index/value/code/message: the completion that woke it
#              (if any), which load_completions also returns once seq is durable
WAKE_DELIVER: int  # a completion of entry `index` for an invocation that is running in memory; it may repeat
#                    one that a replay already loaded with load_completions: ignore a completed entry
WAKE_CANCEL: int  # cancellation requested for an invocation running in memory (index 0)
WAKE_KILL: int  # an invocation running in memory was killed: stop its coroutine (it is already completed;
#                 value/code/message are its result, (None, 409, "killed"): resolve attach waiters too)
WAKE_DONE: int  # completed inside the store (killed, or cancelled before it started): value/code/message
#                 are its result; resolve whoever waits for it (attach)
WAKE_PAUSE: int  # an invocation running in memory was paused: close its attempt like a suspension (its
#                  coroutine is dropped, nothing more is journaled), unless it is running again by the
#                  time the wake is acted on (resumed meanwhile); a resume brings a WAKE_RUN (index 0)

# The status of a signal's answer (complete_awakeable, cancel, kill, pause, resume_invocation):
# (status, seq).
SIGNAL_APPLIED: int  # 1: applied in commit seq
SIGNAL_ALREADY_COMPLETED: int  # 0: not applicable, already completed; true once seq is durable (0: it is)
SIGNAL_UNKNOWN: int  # -1: no such invocation (seq 0; or, for one a queued purge deleted, that purge's
#                      commit while it is not durable)
SIGNAL_NOT_STARTED: int  # 2 (pause, resume_invocation): inboxed or scheduled, never started; nothing
#                          written; true once seq is durable
SIGNAL_UNCHANGED: int  # 3 (pause: already paused; resume_invocation: running): nothing to do, nothing
#                        written; true once seq is durable
# `Store.purge_invocation`: the invocation exists and is not completed; nothing written (0).
PURGE_NOT_COMPLETED: int

# One invocation record as `Store.scan_invocations` returns it; the names of its fields, in order,
# are INVOCATION_COLUMNS (index with INVOCATION_COLUMNS.index(name) rather than a literal):
#   id, service, handler, key, kind (KIND_*), status (STATUS_*), retry_count, created_ms,
#   modified_ms, completed_ms (0 until completed), next_retry_ms (backing off or scheduled: when its
#   timer fires, else 0), journal_len, caller_id ("" unless a callee of a CALL), caller_entry,
#   idempotency_key ("" if none), cancel_requested, deployment_id ("" in-process), output (completed
#   successfully: bytes, else None), failure_code (0 unless failed), failure_message (None unless
#   failed), input, headers.
# Times are ms since the epoch. Also defined at runtime, like Entry.
InvocationRow = tuple[
    str, str, str, str, int, int, int, int, int, int, int, int, str, int, str, bool, str,
    Optional[bytes], int, Optional[str], bytes, list[tuple[str, str]],
]
INVOCATION_COLUMNS: tuple[str, ...]

class StorageError(Exception):
    """RocksDB failed (I/O error, corruption, disk full) or the writer thread stopped."""

class SchemaVersionError(StorageError):
    """The data directory was written by a Stead with another schema version."""

class CorruptError(StorageError):
    """Bytes on disk that do not decode as what their table holds (a damaged journal entry,
    invocation record or key): the data read is damaged, the store itself did not fail."""

class NotRunningError(ValueError):
    """The invocation is not running (suspended, backing off, paused, completed, inboxed or scheduled):
    the attempt that asked may not journal, suspend or back off. A ValueError, so callers that
    catch ValueError keep working."""

class KeyBusyError(ValueError):
    """`Store.overwrite_state`: an exclusive or workflow invocation owns the object key (running,
    suspended, backing off, or with invocations inboxed on it), so its state cannot be edited now.
    Nothing was written."""

class VersionMismatchError(ValueError):
    """`Store.overwrite_state`: the key's state is not at the expected version (it changed since it
    was read). Nothing was written."""

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
        *,
        caller_id: str = "",
        caller_entry: int = 0,
        idempotency_key: str = "",
    ) -> Self:
        """caller_id/caller_entry: for a callee of ctx.*_call, where its result goes (the CALL entry
        of the caller). idempotency_key: set for ingress requests with an idempotency-key header."""
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
    def caller_id(self) -> str: ...
    @property
    def caller_entry(self) -> int: ...
    @property
    def idempotency_key(self) -> str: ...
    @property
    def cancel_requested(self) -> bool:
        """Cancellation was requested and the handler has not yet journaled ENTRY_CANCEL."""
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
    @property
    def deployment(self) -> str:
        """The deployment it is pinned to ("dp_..."; "" for in-process handlers, the default):
        set by `Store.pin_deployment`, restored from its record (recover, get_invocation, wakes)."""

@final
class Store:
    """The data directory. Owns RocksDB and the group-commit writer thread.

    Every write method queues one commit and returns its sequence number at once
    (the GIL is not held by the writer). The commit is durable when
    `durable_seq() >= seq`; the writer makes `notify_fd()` readable once per group.
    """

    def __new__(cls, path: str | os.PathLike[str], durability: str = "sync") -> Self:
        """Open or create. durability: "sync" (fsync per group) or "wal" (no fsync).
        Raises SchemaVersionError, StorageError, ValueError (unknown durability; a malformed
        $STEAD_FAILPOINTS, or one set in a build without failpoints: see `set_failpoint`)."""
    def close(self) -> None:
        """Drain the writer (every queued commit is written), stop it, close RocksDB.
        Idempotent; afterwards every other method raises StorageError. Remove notify_fd
        from the event loop first: the fd is closed with the store."""
    def notify_fd(self) -> int:
        """An eventfd that becomes readable when durable_seq advances, and once more when the
        writer fails."""
    def drain_notify(self) -> int:
        """Reset notify_fd and return durable_seq. Raises StorageError if the writer failed: a
        failed write or sync, or a panic in the writer thread (the message says which). The
        failure is sticky: every later write raises it too, and the outcome of the commits
        not yet durable is unknown until recovery at the next open decides it."""
    def durable_seq(self) -> int: ...
    def last_seq(self) -> int:
        """Highest sequence number handed out so far."""
    def wait_durable(self, seq: int) -> int:
        """Block (GIL released) until durable_seq() >= seq; returns durable_seq. For tests and
        synchronous tools; the server waits on notify_fd. Raises StorageError if the writer failed
        or the store was closed first."""
    def groups_written(self) -> int:
        """Group commits written so far (one WriteBatch and one WAL sync each)."""
    def memory_usage(self) -> list[tuple[str, int]]:
        """RocksDB's memory in bytes by kind, from its properties: "memtables" (every table's
        active, immutable and pinned memtables; bounded together at 64 MiB), "table_readers"
        (table readers' memory outside the block cache), "block_cache" (the shared cache,
        bounded at 32 MiB, index and filter blocks included) and "block_cache_pinned"."""

    # Admission: per-key exclusivity with a durable inbox.
    def admit(self, inv: Invocation, persist: bool = False) -> tuple[bool, int]:
        """(True, 0) if it may run now (services, shared handlers, a free key: nothing is
        written); (False, seq) if its key is busy: it is appended to the key's inbox in
        commit seq (inbox row + record with status inboxed). KIND_WORKFLOW is exclusive on
        its key like KIND_EXCLUSIVE.

        With persist=True (sends, idempotent requests, workflow runs) the record is written
        even when it may run now: (True, seq) with status running. An invocation with an
        idempotency_key, and every KIND_WORKFLOW invocation (implicit idempotency key ""),
        also writes its idempotency row (service, key, handler, idempotency key) -> id in the
        same commit; persist is implied for them."""
    def schedule(self, inv: Invocation, fire_ms: int) -> int:
        """A delayed send from the ingress: record (status scheduled, persisted, idempotency row
        if any) + a timer row; admitted when `fire_timers` reaches fire_ms. Returns seq."""
    def idempotency_lookup(self, service: str, key: str, handler: str,
                           idempotency_key: str) -> tuple[Optional[str], int]:
        """(invocation id or None, seq): the invocation registered for this idempotency key as of
        the commits queued so far, None if there is none or a queued purge deleted the row. seq is
        the commit the answer comes from: the one that wrote the row, or the purge that deleted it
        (0 when read from RocksDB: durable). Wait for it before answering on the answer's account,
        found (a 202 PreviouslyAccepted, a 409) or not (a 404 "no invocation found": a crash before
        the purge is durable brings the row back); a new invocation admitted instead needs no wait
        of its own, its admission commit comes after. Workflow runs use idempotency_key "" (one run
        per workflow key). Admission does not check it: look up first, and attach to the registered
        invocation instead of admitting."""

    # Durable points. `children` are the callees of CALL/SEND entries among `entries`:
    # (callee, fire_ms) with fire_ms 0 = now. Each callee's record is written in the same
    # commit as the caller's entry (so neither exists without the other) and it is admitted:
    # runnable now -> status running and a WAKE_RUN wake; key busy -> inboxed; fire_ms > 0 ->
    # scheduled with a timer row. A callee of a CALL has caller_id/caller_entry set: when it
    # completes, its result becomes the completion of that entry, in its completion commit.
    # A callee must be a new Invocation (status 0; ValueError otherwise); the objects in wakes
    # share its state. A KIND_WORKFLOW callee or one with an idempotency_key also writes its
    # idempotency row (look it up first).
    #
    # Effects applied in the same commit, by entry kind:
    #   SET/CLEAR/CLEAR_ALL   state table (KIND_EXCLUSIVE and KIND_WORKFLOW only)
    #   SLEEP                 timer row (fire time from the value) + the entry awaits
    #   CALL, AWAKEABLE       the entry awaits its completion
    #   COMPLETE_AWAKEABLE    resolves the target awakeable like `complete_awakeable` (else nothing)
    #   GET_PROMISE           promise of (inv.service, inv.key, name) completed: completion row now
    #                         + WAKE_DELIVER; else the entry waits on the promise
    #   COMPLETE_PROMISE      first completion wins: promise row written, its waiters completed
    #                         (rows + wakes), and this entry completed with (b"", 0, None);
    #                         already completed: this entry completed with (None, 409, message)
    #   CANCEL                clears cancel_requested
    #   CANCEL_INVOCATION     `cancel(target)` in the same commit
    #   ATTACH_INVOCATION     target finished (in memory, or its record on disk): its result is this
    #                         entry's completion now + WAKE_DELIVER; target unfinished (persisted:
    #                         running, suspended, backing off, inboxed, scheduled): the entry awaits
    #                         it and the target's completing commit completes it (killed or
    #                         cancelled: its (None, 409, ...)); unknown (never persisted, or purged):
    #                         (None, 404, "invocation ... not found"); `inv` itself: (None, 400, ...).
    #                         Cancel and kill do not follow attaches (unlike calls).
    # The callees in `children` are admitted before these effects apply, so an entry of the same
    # commit can cancel or attach to one.
    # Completions written for running invocations produce WAKE_DELIVER, for suspended ones
    # status running + WAKE_RUN, for backing-off ones nothing (their retry replays them).
    # In `complete`, entries that would start waiting (SLEEP, CALL, AWAKEABLE, GET_PROMISE) have no
    # effect, and the invocation's own entries get no completions; the other effects apply.
    # A COMPLETE_AWAKEABLE whose id does not parse, or whose awakeable is already completed, does
    # nothing.
    # An AWAKEABLE journaled at an index that already has an early completion (see
    # `complete_awakeable`) is completed in the same commit (WAKE_DELIVER, like GET_PROMISE of a
    # completed promise); an entry of another kind at such an index drops the early completion.
    #
    # Only a running attempt writes: `progress`, `suspend`, `backoff` and `pause_attempt` raise
    # NotRunningError for an invocation whose status is not STATUS_RUNNING (suspended, backing off,
    # paused, completed, e.g. killed, inboxed, scheduled). Status 0 (never admitted through the store) counts as
    # running: `progress` then writes it running.
    def progress(self, inv: Invocation, entries: list[Entry],
                 children: Optional[list[tuple[Invocation, int]]] = None) -> int:
        """Append entries to the journal (from inv.journal_len), writing the record first
        if not persisted (status running), with the effects above. Returns seq. Raises
        NotRunningError for an invocation that is not running, ValueError for a malformed
        SLEEP (value not 8 bytes), CALL (value not a utf-8 id) or CANCEL_INVOCATION (no name)."""
    def backoff(self, inv: Invocation, retry_count: int, fire_ms: int) -> int:
        """Record a failed attempt: status backing-off, retry_count, a retry timer at fire_ms
        (timers table + in-memory index). Entries not yet made durable are dropped by the caller.
        When the timer fires, `fire_timers` makes it running with a WAKE_RUN. NotRunningError if
        it is not running."""
    def pause_attempt(self, inv: Invocation) -> int:
        """Record a failed attempt whose retries ran out under on_max_attempts "pause": status
        paused (record written, retry_count kept, no timer, no wake: the asking attempt ends by
        itself), until `resume_invocation`. Returns seq. NotRunningError if it is not running."""
    def resume(self, inv: Invocation) -> int:
        """Mark a backing-off invocation running again (status only; its timer row is deleted).
        Not needed after `fire_timers`, which already does this. NotRunningError if completed."""
    def pin_deployment(self, inv: Invocation, deployment_id: str) -> int:
        """Pin `inv` to the deployment it runs on ("" for in-process handlers) for the rest of its
        life: every later write of its record (status changes, suspend, backoff, complete, signals)
        keeps it, and recovery restores it on `Invocation.deployment` (Restate's versioning rule).
        Persisted: its record is rewritten (as it is, plus the deployment) in a commit; returns seq.
        Not persisted yet: pinned in memory only, returns 0; the record its first durable point
        writes (progress, admit with persist, ...) carries it. Allowed in any unfinished status
        (running, inboxed, scheduled, suspended, backing off); NotRunningError once completed."""
    def pinned_count(self, deployment_id: str) -> int:
        """How many persisted, unfinished invocations (running, suspended, backing off, inboxed)
        are pinned to `deployment_id`."""
    def complete(
        self,
        inv: Invocation,
        entries: list[Entry],
        output: Optional[bytes],
        failure_code: int,
        failure_message: Optional[str],
        children: Optional[list[tuple[Invocation, int]]] = None,
        *,
        retention_ms: Optional[int] = None,
    ) -> tuple[int, Optional[Invocation]]:
        """One commit: the remaining entries (journal rows only if already persisted; effects
        always), the completed record with output or failure (kept for `retention_ms` after
        completion, see `purge_completed`; None: the default retention), the caller's completion
        if it has a caller, the completions of the ATTACH_INVOCATION entries waiting for it, and
        for KIND_EXCLUSIVE/KIND_WORKFLOW the hand-over of the key: the next
        inboxed invocation (if any) leaves the inbox, becomes running, and is returned.
        Returns (seq, next). Completing an invocation that is still inboxed or scheduled
        takes it out of its inbox or timer and hands nothing over. Its pending sleep timers are
        deleted. Allowed for a running, inboxed or scheduled invocation; NotRunningError for one
        that is suspended, backing off, paused or already completed (e.g. killed)."""
    def suspend(self, inv: Invocation, awaiting: list[int]) -> int:
        """The runtime drops the coroutine of `inv`, which waits for any of the entries
        `awaiting`. If none of them is completed yet: status suspended (record written),
        returns seq; a later completion makes it running again with a WAKE_RUN. If one is
        already completed (its WAKE_DELIVER is on its way), or cancel_requested is set (its
        WAKE_CANCEL is on its way), nothing changes and 0 is returned: keep the coroutine.
        NotRunningError if it is not running; ValueError if `awaiting` is empty or it was never
        persisted (nothing journaled to wait for). "Completed" means: not a pending awaitable
        entry."""
    def take_wakes(self) -> list[Wake]:
        """The wakes produced by writes since the last call, in commit order. Act on each
        once its seq is durable. Each holds a new Invocation wrapper sharing the store's state
        (compare by id, not identity)."""

    # Signals from outside the invocation. Each returns (status, seq), status one of SIGNAL_*:
    # (SIGNAL_APPLIED, its commit); (SIGNAL_ALREADY_COMPLETED, a commit whose durability makes
    # that answer durable, 0 if it is); (SIGNAL_UNKNOWN, 0, or the commit of a queued purge that
    # deleted it while that is not durable). Wait for seq before replying.
    # They never wait for the writer (safe on the event loop): an invocation that is not live
    # is answered from the invocations finished since open, else from one RocksDB point read.
    def complete_awakeable(self, inv_id: str, index: int, value: Optional[bytes], code: int,
                           message: Optional[str]) -> tuple[int, int]:
        """Resolve (value, 0, None) or reject (None, code, message) awakeable entry `index` of
        `inv_id`. Applied: the entry was a pending awakeable (completed, with its wake); or
        the invocation is started (running, suspended or backing off) and has not journaled
        entry `index` yet (index >= journal_len: a handler can hand the id out before its
        AWAKEABLE entry reaches the store): the completion is stored now (a completion row,
        which load_completions returns) and delivered when an AWAKEABLE is journaled at that
        index; an entry of another kind there drops it. Already completed: the entry was
        completed (or is not an awakeable), the index already has an early completion, the
        invocation finished, or it never started (inboxed, scheduled). Unknown: no such
        invocation (never persisted, or purged)."""
    def fire_timers(self, now_ms: int) -> int:
        """Handle every timer due at now_ms, earliest first, in one commit: a sleep completes its
        entry (b""), a retry makes its invocation running (WAKE_RUN), a scheduled send is
        admitted (WAKE_RUN or inboxed). Returns how many fired (including timers that found
        nothing left to do, e.g. a sleep of a killed invocation, whose rows are just deleted)."""
    def cancel(self, inv_id: str) -> tuple[int, int]:
        """Cooperative cancel. Inboxed/scheduled (never started): completed at once with failure
        (409, "cancelled") (WAKE_DONE; its caller gets the completion). Otherwise
        cancel_requested is set (record written) on it and, transitively, on the callees it
        awaits through CALL entries: running ones get WAKE_CANCEL, suspended, backing-off and
        paused ones become running with WAKE_RUN (the handler sees the request when replayed; a
        retry timer is dropped; a paused one gets retry_count 0, as on resume). Returns (status,
        seq) as above: applied to any unfinished invocation.

        The store knows persisted invocations only: one running in memory that never reached a
        durable point (persisted False) gives -1; persist it with progress(inv, []) and retry."""
    def kill(self, inv_id: str) -> tuple[int, int]:
        """Complete it at once with failure (409, "killed"), no compensation, and likewise its
        unfinished callees awaited through CALL entries (transitively); keys are handed over,
        callers get the completion. Running ones get WAKE_KILL; the others (paused ones too)
        WAKE_DONE; an invocation that gets a killed one's key gets WAKE_RUN. Returns (status, seq)
        as above (same persisted-only caveat as `cancel`)."""
    def pause(self, inv_id: str) -> tuple[int, int]:
        """Pause a started invocation (Restate's pause): running -> paused with a WAKE_PAUSE;
        suspended -> paused; backing off -> paused, its retry timer dropped. A paused invocation
        runs nothing until `resume_invocation`: progress, suspend, backoff and complete of its
        attempt raise NotRunningError; completions of its entries (awakeables, calls, promises,
        attaches, its sleeps, which still fire) are stored without waking it; it keeps its object
        key (later invocations of the key stay inboxed) and stays paused across restarts
        (`recover` does not return it). Only this invocation: its callees go on. Returns (status,
        seq): SIGNAL_APPLIED; SIGNAL_UNCHANGED (already paused); SIGNAL_NOT_STARTED (inboxed or
        scheduled); SIGNAL_ALREADY_COMPLETED, SIGNAL_UNKNOWN as above (same persisted-only caveat
        as `cancel`). `cancel` of a paused invocation resumes it to see the request (fresh
        attempts, as on resume); `kill` completes it (WAKE_DONE)."""
    def resume_invocation(self, inv_id: str) -> tuple[int, int]:
        """Resume it (Restate's resume): paused -> running with a WAKE_RUN and retry_count 0 (a
        fresh set of attempts); suspended -> running with a WAKE_RUN (replayed now); backing off ->
        running with a WAKE_RUN, its retry timer dropped (retried now, retry_count kept). The replay
        loads the completions stored meanwhile. Returns (status, seq): SIGNAL_APPLIED;
        SIGNAL_UNCHANGED (running: nothing to do); SIGNAL_NOT_STARTED (inboxed or scheduled);
        SIGNAL_ALREADY_COMPLETED, SIGNAL_UNKNOWN as for `pause`. Not `resume`, which is an
        attempt's own status change."""

    # Reads (GIL released).
    def load_state(self, service: str, key: str) -> tuple[list[tuple[str, bytes]], int]:
        """(rows, seq): every state entry of one object key, by name, and the commit they depend
        on. Rows as RocksDB has them (written commits; seq 0), except for a key whose state a
        queued purge deleted (`purge_completed`, `purge_invocation`: a workflow run's key) or a
        queued `overwrite_state` replaced: until the last commit that
        wrote the key's state since is durable, the rows are those written after the delete by
        the commits queued so far (none at first: nothing of the purged run), and seq is the last
        of those commits (the purge's if none). A handler's own state writes (progress, complete)
        are not held back otherwise: reads of a key with a commit not yet written must come from
        the runtime's state cache, which keeps them."""
    def load_journal(self, inv_id: str) -> list[Entry]: ...
    def load_completions(self, inv_id: str) -> list[Completion]:
        """The completions written for the awaitable entries of `inv_id`, by entry index; an index
        at or beyond the journal's end is an awakeable resolved before its entry was journaled."""
    def peek_promise(self, service: str, key: str, name: str) -> tuple[Optional[Output], int]:
        """(outcome, seq) of a workflow promise: outcome (value, 0, None) resolved, (None, code,
        message) rejected, None pending or unknown. Sees queued commits (the in-memory view), not
        only written ones: seq is the commit that wrote the row the outcome comes from (0 when
        read from RocksDB: durable)."""
    def get_invocation(self, inv_id: str) -> Optional[Invocation]:
        """A persisted, unfinished invocation: the live object (shares the store's state; use it
        for progress/complete); otherwise the record as written (a detached copy), or None."""
    def get_output(self, inv_id: str) -> Optional[Output]:
        """For a completed invocation: (output, failure_code, failure_message). Read from RocksDB
        only, like a record in `get_invocation`: a completion or a purge whose commit is queued but
        not written is not seen yet, and one that is written may not be durable yet (durable_seq
        is published after the write): wait for last_seq() after the read before answering on its
        account, a found output or an absence (a 404) alike."""

    # Recovery and timers.
    def recover(self) -> list[Invocation]:
        """Unfinished invocations that must run now: status running (in id order). Also
        rebuilds key ownership and inbox queues, the timer index (retries, sleeps, scheduled
        sends), the suspended and awaiting sets and early awakeable completions (from the
        journals and completions of unfinished invocations). Paused ones stay paused (their keys
        owned, their entries pending, their sleeps' timers kept). Suspended ones stay suspended,
        except one that awaits nothing any more or has cancel_requested: it is made running and
        returned. Call once, after open, before any admit (a second call raises ValueError).
        StorageError if RocksDB fails."""
    def next_timer_ms(self) -> Optional[int]: ...

    def purge_completed(self, now_ms: int, default_retention_ms: int, limit: int) -> int:
        """Delete up to `limit` completed invocations whose retention has run out at `now_ms`
        (completed_ms + retention <= now_ms; the retention given to `complete`, else
        `default_retention_ms`, as for those killed or cancelled inside the store): record, journal, completions and idempotency row; for a
        workflow run also the workflow key's state and promises, unless a newer run holds the
        key (its idempotency row names another invocation, or an invocation owns or waits for
        the key). Returns how many were deleted. Holds the store lock only to queue each small
        batch of deletes."""

    # Admin writes (Restate's purge and state edit). GIL released; they never wait for the writer.
    def purge_invocation(self, inv_id: str) -> tuple[int, int]:
        """Purge one completed invocation now, whatever its retention, in one commit, by the rules
        of `purge_completed` (record, journal, completions, idempotency row; a workflow run's key
        state and promises unless a newer run holds the key). Returns (SIGNAL_APPLIED, seq) when
        purged; (PURGE_NOT_COMPLETED, seq) when it exists and is not completed (nothing written; seq
        makes that answer durable); (SIGNAL_UNKNOWN, 0) for an unknown id (never persisted, e.g.
        running in memory without a durable point, like `cancel`; or already purged: then seq is
        that purge's commit while it is not durable). A completion whose commit is queued counts
        as completed. Signals and attaches forget it at once (SIGNAL_UNKNOWN; attach: not found)."""
    def state_version(self, service: str, key: str) -> str:
        """The version of the object key's state as `load_state` sees it: an opaque string (hex
        SHA-256 of its rows), the same for the same rows in any process and after restarts. An
        empty state has a version too."""
    def overwrite_state(self, service: str, key: str, rows: list[tuple[str, bytes]],
                        expected_version: Optional[str] = None) -> tuple[str, int]:
        """Replace the key's whole state by `rows` (name, value) in one commit (a name given twice:
        the last value wins); returns (the new version, seq). `load_state` sees the new rows at once.
        KeyBusyError while an exclusive or workflow invocation owns the key (running, suspended,
        backing off) or invocations are inboxed on it; also, with expected_version, for the moment
        until the commit of the invocation that last released the key is durable (its state writes
        may not be on disk yet): retry. VersionMismatchError if expected_version is given and is not
        `state_version` now. On either error nothing is written."""

    # Introspection scans (admin API, SQL). Each reads RocksDB through one iterator with the GIL
    # released: the commits written when it started (a queued commit is not seen), in key order.
    # Key order groups rows by invocation, or by service then key, but is not alphabetical: key
    # strings are length-prefixed, so a shorter service name or id sorts first ("Wf" < "Svc").
    # Invocation records are keyed by the raw id, hence in plain id order.
    def scan_invocations(self, after: str = "", limit: int = 0) -> list[InvocationRow]:
        """Invocation records in id order, starting after id `after` ("": from the first), at most
        `limit` (0: all). An unfinished invocation's journal_len is its journal's length."""
    def get_invocation_row(self, inv_id: str) -> Optional[InvocationRow]:
        """One invocation's record as `scan_invocations` gives it; None if it was never written
        (running in memory without a durable point) or is purged. Written commits only."""
    def scan_journal(self, inv_id: str = "") -> list[tuple[str, int, int, Optional[str], Optional[bytes], int, Optional[str]]]:
        """(invocation id, index, kind, name, value, code, message) of every journal entry (an
        `Entry` with its place), of one invocation if inv_id is given, else of all."""
    def scan_completions(self, inv_id: str = "") -> list[tuple[str, int, Optional[bytes], int, Optional[str]]]:
        """(invocation id, entry index, value, code, message) of every completion (a `Completion`
        with its invocation), of one invocation if inv_id is given, else of all."""
    def scan_state(self, service: str = "", key: str = "") -> list[tuple[str, str, str, bytes]]:
        """(service, key, name, value) of every state row: all, one service's (key ""), or one
        object key's. ValueError for a key without its service."""
    def scan_inbox(self) -> list[tuple[str, str, int, str]]:
        """(service, key, inbox seq, invocation id) of every inboxed invocation, each key's in
        queue order."""
    def scan_idempotency(self) -> list[tuple[str, str, str, str, str]]:
        """(service, key, handler, idempotency key, invocation id) of every idempotency row
        (a workflow run's key is "")."""
    def scan_promises(self, service: str = "", key: str = "") -> list[tuple[str, str, str, bool, Optional[bytes], int, Optional[str]]]:
        """(workflow, key, name, completed, value, code, message) of every workflow promise: all,
        one workflow's, or one workflow key's (ValueError for a key without its workflow).
        Pending: (.., False, None, 0, None); resolved: (.., True, value, 0, None); rejected:
        (.., True, None, code, message)."""
    def count_timers(self) -> int:
        """Timers pending (sleeps, retries, delayed sends), from the in-memory index (0 before
        `recover`)."""

def failpoints_enabled() -> bool:
    """Whether this build has failpoints (cargo feature `failpoints`; the dev/test build does)."""

def set_failpoint(name: str, actions: str) -> None:
    """Configure a failpoint (process-wide) with actions in the `fail` crate's syntax: "pause",
    "sleep(500)", "panic", "return", "1*off->pause", ... A thread paused at the point is released.
    Points: "commit.before_write" (a group was taken, not written yet), "commit.write_error"
    ("return": the group fails as if RocksDB's write failed), "commit.before_sync" (written,
    not synced), "commit.before_publish" (durable, durable_seq not published), "store.recover"
    ("return": recover raises StorageError). They can also be set at Store open from
    $STEAD_FAILPOINTS ("name=actions;name=actions"). ValueError in a build without failpoints,
    for an unknown name or for bad actions."""

def remove_failpoint(name: str) -> None:
    """Make a failpoint do nothing again; a thread paused at it is released. ValueError as for
    `set_failpoint`."""

def clock_offset_ms() -> int:
    """The offset in milliseconds that every reader of "now" (core_rs, runtime.ids.now_ms,
    an in-process SDK under the harness) adds to the system clock: 0 unless a time-skipping
    test harness moved it (pysdk/harness.py)."""

def set_clock_offset_ms(ms: int) -> None:
    """Set that offset, process-wide. For the time-skipping harness; nothing else sets it."""

def is_plain_json(obj: object, /) -> bool:
    """True iff `obj` survives a JSON round trip unchanged in type and value: None, an exact
    bool, int or str, a finite exact float, or an exact list / exact dict (keys exact str) of
    such values, nested at most 64 containers deep (64 nested lists: True; 65: False). Anything
    else (tuples, sets, bytes, enums including IntEnum, subclasses of str/int/list/dict, NaN,
    infinities, cycles, models, datetimes, ...) is False. Never raises; holds the GIL, no copy.

    What it is for: the runtime keeps a decoded state value in memory only when it is plain
    JSON, so that handing it out again is indistinguishable from decoding its bytes."""


def is_flat_json_list(obj: object, /) -> bool:
    """True iff `obj` is an exact list of plain scalars only (None, exact bool, int or str,
    finite exact float): plain JSON in which no item can change in place. Never raises.

    What it is for: such a list, once a handler has only appended to it, can be encoded by
    encoding the new items alone (see runtime/state_values.py)."""

def list_extends(current: object, prefix: object, /) -> bool:
    """True iff both are exact lists and `current` starts with the very objects of `prefix`
    (identity), in order. Compares pointers only; never raises."""
