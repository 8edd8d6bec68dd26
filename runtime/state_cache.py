"""The committed state of recently used object keys, kept in memory.

Stead's runtime is the only writer of the state table, so a write-through cache is
always coherent: an exclusive invocation's live view becomes the cached state of
its key at each of its commits, and the next invocation of that key starts from it
at once, without a RocksDB read and without waiting for the fsync (DESIGN.md: work
that is internal need not wait for durability). Responses still wait for every
commit they could have observed.

An entry may only be dropped once its last commit is written to RocksDB;
otherwise a reload from disk would miss it.
"""

from __future__ import annotations

from collections import OrderedDict

from runtime import _core


class StateCache:
    def __init__(self, store: _core.Store, max_keys: int = 100_000) -> None:
        self._store = store
        self._max = max_keys
        # (service, key) -> [state dict, seq of the last commit that changed it]
        self._entries: OrderedDict[tuple[str, str], list] = OrderedDict()

    def get(self, service: str, key: str) -> dict[str, bytes]:
        """The committed state of one key. Callers must not mutate it."""
        ident = (service, key)
        entry = self._entries.get(ident)
        if entry is not None:
            self._entries.move_to_end(ident)
            return entry[0]
        state = dict(self._store.load_state(service, key))
        self._entries[ident] = [state, 0]
        if len(self._entries) > self._max:
            self._evict()
        return state

    def put(self, service: str, key: str, state: dict[str, bytes], seq: int) -> None:
        """Record that the commit `seq` left the key's state as `state` (now owned by the cache)."""
        ident = (service, key)
        entry = self._entries.get(ident)
        if entry is None:
            self._entries[ident] = [state, seq]
            if len(self._entries) > self._max:
                self._evict()
        else:
            entry[0] = state
            entry[1] = seq
            self._entries.move_to_end(ident)

    def forget(self, service: str, key: str) -> None:
        self._entries.pop((service, key), None)

    def forget_services(self, services: set[str]) -> None:
        """Drop every written entry of these services (their rows were deleted on disk)."""
        durable = self._store.durable_seq()
        for ident in [i for i, (_, seq) in self._entries.items() if i[0] in services and seq <= durable]:
            del self._entries[ident]

    def _evict(self) -> None:
        # Evict down to 90% of the bound, oldest first, so the scan is paid once per
        # many insertions rather than on each one. Entries with unwritten commits stay.
        durable = self._store.durable_seq()
        excess = len(self._entries) - (self._max * 9) // 10
        victims = []
        for ident, (_, seq) in self._entries.items():
            if len(victims) >= excess:
                break
            if seq <= durable:
                victims.append(ident)
        for ident in victims:
            del self._entries[ident]
