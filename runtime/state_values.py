"""Decoded state values kept between the writers of a key (see StateCache).

A hot key's value is often a list that every invocation appends to (W3's cart). The
cache keeps it decoded, with its bytes, and lends it to the key's next writer; the
handler gets the very list on `ctx.get`, appends, and sets it. Encoding it again
would cost a pass over every item on every invocation, so `Kept.encode` encodes
only the appended items when it can prove that the list still starts with the same
item objects as when it was taken and that none of them can have changed:

- the items were all plain scalars (str, int, float, bool, None: immutable);
- a shallow copy taken at `take` holds them, so none can have been freed and its
  address reused by another object: pointer equality means the same object;
- `_core.list_extends` compares the pointers, the new items are checked plain.

Then the JSON is the old bytes without their `]`, a comma, and the new items' JSON
without its `[`. In every other case the value is encoded in full.
"""

from __future__ import annotations

from typing import Any, Optional

from pysdk._machine import Machine
from pysdk._serde import json_dumps
from runtime import _core


class Kept:
    """A decoded state value equal to what `raw` decodes to; `flat`: a list of plain scalars."""

    __slots__ = ("value", "raw", "flat", "appended", "_snapshot")

    def __init__(self, value: Any, raw: bytes, flat: bool) -> None:
        self.value = value
        self.raw = raw
        self.flat = flat
        self.appended = False  # whether `encode` last encoded only appended items
        self._snapshot: Optional[list[Any]] = None

    def take(self) -> Any:
        if self.flat:
            self._snapshot = self.value.copy()
        return self.value

    def encode(self, value: Any) -> bytes:
        snapshot, self._snapshot = self._snapshot, None
        self.appended = False
        if snapshot is not None and value is self.value and _core.list_extends(value, snapshot):
            n = len(snapshot)
            if len(value) == n:
                self.appended = True
                return self.raw
            tail = value[n:]
            if _core.is_flat_json_list(tail) and self.raw.endswith(b"]"):
                self.appended = True
                new = json_dumps(tail)
                if n == 0:
                    return new
                return b"".join((memoryview(self.raw)[:-1], b",", memoryview(new)[1:]))
        return json_dumps(value)


def kept_after(machine: Machine) -> Optional[dict[str, Kept]]:
    """The decoded values a completed writer leaves for the next one: those lent to it
    that its handler never took, and of the values it set and that were serialized at
    its completion, the largest list or dict that is plain JSON. Only one: two values
    set by one handler can share nested parts, and a later handler changing one of
    them must not change the other."""
    kept: dict[str, Kept] = machine.decoded  # type: ignore[assignment]  # lent by us: Kept
    state = machine.state
    best, best_len = None, 0
    for name, (value, _) in machine.written.items():
        cls = type(value)
        if (cls is list or cls is dict) and len(state[name]) > best_len:
            best, best_len = name, len(state[name])
    if best is not None:
        value, lent = machine.written[best]
        raw = state[best]
        if isinstance(lent, Kept) and lent.appended:
            kept[best] = Kept(value, raw, True)
        elif _core.is_flat_json_list(value):
            kept[best] = Kept(value, raw, True)
        elif _core.is_plain_json(value):
            kept[best] = Kept(value, raw, False)
    return kept or None
