"""Micro-benchmarks of runtime._core through the real extension and real RocksDB.

Run with bench/micro/run (CI's pytest never collects bench/: testpaths and --benchmark-skip).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from runtime import _core
from runtime.ids import new_invocation_id, now_ms

pytestmark = pytest.mark.bench

_keys = itertools.count()


def fresh_key(prefix: str = "k") -> str:
    return f"{prefix}{next(_keys)}"


def make_inv(key: str, kind: int = _core.KIND_EXCLUSIVE, handler: str = "add") -> _core.Invocation:
    """Arguments as runtime/invoker.py builds them for an ingress call."""
    return _core.Invocation(new_invocation_id(), "Cart", handler, key, kind,
                            b'{"item":"apple","qty":1}', [("content-type", "application/json")],
                            now_ms())


def open_store(path: Path, durability: str) -> _core.Store:
    store = _core.Store(os.fspath(path), durability)
    assert store.recover() == []
    return store


@pytest.fixture(params=["sync", "wal"])
def durable_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_core.Store]:
    store = open_store(tmp_path / f"data-{request.param}", request.param)
    yield store
    store.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[_core.Store]:
    """For reads and admission: durability does not matter for what is measured."""
    store = open_store(tmp_path / "data", "sync")
    yield store
    store.close()


G, S = _core.ENTRY_GET_STATE, _core.ENTRY_SET_STATE
ROUNDS = 300


def _complete_args(store: _core.Store) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """A free-key exclusive invocation, admitted, with a GET+SET pair; the writer idle."""
    store.wait_durable(store.last_seq())
    inv = make_inv(fresh_key("c"))
    assert store.admit(inv) == (True, 0)
    entries = [(G, "count", b"1", 0, None), (S, "count", b"2", 0, None)]
    return (inv, entries, b"2", 0, None), {}


def test_complete_submit(benchmark: Any, durable_store: _core.Store) -> None:
    """Cost of queueing the commit (the caller's share), not waiting for it."""
    store = durable_store
    last: list[Any] = []

    def submit(inv: _core.Invocation, *rest: Any) -> int:
        seq, nxt = store.complete(inv, *rest)
        last[:] = [inv, seq, nxt]
        return seq

    benchmark.pedantic(submit, setup=lambda: _complete_args(store), rounds=ROUNDS)
    inv, seq, nxt = last
    assert nxt is None and seq == store.last_seq()
    assert store.wait_durable(seq) >= seq
    assert store.get_output(inv.id) == (b"2", 0, None)
    assert store.load_state("Cart", inv.key) == ([("count", b"2")], 0)


def test_complete_durable(benchmark: Any, durable_store: _core.Store) -> None:
    """Submit + wait_durable: the round trip a response waits for."""
    store = durable_store
    last: list[Any] = []

    def commit(inv: _core.Invocation, *rest: Any) -> int:
        seq, _ = store.complete(inv, *rest)
        last[:] = [inv, seq]
        return store.wait_durable(seq)

    groups = store.groups_written()
    benchmark.pedantic(commit, setup=lambda: _complete_args(store), rounds=ROUNDS)
    inv, seq = last
    assert store.durable_seq() >= seq
    assert store.groups_written() - groups >= ROUNDS  # one group per round: nothing batched
    assert store.get_output(inv.id) == (b"2", 0, None)
    assert store.load_state("Cart", inv.key) == ([("count", b"2")], 0)


def test_admit_free_key(benchmark: Any, store: _core.Store) -> None:
    seq0 = store.last_seq()
    result = benchmark.pedantic(store.admit, setup=lambda: ((make_inv(fresh_key("f")),), {}),
                                rounds=ROUNDS * 3)
    assert result == (True, 0)
    assert store.last_seq() == seq0  # nothing written


def test_admit_busy_key(benchmark: Any, store: _core.Store) -> None:
    owner = make_inv("busy")
    assert store.admit(owner) == (True, 0)
    queued: list[_core.Invocation] = []

    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        store.wait_durable(store.last_seq())
        queued.append(make_inv("busy"))
        return (queued[-1],), {}

    run_now, seq = benchmark.pedantic(store.admit, setup=setup, rounds=ROUNDS)
    assert not run_now and seq == store.last_seq()
    store.wait_durable(seq)
    # Completing the owner hands the key to the first inboxed invocation, in order.
    _, nxt = store.complete(owner, [], b"", 0, None)
    assert nxt is not None and nxt.id == queued[0].id and nxt.status == _core.STATUS_RUNNING


@pytest.mark.parametrize("n", [1, 10, 100])
def test_load_state(benchmark: Any, store: _core.Store, n: int) -> None:
    key = fresh_key("s")
    inv = make_inv(key)
    assert store.admit(inv) == (True, 0)
    written = [(f"field{i:03d}", bytes([65 + i % 26]) * 100) for i in range(n)]
    seq, _ = store.complete(inv, [(S, k, v, 0, None) for k, v in written], b"", 0, None)
    store.wait_durable(seq)
    loaded = benchmark(store.load_state, "Cart", key)
    assert sorted(loaded[0]) == written and loaded[1] == 0


def test_load_journal(benchmark: Any, store: _core.Store) -> None:
    inv = make_inv(fresh_key("j"))
    assert store.admit(inv) == (True, 0)
    entries: list[_core.Entry] = [(_core.ENTRY_RUN, f"step{i}", b"r" * 50, 0, None) for i in range(10)]
    store.wait_durable(store.progress(inv, entries))
    assert inv.journal_len == 10
    loaded = benchmark(store.load_journal, inv.id)
    assert loaded == entries


def test_invocation_new(benchmark: Any) -> None:
    args = (new_invocation_id(), "Cart", "add", "k", _core.KIND_EXCLUSIVE,
            b'{"item":"apple","qty":1}', [("content-type", "application/json")], now_ms())
    inv = benchmark(_core.Invocation, *args)
    assert (inv.service, inv.handler, inv.key, inv.kind) == ("Cart", "add", "k", _core.KIND_EXCLUSIVE)
    assert inv.status == 0 and not inv.persisted and inv.id.startswith("inv_")
