"""Prometheus metrics (runtime/metrics.py) after a known workload: counters per
service and handler, the commit histograms, gauges computed at scrape time.

In-process (a real store, Commits and Invoker on the test's loop, as runtime/server.py
wires them) through `render`, and over HTTP from a real `stead serve` on the admin
port's GET /metrics."""

from __future__ import annotations

import asyncio
import platform
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Optional

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pysdk import Context, ObjectContext, Service, TerminalError, VirtualObject, app
from runtime import _core
from runtime import metrics as metrics_module
from runtime.commits import Commits
from runtime.invoker import Invoker
from runtime.metrics import Metrics, render
from runtime.queues import Queues
from runtime.state_cache import StateCache
from tests.conftest import wait_until

counter = VirtualObject("Counter")
jobs = Service("Jobs")
_flaky_failures = {"left": 0}
_hold: dict[str, asyncio.Event] = {}


@counter.handler()
async def add(ctx: ObjectContext, n: int) -> int:
    total = (await ctx.get("total") or 0) + n
    ctx.set("total", total)
    return total


@jobs.handler()
async def fail(ctx: Context) -> str:
    raise TerminalError("no", status_code=422)


@jobs.handler()
async def flaky(ctx: Context) -> str:
    if _flaky_failures["left"] > 0:
        _flaky_failures["left"] -= 1
        raise RuntimeError("transient")
    return "ok"


@jobs.handler()
async def hold(ctx: Context) -> str:
    await _hold["gate"].wait()
    return "released"


APP = app([counter, jobs])


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(scrape: dict, name: str, **labels: str) -> Optional[float]:
    return scrape.get((name, tuple(sorted(labels.items()))))


def scrape(metrics: Metrics) -> dict:
    body, content_type = render(metrics)
    assert content_type.startswith("text/plain; version=0.0.4")
    return samples(body.decode())


async def _with_invoker(path: Path, body: Any) -> None:
    loop = asyncio.get_running_loop()
    store = _core.Store(str(path), "sync")
    store.recover()
    metrics = Metrics()
    commits = Commits(store, loop, metrics=metrics)
    invoker = Invoker(store, APP, commits, suspend_after_s=60.0, metrics=metrics)
    metrics.watch(invoker)
    timers = asyncio.create_task(invoker.timer_loop())
    try:
        await body(invoker, metrics)
    finally:
        timers.cancel()
        await invoker.close(1.0)
        commits.close()
        store.close()


async def _call(invoker: Invoker, service: str, handler: str, key: str, arg: bytes) -> tuple:
    spec = APP.lookup(service, handler)
    assert spec is not None
    inv = invoker.new_invocation(spec, key, arg, [])
    return await invoker.call(spec, inv, spec.parse_input(arg))


def test_counters_and_histograms_after_a_known_workload(tmp_path: Path) -> None:
    n = 5

    async def body(invoker: Invoker, metrics: Metrics) -> None:
        before = scrape(metrics)
        assert value(before, "stead_invocations_started_total", service="Counter", handler="add") is None
        for i in range(n):
            assert (await _call(invoker, "Counter", "add", "k", b"1"))[0] == str(i + 1).encode()
        assert (await _call(invoker, "Jobs", "fail", "", b""))[1] == 422
        _flaky_failures["left"] = 1
        assert (await _call(invoker, "Jobs", "flaky", "", b""))[0] == b'"ok"'

        m = scrape(metrics)
        add = {"service": "Counter", "handler": "add"}
        assert value(m, "stead_invocations_started_total", **add) == n
        assert value(m, "stead_invocation_attempts_total", **add) == n
        assert value(m, "stead_invocations_completed_total", **add, outcome="succeeded") == n
        assert value(m, "stead_invocations_completed_total", **add, outcome="failed") == 0
        assert value(m, "stead_invocation_duration_seconds_count", **add) == n
        assert value(m, "stead_invocation_duration_seconds_bucket", **add, le="+Inf") == n
        assert 0 < value(m, "stead_invocation_duration_seconds_sum", **add) < 30  # type: ignore[operator]

        failing = {"service": "Jobs", "handler": "fail"}
        assert value(m, "stead_invocations_started_total", **failing) == 1
        assert value(m, "stead_invocations_completed_total", **failing, outcome="failed") == 1
        assert value(m, "stead_invocations_completed_total", **failing, outcome="succeeded") == 0

        flaky_ = {"service": "Jobs", "handler": "flaky"}
        assert value(m, "stead_invocations_started_total", **flaky_) == 1  # its retry is no new start
        assert value(m, "stead_invocation_attempts_total", **flaky_) == 2
        assert value(m, "stead_invocation_retries_total", **flaky_) == 1
        assert value(m, "stead_invocations_completed_total", **flaky_, outcome="succeeded") == 1

        # Every exclusive call committed and waited: groups were written and made durable.
        assert value(m, "stead_commit_groups_total")
        batches = value(m, "stead_commit_batch_size_count")
        assert batches and batches >= 1
        assert value(m, "stead_commit_batch_size_sum") >= n  # type: ignore[operator]
        assert value(m, "stead_commit_durable_wait_seconds_count")
        # One key: loaded from the store once, then found in the cache.
        assert value(m, "stead_state_cache_misses_total") == 1
        assert value(m, "stead_state_cache_hits_total") == n - 1
        assert value(m, "stead_state_cache_keys") == 1
        assert value(m, "stead_invocations", status="running") == 0
        # RocksDB's memory, from its properties: the memtables hold what was written.
        assert value(m, "stead_rocksdb_memory_bytes", kind="memtables") > 0  # type: ignore[operator]
        for kind in ("table_readers", "block_cache", "block_cache_pinned"):
            assert value(m, "stead_rocksdb_memory_bytes", kind=kind) is not None

        # A second server's metrics (another registry) start from nothing.
        other = scrape(Metrics())
        assert value(other, "stead_invocations_started_total", **add) is None

    asyncio.run(_with_invoker(tmp_path / "data", body))


