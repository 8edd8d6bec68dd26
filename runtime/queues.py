"""Concurrency and rate limits: how many invocations of a service or handler run at
once, per caller-given limit key too, and how many start per period (pysdk/_limits.py
declares them; Restate 1.7's concurrency limits and limit keys, DBOS's queues,
Hatchet's concurrency keys).

An attempt takes a slot of every limit its handler is under before it runs, and gives
the slots back when it ends: completed, suspended, backing off, paused or killed. A
suspended invocation holds no slot; when it resumes it queues again. An attempt that
cannot take its slots waits here, in its lane: one lane per (handler, limit key) of a
service, in arrival order (the invocation's creation time). Lanes are served round-robin,
so one busy limit key does not starve the others, and a lane whose head cannot run
(its own limit is full) does not hold back the others.

The queue is durable without a table of its own: a queued invocation has its record in
the store, written when it starts waiting (runtime/invoker.py `_queued`), running but not
started, so recovery resumes it and it queues again, in its arrival order. The admin API
shows it as "ready" (Restate's status for an invocation not yet taken by the invoker).

Rate limits are token buckets on the runtime's clock (runtime/clock.py): a waiter that
only lacks a token is due when the bucket refills, and the invoker's timer loop serves it
then (`next_due_ms`, `tick`), so time skipping moves rate limits too.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from pysdk._app import App
from pysdk._handler import HandlerSpec
from pysdk._limits import LIMIT_KEY_HEADER, RateLimit
from runtime import _core
from runtime.ids import now_ms

GRANTED, DROPPED, CANCELLED = "granted", "dropped", "cancelled"
ALREADY_QUEUED = "already queued"
_arrivals = itertools.count()

Gate = tuple[str, ...]  # ("s", service) | ("sk", service, limit key) | ("h", service, handler) | ("hk", ...)


@dataclass(frozen=True)
class Policy:
    """The limits one handler is under: its service's and its own."""

    gates: tuple[tuple[str, Optional[int], bool], ...]  # (level, cap, per limit key)
    rates: tuple[tuple[str, RateLimit], ...]  # (level, rate)


class Bucket:
    """A token bucket: `starts` tokens, refilled at `starts` per `period_ms`."""

    __slots__ = ("capacity", "period_ms", "tokens", "at_ms")

    def __init__(self, rate: RateLimit, now: int) -> None:
        self.capacity = rate.starts
        self.period_ms = rate.period_ms
        self.tokens = float(rate.starts)
        self.at_ms = now

    def _refill(self, now: int) -> None:
        if now > self.at_ms:
            self.tokens = min(self.capacity, self.tokens + (now - self.at_ms) * self.capacity / self.period_ms)
            self.at_ms = now

    def has_token(self, now: int) -> bool:
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: int) -> None:
        self._refill(now)
        self.tokens -= 1.0

    def next_token_ms(self, now: int) -> int:
        self._refill(now)
        missing = 1.0 - self.tokens
        return now if missing <= 0 else now + max(1, int(missing * self.period_ms / self.capacity + 0.999))


class Ticket:
    """The slots an attempt holds while it runs."""

    __slots__ = ("gates", "service")

    def __init__(self, service: str, gates: list[Gate]) -> None:
        self.service = service
        self.gates = gates


class Waiter:
    """An attempt waiting for its slots."""

    __slots__ = ("inv", "order", "lane", "gates", "caps", "rates", "new", "future", "ticket")

    def __init__(self, inv: _core.Invocation, lane: tuple[str, str], gates: list[Gate], caps: list[int],
                 rates: list[Gate], new: bool) -> None:
        self.inv = inv
        self.order = (inv.created_ms, next(_arrivals))  # ties (one ms): the order of entering
        self.lane = lane
        self.gates = gates
        self.caps = caps
        self.rates = rates
        self.new = new
        self.future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.ticket: Optional[Ticket] = None


def limit_key_of(inv: _core.Invocation) -> str:
    for name, value in inv.headers:
        if name.lower() == LIMIT_KEY_HEADER:
            return value
    return ""


