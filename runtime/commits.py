"""Durability waits: turn the core's "durable up to seq N" signal into resolved futures.

The group-commit writer in core_rs publishes the highest durable sequence number
and makes one eventfd readable per group. The event loop reads it with
`add_reader`, so a group of N commits costs one wake-up of the loop, not N
thread-safe callbacks; every future waiting for a sequence at or below the
published one is resolved in that one callback.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from typing import TYPE_CHECKING, Callable, Optional

from runtime import _core

if TYPE_CHECKING:
    from runtime.metrics import Metrics

log = logging.getLogger("stead.commits")
_monotonic = time.monotonic
_INF = float("inf")


class Commits:
    def __init__(self, store: _core.Store, loop: asyncio.AbstractEventLoop,
                 on_failure: Callable[[BaseException], None] | None = None,
                 metrics: Optional["Metrics"] = None) -> None:
        self._store = store
        self._loop = loop
        self.loop = loop  # the server's loop, for futures made per request (no get_running_loop call)
        # (seq, tiebreak, future, when its wait began: time.monotonic())
        self._heap: list[tuple[int, int, asyncio.Future[None], float]] = []
        # What each wake-up made durable and how long its oldest waiter waited (runtime/metrics.py).
        self._wait_hist = metrics.commit_wait if metrics is not None else None
        self._batch_hist = metrics.commit_batch if metrics is not None else None
        self._durable = store.durable_seq()
        self._tiebreak = itertools.count()
        self._failure: BaseException | None = None
        self._on_failure = on_failure
        self._fd = store.notify_fd()
        loop.add_reader(self._fd, self._on_notify)

    def close(self) -> None:
        self._loop.remove_reader(self._fd)

    async def wait(self, seq: int) -> None:
        """Return once every commit up to `seq` is durable (WAL synced, or written in `wal` mode)."""
        if self._failure is not None:
            raise self._failure
        if self._store.durable_seq() >= seq:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        heapq.heappush(self._heap, (seq, next(self._tiebreak), fut, _monotonic()))
        await fut

    def _on_notify(self) -> None:
        try:
            durable = self._store.drain_notify()
        except _core.StorageError as exc:
            self._fail(exc)
            return
        heap = self._heap
        oldest = _INF
        while heap and heap[0][0] <= durable:
            _, _, fut, began = heapq.heappop(heap)
            if not fut.done():
                fut.set_result(None)
            if began < oldest:
                oldest = began
        if self._batch_hist is not None:
            if durable > self._durable:
                self._batch_hist.observe(durable - self._durable)
                self._durable = durable
            if oldest != _INF:
                self._wait_hist.observe(_monotonic() - oldest)  # type: ignore[union-attr]

    def _fail(self, exc: BaseException) -> None:
        # The writer stopped: nothing more becomes durable. Fail every waiter so no
        # response claims durability, and let the server shut down.
        log.critical("commit writer failed: %s", exc)
        self._failure = exc
        self._loop.remove_reader(self._fd)
        while self._heap:
            fut = heapq.heappop(self._heap)[2]
            if not fut.done():
                fut.set_exception(exc)
        if self._on_failure is not None:
            self._on_failure(exc)
