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


def test_eviction_bounds_the_bytes_held(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = _core.Store(str(tmp_path / "data"), "wal")
    try:
        store.recover()
        cache = StateCache(store, max_keys=1000, max_bytes=100_000)
        big = b"x" * 10_000
        for i in range(50):
            cache.put("Cart", f"k{i}", {"items": big}, 0)
        assert cache._bytes <= 100_000
        assert len(cache._entries) < 50
        assert ("Cart", "k49") in cache._entries  # the newest stay
        for ident in list(cache._entries):
            cache.forget(*ident)
        assert cache._bytes == 0
    finally:
        store.close()
