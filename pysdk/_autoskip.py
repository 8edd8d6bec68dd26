"""The automatic mode of time skipping (`create_test_harness(app, time_skipping="auto")`),
after Temporal's time-skipping test environment: while the test waits for an answer of
the ingress (a call, an attach, an output: any request of the harness's client), time
skips ahead to the next timer whenever the runtime is quiescent (nothing runs, every
invocation waits: runtime/clock.py `skip_next`). So a call to a workflow that sleeps 30
days returns at once, and a test that does not wait for an answer sees time stand still
(until it calls `env.advance`).

Time jumps only to timers the runtime holds (sleeps, delayed sends, retry backoff, rate
limits, cron schedules), never past them, so what each timer wakes runs at its own time.
"""
from __future__ import annotations

import threading
from typing import Any, Optional

import httpx

IDLE_POLL_S = 0.005


class AutoSkip:
    """Counts the client's requests in flight and, while there is one, moves the clock from
    timer to timer from a thread of its own."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._lock = threading.Lock()
        self._waiting = threading.Event()  # set while a request is in flight
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def transport(self, inner: Optional[httpx.AsyncBaseTransport] = None) -> httpx.AsyncBaseTransport:
        """A transport for the client that tells this skipper when it waits for an answer."""
        return _Counting(inner or httpx.AsyncHTTPTransport(), self)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stead-autoskip", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._waiting.set()  # wake the thread
        if self._thread is not None:
            self._thread.join(10)

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._waiting.set()

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if not self._in_flight:
                self._waiting.clear()

    def _wanted(self) -> bool:
        return self._in_flight > 0 and not self._stop.is_set()

    def _run(self) -> None:
        from runtime import clock

        while not self._stop.is_set():
            self._waiting.wait()
            if self._stop.is_set():
                return
            try:
                moved = clock.skip_next(self._wanted)
            except TimeoutError:  # a handler keeps working: time waits for it
                moved = False
            if not moved:
                self._stop.wait(IDLE_POLL_S)


class _Counting(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, skip: AutoSkip) -> None:
        self._inner = inner
        self._skip = skip

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._skip.enter()
        try:
            return await self._inner.handle_async_request(request)
        finally:
            self._skip.leave()

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
