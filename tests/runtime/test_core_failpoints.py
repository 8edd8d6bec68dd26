"""runtime._core's failure paths as Python sees them: failpoints, a failed or panicking
writer (StorageError, sticky), a failed recovery, NotRunningError, signal answers."""

import threading
from collections.abc import Iterator

import pytest

from runtime import _core

pytestmark = pytest.mark.skipif(not _core.failpoints_enabled(), reason="extension built without failpoints")

RUN: _core.Entry = (_core.ENTRY_RUN, "step", b"1", 0, None)
POINTS = ("commit.before_write", "commit.write_error", "commit.before_sync", "commit.before_publish", "store.recover")


@pytest.fixture(autouse=True)
def clear_points() -> Iterator[None]:
    yield
    for name in POINTS:  # process-wide: never leak into other tests
        _core.remove_failpoint(name)


def svc(inv_id: str) -> _core.Invocation:
    return _core.Invocation(inv_id, "Svc", "h", "", _core.KIND_SERVICE, b"{}", [], 1)


def store_at(path: object) -> _core.Store:
    store = _core.Store(str(path), "wal")
    store.recover()
    return store


def test_bad_failpoints_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown failpoint"):
        _core.set_failpoint("commit.nope", "pause")
    with pytest.raises(ValueError, match="bad actions"):
        _core.set_failpoint("commit.before_write", "bogus((")


def test_pause_is_released_from_another_thread(tmp_path: object) -> None:
    store = store_at(tmp_path)
    _core.set_failpoint("commit.before_publish", "pause")
    seq = store.progress(svc("inv_a"), [RUN])
    done: list[int] = []
    waiter = threading.Thread(target=lambda: done.append(store.wait_durable(seq)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and store.durable_seq() < seq
    _core.remove_failpoint("commit.before_publish")
    waiter.join(10)
    assert done == [seq]
    store.close()


def test_a_panicking_writer_fails_for_good(tmp_path: object) -> None:
    store = store_at(tmp_path)
    _core.set_failpoint("commit.before_write", "panic(boom)")
    seq = store.progress(svc("inv_a"), [RUN])
    with pytest.raises(_core.StorageError, match="panicked: boom"):
        store.wait_durable(seq)
    with pytest.raises(_core.StorageError, match="boom"):
        store.drain_notify()
    with pytest.raises(_core.StorageError, match="boom"):
        store.progress(svc("inv_b"), [RUN])
    with pytest.raises(_core.StorageError):
        store.close()


def test_a_failed_recovery_is_a_storage_error(tmp_path: object) -> None:
    store_at(tmp_path).close()
    store = _core.Store(str(tmp_path), "wal")
    _core.set_failpoint("store.recover", "return")
    with pytest.raises(_core.StorageError, match="injected I/O error"):
        store.recover()
    store.close()


def test_only_a_running_attempt_writes_and_signals_tell_their_commit(tmp_path: object) -> None:
    store = store_at(tmp_path)
    inv = svc("inv_a")
    store.progress(inv, [(_core.ENTRY_AWAKEABLE, None, None, 0, None)])
    assert store.suspend(inv, [0]) > 0
    with pytest.raises(_core.NotRunningError, match="suspended"):
        store.progress(inv, [RUN])
    assert issubclass(_core.NotRunningError, ValueError)
    # An awakeable not journaled yet is kept (applied); a second completion is not.
    status, seq = store.complete_awakeable("inv_a", 1, b"1", 0, None)
    assert (status, seq) == (_core.SIGNAL_APPLIED, store.last_seq())
    assert store.complete_awakeable("inv_a", 1, b"2", 0, None) == (_core.SIGNAL_ALREADY_COMPLETED, seq)
    assert store.kill("inv_nope") == (_core.SIGNAL_UNKNOWN, 0)
    status, killed = store.kill("inv_a")
    assert status == _core.SIGNAL_APPLIED
    assert store.cancel("inv_a") == (_core.SIGNAL_ALREADY_COMPLETED, killed)
    store.close()
