"""The state cache over a real store: bounded, and never drops a key whose commit is unwritten."""

from runtime import _core
from runtime.state_cache import StateCache


def test_eviction_keeps_keys_with_unwritten_commits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = _core.Store(str(tmp_path / "data"), "wal")
    try:
        store.recover()
        cache = StateCache(store, max_keys=10)
        unwritten = store.durable_seq() + 1_000_000  # a seq the writer has not reached
        cache.put("Cart", "pending", {"items": b"[1]"}, unwritten)
        for i in range(30):
            cache.get("Cart", f"k{i}")
        assert len(cache._entries) <= 10
        assert ("Cart", "pending") in cache._entries  # oldest, but its commit is not written
        assert cache.get("Cart", "pending") == ({"items": b"[1]"}, unwritten)
        assert ("Cart", "k0") not in cache._entries  # oldest written entries went first
    finally:
        store.close()
