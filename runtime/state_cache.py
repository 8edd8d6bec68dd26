"""The committed state of recently used object keys, kept in memory.

Stead's runtime is the only writer of the state table, so a write-through cache is
always coherent: an exclusive invocation's live view becomes the cached state of
its key at each of its commits, and the next invocation of that key starts from it
at once, without a RocksDB read and without waiting for the fsync (DESIGN.md: work
that is internal need not wait for durability). Responses still wait for every
commit they could have observed.

An entry may only be dropped once its last commit is written to RocksDB;
otherwise a reload from disk would miss it.

Besides the bytes, an entry can hold decoded values (default JSON serde) of some
of its state, so that an exclusive handler of a hot key does not decode a large
value that the previous invocation has just encoded. Such a value is *lent* to
the next writer of the key (`lend`), which hands it to its handler on `get`, and
comes back only with that writer's completion: a writer that fails, suspends or
is killed takes its decoded values with it, and the next one decodes the bytes.
The runtime puts back only values it knows are equal to what their bytes decode
to: plain JSON (`_core.is_plain_json`), never mutated after they were written
(see `Machine.written` and runtime/state_values.py, which also encodes a list
that was only appended to by encoding the new items). Readers (shared handlers)
always decode the bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

from runtime import _core
from runtime.state_values import Kept


class StateCache:
    def __init__(self, store: _core.Store, max_keys: int = 100_000) -> None:
        self._store = store
        self._max = max_keys
        # (service, key) -> [state dict, seq of the last commit that changed it,
        #                    decoded values by name or None (lent out, or none kept)]
        self._entries: OrderedDict[tuple[str, str], list] = OrderedDict()

    def _entry(self, service: str, key: str) -> list:
        ident = (service, key)
        entry = self._entries.get(ident)
        if entry is not None:
            self._entries.move_to_end(ident)
            return entry
        entry = self._entries[ident] = [dict(self._store.load_state(service, key)), 0, None]
        if len(self._entries) > self._max:
            self._evict()
        return entry

    def get(self, service: str, key: str) -> dict[str, bytes]:
        """The committed state of one key. Callers must not mutate it."""
        state: dict[str, bytes] = self._entry(service, key)[0]
        return state

    def lend(self, service: str, key: str) -> tuple[dict[str, bytes], Optional[dict[str, Kept]]]:
        """The committed state of one key for its next writer, with the decoded values
        kept for it, which now belong to that writer (until it puts them back)."""
        entry = self._entry(service, key)
        decoded = entry[2]
        entry[2] = None
        return entry[0], decoded

    def put(self, service: str, key: str, state: dict[str, bytes], seq: int,
            decoded: Optional[dict[str, Kept]] = None) -> None:
        """Record that the commit `seq` left the key's state as `state` (now owned by the
        cache), with `decoded` values equal to what their bytes in `state` decode to."""
        ident = (service, key)
        entry = self._entries.get(ident)
        if entry is None:
            self._entries[ident] = [state, seq, decoded or None]
            if len(self._entries) > self._max:
                self._evict()
        else:
            entry[0] = state
            entry[1] = seq
            entry[2] = decoded or None
            self._entries.move_to_end(ident)

    def forget(self, service: str, key: str) -> None:
        self._entries.pop((service, key), None)

    def forget_services(self, services: set[str]) -> None:
        """Drop every written entry of these services (their rows were deleted on disk)."""
        durable = self._store.durable_seq()
        for ident in [i for i, (_, seq, _) in self._entries.items() if i[0] in services and seq <= durable]:
            del self._entries[ident]

    def _evict(self) -> None:
        # Evict down to 90% of the bound, oldest first, so the scan is paid once per
        # many insertions rather than on each one. Entries with unwritten commits stay.
        durable = self._store.durable_seq()
        excess = len(self._entries) - (self._max * 9) // 10
        victims: list[tuple[str, str]] = []
        for ident, (_, seq, _) in self._entries.items():
            if len(victims) >= excess:
                break
            if seq <= durable:
                victims.append(ident)
        for ident in victims:
            del self._entries[ident]
