"""Cron schedules: durable recurring invocations, built on Stead's own durable primitives.

Each schedule is one key of a built-in virtual object, `stead.Schedules` (served by the
runtime, found by `lookup`, listed nowhere: `App.internal`; its handlers are
ingress-private). The key's state holds the definition (pysdk/_schedules.py) and its
status: paused or not, the last fire time handled, the next, the invocation of the
last firing while it may still run, a buffered firing, counters. The object's handlers
are the only writers of that state:

    create, declare, update, delete   from the admin API (POST/PATCH/DELETE /schedules,
                                      runtime/admin_schedules.py) and from `stead serve`'s
                                      start (the app's `schedules=[...]`, `declare`)
    tick {"gen"}                      a delayed send to itself: fires what is due, then
                                      sends the next tick, delayed to the next fire time
    watch {"invocation"} (shared)     attaches to a firing's invocation (BUFFER_ONE), then
    done {"invocation"}               tells the key it finished: the buffered firing starts

Why this rather than a scheduler loop with storage of its own: a delayed send is a
timer row in the store, committed with the tick that sent it, so the chain of ticks
survives kill -9 like any sleep, and recovery needs no code of its own. A tick is a
journaled exclusive handler: its decision (what is due, what is missed, whether the
previous firing still runs) is one durable step ("plan": the clock and that status,
read once and replayed after a crash), and its sends of the firings, of the next tick
and its state change commit together. So a firing is sent exactly once whatever
crashes, and the catch-up and overlap policies decide exactly once. Pause, update and
delete run on the same key, hence never concurrently with a tick; each arms a new tick
chain under a new generation (`gen`, from `ctx.uuid()`), and a tick of an older
generation does nothing. Each firing also carries an idempotency key derived from the
schedule and the fire time (`Schedule.fire_key`; a workflow gets it as its key).

What is due at a tick is every fire time after the last one handled, up to now (the
plan's clock). One at most `grace` late is on time and runs; older ones were missed
(the server was down, or stalled) and follow the catch-up policy. Each firing then
meets the overlap policy: the previous firing's invocation is still running if the
store says it is not completed (read in the plan step). The decisions are the pure
functions `on_tick` and `on_done`, tested without a server (tests/runtime/test_schedules.py).

A firing costs two invocations (the tick and the target's), kept like any for the
server's retention; BUFFER_ONE adds a watch and a done when it buffers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

from pysdk._context import ObjectContext, ObjectSharedContext
from pysdk._errors import InputError, TerminalError
from pysdk._schedules import (HEADER_ID, HEADER_TIME, CatchupPolicy, OverlapPolicy, Schedule, ScheduleError,
                              format_time)
from pysdk._serde import BytesSerde, json_dumps
from pysdk._service import VirtualObject
from runtime import _core
from runtime.ids import now_ms

if TYPE_CHECKING:
    from pysdk._app import App
    from runtime.invoker import Invoker
    from runtime.results import Result

log = logging.getLogger("stead.schedules")

SERVICE = "stead.Schedules"
STATE = "schedule"  # one state entry per key: {"schedule": definition, "status": Status}
UPCOMING = 5


@dataclass
class Status:
    """What the runtime keeps about a schedule besides its definition."""

    origin: str = "api"  # "api" (admin API, CLI) or "code" (the app's schedules=[...])
    paused: bool = False
    gen: str = ""  # the tick chain in force; a tick of another one does nothing
    next_ms: Optional[int] = None  # the next fire time (its tick is armed), None when paused
    last_ms: int = 0  # every fire time up to this one was handled (fired, skipped or missed)
    running: Optional[str] = None  # the last firing's invocation, while it may run (not ALLOW_ALL)
    buffered_ms: Optional[int] = None  # BUFFER_ONE: the firing waiting for `running` to finish
    fired: int = 0  # firings sent
    missed: int = 0  # missed firings not run (catch-up SKIP, or folded into one by ONE)
    caught_up: int = 0  # missed firings run late (catch-up ONE, ALL)
    overlapped: int = 0  # firings skipped because the previous one still ran (overlap policy)
    failed: int = 0  # firings the runtime refused (the target does not exist any more)
    last_fire_ms: Optional[int] = None
    last_invocation: Optional[str] = None
    last_error: Optional[str] = None
    created_ms: int = 0
    updated_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "Status":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in known})


# ---------------------------------------------------------------- the decisions (pure)


def arm(s: Schedule, st: Status, now: int, gen: str) -> None:
    """Start a new tick chain from `now`: nothing before it is due any more."""
    st.gen = gen
    st.last_ms = max(st.last_ms, now)
    st.next_ms = None if st.paused else s.next_after(st.last_ms)


def on_tick(s: Schedule, st: Status, now: int, busy: bool) -> list[int]:
    """A tick at `now`: the fire times to start now, in order; `st` is updated (counters,
    last fire time handled, buffered firing, next fire time). `busy`: the invocation of
    the previous firing (`st.running`) has not finished."""
    due, total = s.times_between(st.last_ms, now)
    candidates: list[int] = []
    if not busy:
        st.running = None
        if st.buffered_ms is not None:  # its watch's `done` has not come yet: start it now
            candidates.append(st.buffered_ms)
            st.buffered_ms = None
    if total:
        on_time = [t for t in due if now - t <= s.grace_ms]
        late = due[:len(due) - len(on_time)]
        if s.catchup is CatchupPolicy.ALL:
            run_late = late
        elif s.catchup is CatchupPolicy.ONE:
            run_late = late[-1:]
        else:
            run_late = []
        st.missed += total - len(on_time) - len(run_late)
        st.caught_up += len(run_late)
        st.last_ms = due[-1]
        candidates += run_late + on_time
    fires: list[int] = []
    for t in candidates:
        if s.overlap is OverlapPolicy.ALLOW_ALL or not busy:
            fires.append(t)
            busy = s.overlap is not OverlapPolicy.ALLOW_ALL
        elif s.overlap is OverlapPolicy.BUFFER_ONE and st.buffered_ms is None:
            st.buffered_ms = t
        else:
            st.overlapped += 1
    st.next_ms = s.next_after(max(now, st.last_ms))
    return fires


def on_done(st: Status, invocation: str) -> list[int]:
    """The invocation of a firing finished: the buffered firing, if any, starts now."""
    if st.running != invocation:
        return []  # an older firing's: the status moved on since
    st.running = None
    if st.buffered_ms is None or st.paused:
        return []
    t, st.buffered_ms = st.buffered_ms, None
    return [t]


def pause(st: Status) -> None:
    st.paused = True
    st.next_ms = None
    if st.buffered_ms is not None:
        st.buffered_ms = None
        st.overlapped += 1


# ---------------------------------------------------------------- the object


def check_target(app: "App", s: Schedule, *, unknown_ok: bool = False) -> None:
    """The target must be a handler the runtime serves, with a key where it takes one and an
    input it accepts (`ScheduleError` otherwise). `unknown_ok`: a service the runtime does not
    serve yet (a deployment to be registered) passes."""
    kind = app.service_type(s.service)
    if kind is None or s.service in app.internal:
        if unknown_ok:
            return
        raise ScheduleError(f"service: no service named {s.service!r} is served here")
    spec = app.lookup(s.service, s.handler)
    if spec is None:
        raise ScheduleError(f"handler: {s.service} has no handler {s.handler!r}")
    if kind == "service" and s.key is not None:
        raise ScheduleError(f"key: {s.service} is a service: its handlers take no key")
    if spec.kind == "workflow" and s.key is not None:
        raise ScheduleError(f"key: {s.service}/{s.handler} is a workflow's main handler: each firing gets "
                            "a key of its own (<schedule id>@<fire time>)")
    if kind != "service" and spec.kind != "workflow" and s.key is None:
        raise ScheduleError(f"key: {s.service} is keyed: give the key each firing invokes")
    try:
        spec.parse_input(json_dumps(s.input))
    except (InputError, ValueError) as exc:
        raise ScheduleError(f"input: not an input of {s.service}/{s.handler}: {exc}") from None


def running(invoker: "Invoker", invocation: str) -> bool:
    """Whether an invocation has not finished (the store's view, queued commits included)."""
    inv = invoker.store.get_invocation(invocation)
    return inv is not None and inv.status != _core.STATUS_COMPLETED


def _load(doc: Any) -> tuple[Schedule, Status]:
    return Schedule.from_json(doc["schedule"]), Status.from_json(doc["status"])


def _doc(s: Schedule, st: Status) -> dict[str, Any]:
    return {"schedule": s.to_json(), "status": st.to_json()}


def _parse(doc: Any) -> Schedule:
    try:
        return Schedule.from_json(doc)
    except ScheduleError as exc:
        raise TerminalError(str(exc), 400) from None


def build(invoker: "Invoker") -> VirtualObject:
    """The `stead.Schedules` object of one runtime (its plan step reads that runtime's store)."""
    obj = VirtualObject(SERVICE, description="Stead's cron schedules (runtime/schedules.py)",
                        ingress_private=True)

    async def plan(ctx: ObjectContext, previous: Optional[str] = None) -> tuple[int, bool]:
        """The clock, and whether the invocation `previous` still runs: read once, in a step
        (journaled: a replay after a crash decides on the same values)."""
        got = await ctx.run("plan", lambda: {"now": now_ms(),
                                             "busy": previous is not None and running(invoker, previous)})
        return int(got["now"]), bool(got["busy"])

    def send_tick(ctx: ObjectContext, s: Schedule, st: Status) -> None:
        if st.next_ms is None:
            return
        # Computed live: a replay reads the send's fire time back from its entry. One ms
        # more: the timer never fires before the fire time (ms are truncated on the way).
        delay = max(0, st.next_ms - now_ms()) + 1
        ctx.generic_send(SERVICE, "tick", json_dumps({"gen": st.gen}), key=s.id,
                         send_delay=timedelta(milliseconds=delay))

    async def fire(ctx: ObjectContext, s: Schedule, st: Status, t: int) -> None:
        spec = invoker.app.lookup(s.service, s.handler)
        main = spec is not None and spec.kind == "workflow"
        key = s.fire_key(t) if main else s.key
        try:
            handle = ctx.generic_send(s.service, s.handler, json_dumps(s.input), key=key,
                                      idempotency_key=None if main else s.fire_key(t),
                                      headers={HEADER_ID: s.id, HEADER_TIME: format_time(t)})
        except TerminalError as exc:  # journaled: a replay meets the same refusal
            st.failed += 1
            st.last_error = f"{format_time(t)}: {exc.message}"
            return
        invocation = await handle.invocation_id()
        st.fired += 1
        st.last_fire_ms = t
        st.last_invocation = invocation
        st.last_error = None
        if s.overlap is not OverlapPolicy.ALLOW_ALL:
            st.running = invocation

    async def current(ctx: ObjectSharedContext) -> Optional[tuple[Schedule, Status]]:
        doc = await ctx.get(STATE)
        return None if doc is None else _load(doc)

    async def put(ctx: ObjectContext, s: Schedule, st: Status, now: int, rearm: bool) -> dict[str, Any]:
        if rearm:
            arm(s, st, now, ctx.uuid().hex[:16])
            send_tick(ctx, s, st)
        st.updated_ms = now
        doc = _doc(s, st)
        ctx.set(STATE, doc)
        return doc

    def new_status(s: Schedule, origin: str, now: int) -> Status:
        return Status(origin=origin, paused=s.paused, last_ms=now, created_ms=now)

    @obj.handler(ingress_private=True)
    async def create(ctx: ObjectContext, doc: dict) -> dict:
        """A new schedule (the admin API's POST /schedules); 409 if the id is taken."""
        s = _parse(doc)
        if s.id != ctx.key():
            raise TerminalError(f"id: {s.id!r} is not this key {ctx.key()!r}", 400)
        if await ctx.get(STATE) is not None:
            raise TerminalError(f"schedule {s.id!r} already exists: change it with PATCH /schedules/{s.id}", 409)
        now, _ = await plan(ctx)
        return await put(ctx, s, new_status(s, "api", now), now, True)

    @obj.handler(ingress_private=True)
    async def declare(ctx: ObjectContext, doc: dict) -> dict:
        """A schedule of the app's code, at the server's start: created, or replaced if its
        definition changed (then it starts again from now); left alone if unchanged, so its
        tick chain (and the catch-up of what the downtime missed) goes on."""
        s = _parse(doc)
        got = await current(ctx)
        if got is not None and got[0].same_as(s) and got[1].origin == "code":
            return _doc(*got)
        now, _ = await plan(ctx)
        if got is None:
            return await put(ctx, s, new_status(s, "code", now), now, True)
        old, st = got
        st.origin = "code"  # the code's from now on (an API-made one of the same id included)
        return await put(ctx, s, st, now, not old.same_as(s))

    @obj.handler(ingress_private=True)
    async def update(ctx: ObjectContext, body: dict) -> dict:
        """{"schedule": a new definition or null, "paused": true, false or null}: the admin
        API's PATCH. A new definition, or a resume, starts again from now (what was due while
        paused is not run)."""
        got = await current(ctx)
        if got is None:
            raise TerminalError(f"schedule {ctx.key()!r} not found", 404)
        s, st = got
        rearm = False
        if body.get("schedule") is not None:
            new = _parse(body["schedule"])
            rearm = not new.same_as(s)
            s = new
        paused = body.get("paused")
        now, _ = await plan(ctx)
        if paused is True and not st.paused:
            pause(st)
            st.gen = ctx.uuid().hex[:16]  # the pending tick does nothing now
            rearm = False
        elif paused is False and st.paused:
            st.paused = False
            rearm = True
        elif st.paused:
            rearm = False
        return await put(ctx, s, st, now, rearm)

    @obj.handler(ingress_private=True)
    async def delete(ctx: ObjectContext, body: dict) -> dict:
        """Remove the schedule (its pending tick then does nothing). {"origin": "code"}: only
        if the app's code declared it (a schedule the code no longer declares, at start)."""
        got = await current(ctx)
        if got is None:
            raise TerminalError(f"schedule {ctx.key()!r} not found", 404)
        if body.get("origin") is not None and got[1].origin != body["origin"]:
            raise TerminalError(f"schedule {ctx.key()!r} was not made by {body['origin']}", 409)
        ctx.clear_all()
        return _doc(*got)

    @obj.handler(ingress_private=True)
    async def tick(ctx: ObjectContext, body: dict) -> None:
        got = await current(ctx)
        if got is None or got[1].gen != body.get("gen") or got[1].paused:
            return  # deleted, re-armed or paused since this tick was sent
        s, st = got
        now, busy = await plan(ctx, st.running if s.overlap is not OverlapPolicy.ALLOW_ALL else None)
        buffered = st.buffered_ms
        for t in on_tick(s, st, now, busy):
            await fire(ctx, s, st, t)
        if st.buffered_ms is not None and buffered is None and st.running:
            # BUFFER_ONE: learn when the running firing finishes, to start the buffered one.
            ctx.generic_send(SERVICE, "watch", json_dumps({"invocation": st.running}), key=s.id)
        send_tick(ctx, s, st)
        ctx.set(STATE, _doc(s, st))

    @obj.handler(kind="shared", ingress_private=True)
    async def watch(ctx: ObjectSharedContext, body: dict) -> None:
        try:
            await ctx.attach_invocation(body["invocation"], serde=BytesSerde())
        except TerminalError:
            pass  # failed, or purged already: finished all the same
        ctx.generic_send(SERVICE, "done", json_dumps(body), key=ctx.key())

    @obj.handler(ingress_private=True)
    async def done(ctx: ObjectContext, body: dict) -> None:
        got = await current(ctx)
        if got is None:
            return
        s, st = got
        for t in on_done(st, body.get("invocation", "")):
            await fire(ctx, s, st, t)
        ctx.set(STATE, _doc(s, st))

    return obj


def install(invoker: "Invoker") -> None:
    """Serve the schedules' object in this runtime (before recovery, which resumes its ticks)."""
    obj = build(invoker)
    invoker.app.internal[obj.name] = obj


# ---------------------------------------------------------------- the runtime's side


async def call(invoker: "Invoker", handler: str, key: str, doc: Any) -> "Result":
    """Run one handler of the schedules' object on `key` to completion; its result."""
    spec = invoker.app.lookup(SERVICE, handler)
    assert spec is not None, "runtime.schedules.install was not called"
    body = json_dumps(doc)
    inv = invoker.new_invocation(spec, key, body, [])
    return await invoker.call(spec, inv, spec.parse_input(body))


async def send(invoker: "Invoker", handler: str, key: str, doc: Any) -> None:
    """Start one handler of the schedules' object on `key`; return once that is durable."""
    spec = invoker.app.lookup(SERVICE, handler)
    assert spec is not None, "runtime.schedules.install was not called"
    body = json_dumps(doc)
    inv = invoker.new_invocation(spec, key, body, [])
    await invoker.send(spec, inv, spec.parse_input(body), 0)


async def read(invoker: "Invoker", schedule_id: str = "") -> dict[str, dict[str, Any]]:
    """The stored documents ({"schedule", "status"}) by id: all, or the one of `schedule_id`.
    What every commit queued so far wrote (it waits for them: the scan reads written ones)."""
    await invoker.commits.wait(invoker.store.last_seq())
    rows = await asyncio.to_thread(invoker.store.scan_state, SERVICE, schedule_id)
    return {key: json.loads(value) for _, key, name, value in rows if name == STATE}


async def declare(invoker: "Invoker", schedules: Sequence[Schedule]) -> None:
    """At start: the app's schedules are created or updated (`declare`), and those its code
    declared before but declares no more are deleted. Unchanged ones are not touched."""
    app = invoker.app
    for s in schedules:
        # A target named by string may be a deployment's, registered after this start.
        check_target(app, s, unknown_ok=True)
        if app.service_type(s.service) is None:
            log.warning("schedule %s: service %s is not served (yet): its firings fail until it is",
                        s.id, s.service)
    stored = await read(invoker)
    for s in schedules:
        doc = stored.get(s.id)
        if doc is not None and doc["status"].get("origin") == "code" and _load(doc)[0].same_as(s):
            continue
        await send(invoker, "declare", s.id, s.to_json())
    wanted = {s.id for s in schedules}
    for schedule_id, doc in stored.items():
        if doc["status"].get("origin") == "code" and schedule_id not in wanted:
            log.warning("schedule %s is no longer declared by the app: deleting it", schedule_id)
            await send(invoker, "delete", schedule_id, {"origin": "code"})


def view(doc: dict[str, Any], running: Optional[Callable[[str], bool]] = None) -> dict[str, Any]:
    """The admin API's shape of a schedule: its definition, its state, and its next fire times.
    `running(invocation)`: whether the last firing's invocation still runs (else it is shown
    as running until the next tick looks)."""
    s, st = _load(doc)
    if st.running and running is not None and not running(st.running):
        st.running = None
    out = s.to_json()
    out["paused"] = st.paused
    upcoming: list[int] = []
    if st.next_ms is not None:
        upcoming = [st.next_ms] + s.upcoming(st.next_ms, UPCOMING - 1)
    out.update({
        "target": s.target if s.key is None else f"{s.service}/{s.key}/{s.handler}",
        "origin": st.origin,
        "next_fire_at": None if st.next_ms is None else format_time(st.next_ms),
        "upcoming": [format_time(t) for t in upcoming],
        "last_fire_at": None if st.last_fire_ms is None else format_time(st.last_fire_ms),
        "last_invocation_id": st.last_invocation,
        "running_invocation_id": st.running,
        "buffered_fire_at": None if st.buffered_ms is None else format_time(st.buffered_ms),
        "fired": st.fired, "missed": st.missed, "caught_up": st.caught_up,
        "overlapped": st.overlapped, "failed": st.failed, "last_error": st.last_error,
        "created_at": format_time(st.created_ms), "updated_at": format_time(st.updated_ms),
    })
    return out