def test_running_gauge_counts_attempts_in_memory_at_scrape_time(tmp_path: Path) -> None:
    async def body(invoker: Invoker, metrics: Metrics) -> None:
        _hold["gate"] = asyncio.Event()
        held = [asyncio.create_task(_call(invoker, "Jobs", "hold", "", b"")) for _ in range(3)]
        while len(invoker.live) < 3:
            await asyncio.sleep(0.001)
        assert value(scrape(metrics), "stead_invocations", status="running") == 3
        _hold["gate"].set()
        assert [r[0] for r in await asyncio.gather(*held)] == [b'"released"'] * 3
        m = scrape(metrics)
        assert value(m, "stead_invocations", status="running") == 0
        assert value(m, "stead_invocations_completed_total", service="Jobs", handler="hold",
                     outcome="succeeded") == 3

    asyncio.run(_with_invoker(tmp_path / "data", body))


def test_statuses_and_timers_from_the_cores_scans(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real core's scans: a delayed send is scheduled, a failing handler backs off, and
    both have a timer; an owner holding a key has a call inboxed behind it."""
    async def body(invoker: Invoker, metrics: Metrics) -> None:
        if not hasattr(invoker.store, "scan_invocations"):
            pytest.fail("this core has no Store.scan_invocations")
        spec = APP.lookup("Jobs", "flaky")
        assert spec is not None
        await invoker.send(spec, invoker.new_invocation(spec, "", b"", []), None, 3_600_000)
        _flaky_failures["left"] = 1_000_000
        failing = asyncio.create_task(_call(invoker, "Jobs", "flaky", "", b""))
        while not metrics.handler("Jobs", "flaky").retries:
            await asyncio.sleep(0.005)

        monkeypatch.setattr(metrics_module, "STORE_SCAN_INTERVAL_S", 0.0)  # a new count at every scrape

        def counted() -> Optional[dict]:
            m = scrape(metrics)
            return m if value(m, "stead_invocations", status="backing-off") else None

        m = await asyncio.to_thread(wait_until, counted, 10, "a count with the backing-off invocation")
        assert value(m, "stead_invocations", status="scheduled") == 1
        assert value(m, "stead_invocations", status="backing-off") == 1
        assert value(m, "stead_invocations", status="suspended") == 0
        assert value(m, "stead_invocations", status="inboxed") == 0
        assert value(m, "stead_inbox_depth") == 0
        assert value(m, "stead_timers_pending") == 2  # the delayed send's and the retry's
        failing.cancel()
        _flaky_failures["left"] = 0

    asyncio.run(_with_invoker(tmp_path / "data", body))


COLUMNS = ("id", "service", "handler", "key", "kind", "status", "retry_count")


class _ScanningStore:
    """A store offering the core's scans (`scan_invocations(after, limit)`, `scan_inbox`,
    `count_timers`) with rows of the shape runtime/_core.pyi documents; counts its scans."""

    def __init__(self, statuses: list[int], inboxed: int, timers: int) -> None:
        self.rows = [(f"inv_{i:04d}", "S", "h", "", _core.KIND_SERVICE, s, 0) for i, s in enumerate(statuses)]
        self.inbox = [("S", "k", i, f"inv_{i}") for i in range(inboxed)]
        self.timers = timers
        self.scans = 0
        self.pages: list[tuple[str, int]] = []

    def groups_written(self) -> int:
        return 7

    def scan_invocations(self, after: str = "", limit: int = 0) -> list[tuple]:
        if not after:
            self.scans += 1
        self.pages.append((after, limit))
        rows = [r for r in self.rows if r[0] > after]
        return rows[:limit] if limit else rows

    def scan_inbox(self) -> list[tuple]:
        return self.inbox

    def count_timers(self) -> int:
        return self.timers


def test_statuses_inbox_and_timers_come_from_the_stores_scans_when_it_has_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_core, "INVOCATION_COLUMNS", COLUMNS, raising=False)
    monkeypatch.setattr(metrics_module, "SCAN_PAGE", 4)
    statuses = ([_core.STATUS_SUSPENDED] * 2 + [_core.STATUS_BACKING_OFF] * 3 + [_core.STATUS_SCHEDULED]
                + [_core.STATUS_INBOXED] * 4 + [_core.STATUS_COMPLETED] * 5 + [_core.STATUS_RUNNING])
    store = _ScanningStore(statuses, inboxed=4, timers=6)
    cache = StateCache(store)  # type: ignore[arg-type]
    metrics = Metrics()
    metrics.watch(SimpleNamespace(store=store, live={"inv_x": object()}, cache=cache,  # type: ignore[arg-type]
                                  queues=Queues(app([]))))
    m = scrape(metrics)  # starts the first count, in a thread of its own
    assert value(m, "stead_invocations", status="running") == 1  # attempts in memory, not the scan's
    assert value(m, "stead_timers_pending") == 6  # the core's in-memory count: no scan
    assert value(m, "stead_commit_groups_total") == 7

    def counted() -> Optional[dict]:
        m = scrape(metrics)
        return m if value(m, "stead_inbox_depth") is not None else None

    m = wait_until(counted, 10, "the first count of the store")
    assert value(m, "stead_invocations", status="running") == 1
    assert value(m, "stead_invocations", status="suspended") == 2
    assert value(m, "stead_invocations", status="backing-off") == 3
    assert value(m, "stead_invocations", status="scheduled") == 1
    assert value(m, "stead_invocations", status="inboxed") == 4
    assert value(m, "stead_inbox_depth") == 4
    assert store.pages == [("", 4), ("inv_0003", 4), ("inv_0007", 4), ("inv_0011", 4), ("inv_0015", 4)]
    scrape(metrics)
    assert store.scans == 1, "a scan reads every record: it is not repeated at every scrape"


def test_without_the_stores_scans_only_what_memory_knows_is_reported(tmp_path: Path) -> None:
    store = _core.Store(str(tmp_path / "data"), "wal")
    try:
        store.recover()
        metrics = Metrics()
        metrics.watch(SimpleNamespace(store=store, live={}, cache=StateCache(store),  # type: ignore[arg-type]
                                      queues=Queues(app([]))))
        m = scrape(metrics)
        assert value(m, "stead_invocations", status="running") == 0
        if not hasattr(store, "scan_invocations"):
            assert value(m, "stead_invocations", status="suspended") is None  # unknown, not 0
        if not hasattr(store, "count_timers"):
            assert value(m, "stead_timers_pending") is None
        else:
            assert value(m, "stead_timers_pending") == 0
    finally:
        store.close()


def test_metrics_over_http_after_a_known_workload(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server().start()
    n = 4
    for i in range(n):
        resp = server.post("/Cart/m/add", f"item{i}")
        assert resp.status_code == 200, resp.text
    assert server.post("/Flaky/terminal", "nope").status_code == 422
    resp = server.admin("GET", "/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    m = samples(resp.text)
    add = {"service": "Cart", "handler": "add"}
    assert value(m, "stead_invocations_started_total", **add) == n
    assert value(m, "stead_invocations_completed_total", **add, outcome="succeeded") == n
    assert value(m, "stead_invocation_duration_seconds_count", **add) == n
    terminal = {"service": "Flaky", "handler": "terminal"}
    assert value(m, "stead_invocations_completed_total", **terminal, outcome="failed") == 1
    assert value(m, "stead_commit_groups_total")
    assert value(m, "stead_rocksdb_memory_bytes", kind="memtables") > 0  # type: ignore[operator]
    assert value(m, "stead_invocations", status="running") == 0
    if platform.libc_ver()[0] == "glibc":  # glibc's own account of its heap (mallinfo2)
        in_use, held = value(m, "stead_malloc_bytes", kind="in_use"), value(m, "stead_malloc_bytes", kind="free_held")
        assert in_use is not None and held is not None and in_use > 1 << 20 and held >= 0
        assert value(m, "stead_malloc_bytes", kind="mmapped") is not None


def test_the_state_cache_is_bounded_as_configured(make_server) -> None:  # type: ignore[no-untyped-def]
    """`stead serve --state-cache-keys N`: at most N keys' state stays in memory, and an
    evicted key's state is read back from the store, whole."""
    server = make_server(extra_args=["--state-cache-keys", "3"]).start()
    for i in range(10):
        assert server.post(f"/Cart/k{i}/add", "a").json() == 1
    m = samples(server.admin("GET", "/metrics").text)
    assert 1 <= value(m, "stead_state_cache_keys") <= 3  # type: ignore[operator]
    for i in range(10):  # evicted or not, each key's state is what was written
        assert server.post(f"/Cart/k{i}/add", "b").json() == 2
    m = samples(server.admin("GET", "/metrics").text)
    assert value(m, "stead_state_cache_misses_total") >= 7  # type: ignore[operator]
    assert value(m, "stead_state_cache_keys") <= 3  # type: ignore[operator]
