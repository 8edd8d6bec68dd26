"""runtime._core pins an invocation to the deployment it started on (Restate's versioning rule):
`Store.pin_deployment` records it (InvocationRecord.deployment_id, field 24), every later write of
the record keeps it, and `Invocation.deployment` has it again after recovery."""

from pathlib import Path

import pytest

from runtime import _core
from tests.disk import DiskReader, Status

RUN: _core.Entry = (_core.ENTRY_RUN, "step", b"1", 0, None)
AWAKEABLE: _core.Entry = (_core.ENTRY_AWAKEABLE, None, None, 0, None)


def svc(inv_id: str) -> _core.Invocation:
    return _core.Invocation(inv_id, "Svc", "h", "", _core.KIND_SERVICE, b"{}", [], 1)


def obj(inv_id: str) -> _core.Invocation:
    return _core.Invocation(inv_id, "Obj", "h", "k", _core.KIND_EXCLUSIVE, b"{}", [], 1)


def store_at(path: Path) -> tuple[_core.Store, list[_core.Invocation]]:
    store = _core.Store(str(path), "wal")
    return store, store.recover()


def on_disk(store: _core.Store, path: Path, inv_id: str) -> tuple[Status, str]:
    """(status, deployment_id) of the raw record, once every queued commit is written."""
    store.wait_durable(store.last_seq())
    with DiskReader(path) as disk:
        rec = disk.invocation(inv_id)
    assert rec is not None, inv_id
    return rec.status, rec.deployment_id


def test_a_persisted_invocation_is_pinned_by_a_commit_and_recovered(tmp_path: Path) -> None:
    store, _ = store_at(tmp_path)
    a = svc("inv_a")
    assert a.deployment == ""
    store.progress(a, [RUN])
    assert on_disk(store, tmp_path, "inv_a") == (Status.RUNNING, "")
    last = store.last_seq()
    assert store.pin_deployment(a, "dp_1") == last + 1
    assert a.deployment == "dp_1"
    assert on_disk(store, tmp_path, "inv_a") == (Status.RUNNING, "dp_1")
    live = store.get_invocation("inv_a")
    assert live is not None and live.deployment == "dp_1"
    store.close()

    store, resumed = store_at(tmp_path)
    assert [(i.id, i.deployment) for i in resumed] == [("inv_a", "dp_1")]
    store.close()


def test_pinned_before_its_first_durable_point(tmp_path: Path) -> None:
    store, _ = store_at(tmp_path)
    b = svc("inv_b")
    assert store.admit(b) == (True, 0)
    last = store.last_seq()
    assert store.pin_deployment(b, "dp_2") == 0
    assert store.last_seq() == last and not b.persisted and b.deployment == "dp_2"
    assert store.get_invocation("inv_b") is None
    store.progress(b, [RUN])
    assert on_disk(store, tmp_path, "inv_b") == (Status.RUNNING, "dp_2")
    # An inboxed one is persisted: pinned by a commit, kept through the hand-over.
    first, second = obj("inv_1"), obj("inv_2")
    assert store.admit(first)[0] and not store.admit(second)[0]
    assert store.pin_deployment(second, "dp_3") > 0
    assert on_disk(store, tmp_path, "inv_2") == (Status.INBOXED, "dp_3")
    _, nxt = store.complete(first, [], b"1", 0, None)
    assert nxt is not None and nxt.id == "inv_2" and nxt.deployment == "dp_3"
    assert on_disk(store, tmp_path, "inv_2") == (Status.RUNNING, "dp_3")
    store.close()

    store, resumed = store_at(tmp_path)
    assert [(i.id, i.deployment) for i in resumed] == [("inv_2", "dp_3"), ("inv_b", "dp_2")]
    store.close()


def test_suspend_backoff_and_complete_keep_the_pin(tmp_path: Path) -> None:
    store, _ = store_at(tmp_path)
    a = svc("inv_a")
    store.progress(a, [AWAKEABLE])
    store.pin_deployment(a, "dp_1")
    assert store.suspend(a, [0]) > 0
    assert on_disk(store, tmp_path, "inv_a") == (Status.SUSPENDED, "dp_1")
    store.close()

    # Recovered suspended: the store's live object is pinned; its wake-up keeps it.
    store, resumed = store_at(tmp_path)
    assert resumed == []
    a2 = store.get_invocation("inv_a")
    assert a2 is not None and a2.status == _core.STATUS_SUSPENDED and a2.deployment == "dp_1"
    store.complete_awakeable("inv_a", 0, b"v", 0, None)
    [wake] = store.take_wakes()
    assert wake[0] == _core.WAKE_RUN and wake[1].deployment == "dp_1"
    assert on_disk(store, tmp_path, "inv_a") == (Status.RUNNING, "dp_1")
    store.backoff(a2, 1, 5_000)
    assert on_disk(store, tmp_path, "inv_a") == (Status.BACKING_OFF, "dp_1")
    assert store.fire_timers(5_000) == 1
    [wake] = store.take_wakes()
    assert wake[1].deployment == "dp_1"
    assert on_disk(store, tmp_path, "inv_a") == (Status.RUNNING, "dp_1")
    store.complete(a2, [], b"out", 0, None, retention_ms=60_000)
    assert on_disk(store, tmp_path, "inv_a") == (Status.COMPLETED, "dp_1")
    with pytest.raises(_core.NotRunningError):
        store.pin_deployment(a2, "dp_9")
    assert a2.deployment == "dp_1"
    done = store.get_invocation("inv_a")
    assert done is not None and done.deployment == "dp_1"  # built from the completed record
    store.close()
