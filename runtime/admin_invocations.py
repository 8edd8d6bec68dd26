"""The admin API's invocations:

    GET   /invocations?service=&handler=&key=&status=&created_after=&created_before=&limit=&cursor=
          {"invocations": [...], "next_cursor": "..." | null}, in id order (ids start with their
          creation time, so this is also creation order)
    GET   /invocations/{id}             one invocation, its input, output, and journal decoded
                                        entry by entry with completions (runtime/admin_views.py)
    PATCH /invocations/{id}/cancel      cooperative: the handler sees a TerminalError at its
                                        next await, compensations run; propagates to callees
    PATCH /invocations/{id}/kill        stops at once, no compensation; kills callees too
    PATCH /invocations/{id}/purge       a completed invocation's record, journal and
                                        idempotency row go now (409 while it is unfinished)
    PATCH /invocations/{id}/pause       a started invocation runs nothing until resumed (keeps
                                        its key and journal; completions are kept for it)
    PATCH /invocations/{id}/resume      a paused one runs again by replay, with fresh attempts;
                                        a suspended one is replayed now, a backing-off one retried now
    DELETE /invocations/{id}?mode=cancel|kill   (Restate's older form of cancel and kill)

Reads come from the store's scans (written commits, read in a worker thread) plus the
invocations running in memory that have no record yet, so nothing running is hidden.
Every answer that reports a signal's effect waits until that commit is durable.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable, Optional
from urllib.parse import parse_qs

from runtime import _core, admin_views as views, schedules
from runtime.http import HttpError, Send, json_body, respond
from runtime.ids import now_ms
from runtime.invoker import Invoker

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CHUNK = 2000  # rows per scan call while filtering
_STATUSES = {name: code for code, name in views.STATUS_NAMES.items()}


def _time(name: str, text: str) -> int:
    """ms since the epoch from ms digits or an RFC 3339 time (Z or an offset; naive = UTC)."""
    if text.isdigit():
        return int(text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise HttpError(400, f"{name}: expected an RFC 3339 time or ms since the epoch, got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


class Filter:
    """The query parameters of GET /invocations, checked before anything is read."""

    KNOWN = {"service", "handler", "key", "status", "created_after", "created_before", "limit", "cursor"}

    def __init__(self, query_string: bytes) -> None:
        q = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
        unknown = set(q) - self.KNOWN
        if unknown:
            raise HttpError(400, f"unknown filter(s) {sorted(unknown)}: use {sorted(self.KNOWN)}")
        one = {k: v[-1] for k, v in q.items()}
        self.service = one.get("service") or None
        self.handler = one.get("handler") or None
        self.key = one.get("key")
        self.statuses: Optional[set[int]] = None
        if "status" in q:
            names = [s.strip() for v in q["status"] for s in v.split(",") if s.strip()]
            bad = [s for s in names if s not in _STATUSES]
            if bad:
                raise HttpError(400, f"unknown status {bad[0]!r}: one of {sorted(_STATUSES)}")
            self.statuses = {_STATUSES[s] for s in names}
        self.after_ms = _time("created_after", one["created_after"]) if "created_after" in one else None
        self.before_ms = _time("created_before", one["created_before"]) if "created_before" in one else None
        try:
            self.limit = int(one.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise HttpError(400, f"limit: expected a number, got {one['limit']!r}") from None
        if not 1 <= self.limit <= MAX_LIMIT:
            raise HttpError(400, f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        self.cursor = one.get("cursor", "")

    def match(self, row: dict[str, Any]) -> bool:
        return ((self.service is None or row["service"] == self.service)
                and (self.handler is None or row["handler"] == self.handler)
                and (self.key is None or row["key"] == self.key)
                and (self.statuses is None or row["status"] in self.statuses)
                and (self.after_ms is None or row["created_ms"] > self.after_ms)
                and (self.before_ms is None or row["created_ms"] < self.before_ms))


def _live_rows(invoker: Invoker, after: str) -> list[dict[str, Any]]:
    """Invocations running in memory that have no record yet (no durable point reached)."""
    now = now_ms()
    rows = [views.live_row(a.inv, now) for a in list(invoker.live.values())
            if not a.inv.persisted and a.inv.id > after]
    rows.sort(key=lambda r: r["id"])
    return rows


async def _scan(invoker: Invoker, after: str) -> AsyncIterator[dict[str, Any]]:
    store = invoker.store
    cols = _core.INVOCATION_COLUMNS
    while True:
        chunk = await asyncio.to_thread(store.scan_invocations, after, CHUNK)
        for row in chunk:
            yield dict(zip(cols, row))
        if len(chunk) < CHUNK:
            return
        after = chunk[-1][0]


def service_ty(invoker: Invoker, service: str, kind: int) -> Optional[str]:
    ty = invoker.app.service_type(service)
    if ty is not None:
        return views.SERVICE_TYPES.get(ty, ty)
    # A service no longer served: its handler kind still tells keyed from not.
    return "service" if kind == _core.KIND_SERVICE else None


async def list_invocations(invoker: Invoker, query_string: bytes) -> dict[str, Any]:
    f = Filter(query_string)
    live = _live_rows(invoker, f.cursor)
    out: list[dict[str, Any]] = []
    more = False

    def take(row: dict[str, Any]) -> bool:
        queued_status(invoker, row)
        if f.match(row):
            out.append(views.invocation(row, service_ty(invoker, row["service"], row["kind"])))
        return len(out) >= f.limit

    async for row in _scan(invoker, f.cursor):
        while live and live[0]["id"] < row["id"]:
            if take(live.pop(0)):
                more = True
                break
        if more:
            break
        if live and live[0]["id"] == row["id"]:
            live.pop(0)  # persisted meanwhile: the record is the newer view
        if take(row):
            more = True
            break
    if not more:
        while live:
            if take(live.pop(0)):
                more = bool(live)
                break
    # Whether anything follows the last row is known only by looking: a cursor is given
    # whenever the page is full, and the next page may be empty.
    return {"invocations": out, "next_cursor": out[-1]["id"] if more and out else None}


def queued_status(invoker: Invoker, row: dict[str, Any]) -> None:
    """A running invocation waiting in the queue of a concurrency or rate limit has not
    started: "ready" (status 0), Restate's status for an invocation the invoker has not
    taken yet (runtime/queues.py)."""
    if row["status"] == _core.STATUS_RUNNING and invoker.queues.queued(row["id"]):
        row["status"] = 0


async def describe(invoker: Invoker, inv_id: str) -> dict[str, Any]:
    store = invoker.store
    row_tuple = await asyncio.to_thread(store.get_invocation_row, inv_id)
    if row_tuple is not None:
        row = dict(zip(_core.INVOCATION_COLUMNS, row_tuple))
    else:
        attempt = invoker.live.get(inv_id)
        if attempt is None:
            raise HttpError(404, f"invocation {inv_id} not found")
        row = views.live_row(attempt.inv, now_ms())
    queued_status(invoker, row)
    entries = await asyncio.to_thread(store.load_journal, inv_id)
    completions = {index: (value, code, message)
                   for index, value, code, message in await asyncio.to_thread(store.load_completions, inv_id)}
    out = views.invocation(row, service_ty(invoker, row["service"], row["kind"]))
    out["input"] = views.value_json(row["input"])
    out["headers"] = [list(h) for h in row["headers"]]
    completed = row["status"] == _core.STATUS_COMPLETED
    out["output"] = views.value_json(row["output"]) if completed and not row["failure_code"] else None
    out["failure"] = views.failure(row["failure_code"], row["failure_message"]) if completed else None
    out["journal"] = views.journal(entries, completions)
    return out


async def refuse_schedule_ticks(invoker: Invoker, inv_id: str, action: str) -> None:
    """A tick of a cron schedule (an invocation of runtime/schedules.py's object) is how the
    schedule keeps firing: cancelling, killing or pausing it would stop the schedule for good,
    so it is refused (409) with what to do instead; nothing changes."""
    row = await asyncio.to_thread(invoker.store.get_invocation_row, inv_id)
    service = row[_core.INVOCATION_COLUMNS.index("service")] if row is not None else None
    if service == schedules.SERVICE:
        key = row[_core.INVOCATION_COLUMNS.index("key")]  # type: ignore[index]
        raise HttpError(409, f"invocation {inv_id} is a tick of the cron schedule {key!r}: to {action} it "
                             f"would stop the schedule; pause or remove the schedule instead "
                             f"(PATCH /schedules/{key} {{\"paused\": true}}, or DELETE /schedules/{key})")


async def signal(invoker: Invoker, inv_id: str, action: str, send: Send) -> None:
    store = invoker.store
    answer, seq = store.cancel(inv_id) if action == "cancel" else store.kill(inv_id)
    if answer == _core.SIGNAL_UNKNOWN and invoker.persist_live(inv_id):
        # Running in memory without a durable point yet: now persisted, signal again.
        answer, seq = store.cancel(inv_id) if action == "cancel" else store.kill(inv_id)
    if answer == _core.SIGNAL_UNKNOWN:
        await invoker.commits.wait(seq)  # a purge may be what made it unknown
        raise HttpError(404, f"invocation {inv_id} not found")
    if answer == _core.SIGNAL_ALREADY_COMPLETED:
        await invoker.commits.wait(seq)  # the 409 is true once its commit is durable
        raise HttpError(409, f"invocation {inv_id} is already completed")
    await invoker.signal(seq)
    status = "cancelling" if action == "cancel" else "killed"
    await respond(send, 202, json_body({"invocationId": inv_id, "status": status}))


def _signal_once_persisted(invoker: Invoker, inv_id: str, act: Callable[[str], tuple[int, int]]) -> tuple[int, int]:
    answer, seq = act(inv_id)
    if answer == _core.SIGNAL_UNKNOWN and invoker.persist_live(inv_id):
        # Running in memory without a durable point yet: now persisted, signal again.
        answer, seq = act(inv_id)
    return answer, seq


async def pause(invoker: Invoker, inv_id: str, send: Send) -> None:
    """Restate's pause (crates/admin/src/rest_api/invocations.rs `pause_invocation`): 202 when
    paused (running, suspended or backing off), 200 when it already was, 409 when it is not
    running (inboxed, scheduled or completed), 404 when unknown."""
    answer, seq = _signal_once_persisted(invoker, inv_id, invoker.store.pause)
    if answer == _core.SIGNAL_APPLIED:
        await invoker.signal(seq)  # its attempt in memory is closed once the pause is durable
    else:
        await invoker.commits.wait(seq)  # every other answer is true once this commit is durable
    if answer == _core.SIGNAL_UNKNOWN:
        raise HttpError(404, f"invocation {inv_id} not found")
    if answer == _core.SIGNAL_ALREADY_COMPLETED:
        raise HttpError(409, f"invocation {inv_id} is completed: an invocation can be paused only while "
                             "it is running, suspended or backing off")
    if answer == _core.SIGNAL_NOT_STARTED:
        raise HttpError(409, f"invocation {inv_id} is not running: it is inboxed or scheduled, and an "
                             "invocation can be paused only once it has started")
    status = 202 if answer == _core.SIGNAL_APPLIED else 200  # SIGNAL_UNCHANGED: already paused
    await respond(send, status, json_body({"invocationId": inv_id, "status": "paused"}))


async def resume(invoker: Invoker, inv_id: str, query_string: bytes, send: Send) -> None:
    """Restate's resume (`resume_invocation`): 200 when resumed (paused or suspended: replayed
    now; backing off: retried now) or already running; 425 when it has not started yet
    (inboxed or scheduled); 409 when completed; 404 when unknown. Restate's `deployment` query
    parameter (re-pin a paused invocation to another deployment) is not supported: only its
    default, `keep`."""
    deployment = parse_qs(query_string.decode("latin-1")).get("deployment", ["keep"])[-1]
    if deployment != "keep":
        raise HttpError(400, f"deployment={deployment!r}: changing the deployment of a resumed invocation "
                             "is not supported; it resumes on the deployment it is pinned to")
    answer, seq = _signal_once_persisted(invoker, inv_id, invoker.store.resume_invocation)
    if answer == _core.SIGNAL_APPLIED:
        await invoker.signal(seq)  # its WAKE_RUN starts the replay once the resume is durable
    else:
        await invoker.commits.wait(seq)
    if answer == _core.SIGNAL_UNKNOWN:
        raise HttpError(404, f"invocation {inv_id} not found")
    if answer == _core.SIGNAL_ALREADY_COMPLETED:
        raise HttpError(409, f"invocation {inv_id} is completed: an invocation can be resumed only while "
                             "it is running, paused, suspended or backing off")
    if answer == _core.SIGNAL_NOT_STARTED:
        raise HttpError(425, f"invocation {inv_id} has not started: it is inboxed or scheduled, and an "
                             "invocation can be resumed only once it has started")
    await respond(send, 200, json_body({"invocationId": inv_id, "status": "running"}))


async def purge(invoker: Invoker, inv_id: str, send: Send) -> None:
    store = invoker.store
    answer, seq = store.purge_invocation(inv_id)
    await invoker.commits.wait(seq)  # every answer below is true once this commit is durable
    if answer == _core.SIGNAL_UNKNOWN:
        raise HttpError(404, f"invocation {inv_id} not found")
    if answer == _core.PURGE_NOT_COMPLETED:
        raise HttpError(409, f"invocation {inv_id} is not completed: cancel or kill it first")
    # A purged workflow run takes its key's state with it: no cached copy may outlive it.
    invoker.cache.forget_services({name for name in invoker.app.services
                                   if invoker.app.service_type(name) == "workflow"})
    await respond(send, 202, json_body({"invocationId": inv_id, "status": "purged"}))
