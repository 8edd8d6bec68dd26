"""Prometheus metrics of one `stead serve` process (`GET /metrics` on the admin port).

Each server has its own `CollectorRegistry` (not prometheus_client's global one), so
servers built in one process (tests) do not share counters.

The hot paths (the invoker per invocation, Commits per durability notification) only
add to plain Python ints and bucket lists: everything runs on the event loop thread,
so they need no lock, and an increment costs a few tens of nanoseconds where a
prometheus_client child (a mutex per increment, a Python loop per observation) costs
about a microsecond: W1's whole budget is ~400 us. A collector turns them into metric
families when the registry is scraped; gauges (statuses, inbox, timers, the state
cache) are computed at scrape time from what the invoker and the store know.

What each metric measures:

  stead_invocations_started_total{service,handler}
      invocations whose first attempt started in this process (nothing journaled, no
      retry yet); one re-run after a crash before its first durable point counts again
  stead_invocation_attempts_total{service,handler}
      attempts started: first runs, retries, resumptions after suspension or recovery
  stead_invocations_queued_total{service,handler}
      attempts that waited in the queue of a concurrency or rate limit (runtime/queues.py)
  stead_invocation_retries_total{service,handler}
      attempts that failed with a retryable error and were scheduled for a retry
  stead_invocations_completed_total{service,handler,outcome}
      completions made durable: outcome "succeeded", "failed" (terminal error, retries
      exhausted, handler gone, input unreadable), "killed" (killed or cancelled in the
      store while running, or before it started)
  stead_invocation_duration_seconds{service,handler}
      from the start of the attempt that completed the invocation (first run, retry or
      resumption) to its completion being durable; earlier attempts, backoff and time
      inboxed or suspended are not included
  stead_commit_durable_wait_seconds
      per wake-up of the event loop by the commit writer: the longest a waiter resolved
      by it had waited for its commit to become durable. Runtime code waits right after
      queueing a commit, so this is the commit latency (queued -> written and, in
      `sync` mode, fsynced -> published -> loop woken) of the oldest commit someone
      waited for in that group; the core does not report fsync times on their own
  stead_commit_batch_size
      commits (sequence numbers) made durable per wake-up of the loop: the group-commit
      size when the loop keeps up with the writer, several groups when it does not
      (_sum is the number of commits made durable since start)
  stead_commit_groups_total
      groups written by the core (one WriteBatch, one WAL sync each): with
      stead_commit_batch_size_sum, rate(sum)/rate(groups) is the mean group size
  stead_invocations{status}
      "running": attempts in memory (running, or waiting for a completion before being
      suspended), exact at scrape time; suspended/backing-off/paused/scheduled/inboxed:
      counted by a scan of the store (`Store.scan_invocations`, when the core has it) in
      a background thread at most every STORE_SCAN_INTERVAL_S: the last count is
      reported (not before the first is done; never without the scan)
  stead_queue_depth{service,handler}  attempts waiting now for a concurrency or rate limit
  stead_inbox_depth     invocations queued in keys' inboxes (`Store.scan_invocations`/`scan_inbox`,
                        counted with the statuses)
  stead_timers_pending  timer rows (sleeps, retries, delayed sends; `Store.count_timers`, if offered)
  stead_state_cache_hits_total / _misses_total   lookups of a key's state in the cache
  stead_state_cache_keys / stead_state_cache_bytes  what the cache holds
  stead_rocksdb_memory_bytes{kind}  RocksDB's memory from its properties (`Store.memory_usage`,
      if the core has it): memtables, table_readers, block_cache, block_cache_pinned (the
      last is part of block_cache); the process's resident memory beyond these is Python's
      and the allocator's
  stead_malloc_bytes{kind}  glibc's heap (runtime/allocator.py `usage`, mallinfo2): in_use,
      free_held (free inside its arenas, kept from the system) and mmapped; absent on
      another libc
"""

from __future__ import annotations

import logging
import threading
import time
from bisect import bisect_left
from typing import TYPE_CHECKING, Iterable, Iterator, Optional, cast

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily,
                                            Metric)
from prometheus_client.utils import floatToGoString

from runtime import _core, allocator

if TYPE_CHECKING:
    from runtime.invoker import Invoker

log = logging.getLogger("stead.metrics")

DURATION_BUCKETS = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0, 300.0)
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
STORE_SCAN_INTERVAL_S = 30.0
SCAN_PAGE = 1000
# The classic text format, which every Prometheus reads (what generate_latest writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

STATUS_LABELS = {
    _core.STATUS_SUSPENDED: "suspended",
    _core.STATUS_BACKING_OFF: "backing-off",
    _core.STATUS_SCHEDULED: "scheduled",
    _core.STATUS_INBOXED: "inboxed",
}
if hasattr(_core, "STATUS_PAUSED"):
    STATUS_LABELS[_core.STATUS_PAUSED] = "paused"
