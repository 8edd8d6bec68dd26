"""The invoker: admits invocations, runs their handlers, commits and completes them,
and acts on what the store reports back (wakes).

One event loop runs everything. An invocation's life:

  admit ──> run handler (pysdk Machine) ──> complete (one commit) ──> result once durable
    │            │  durable points: progress commit (journal, state, callees, timers)
    │            │  awaiting a completion: wait; past the threshold: suspended, coroutine dropped
    │            └─ non-terminal failure: backoff commit + retry timer ──> resume by replay
    └─ key busy: inboxed (durable); started by the hand-over in its predecessor's completion

Every write can produce wakes (`Store.take_wakes`): a callee to start, a completion
to deliver to a running handler, a suspended invocation to resume by replay, a
cancellation or a kill. `after_write` collects them; they are acted on once the
commit that produced them is durable. Recovery at start resumes every unfinished
invocation by replaying its journal.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, cast

from pysdk._app import App
from pysdk._errors import RetryableError, Suspended, TerminalError
from pysdk._handler import HandlerSpec
from pysdk._machine import Lent, Machine, NonDeterminismError, ReplayRequested
from runtime import _core, clock, logs
from runtime.backend import KINDS, WRITERS, Attempt, Killed, Paused, Refused
from runtime.commits import Commits
from runtime.deployments import Catalog, RemoteHandlerSpec, Registry
from runtime.ids import new_invocation_id, now_ms
from runtime.metrics import Metrics
from runtime.queues import ALREADY_QUEUED, CANCELLED, GRANTED, Queues, Ticket, Waiter
from runtime.remote import Directory, RemoteMachine
from runtime.sessions import Channels, DeploymentError
from runtime.results import Result, Results
from runtime.retention import Retention
from runtime.retry import RetryPolicy
from runtime.state_cache import DEFAULT_BYTES, DEFAULT_KEYS, StateCache
from runtime.state_values import kept_after
from runtime.watchdog import Aborted, Limits, cancel_stuck, check, limits_for, tick_for

if TYPE_CHECKING:
    from runtime.tracing import Tracing

log = logging.getLogger("stead.invoker")

KILLED: Result = (None, 409, "killed")


_RUNNERS = ("_run", "_resume")  # the coroutines of Invoker's tasks that run an attempt


class Invoker:
    def __init__(self, store: _core.Store, app: App, commits: Commits, *,
                 always_replay: bool = False, retry_policy: RetryPolicy = RetryPolicy(),
                 suspend_after_s: float = 5.0,
                 on_storage_failure: Optional[Callable[[BaseException], None]] = None,
                 registry: Optional[Registry] = None,
                 max_deployment_message_bytes: int = 64 * 1024 * 1024,
                 metrics: Optional[Metrics] = None, tracing: Optional["Tracing"] = None,
                 state_cache: tuple[int, int] = (DEFAULT_KEYS, DEFAULT_BYTES)) -> None:
        self.store = store
        # Every service served: the app's, and the registered deployments' (runtime/deployments.py).
        self.app: App = registry.catalog if registry is not None else app
        self.registry = registry
        self.remote_channels = Channels(max_deployment_message_bytes,
                                        registry.metadata if registry is not None else None)
        self.directory = Directory(self.app if isinstance(self.app, Catalog) else Catalog(app))
        if registry is not None:
            registry.on_change.append(self._catalog_changed)
        self.commits = commits
        self.cache = StateCache(store, *state_cache)
        self.results = Results(store, commits)
        self.always_replay = always_replay
        self.retry_policy = retry_policy
        self.suspend_after_s = suspend_after_s
        # Invocations whose handler is in memory (running or waiting), by id.
        self.live: dict[str, Attempt] = {}
        # Inputs already parsed by the ingress for invocations that start later.
        self._parsed: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer_wakeup = asyncio.Event()
        self._timer_target: Optional[int] = None
        self._closing = False
        self._policies: dict[tuple[str, str], RetryPolicy] = {}
        self._on_storage_failure = on_storage_failure
        self._limit_cache: dict[tuple[str, str], Limits] = {}
        # How long each completed invocation is kept (its service's/handler's retention options).
        self.retention = Retention(self.app)
        # Concurrency and rate limits: attempts over a limit wait there (runtime/queues.py).
        self.queues = Queues(self.app)
        self.queues.on_due = self._poke_timers
        self.failed: Optional[BaseException] = None
        # Counters the hot path adds to (runtime/metrics.py); spans when tracing is on.
        self.metrics = metrics if metrics is not None else Metrics()
        self.tracing = tracing

    def _catalog_changed(self) -> None:
        """A deployment was registered or removed: options resolved per handler are stale."""
        self.directory.invalidate()
        self._policies.clear()
        self._limit_cache.clear()
        self.retention = Retention(self.app)
        self.queues.invalidate()

    def pinned_to(self, deployment_id: str) -> int:
        """Unfinished invocations pinned to a deployment: persisted ones (running, suspended,
        backing off) and those running in memory without a durable point yet."""
        in_memory = sum(1 for a in self.live.values() if a.inv.deployment == deployment_id and not a.inv.persisted)
        return self.store.pinned_count(deployment_id) + in_memory

    # ---- entry points -------------------------------------------------------------------

    def new_invocation(self, spec: HandlerSpec, key: str, body: bytes, headers: list[tuple[str, str]],
                       idempotency_key: str = "") -> _core.Invocation:
        inv_id = new_invocation_id()
        if self.tracing is not None:  # the ingress request's span becomes the invocation's parent
            target = f"{spec.service_name}/{key}/{spec.name}" if key else f"{spec.service_name}/{spec.name}"
            headers = self.tracing.new_invocation(inv_id, target, headers)
        return _core.Invocation(inv_id, spec.service_name, spec.name, key, KINDS[spec.kind],
                                body, headers, now_ms(), idempotency_key=idempotency_key)

    async def existing(self, spec: HandlerSpec, key: str, idempotency_key: str, *,
                       then_admits: bool = False) -> Optional[str]:
        """The invocation an idempotent request or a workflow run attaches to, if any;
        returned once the commit the answer comes from is durable, so that no answer
        built on it gets ahead of that commit: the admission that registered it (202
        PreviouslyAccepted, 409), or the purge that deleted it (404 "no invocation found").
        `then_admits`: the caller admits a new invocation if there is none, whose admission
        commit comes after that purge's and whose answers wait for their own commits, so
        an absence is returned at once."""
        if spec.kind == "workflow":
            found, seq = self.store.idempotency_lookup(spec.service_name, key, spec.name, "")
        elif idempotency_key:
            found, seq = self.store.idempotency_lookup(spec.service_name, key, spec.name, idempotency_key)
        else:
            return None
        if found is not None or not then_admits:
            await self.commits.wait(seq)
        return found

    async def call(self, spec: HandlerSpec, inv: _core.Invocation, value: Any) -> Result:
        """Run one invocation to completion; return its durable result."""
        fut = self.results.expect(inv.id)
        try:
            if inv.kind == _core.KIND_WORKFLOW:
                self.cache.forget_if_written(inv.service, inv.key)
            persist = bool(inv.idempotency_key) or inv.kind == _core.KIND_WORKFLOW
            run_now, admitted = self.store.admit(inv, persist)
            if run_now:
                # Run inline in the request's task: no task switch on the hot path. Its
                # steps wait for its admission (if one was written): the invocation exists.
                await self._run(inv, spec, value, [], None, admitted)
            else:
                self._parsed[inv.id] = value
            return await fut
        finally:
            self.results.forget(inv.id, fut)
            if fut.done() and not fut.cancelled():
                fut.exception()  # read: a failure that ended the call elsewhere is not "never retrieved"

    async def send(self, spec: HandlerSpec, inv: _core.Invocation, value: Any, delay_ms: int) -> None:
        """Accept an invocation to run in the background; return once it is durable."""
        if delay_ms > 0:
            seq = self.store.schedule(inv, now_ms() + delay_ms)
            self._poke_timers()
        else:
            if inv.kind == _core.KIND_WORKFLOW:
                self.cache.forget_if_written(inv.service, inv.key)
            run_now, seq = self.store.admit(inv, True)
            if run_now:
                self._spawn(self._run(inv, spec, value, [], None, seq))
            else:
                self._parsed[inv.id] = value
        await self.commits.wait(seq)

    def recover(self) -> int:
        """Resume every invocation left unfinished by the last run of the server."""
        resumed = self.store.recover()
        for inv in resumed:
            self._spawn(self._resume(inv))
        self._poke_timers()
        return len(resumed)

    # ---- signals from outside -------------------------------------------------------------

    def persist_live(self, inv_id: str) -> bool:
        """Make an invocation running in memory known to the store (its record written)
        if it has not reached a durable point yet: cancel, kill and attach address it by
        id, and the store knows persisted invocations only. True if it is now known."""
        attempt = self.live.get(inv_id)
        if attempt is None:
            return False
        if not attempt.inv.persisted:
            try:
                self.store.progress(attempt.inv, [])
            except _core.NotRunningError:
                return False
        return True

    async def signal(self, seq: int) -> None:
        """After a write made outside any invocation (cancel, kill, awakeable): act on its
        wakes and return once it is durable."""
        self.after_write()
        await self.commits.wait(seq)

    # ---- running ------------------------------------------------------------------------

    def _spawn(self, coro: Any) -> None:
        # A context of its own: not the spawning attempt's (its log fields, runtime/logs.py).
        task = asyncio.get_running_loop().create_task(coro, context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: "asyncio.Task[None]") -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, _core.StorageError):
            self.storage_failed(exc)
        elif exc is not None:
            log.error("invocation task failed", exc_info=exc)

    def storage_failed(self, exc: BaseException) -> None:
        """The store failed (crash-only): every waiter learns the outcome is unknown, and
        the server stops; recovery at the next start decides what happened."""
        if self.failed is not None:
            return
        self.failed = exc
        self.results.fail_all(exc)
        if self._on_storage_failure is not None:
            self._on_storage_failure(exc)

    async def _resume(self, inv: _core.Invocation) -> None:
        spec = self.app.lookup(inv.service, inv.handler)
        if spec is None:
            # The deployment no longer has this handler: fail it terminally rather than
            # retrying forever against code that does not exist.
            await self._finish(inv, None, None, None, 404,
                               f"handler {inv.service}/{inv.handler} is not registered")
            return
        value = self._parsed.pop(inv.id, _UNPARSED)
        try:
            if value is _UNPARSED:
                value = spec.parse_input(inv.input)
        except Exception as exc:  # a stored input the current code can no longer parse
            await self._finish(inv, None, None, None, 400, f"invalid stored input: {exc}")
            return
        try:
            journal, completions = self._recorded(inv) if inv.journal_len else ([], None)
        except _core.CorruptError as exc:
            # Damage confined to this invocation's journal: it is not replayed on entries that
            # are not what it recorded; it fails, and the server goes on with the others.
            log.error("invocation %s: %s; failing it", inv.id, exc)
            await self._finish(inv, None, None, None, 500, f"its journal is damaged: {exc}")
            return
        await self._run(inv, spec, value, journal, completions)

    def _recorded(self, inv: _core.Invocation) -> tuple[list[_core.Entry], dict[int, Any]]:
        """The journal and the completions of its awaited entries, as written on disk."""
        completions = {i: (v, c, m) for i, v, c, m in self.store.load_completions(inv.id)}
        return self.store.load_journal(inv.id), completions

    async def _run(self, inv: _core.Invocation, spec: HandlerSpec, value: Any,
                   journal: list, completions: Optional[dict], admitted: int = 0) -> None:
        """Run attempts of `inv` until it completes, suspends, backs off, is paused or is killed.
        `admitted`: the commit that admitted it, if it was written (0 otherwise)."""
        if inv.status == _core.STATUS_PAUSED:
            return  # paused before this task started: its resume starts it (WAKE_RUN)
        slots = self.queues.enter(inv, spec) if self.queues.active else None
        if slots is None:
            await self._attempt(inv, spec, value, journal, completions, admitted)
            return
        if slots is ALREADY_QUEUED:
            return  # a second start of an invocation that waits in the queue already
        if isinstance(slots, Waiter):
            granted = await self._queued(inv, slots)
            if granted is None:
                return
            ticket = granted
        else:
            ticket = cast(Ticket, slots)
        try:
            await self._attempt(inv, spec, value, journal, completions, admitted)
        finally:
            self.queues.leave(ticket)

    async def _queued(self, inv: _core.Invocation, waiter: Waiter) -> Optional[Ticket]:
        """Wait in the queue of a concurrency or rate limit (runtime/queues.py); the slots once
        granted, None if `inv` left the queue without running (killed, paused, or cancelled
        before it ever ran: then it completes here as cancelled)."""
        if not inv.persisted:
            # A queued invocation is durable (it survives a restart and is visible): its
            # record is written now, running but not started; recovery queues it again.
            try:
                self.store.progress(inv, [])
            except _core.NotRunningError:
                self.queues.forget(waiter)
                return None
        self.metrics.handler(inv.service, inv.handler).queued += 1
        try:
            outcome = await waiter.future
        except BaseException:
            self.queues.forget(waiter)
            raise
        if outcome == GRANTED:
            assert waiter.ticket is not None
            if inv.status == _core.STATUS_RUNNING:
                return waiter.ticket
            self.queues.leave(waiter.ticket)  # finished or paused meanwhile
            return None
        if outcome == CANCELLED:
            await self._finish(inv, None, None, None, 409, "cancelled")
        return None

    async def _attempt(self, inv: _core.Invocation, spec: HandlerSpec, value: Any,
                       journal: list, completions: Optional[dict], admitted: int) -> None:
        attempt = Attempt(self, inv, self._limits(spec))
        attempt.observe(admitted)
        if attempt.limits.inactivity_s is not None:
            attempt.task = asyncio.current_task()
        attempt.stats = stats = self.metrics.handler(spec.service_name, spec.name)
        stats.attempts += 1
        number = inv.retry_count + 1
        if number == 1 and not inv.journal_len:
            stats.started += 1
        # Log records of this attempt carry its id, target and number (runtime/logs.py).
        log_context = logs.ATTEMPT.set((inv, number))
        if self.tracing is not None:
            attempt.trace = self.tracing.attempt(inv, number)
        self.live[inv.id] = attempt
        try:
            remote = isinstance(spec, RemoteHandlerSpec)
            if remote:
                try:
                    deployment = self._deployment(inv, cast(RemoteHandlerSpec, spec))
                except DeploymentError as exc:
                    self._backoff(inv, spec, exc)
                    return
            while True:
                decoded = None
                if inv.kind in WRITERS:
                    state, decoded, seq = self.cache.lend(inv.service, inv.key)
                    attempt.observe(seq)
                elif inv.kind == _core.KIND_SERVICE:
                    state = {}
                else:
                    state, seq = self.cache.get(inv.service, inv.key)
                    attempt.observe(seq)
                if remote:
                    # The same attempt, its handler in a deployment (runtime/remote.py).
                    machine = RemoteMachine(self, attempt, deployment, inv, state, journal, completions)
                    running = machine.run()
                else:
                    machine = Machine(invocation_id=inv.id, key=inv.key, handler_kind=spec.kind,
                                      state=state, replay=journal, backend=attempt,
                                      headers=inv.headers, attempt=inv.retry_count,
                                      always_replay=self.always_replay, body=inv.input,
                                      completions=completions, cancelled=inv.cancel_requested,
                                      idempotency_key=inv.idempotency_key,
                                      decoded=cast("Optional[dict[str, Lent]]", decoded))
                    running = spec.invoke(machine, value)
                attempt.machine = machine
                output: Optional[bytes]
                message: Optional[str]
                try:
                    output = await running
                except BaseException as exc:
                    # A closed attempt ended for the reason it was closed, whatever the
                    # handler raised while it unwound.
                    closed = machine.closed or (type(exc) if isinstance(exc, _CLOSING) else None)
                    if attempt.trace is not None:
                        attempt.trace.ended_by(closed, exc)
                    if closed is ReplayRequested:
                        journal, completions = self._recorded(inv)
                        value = spec.parse_input(inv.input)
                        continue
                    if closed is Aborted:
                        if isinstance(exc, asyncio.CancelledError) and attempt.task is not None:
                            attempt.task.uncancel()  # our cancel, not the server's shutdown
                        self._backoff(inv, spec, TimeoutError(
                            f"no progress for {attempt.limits.inactivity_s}s (inactivity_timeout): aborted"))
                        return
                    if closed is not None:
                        return
                    if isinstance(exc, TerminalError):
                        output, code, message = None, exc.status_code, exc.message
                    elif isinstance(exc, Exception):
                        self._backoff(inv, spec, exc)
                        return
                    else:
                        raise
                else:
                    code, message = 0, None
                await self._finish(inv, attempt, machine, output, code, message, machine.take_pending())
                return
        finally:
            attempt.ended = True
            if attempt.machine is not None:
                attempt.machine.attempt_ended()
            if self.live.get(inv.id) is attempt:
                del self.live[inv.id]
            if attempt.trace is not None:
                attempt.trace.end()
            logs.ATTEMPT.reset(log_context)

    async def _finish(self, inv: _core.Invocation, attempt: Optional[Attempt], machine: Optional[Machine],
                      output: Optional[bytes], code: int, message: Optional[str],
                      entries: Optional[list[_core.Entry]] = None) -> None:
        if attempt is not None and attempt.killed:
            return
        if machine is not None:
            children = machine.take_children()
            built = attempt.build_children(children) if children and attempt is not None else None
        else:
            built = None
        if self.live.get(inv.id) is attempt and attempt is not None:
            del self.live[inv.id]
        try:
            seq, nxt = self.store.complete(inv, entries or [], output, code, message, built,
                                           retention_ms=self.retention.ms(inv))
        except _core.NotRunningError as exc:
            # Killed (or otherwise finished) in the store while the handler returned: the
            # kill's result is what its waiters get (WAKE_KILL), not this one.
            log.info("invocation %s: its completion was refused: %s", inv.id, exc)
            return
        if inv.kind in WRITERS and machine is not None:
            self.cache.put(inv.service, inv.key, machine.state, seq, kept_after(machine))
        if nxt is not None:
            # The key passes to the next inboxed invocation at once: it runs against the
            # committed (maybe not yet synced) state; its own result waits for both commits.
            self._spawn(self._resume(nxt))
        # Completing can wake others: its caller, awakeables or promises it completed, callees.
        self.after_write(poke_timers=built is not None)
        # Always through `finished`, waiters or not: an attach arriving before this commit is
        # written must find the result there (the table on disk does not show it yet).
        await self.results.finished(inv.id, seq, (output, code, message))
        stats = attempt.stats if attempt is not None else self.metrics.handler(inv.service, inv.handler)
        if code:
            stats.failed += 1
        else:
            stats.succeeded += 1
        if attempt is not None:
            stats.duration.observe(time.monotonic() - attempt.started)

    def _deployment(self, inv: _core.Invocation, spec: RemoteHandlerSpec):  # type: ignore[no-untyped-def]
        """The deployment an attempt of `inv` runs on: the one it started on (Restate's
        versioning rule: its journal was written by that code), else the newest that
        offers its service, to which it is pinned from now on."""
        assert self.registry is not None
        pinned = inv.deployment
        if pinned:
            dep = self.registry.deployments.get(pinned)
            if dep is None:
                raise DeploymentError(f"deployment {pinned}, which {inv.id} started on, was removed")
            return dep
        try:
            dep = self.registry.get(spec.deployment_id)
        except LookupError:  # removed since the invocation was routed: route it again
            raise DeploymentError(f"deployment {spec.deployment_id} of {spec.service_name} was removed") from None
        self.store.pin_deployment(inv, dep.id)
        return dep

    def _backoff(self, inv: _core.Invocation, spec: HandlerSpec, exc: Exception) -> None:
        policy = self._policy(spec)
        retry = inv.retry_count + 1
        if policy.exhausted(retry):
            if policy.pauses:
                self._pause_exhausted(inv, retry, exc)
                return
            log.warning("invocation %s failed after %d attempts: %r", inv.id, retry, exc)
            self._spawn(self._finish(inv, None, None, None, 500, f"failed after {retry} attempts: {exc!r}"))
            return
        delay = policy.delay_s(retry)
        if isinstance(exc, RetryableError) and exc.retry_after is not None:
            delay = max(0.0, exc.retry_after.total_seconds())  # the handler's own delay (Restate)
        if isinstance(exc, NonDeterminismError):
            # The journal no longer matches the code: retried like any error (Restate), but
            # an operator must see why the key is stuck. The message names the entry index,
            # the recorded command and the new one.
            log.error("invocation %s attempt %d: %s; retrying in %.3fs", inv.id, retry, exc, delay)
        elif isinstance(exc, DeploymentError):
            # Not the handler's failure: the deployment is down, refuses, or broke the stream.
            log.warning("invocation %s attempt %d: %s; retrying in %.3fs", inv.id, retry, exc, delay)
        else:
            log.info("invocation %s attempt %d failed (%r); retrying in %.3fs", inv.id, retry, exc, delay)
        try:
            self.store.backoff(inv, retry, now_ms() + int(delay * 1000))
        except _core.NotRunningError as refused:  # killed meanwhile: nothing to retry
            log.info("invocation %s: no retry: %s", inv.id, refused)
            return
        self.metrics.handler(inv.service, inv.handler).retries += 1
        self._poke_timers()

    def _pause_exhausted(self, inv: _core.Invocation, attempts: int, exc: Exception) -> None:
        """Retries ran out under on_max_attempts="pause" (Restate's): the invocation is paused,
        not failed. It keeps its journal and key; its caller and attached clients get no result
        yet; an operator resumes it (PATCH /invocations/{id}/resume: a fresh set of attempts)
        or kills it."""
        log.warning("invocation %s failed after %d attempts: %r; paused until it is resumed "
                    "(on_max_attempts='pause')", inv.id, attempts, exc)
        try:
            self.store.pause_attempt(inv)
        except _core.NotRunningError as refused:  # killed or paused meanwhile
            log.info("invocation %s: not paused: %s", inv.id, refused)

    def _limits(self, spec: HandlerSpec) -> Limits:
        ident = (spec.service_name, spec.name)
        limits = self._limit_cache.get(ident)
        if limits is None:
            limits = self._limit_cache[ident] = limits_for(self.app, spec)
        return limits

    async def watchdog(self) -> None:
        """Enforce the inactivity and abort timeouts the app sets (runtime/watchdog.py `watch`):
        sweep the attempts in memory every tick. The tick follows the catalog: a deployment
        registered (or removed) after start brings timeouts of its own, so it is recomputed
        when the catalog changes, and the sweep starts then if nothing set a timeout before."""
        changed = asyncio.Event()
        if self.registry is not None:
            self.registry.on_change.append(changed.set)
        aborting: list[Attempt] = []
        tick = tick_for(self.app)
        while True:
            if changed.is_set():
                changed.clear()
                tick = tick_for(self.app)
            if tick is None:
                await changed.wait()
                continue
            await asyncio.sleep(tick)
            now = time.monotonic()
            for attempt in list(self.live.values()):
                check(attempt, now, aborting)
            cancel_stuck(aborting, now)

    def _policy(self, spec: HandlerSpec) -> RetryPolicy:
        ident = (spec.service_name, spec.name)
        policy = self._policies.get(ident)
        if policy is None:
            service = self.app.services.get(spec.service_name)
            policy = RetryPolicy.overlay(getattr(service, "invocation_retry_policy", None), self.retry_policy)
            policy = RetryPolicy.overlay(spec.options.invocation_retry_policy, policy)
            self._policies[ident] = policy
        return policy

    # ---- wakes ---------------------------------------------------------------------------

    def after_write(self, poke_timers: bool = True) -> None:
        """Collect the wakes of the writes made so far and act on them once durable."""
        wakes = self.store.take_wakes()
        if wakes:
            self._spawn(self._act(wakes))
        if poke_timers:
            self._poke_timers()

    async def _act(self, wakes: list[_core.Wake]) -> None:
        await self.commits.wait(max(w[6] for w in wakes))
        for what, inv, index, value, code, message, _seq in wakes:
            attempt = self.live.get(inv.id)
            if what == _core.WAKE_RUN:
                if attempt is None and not self.queues.holds(inv.id):
                    self._spawn(self._resume(inv))
            elif what == _core.WAKE_DELIVER:
                if attempt is not None and attempt.machine is not None:
                    attempt.machine.complete(index, value, code, message)
                    attempt.notify()
            elif what == _core.WAKE_CANCEL:
                if attempt is not None and attempt.machine is not None:
                    attempt.machine.cancel()
                    attempt.notify()
                elif attempt is None:
                    self.queues.drop(inv.id, cancelled=True)  # queued, never ran: done at once
            elif what == _core.WAKE_KILL:
                self.metrics.handler(inv.service, inv.handler).killed += 1
                self._parsed.pop(inv.id, None)
                self.queues.drop(inv.id)
                if attempt is not None:
                    attempt.kill()
                self._spawn(self._resolve(inv.id, (value, code, message) if code else KILLED))
            elif what == _core.WAKE_DONE:
                self.metrics.handler(inv.service, inv.handler).killed += 1
                self._parsed.pop(inv.id, None)  # cancelled or killed before it started
                self.queues.drop(inv.id)
                self._spawn(self._resolve(inv.id, (value, code, message)))
            elif what == _core.WAKE_PAUSE:
                # Closed like a suspension, unless resumed meanwhile: running again, the
                # attempt in memory goes on (and the resume's WAKE_RUN finds it live).
                if attempt is not None and inv.status != _core.STATUS_RUNNING:
                    attempt.pause()
                elif attempt is None and inv.status == _core.STATUS_PAUSED:
                    self.queues.drop(inv.id)  # queued: its resume queues it again

    async def _resolve(self, inv_id: str, result: Result) -> None:
        if self.results.has_waiters(inv_id):
            await self.results.finished(inv_id, self.store.durable_seq(), result)

    # ---- timers -------------------------------------------------------------------------

    def _poke_timers(self) -> None:
        nxt = self.next_timer_ms()
        if nxt is not None and (self._timer_target is None or nxt < self._timer_target):
            self._timer_wakeup.set()

    def next_timer_ms(self) -> Optional[int]:
        """The next store timer, or the next time a rate limit lets a queued invocation start."""
        nxt = self.store.next_timer_ms()
        due = self.queues.next_due_ms()
        if due is None:
            return nxt
        return due if nxt is None else min(nxt, due)

    def quiescent(self) -> bool:
        """Nothing runs: every attempt in memory waits for a completion, no other task (a
        wake being acted on, a result resolved) is pending, every write is durable and no
        timer is due. A time-skipping harness moves the clock only then (runtime/clock.py
        `skip_ms`, which asks twice in a row: a task spawned a moment ago shows then)."""
        waiting = 0
        for attempt in self.live.values():
            if not attempt.waiting:
                return False
            waiting += 1
        # An attempt runs in a task of its own (_run, _resume) or in its caller's request;
        # a queued one waits like a waiting attempt (for a slot or a rate limit's time).
        waiting += self.queues.depth()
        runners = 0
        for task in self._tasks:
            coro = task.get_coro()
            if getattr(coro, "__name__", None) not in _RUNNERS:
                return False
            runners += 1
        if runners > waiting:
            return False
        if self.store.durable_seq() < self.store.last_seq():
            return False
        nxt = self.next_timer_ms()
        return nxt is None or nxt > now_ms()

    async def timer_loop(self) -> None:
        """Fire due timers (sleeps, delayed sends, retries); sleep until the next one, or
        until the clock is moved (a time-skipping harness: runtime/clock.py)."""
        with clock.wake_on_advance(self._timer_wakeup, self):
            await self._timer_loop()

    async def _timer_loop(self) -> None:
        while not self._closing:
            self._timer_target = next_ms = self.next_timer_ms()
            timeout = None if next_ms is None else max(0.0, (next_ms - now_ms()) / 1000)
            self._timer_wakeup.clear()
            if timeout is None or timeout > 0:
                try:
                    await asyncio.wait_for(self._timer_wakeup.wait(), timeout)
                except TimeoutError:
                    pass
                continue
            now = now_ms()
            due = self.queues.next_due_ms()
            if due is not None and due <= now:
                self.queues.tick()
            if self.store.fire_timers(now):
                self.after_write()

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
        await self.remote_channels.aclose()


_UNPARSED = object()
# What ends an attempt without an outcome (see backend.Attempt.close).
_CLOSING = (ReplayRequested, Suspended, Killed, Refused, Paused, Aborted)

