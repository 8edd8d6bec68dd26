"""The admin API's cron schedules (runtime/schedules.py):

    POST   /schedules                 {"id", "service", "handler", "key"?, "cron" | "every",
                                       "timezone"?, "input"?, "catchup"?, "overlap"?, "grace"?,
                                       "paused"?}: 201 and the schedule; 409 if the id is taken
    GET    /schedules                 {"schedules": [...]}, by id
    GET    /schedules/{id}            one schedule: its definition, "paused", "origin" (api or
                                      code), "next_fire_at" and the "upcoming" fire times,
                                      the last firing and its invocation, the counters
    PATCH  /schedules/{id}            {"paused": true | false} and/or fields of the definition
                                      to change (a new cron replaces "every", and the other way
                                      round): 200 and the schedule
    DELETE /schedules/{id}            202 {"id", "status": "removed"}

A schedule is checked before anything is written: its fields, and that its target is a
handler this runtime serves, with a key where it takes one and an input it accepts;
anything wrong is a 400 naming the field. Every change runs as an invocation of the
schedules' object on the schedule's key (so it is serialized with that schedule's
firings, and journaled), and is answered once it has completed.
"""

from __future__ import annotations

import json
from typing import Any

from pysdk._schedules import Schedule, ScheduleError
from runtime import schedules
from runtime.http import HttpError, Receive, Scope, Send, json_body, read_body, respond
from runtime.invoker import Invoker

MAX_BODY = 1024 * 1024


async def handle(invoker: Invoker, parts: list[str], scope: Scope, receive: Receive, send: Send) -> None:
    method = scope["method"]
    if len(parts) == 1:
        if method == "GET":
            docs = await schedules.read(invoker)
            await respond(send, 200, json_body({"schedules": [_view(invoker, docs[k]) for k in sorted(docs)]}))
        elif method == "POST":
            await _create(invoker, scope, receive, send)
        else:
            raise HttpError(405, f"method {method} not allowed: GET or POST /schedules")
        return
    if len(parts) != 2:
        raise HttpError(404, f"unknown admin path {scope['path']}")
    schedule_id = parts[1]
    if method == "GET":
        await respond(send, 200, json_body(_view(invoker, await _current(invoker, schedule_id))))
    elif method == "PATCH":
        await _update(invoker, schedule_id, scope, receive, send)
    elif method == "DELETE":
        await _current(invoker, schedule_id)
        await _call(invoker, "delete", schedule_id, {})
        await respond(send, 202, json_body({"id": schedule_id, "status": "removed"}))
    else:
        raise HttpError(405, f"method {method} not allowed: GET, PATCH or DELETE /schedules/{{id}}")


def _view(invoker: Invoker, doc: dict[str, Any]) -> dict[str, Any]:
    return schedules.view(doc, lambda invocation: schedules.running(invoker, invocation))


async def _current(invoker: Invoker, schedule_id: str) -> dict[str, Any]:
    doc = (await schedules.read(invoker, schedule_id)).get(schedule_id) if schedule_id else None
    if doc is None:
        raise HttpError(404, f"schedule {schedule_id!r} not found")
    return doc


async def _json(scope: Scope, receive: Receive) -> dict[str, Any]:
    body = await read_body(scope["headers"], receive, MAX_BODY)
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HttpError(400, "expected a JSON object, the schedule's fields")
    return doc


def _checked(invoker: Invoker, doc: dict[str, Any]) -> Schedule:
    try:
        s = Schedule.from_json(doc)
        schedules.check_target(invoker.app, s)
    except ScheduleError as exc:
        raise HttpError(400, str(exc)) from None
    return s


async def _call(invoker: Invoker, handler: str, key: str, doc: Any) -> dict[str, Any]:
    output, code, message = await schedules.call(invoker, handler, key, doc)
    if code:
        raise HttpError(code if 400 <= code < 500 else 500, message or f"{handler} failed")
    return json.loads(output) if output else {}


async def _create(invoker: Invoker, scope: Scope, receive: Receive, send: Send) -> None:
    s = _checked(invoker, await _json(scope, receive))
    doc = await _call(invoker, "create", s.id, s.to_json())
    await respond(send, 201, json_body(_view(invoker, doc)))


async def _update(invoker: Invoker, schedule_id: str, scope: Scope, receive: Receive, send: Send) -> None:
    patch = await _json(scope, receive)
    current = (await _current(invoker, schedule_id))["schedule"]
    paused = patch.pop("paused", None)
    if paused is not None and not isinstance(paused, bool):
        raise HttpError(400, f"paused: expected true or false, got {paused!r}")
    if patch.get("id", schedule_id) != schedule_id:
        raise HttpError(400, f"id: a schedule's id cannot change (it is {schedule_id!r})")
    new = None
    if patch:
        merged = dict(current)
        if "cron" in patch:
            merged["every"] = None
        if "every" in patch:
            merged["cron"] = merged["timezone"] = None
        merged.update(patch)
        new = _checked(invoker, merged).to_json()
    doc = await _call(invoker, "update", schedule_id, {"schedule": new, "paused": paused})
    await respond(send, 200, json_body(_view(invoker, doc)))