STATUSES = ("running", "suspended", "backing-off", "paused", "scheduled", "inboxed")


class Histogram:
    """Bucket counts and a sum; `observe` is a bisect and two additions."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def cumulative(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        total = 0
        for bound, count in zip(self.bounds, self.counts):
            total += count
            out.append((floatToGoString(bound), total))
        out.append(("+Inf", total + self.counts[-1]))
        return out


class HandlerStats:
    """The counters of one (service, handler), bound once: the invoker adds to them."""

    __slots__ = ("started", "attempts", "queued", "retries", "succeeded", "failed", "killed", "duration")

    def __init__(self) -> None:
        self.started = 0
        self.queued = 0
        self.attempts = 0
        self.retries = 0
        self.succeeded = 0
        self.failed = 0
        self.killed = 0
        self.duration = Histogram(DURATION_BUCKETS)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.handlers: dict[tuple[str, str], HandlerStats] = {}
        self.commit_wait = Histogram(COMMIT_BUCKETS)
        self.commit_batch = Histogram(BATCH_BUCKETS)
        self.invoker: Optional["Invoker"] = None
        self._store_counts: Optional[tuple[float, dict[str, int], Optional[int]]] = None
        self._scan_broken = False
        self._scanning = False
        self.registry.register(_Collector(self))  # type: ignore[arg-type]

    def handler(self, service: str, handler: str) -> HandlerStats:
        stats = self.handlers.get((service, handler))
        if stats is None:
            stats = self.handlers[(service, handler)] = HandlerStats()
        return stats

    def watch(self, invoker: "Invoker") -> None:
        """Gauges at scrape time come from this invoker (its store, its state cache)."""
        self.invoker = invoker

    # ---- scrape time --------------------------------------------------------------------

    def collect(self) -> Iterator[Metric]:
        yield from self._invocation_families()
        yield from self._commit_families()
        invoker = self.invoker
        if invoker is not None:
            yield from self._gauges(invoker)

    def _invocation_families(self) -> Iterator[Metric]:
        labels = ["service", "handler"]
        started = CounterMetricFamily("stead_invocations_started", "Invocations whose first attempt started",
                                      labels=labels)
        attempts = CounterMetricFamily("stead_invocation_attempts",
                                       "Attempts started (first runs, retries, resumptions)", labels=labels)
        queued = CounterMetricFamily("stead_invocations_queued",
                                     "Attempts that waited in the queue of a concurrency or rate limit", labels=labels)
        retries = CounterMetricFamily("stead_invocation_retries",
                                      "Attempts that failed with a retryable error and were scheduled for a retry",
                                      labels=labels)
        completed = CounterMetricFamily("stead_invocations_completed", "Invocations completed, by outcome",
                                        labels=[*labels, "outcome"])
        duration = HistogramMetricFamily(
            "stead_invocation_duration_seconds",
            "From the start of the attempt that completed an invocation to its completion being durable",
            labels=labels)
        for (service, handler), s in list(self.handlers.items()):
            names = [service, handler]
            started.add_metric(names, s.started)
            attempts.add_metric(names, s.attempts)
            queued.add_metric(names, s.queued)
            retries.add_metric(names, s.retries)
            completed.add_metric([*names, "succeeded"], s.succeeded)
            completed.add_metric([*names, "failed"], s.failed)
            completed.add_metric([*names, "killed"], s.killed)
            duration.add_metric(names, s.duration.cumulative(), s.duration.sum)
        yield from (started, attempts, queued, retries, completed, duration)

    def _commit_families(self) -> Iterator[Metric]:
        wait = HistogramMetricFamily(
            "stead_commit_durable_wait_seconds",
            "Per loop wake-up by the commit writer: the longest wait for durability among the waiters it resolved")
        wait.add_metric([], self.commit_wait.cumulative(), self.commit_wait.sum)
        batch = HistogramMetricFamily("stead_commit_batch_size",
                                      "Commits made durable per wake-up of the event loop by the commit writer")
        batch.add_metric([], self.commit_batch.cumulative(), self.commit_batch.sum)
        yield from (wait, batch)

    def _gauges(self, invoker: "Invoker") -> Iterator[Metric]:
        store = invoker.store
        try:
            groups = store.groups_written()
        except _core.StorageError:  # closed or failed: only what is in memory
            groups = None
        if groups is not None:
            yield _counter("stead_commit_groups", "Group commits written by the core (one WAL sync each)", groups)

        statuses = GaugeMetricFamily("stead_invocations", "Unfinished invocations by status", labels=["status"])
        statuses.add_metric(["running"], len(invoker.live))
        counts = self._counts_from_store(store) if groups is not None else None
        inbox: Optional[int] = None
        if counts is not None:
            by_status, inbox = counts
            for name in STATUSES[1:]:
                if name in STATUS_LABELS.values():  # "paused" only with a core that has it
                    statuses.add_metric([name], by_status.get(name, 0))
        yield statuses
        depth = GaugeMetricFamily("stead_queue_depth", "Attempts waiting for a concurrency or rate limit",
                                  labels=["service", "handler"])
        by_handler: dict[tuple[str, str], int] = {}
        for waiter in invoker.queues.waiters():
            ident = (waiter.inv.service, waiter.inv.handler)
            by_handler[ident] = by_handler.get(ident, 0) + 1
        for ident in self.handlers:  # every handler seen, so that a drained queue shows 0
            by_handler.setdefault(ident, 0)
        for (service, handler), n in sorted(by_handler.items()):
            depth.add_metric([service, handler], n)
        yield depth
        if inbox is not None:
            yield _gauge("stead_inbox_depth", "Invocations queued in keys' inboxes", inbox)
        if groups is not None:
            timers = _count_timers(store)
            if timers is not None:
                yield _gauge("stead_timers_pending", "Timers pending (sleeps, retries, delayed sends)", timers)

        if groups is not None and hasattr(store, "memory_usage"):
            rocksdb = GaugeMetricFamily("stead_rocksdb_memory_bytes", "RocksDB's memory by kind (its properties)",
                                        labels=["kind"])
            for kind, n in store.memory_usage():
                rocksdb.add_metric([kind], n)
            yield rocksdb

        heap = allocator.usage()
        if heap is not None:
            malloc = GaugeMetricFamily("stead_malloc_bytes", "glibc's heap by kind (mallinfo2)", labels=["kind"])
            for kind, n in heap.items():
                malloc.add_metric([kind], n)
            yield malloc

        cache = invoker.cache
        yield _counter("stead_state_cache_hits", "Lookups of a key's state found in the cache", cache.hits)
        yield _counter("stead_state_cache_misses", "Lookups of a key's state loaded from the store", cache.misses)
        yield _gauge("stead_state_cache_keys", "Keys whose state the cache holds", cache.key_count)
        yield _gauge("stead_state_cache_bytes", "Approximate size of the cached state", cache.size_bytes)

    def _counts_from_store(self, store: _core.Store) -> Optional[tuple[dict[str, int], Optional[int]]]:
        """Invocations by status and the inbox depth, as last counted from the store's scans
        (None until a first count is done, or if the core has no scans). A scan reads every
        record, completed ones included: it never runs on the scraping thread (which may be
        the event loop's), but in a thread of its own, in pages, at most once per
        STORE_SCAN_INTERVAL_S; a scrape reports the last count made."""
        if self._scan_broken or not hasattr(store, "scan_invocations"):
            return None
        cached = self._store_counts
        if not self._scanning and (cached is None or time.monotonic() - cached[0] >= STORE_SCAN_INTERVAL_S):
            self._scanning = True
            threading.Thread(target=self._scan, args=(store,), name="stead-metrics-scan", daemon=True).start()
        return None if cached is None else (cached[1], cached[2])

    def _scan(self, store: _core.Store) -> None:
        try:
            columns = list(getattr(_core, "INVOCATION_COLUMNS"))
            id_at, status_at = columns.index("id"), columns.index("status")
            by_status: dict[str, int] = {}
            after = ""
            while True:
                rows = store.scan_invocations(after, SCAN_PAGE)
                for row in rows:
                    name = STATUS_LABELS.get(cast(int, row[status_at]))
                    if name is not None:
                        by_status[name] = by_status.get(name, 0) + 1
                if len(rows) < SCAN_PAGE:
                    break
                after = str(rows[-1][id_at])
                time.sleep(0)  # the GIL back to the event loop between pages
            inbox = len(store.scan_inbox()) if hasattr(store, "scan_inbox") else by_status.get("inboxed", 0)
            self._store_counts = (time.monotonic(), by_status, inbox)
        except _core.StorageError:  # closed or failed meanwhile: no count
            pass
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            # A core whose scans have another shape than the one read here: say so once.
            log.warning("metrics: cannot count invocations by status from the store: %r", exc)
            self._scan_broken = True
        finally:
            self._scanning = False


class _Collector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return self.metrics.collect()


def render(metrics: Metrics) -> tuple[bytes, str]:
    """The body and content type of `GET /metrics` (Prometheus text format)."""
    return generate_latest(metrics.registry), CONTENT_TYPE


def _count_timers(store: _core.Store) -> Optional[int]:
    """From the core's in-memory timer index, if it offers a count (cheap: no scan)."""
    count = getattr(store, "count_timers", None)
    if count is None:
        return None
    try:
        return int(count())
    except (TypeError, ValueError, _core.StorageError):
        return None


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family

