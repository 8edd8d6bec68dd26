"""Decoded state values kept between the writers of a key (see StateCache).

A hot key's value is often a list that every invocation appends to (W3's cart).
Decoding it and encoding it again would cost a pass over every item on every
invocation, so the cache keeps the decoded list, with its bytes, and lends it to
the key's next writer; the handler gets that very list on `ctx.get`, appends,
and sets it. This must be indistinguishable from Restate's value semantics:

- `set` stores the value as it is at the call. `Kept.encode` runs at the `set`,
  and encodes only the appended items when it can prove that the list still
  starts with the same item objects as the bytes it holds: the items are plain
  scalars (immutable), the snapshot list holds them (so none can have been
  freed and its address reused), and `_core.list_extends` compares the
  pointers. Then the JSON is the old bytes without their `]`, a comma, and the
  new items' JSON without its `[`. In every other case the value is encoded in
  full.
- `get` returns a value that nothing else holds. A completed writer's value is
  kept for the next writer only if (`kept_after`) it is a flat list still
  equal to the bytes it was set as (pointer comparison with the snapshot of
  that `set`), and if nothing but the runtime holds it any more: not the
  handler (its frame is gone), not a module (a template set as is), not another
  name or key (reference count). Otherwise the next writer decodes the bytes.
"""

from __future__ import annotations

import sys
from typing import Any, Optional

from pysdk._machine import Machine
from pysdk._serde import json_dumps
from runtime import _core


class Kept:
    """A flat list of plain scalars equal to what `raw` decodes to; `snapshot` holds
    the same item objects in the same order (a list only the runtime holds)."""

    __slots__ = ("value", "raw", "snapshot")

    def __init__(self, value: list[Any], raw: bytes, snapshot: list[Any]) -> None:
        self.value: Optional[list[Any]] = value
        self.raw = raw
        self.snapshot: Optional[list[Any]] = snapshot

    def take(self) -> Any:
        return self.value

    def encode(self, value: Any) -> bytes:
        """The JSON of `value` as it is now (called at `set`); afterwards this tracks
        (value, its JSON) so that `kept_after` can tell whether it changed since."""
        snapshot = self.snapshot
        if snapshot is not None and value is self.value and _core.list_extends(value, snapshot):
            n = len(snapshot)
            if len(value) == n:
                return self.raw
            tail = value[n:]
            if _core.is_flat_json_list(tail) and self.raw.endswith(b"]"):
                new = json_dumps(tail)
                raw = new if n == 0 else b"".join((memoryview(self.raw)[:-1], b",", memoryview(new)[1:]))
                snapshot.extend(tail)
                self.raw = raw
                return raw
        raw = json_dumps(value)
        self.value = value
        self.raw = raw
        self.snapshot = value.copy() if _core.is_flat_json_list(value) else None
        return raw


def _count(value: object) -> int:
    return sys.getrefcount(value)


def _probe() -> int:
    probe: list[Any] = []  # held by this one local, as `kept_after` holds its candidate
    return _count(probe)


# References to an object held by one local of the caller, seen from inside `_count`.
_ONE_LOCAL = _probe()


def _largest_list(written: dict[str, tuple[Any, bytes, Any]]) -> Optional[str]:
    # A function of its own, so that no local of `kept_after` still refers to a value.
    best: Optional[str] = None
    best_len = 0
    for name, (value, raw, _) in written.items():
        if type(value) is list and len(raw) > best_len:
            best, best_len = name, len(raw)
    return best


def kept_after(machine: Machine) -> Optional[dict[str, Kept]]:
    """The decoded values a completed writer leaves for the next one: those lent to it
    that its handler never took, and, of the values it set, the largest flat list, if it
    still equals its bytes and nothing else holds it (see the module docstring). One set
    value at most: the reference count proves a list is held by nobody else, which is
    all that must hold for one value; keeping more would buy little for a hot key."""
    kept: dict[str, Kept] = machine.decoded  # type: ignore[assignment]  # lent by us: Kept
    written = machine.written
    best = _largest_list(written)
    if best is None:
        return kept or None
    value, raw, lent = written.pop(best)
    snapshot: Optional[list[Any]] = None
    if isinstance(lent, Kept) and lent.value is value and lent.raw is raw and lent.snapshot is not None:
        snapshot = lent.snapshot
        lent.value = lent.snapshot = None  # the runtime's only other reference to the list
    elif _core.is_flat_json_list(value) and json_dumps(value) == raw:  # first set of this list: rare
        snapshot = value.copy()
    if (snapshot is not None and len(value) == len(snapshot) and _core.list_extends(value, snapshot)
            and _count(value) <= _ONE_LOCAL):
        kept[best] = Kept(value, raw, snapshot)
    return kept or None
