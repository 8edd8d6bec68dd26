"""The invoker: admits invocations, runs their handlers, commits and completes them.

One event loop runs everything. An invocation's life:

  admit ──> run handler (pysdk Machine) ──> complete (one commit) ──> respond once durable
    │            │  ctx.run: progress commit, wait durable, continue
    │            └─ non-terminal failure: backoff commit + retry timer ──> resume by replay
    └─ key busy: inboxed (durable); started by the hand-over in its predecessor's completion

Recovery at start resumes every unfinished invocation by replaying its journal.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pysdk._app import App
from pysdk._errors import TerminalError
from pysdk._handler import HandlerSpec
from pysdk._machine import Machine, ReplayRequested
from runtime import _core
from runtime.commits import Commits
from runtime.ids import new_invocation_id, now_ms
from runtime.retry import RetryPolicy
from runtime.state_cache import StateCache

log = logging.getLogger("stead.invoker")

KINDS = {"service": _core.KIND_SERVICE, "exclusive": _core.KIND_EXCLUSIVE, "shared": _core.KIND_SHARED}

# (output, failure_code, failure_message): output is None on failure.
Result = tuple[bytes | None, int, str | None]


class _Run:
    """The Backend one Machine flushes through: a durable point of one invocation."""

    __slots__ = ("invoker", "inv")

    def __init__(self, invoker: "Invoker", inv: _core.Invocation) -> None:
        self.invoker = invoker
        self.inv = inv

    async def flush(self, machine: Machine) -> None:
        invoker = self.invoker
        inv = self.inv
        seq = invoker.store.progress(inv, machine.take_pending())
        if inv.kind == _core.KIND_EXCLUSIVE:
            invoker.cache.put(inv.service, inv.key, dict(machine.state), seq)
        await invoker.commits.wait(seq)


class Invoker:
    def __init__(self, store: _core.Store, app: App, commits: Commits, *,
                 always_replay: bool = False, retry_policy: RetryPolicy = RetryPolicy()) -> None:
        self.store = store
        self.app = app
        self.commits = commits
        self.cache = StateCache(store)
        self.always_replay = always_replay
        self.retry_policy = retry_policy
        # Callers waiting for an invocation's result (ingress requests), by id.
        self._waiters: dict[str, asyncio.Future[Result]] = {}
        # Inputs already parsed by the ingress for inboxed invocations, so they are not parsed twice.
        self._parsed: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer_wakeup = asyncio.Event()
        self._closing = False
        self._policies: dict[tuple[str, str], RetryPolicy] = {}

    # ---- entry points -------------------------------------------------------------------

    async def call(self, spec: HandlerSpec, key: str, body: bytes, value: Any,
                   headers: list[tuple[str, str]]) -> tuple[str, Result]:
        """Run one invocation of `spec` to completion; return its id and durable result."""
        inv = _core.Invocation(new_invocation_id(), spec.service_name, spec.name, key,
                               KINDS[spec.kind], body, headers, now_ms())
        fut: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiters[inv.id] = fut
        run_now, _ = self.store.admit(inv)
        if run_now:
            # Run inline in the request's task: no task switch on the hot path.
            await self._run(inv, spec, value, [])
        else:
            self._parsed[inv.id] = value
        try:
            return inv.id, await fut
        finally:
            self._waiters.pop(inv.id, None)

    def recover(self) -> int:
        """Resume every invocation left unfinished by the last run of the server."""
        resumed = self.store.recover()
        for inv in resumed:
            self._spawn_resume(inv)
        if self.store.next_timer_ms() is not None:
            self._timer_wakeup.set()
        return len(resumed)

    # ---- running ------------------------------------------------------------------------

    def _spawn_resume(self, inv: _core.Invocation) -> None:
        task = asyncio.get_running_loop().create_task(self._resume(inv))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resume(self, inv: _core.Invocation) -> None:
        spec = self.app.lookup(inv.service, inv.handler)
        if spec is None:
            # The deployment no longer has this handler: fail it terminally rather than
            # retrying forever against code that does not exist.
            await self._finish(inv, None, None, 404,
                               f"handler {inv.service}/{inv.handler} is not registered")
            return
        value = self._parsed.pop(inv.id, _UNPARSED)
        try:
            if value is _UNPARSED:
                value = spec.parse_input(inv.input)
            journal = self.store.load_journal(inv.id) if inv.journal_len else []
        except Exception as exc:  # a stored input the current code can no longer parse
            await self._finish(inv, None, None, 400, f"invalid stored input: {exc}")
            return
        await self._run(inv, spec, value, journal)

    async def _run(self, inv: _core.Invocation, spec: HandlerSpec, value: Any,
                   journal: list) -> None:
        while True:
            if inv.kind == _core.KIND_SERVICE:
                state: dict[str, bytes] = {}
            else:
                state = self.cache.get(inv.service, inv.key)
            machine = Machine(invocation_id=inv.id, key=inv.key, handler_kind=spec.kind,
                              state=state, replay=journal, backend=_Run(self, inv),
                              headers=inv.headers, attempt=inv.retry_count,
                              always_replay=self.always_replay, body=inv.input)
            try:
                output = await spec.invoke(machine, value)
            except ReplayRequested:
                journal = self.store.load_journal(inv.id)
                value = spec.parse_input(inv.input)
                continue
            except TerminalError as exc:
                await self._finish(inv, machine, None, exc.status_code, exc.message)
            except Exception as exc:
                self._backoff(inv, spec, exc)
            else:
                await self._finish(inv, machine, output, 0, None)
            return

    async def _finish(self, inv: _core.Invocation, machine: Machine | None, output: bytes | None,
                      code: int, message: str | None) -> None:
        entries = machine.take_pending() if machine is not None else []
        seq, nxt = self.store.complete(inv, entries, output, code, message)
        if inv.kind == _core.KIND_EXCLUSIVE and machine is not None:
            self.cache.put(inv.service, inv.key, machine.state, seq)
        if nxt is not None:
            # The key passes to the next inboxed invocation at once: it runs against the
            # committed (maybe not yet synced) state; its own response waits for both commits.
            self._spawn_resume(nxt)
        fut = self._waiters.get(inv.id)
        if fut is None:
            return
        try:
            await self.commits.wait(seq)
        except BaseException as exc:
            if not fut.done():
                fut.set_exception(exc)
            raise
        if not fut.done():
            fut.set_result((output, code, message))

    def _backoff(self, inv: _core.Invocation, spec: HandlerSpec, exc: Exception) -> None:
        policy = self._policy(spec)
        retry = inv.retry_count + 1
        if policy.exhausted(retry):
            log.warning("invocation %s failed after %d attempts: %r", inv.id, retry, exc)
            task = asyncio.get_running_loop().create_task(
                self._finish(inv, None, None, 500, f"failed after {retry} attempts: {exc!r}"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        delay = policy.delay_s(retry)
        log.info("invocation %s attempt %d failed (%r); retrying in %.3fs", inv.id, retry, exc, delay)
        self.store.backoff(inv, retry, now_ms() + int(delay * 1000))
        self._timer_wakeup.set()

    def _policy(self, spec: HandlerSpec) -> RetryPolicy:
        ident = (spec.service_name, spec.name)
        policy = self._policies.get(ident)
        if policy is None:
            service = self.app.services.get(spec.service_name)
            policy = RetryPolicy.overlay(getattr(service, "invocation_retry_policy", None), self.retry_policy)
            policy = RetryPolicy.overlay(spec.options.invocation_retry_policy, policy)
            self._policies[ident] = policy
        return policy

    # ---- retry timers -------------------------------------------------------------------

    async def timer_loop(self) -> None:
        """Resume backing-off invocations when their retry timers fire."""
        while not self._closing:
            next_ms = self.store.next_timer_ms()
            timeout = None if next_ms is None else max(0.0, (next_ms - now_ms()) / 1000)
            self._timer_wakeup.clear()
            if timeout is None or timeout > 0:
                try:
                    await asyncio.wait_for(self._timer_wakeup.wait(), timeout)
                except TimeoutError:
                    pass
                continue
            for inv in self.store.pop_due(now_ms()):
                self.store.resume(inv)
                self._spawn_resume(inv)

    async def close(self, timeout: float) -> None:
        """Let running invocations finish for up to `timeout`, then cancel the rest.

        A cancelled invocation is not lost: whatever it made durable is resumed at the
        next start."""
        self._closing = True
        self._timer_wakeup.set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)


_UNPARSED = object()
