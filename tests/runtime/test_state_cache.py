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


def test_the_size_it_counts_is_about_the_memory_it_holds() -> None:
    """The byte bound is a memory bound only if an entry's counted size is about what its
    objects take (it once counted ~160 B for entries holding ~500)."""
    import tracemalloc

    class Store:  # fresh objects per key, as the real store's load_state gives
        def load_state(self, service: str, key: str) -> tuple[list[tuple[str, bytes]], int]:
            return [("total".join(["", ""]) + "total", b"%d" % len(key))], 0

        def durable_seq(self) -> int:
            return 1 << 60

    cache = StateCache(Store())  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(5000):
            cache.get("Counter", f"key-{i:06d}")
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0.6 < cache.size_bytes / held < 1.6, (cache.size_bytes, held)