class Queues:
    def __init__(self, app: App) -> None:
        self.app = app
        self._policies: dict[tuple[str, str], Optional[Policy]] = {}
        self._running: dict[Gate, int] = {}
        self._buckets: dict[Gate, Bucket] = {}
        # service -> lanes ((handler, limit key) -> waiters in arrival order), in serving order.
        self._lanes: dict[str, OrderedDict[tuple[str, str], deque[Waiter]]] = {}
        self._waiting: dict[str, Waiter] = {}
        self._due: dict[str, int] = {}  # service -> when a rate-limited head can start
        self.on_due: Optional[Callable[[], None]] = None  # a new due time: wake the timer loop
        self.active = self._any_limits()

    # ---- policies ----------------------------------------------------------------------

    def _any_limits(self) -> bool:
        for svc in self.app.services.values():
            if _declares(svc):
                return True
            if any(_declares(h.options) for h in svc.handlers.values()):
                return True
        return False

    def invalidate(self) -> None:
        """The catalog changed (a deployment registered or removed)."""
        self._policies.clear()
        self.active = self._any_limits() or bool(self._waiting) or bool(self._running)

    def policy(self, spec: HandlerSpec) -> Optional[Policy]:
        ident = (spec.service_name, spec.name)
        try:
            return self._policies[ident]
        except KeyError:
            pass
        svc = self.app.services.get(spec.service_name)
        gates: list[tuple[str, Optional[int], bool]] = []
        rates: list[tuple[str, RateLimit]] = []
        for level, src in (("s", svc), ("h", spec.options)):
            if src is None:
                continue
            if getattr(src, "concurrency", None) is not None:
                gates.append((level, src.concurrency, False))
            if getattr(src, "concurrency_per_limit_key", None) is not None:
                gates.append((level + "k", src.concurrency_per_limit_key, True))
            rate: Optional[RateLimit] = getattr(src, "rate_limit", None)
            if rate is not None:
                rates.append((level, rate))
        policy = Policy(tuple(gates), tuple(rates)) if gates or rates else None
        self._policies[ident] = policy
        return policy

    # ---- entering and leaving ----------------------------------------------------------

    def enter(self, inv: _core.Invocation, spec: HandlerSpec) -> "Ticket | Waiter | str | None":
        """The slots for an attempt of `inv`: a Ticket if it may run now, a Waiter (queued)
        if not, None if its handler has no limits, ALREADY_QUEUED if `inv` waits here
        already (a second start, which must not run)."""
        policy = self.policy(spec)
        if policy is None:
            return None
        if inv.id in self._waiting:
            return ALREADY_QUEUED
        service, handler = spec.service_name, spec.name
        limit_key = limit_key_of(inv)
        gates: list[Gate] = []
        caps: list[int] = []
        for level, cap, per_key in policy.gates:
            scope = (service,) if level[0] == "s" else (service, handler)
            gates.append((level, *scope, limit_key) if per_key else (level, *scope))
            caps.append(cap)  # type: ignore[arg-type]
        rates: list[Gate] = []
        now = now_ms()
        for level, rate in policy.rates:
            gate = (level, service) if level == "s" else (level, service, handler)
            if gate not in self._buckets:
                self._buckets[gate] = Bucket(rate, now)
            rates.append(gate)
        waiter = Waiter(inv, (handler, limit_key), gates, caps, rates, inv.retry_count == 0 and not inv.journal_len)
        lanes = self._lanes.get(service)
        if not lanes and self._can_run(waiter, now):  # nobody waits ahead: no queue
            return self._grant(waiter, now)
        self._enqueue(service, waiter)
        self.pump(service)
        return waiter.ticket if waiter.ticket is not None else waiter

    def leave(self, ticket: Ticket) -> None:
        """An attempt that held `ticket` ended: its slots go to the waiters."""
        running = self._running
        for gate in ticket.gates:
            n = running[gate] - 1
            if n:
                running[gate] = n
            else:
                del running[gate]
        ticket.gates = []
        if ticket.service in self._lanes:
            self.pump(ticket.service)

    def forget(self, waiter: Waiter) -> None:
        """A waiter's task ended (the server stops): out of the queue, slots given back."""
        if self._waiting.get(waiter.inv.id) is waiter:
            self._remove(waiter)
        if waiter.ticket is not None:
            self.leave(waiter.ticket)

    def holds(self, inv_id: str) -> bool:
        return inv_id in self._waiting

    def drop(self, inv_id: str, cancelled: bool = False) -> bool:
        """Take `inv_id` out of the queue (killed or paused: DROPPED; cancelled before it ever
        ran: CANCELLED, and it completes as cancelled without running). A cancelled
        invocation that already ran stays: it must run to unwind (compensations). True if
        its waiter was told."""
        waiter = self._waiting.get(inv_id)
        if waiter is None or (cancelled and not waiter.new):
            return False
        self._remove(waiter)
        if not waiter.future.done():
            waiter.future.set_result(CANCELLED if cancelled else DROPPED)
        if waiter.inv.service in self._lanes:
            self.pump(waiter.inv.service)
        return True

    # ---- serving -----------------------------------------------------------------------

    def pump(self, service: str) -> None:
        """Start every waiter of `service` that can run now, one per lane per round."""
        lanes = self._lanes.get(service)
        now = now_ms()
        self._due.pop(service, None)
        while lanes:
            granted = False
            for lane in list(lanes):
                queue = lanes[lane]
                waiter = queue[0]
                if not self._can_run(waiter, now):
                    continue
                queue.popleft()
                del self._waiting[waiter.inv.id]
                if queue:
                    lanes.move_to_end(lane)
                else:
                    del lanes[lane]
                waiter.ticket = self._grant(waiter, now)
                waiter.future.set_result(GRANTED)
                granted = True
            if not granted:
                break
        if lanes:
            self._note_due(service, lanes, now)
        else:
            self._lanes.pop(service, None)

    def next_due_ms(self) -> Optional[int]:
        """When a waiter held back only by a rate limit can start (the timer loop's too)."""
        return min(self._due.values()) if self._due else None

    def tick(self) -> None:
        now = now_ms()
        for service, due in list(self._due.items()):
            if due <= now:
                self.pump(service)

    # ---- reading -----------------------------------------------------------------------

    def depth(self) -> int:
        return len(self._waiting)

    def queued(self, inv_id: str) -> bool:
        return inv_id in self._waiting

    def waiters(self) -> Iterator[Waiter]:
        return iter(list(self._waiting.values()))

    def running(self, gate: Gate) -> int:
        return self._running.get(gate, 0)

    # ---- internals ---------------------------------------------------------------------

    def _can_run(self, w: Waiter, now: int) -> bool:
        running = self._running
        for gate, cap in zip(w.gates, w.caps):
            if running.get(gate, 0) >= cap:
                return False
        if w.new:
            for gate in w.rates:
                if not self._buckets[gate].has_token(now):
                    return False
        return True

    def _grant(self, w: Waiter, now: int) -> Ticket:
        running = self._running
        for gate in w.gates:
            running[gate] = running.get(gate, 0) + 1
        if w.new:
            for gate in w.rates:
                self._buckets[gate].take(now)
        return Ticket(w.inv.service, w.gates)

    def _enqueue(self, service: str, w: Waiter) -> None:
        lanes = self._lanes.setdefault(service, OrderedDict())
        queue = lanes.get(w.lane)
        if queue is None:
            queue = lanes[w.lane] = deque()
        i = len(queue)
        while i and queue[i - 1].order > w.order:  # arrival order (recovery enqueues out of order)
            i -= 1
        queue.insert(i, w)
        self._waiting[w.inv.id] = w

    def _remove(self, w: Waiter) -> None:
        del self._waiting[w.inv.id]
        lanes = self._lanes.get(w.inv.service)
        if lanes is None:
            return
        queue = lanes.get(w.lane)
        if queue is not None:
            queue.remove(w)
            if not queue:
                del lanes[w.lane]
        if not lanes:
            self._lanes.pop(w.inv.service, None)

    def _note_due(self, service: str, lanes: Any, now: int) -> None:
        """The earliest time a head that lacks only a rate token gets one."""
        due: Optional[int] = None
        running = self._running
        for queue in lanes.values():
            w = queue[0]
            if not w.new or not w.rates or any(running.get(g, 0) >= c for g, c in zip(w.gates, w.caps)):
                continue
            at = max(self._buckets[g].next_token_ms(now) for g in w.rates)
            due = at if due is None else min(due, at)
        if due is not None:
            self._due[service] = due
            if self.on_due is not None:
                self.on_due()


def _declares(src: Any) -> bool:
    return any(getattr(src, name, None) is not None
               for name in ("concurrency", "concurrency_per_limit_key", "rate_limit"))
