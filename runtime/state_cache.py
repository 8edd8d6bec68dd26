"""The committed state of recently used object keys, kept in memory.

Stead's runtime is the only writer of the state table, so a write-through cache is
always coherent: an exclusive invocation's live view becomes the cached state of
its key at each of its commits, and the next invocation of that key starts from it
at once, without a RocksDB read and without waiting for the fsync (DESIGN.md: work
that is internal need not wait for durability). Responses still wait for every
commit they could have observed.

An entry may only be dropped once its last commit is written to RocksDB;
otherwise a reload from disk would miss it. The one writer of the state table
besides handlers is retention's purge (a workflow run's key): a key whose
purge is queued loads from the store's memory (`Store.load_state`: nothing of
the purged run), with the purge's commit, which readers (`get`) then wait for
like any commit they observe. Its next writer (`lend`) is a new run of the
workflow key, admitted by a commit after the purge's and on its account (the
idempotency row it deleted): like that admission, its steps are not held back
by the purge.

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
from runtime.config import ServerConfig
from runtime.state_values import Kept


# The defaults of `stead serve --state-cache-keys/--state-cache-size`. Each cached key costs
# about 0.85 KiB of Python objects besides its values: at 100,000 keys the cache alone grew a
# 12-client soak by 10-40 MiB/h for five hours before it levelled off. 10,000 keys keep the
# hot keys of any one workload here (W1: 100, W2: 1,000) within ~10 MiB plus values.
DEFAULT_KEYS = ServerConfig.state_cache_keys
DEFAULT_BYTES = ServerConfig.state_cache_bytes


class StateCache:
    """Bounded both in keys and in bytes (the sum of the state values' sizes, plus the
    kept decoded values, counted at twice their bytes); eviction is amortized."""

    def __init__(self, store: _core.Store, max_keys: int = DEFAULT_KEYS, max_bytes: int = DEFAULT_BYTES) -> None:
        self._store = store
        self._max = max_keys
        self._max_bytes = max_bytes
        self._bytes = 0
        # (service, key) -> [state dict, seq of the last commit that changed it,
        #                    decoded values by name or None (lent out, or none kept), size,
        #                    seq of the queued purge a load depends on (see `_entry`; 0: none)]
        self._entries: OrderedDict[tuple[str, str], list] = OrderedDict()
        # Lookups (get, lend) answered from memory / loaded from the store (runtime/metrics.py).
        self.hits = 0
        self.misses = 0

    @property
    def key_count(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def _entry(self, service: str, key: str) -> list:
        ident = (service, key)
        entry = self._entries.get(ident)
        if entry is not None:
            self.hits += 1
            self._entries.move_to_end(ident)
            return entry
        self.misses += 1
        rows, seq = self._store.load_state(service, key)  # seq: a queued purge's (or a later write's)
        state = dict(rows)
        size = _size(state, None)
        # Dropping it before that commit is durable is fine: a reload gives the same.
        entry = self._entries[ident] = [state, 0, None, size, seq]
        self._grew(size)
        return entry

    def get(self, service: str, key: str) -> tuple[dict[str, bytes], int]:
        """The committed state of one key, and the commit it depends on (0: read from
        disk); a reader must not let anything leave the process before that commit is
        durable. Callers must not mutate the dict."""
        entry = self._entry(service, key)
        return entry[0], max(entry[1], entry[4])

    def peek(self, service: str, key: str) -> Optional[tuple[dict[str, bytes], int]]:
        """Like `get` for a cached key, None for one that is not cached (never reads the
        store: the admin API reads it in a worker thread instead). Callers must not mutate
        the dict."""
        entry = self._entries.get((service, key))
        return None if entry is None else (entry[0], max(entry[1], entry[4]))

    def lend(self, service: str, key: str) -> tuple[dict[str, bytes], Optional[dict[str, Kept]], int]:
        """The committed state of one key for its next writer, with the decoded values
        kept for it, which now belong to that writer (until it puts them back), and the
        commit the state depends on (see `get`; not a purge's: see the module docstring)."""
        entry = self._entry(service, key)
        decoded = entry[2]
        entry[2] = None
        return entry[0], decoded, entry[1]

    def put(self, service: str, key: str, state: dict[str, bytes], seq: int,
            decoded: Optional[dict[str, Kept]] = None) -> None:
        """Record that the commit `seq` left the key's state as `state` (now owned by the
        cache), with `decoded` values equal to what their bytes in `state` decode to."""
        ident = (service, key)
        size = _size(state, decoded)
        entry = self._entries.get(ident)
        if entry is None:
            self._entries[ident] = [state, seq, decoded or None, size, 0]
        else:
            self._bytes -= entry[3]
            entry[0] = state
            entry[1] = seq
            entry[2] = decoded or None
            entry[3] = size
            self._entries.move_to_end(ident)
        self._grew(size)

    def forget(self, service: str, key: str) -> None:
        entry = self._entries.pop((service, key), None)
        if entry is not None:
            self._bytes -= entry[3]

    def forget_if_written(self, service: str, key: str) -> None:
        """Drop the key's entry unless it holds a commit not yet written (a new run of a
        workflow key must start from what is on disk: retention may have purged it)."""
        entry = self._entries.get((service, key))
        if entry is not None and entry[1] <= self._store.durable_seq():
            self.forget(service, key)

    def forget_services(self, services: set[str]) -> None:
        """Drop every written entry of these services (their rows were deleted on disk)."""
        durable = self._store.durable_seq()
        for ident in [i for i, e in self._entries.items() if i[0] in services and e[1] <= durable]:
            self.forget(*ident)

    def _grew(self, size: int) -> None:
        self._bytes += size
        if len(self._entries) > self._max or self._bytes > self._max_bytes:
            self._evict()

    def _evict(self) -> None:
        # Evict down to 90% of the bounds, oldest first, so the scan is paid once per
        # many insertions rather than on each one. Entries with unwritten commits stay.
        durable = self._store.durable_seq()
        excess = len(self._entries) - (self._max * 9) // 10
        excess_bytes = self._bytes - (self._max_bytes * 9) // 10
        victims: list[tuple[str, str]] = []
        for ident, entry in self._entries.items():
            if len(victims) >= excess and excess_bytes <= 0:
                break
            if entry[1] <= durable:
                victims.append(ident)
                excess_bytes -= entry[3]
        for ident in victims:
            self.forget(*ident)


def _size(state: dict[str, bytes], decoded: Optional[dict[str, Kept]]) -> int:
    # What an entry holds in Python objects (measured with tracemalloc: the key's strings
    # and tuple, the ordered-dict node, the entry, the state dict: ~400 B; each value's
    # name, bytes object and dict slot: ~150 B), the values' bytes, and a decoded list at
    # about twice its JSON (item objects and pointers).
    size = 400 + 150 * len(state) + sum(map(len, state.values()))
    if decoded:
        for kept in decoded.values():
            size += 2 * len(kept.raw)
    return size
