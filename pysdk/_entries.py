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

KIND_NAMES: dict[int, str] = {
    GET_STATE: "GET_STATE",
    SET_STATE: "SET_STATE",
    CLEAR_STATE: "CLEAR_STATE",
    CLEAR_ALL: "CLEAR_ALL",
    STATE_KEYS: "STATE_KEYS",
    RUN: "RUN",
}


def describe(kind: int, name: Optional[str]) -> str:
    """`RUN('reserve')`, `CLEAR_ALL`: how an entry is named in error messages."""
    label = KIND_NAMES.get(kind, f"kind {kind}")
    return label if name is None else f"{label}({name!r})"


def is_run_failure(entry: Entry) -> bool:
    """A RUN entry records a terminal failure iff it has no value but a code or message."""
    return entry[2] is None and (entry[3] != 0 or entry[4] is not None)
