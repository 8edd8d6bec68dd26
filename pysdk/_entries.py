"""Journal entry kinds and the entry tuple shared with the runtime and core_rs.

The numbers are those of proto/stead/journal.proto `EntryKind` (and the
`ENTRY_*` constants of runtime/_core.pyi); they are on disk, so they never
change meaning. Entries cross the Python/Rust boundary as plain 5-tuples,
not objects, because building and reading tuples is the cheapest thing both
sides can do on the hot path.

    (kind, name, value, failure_code, failure_message)

    GET_STATE    (1, name, value or None, 0, None)
    SET_STATE    (2, name, value, 0, None)
    CLEAR_STATE  (3, name, None, 0, None)
    CLEAR_ALL    (4, None, None, 0, None)
    STATE_KEYS   (5, None, JSON bytes of the list of names, 0, None)
    RUN          (6, step name, result bytes, 0, None)          success
                 (6, step name, None, code, message)            terminal failure

Awaitable entries are pending once journaled; their result arrives later as a
completion `(value, code, message)` for their index (value b"" for a fired
sleep; value None and code != 0 for a failure):

    SLEEP              (7, name or None, fire time: 8-byte big-endian ms, 0, None)
    CALL               (8, target label, callee invocation id utf-8, 0, None)
    AWAKEABLE          (10, None, None, 0, None)
    GET_PROMISE        (12, promise name, None, 0, None)
    COMPLETE_PROMISE   (14, name, value, 0, None) resolve | (14, name, None, code, message) reject
                       completion (b"", 0, None) accepted | (None, 409, msg) already completed
    ATTACH_INVOCATION  (18, target invocation id, None, 0, None)
                       completion: the target's result (output, 0, None) | (None, code, message)

The others carry their outcome inline or have none:

    SEND               (9, target label, callee invocation id utf-8, 0, None)
    COMPLETE_AWAKEABLE (11, awakeable id, value, 0, None) | (11, id, None, code, message)
    PEEK_PROMISE       (13, name, value or None, code, message or None)
    CANCEL             (15, None, None, 0, None)     the handler observed its cancellation
    COMBINATOR         (16, None, JSON list of entry indices in completion order, 0, None)
    CANCEL_INVOCATION  (17, target invocation id, None, 0, None)

A target label is "Service/handler" or "Object/key/handler".
"""
from __future__ import annotations

from typing import Optional

Entry = tuple[int, Optional[str], Optional[bytes], int, Optional[str]]

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

AWAITABLE = frozenset({SLEEP, CALL, AWAKEABLE, GET_PROMISE, COMPLETE_PROMISE, ATTACH_INVOCATION})

# The result of an awaitable entry: (value, failure code, failure message).
Completion = tuple[Optional[bytes], int, Optional[str]]

KIND_NAMES: dict[int, str] = {
    GET_STATE: "GET_STATE",
    SET_STATE: "SET_STATE",
    CLEAR_STATE: "CLEAR_STATE",
    CLEAR_ALL: "CLEAR_ALL",
    STATE_KEYS: "STATE_KEYS",
    RUN: "RUN",
    SLEEP: "SLEEP",
    CALL: "CALL",
    SEND: "SEND",
    AWAKEABLE: "AWAKEABLE",
    COMPLETE_AWAKEABLE: "COMPLETE_AWAKEABLE",
    GET_PROMISE: "GET_PROMISE",
    PEEK_PROMISE: "PEEK_PROMISE",
    COMPLETE_PROMISE: "COMPLETE_PROMISE",
    CANCEL: "CANCEL",
    COMBINATOR: "COMBINATOR",
    CANCEL_INVOCATION: "CANCEL_INVOCATION",
    ATTACH_INVOCATION: "ATTACH_INVOCATION",
}


def describe(kind: int, name: Optional[str]) -> str:
    """`RUN('reserve')`, `CLEAR_ALL`: how an entry is named in error messages."""
    label = KIND_NAMES.get(kind, f"kind {kind}")
    return label if name is None else f"{label}({name!r})"


def is_run_failure(entry: Entry) -> bool:
    """A RUN entry records a terminal failure iff it has no value but a code or message."""
    return entry[2] is None and (entry[3] != 0 or entry[4] is not None)
