"""Restate's `inactivity_timeout` and `abort_timeout`, per service or handler.

An attempt that makes no progress (no durable point) for `inactivity_timeout`:

* if it waits for a durable future (a sleep, a call, an awakeable, a promise), it
  is suspended: `Attempt.wait` uses the inactivity timeout of its handler as its
  suspension threshold instead of the server's `--suspend-after`;
* otherwise (a step's body or a plain await that does not return) it is asked to
  stop: its machine is closed with `Aborted`, so its next operation unwinds it.
  If it is still running `abort_timeout` later, its task is cancelled. Either
  way the invocation is retried under its retry policy, from its journal (what
  was durable stays; a step that had not finished runs again).

Both are off for in-process handlers unless the app sets them (Restate enables them
by default, with one minute each; a long step body would then be aborted, which
Restate's users raise the abort timeout for). Handlers in a deployment get
Restate's defaults (`REMOTE_DEFAULTS`): a silent deployment must not hold an
invocation forever. One sweep over the attempts in memory per tick checks
them, so an invocation pays nothing but a timestamp per durable point.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import TYPE_CHECKING, NamedTuple, Optional

from pysdk._app import App
from pysdk._errors import AttemptClosed
from pysdk._handler import HandlerSpec

if TYPE_CHECKING:
    from runtime.backend import Attempt

MAX_TICK_S = 1.0
MIN_TICK_S = 0.05


class Aborted(AttemptClosed):
    """The attempt made no progress for its inactivity timeout: it is retried."""


class Limits(NamedTuple):
    inactivity_s: Optional[float]
    abort_s: float
    # How long a wait for a durable future lasts before the attempt is suspended (None:
    # the server's --suspend-after). The inactivity timeout when the app sets one.
    suspend_s: Optional[float] = None


NO_LIMITS = Limits(None, 0.0)
# A handler in a deployment that sets neither timeout gets Restate's defaults, so a
# deployment that stops answering mid-invocation (a hung process, a lost network) does not
# hold the invocation forever: its attempt is aborted and retried. Its waits still
# suspend after the server's --suspend-after.
REMOTE_DEFAULTS = Limits(60.0, 60.0, None)


def _seconds(value: Optional[timedelta]) -> Optional[float]:
    return None if value is None else max(0.0, value.total_seconds())


def limits_for(app: App, spec: HandlerSpec) -> Limits:
    """The handler's option, else its service's; the abort timeout defaults to the
    inactivity timeout's value."""
    service = app.services.get(spec.service_name)
    inactivity = _seconds(spec.options.inactivity_timeout)
    if inactivity is None:
        inactivity = _seconds(getattr(service, "inactivity_timeout", None))
    abort = _seconds(spec.options.abort_timeout)
    if abort is None:
        abort = _seconds(getattr(service, "abort_timeout", None))
    if inactivity is None:
        if getattr(spec, "deployment_id", None):  # runtime/deployments.py RemoteHandlerSpec
            return REMOTE_DEFAULTS if abort is None else REMOTE_DEFAULTS._replace(abort_s=abort)
        return NO_LIMITS
    return Limits(inactivity, inactivity if abort is None else abort, inactivity)


def tick_for(app: App) -> Optional[float]:
    """How often to sweep: a quarter of the shortest timeout set in the app, or None
    if the app sets none."""
    shortest: Optional[float] = None
    for service in app.services.values():
        for spec in service.handlers.values():
            lim = limits_for(app, spec)
            for value in (lim.inactivity_s, lim.abort_s if lim.inactivity_s is not None else None):
                if value is not None and (shortest is None or value < shortest):
                    shortest = value
    if shortest is None:
        return None
    return min(MAX_TICK_S, max(MIN_TICK_S, shortest / 4))


def check(attempt: "Attempt", now: float, aborting: list["Attempt"]) -> None:
    """Close an attempt idle for its inactivity timeout (it leaves the attempts in memory,
    so it is remembered in `aborting`)."""
    lim = attempt.limits
    if lim.inactivity_s is None or attempt.waiting or attempt.aborting_since is not None:
        return
    if now - attempt.last_progress >= lim.inactivity_s:
        attempt.aborting_since = now
        attempt.close(Aborted)
        aborting.append(attempt)


def cancel_stuck(aborting: list["Attempt"], now: float) -> None:
    """Cancel the task of a closed attempt that has not unwound within its abort timeout."""
    for attempt in list(aborting):
        task = attempt.task
        if attempt.ended or task is None:
            aborting.remove(attempt)
        elif attempt.aborting_since is not None and now - attempt.aborting_since >= attempt.limits.abort_s:
            task.cancel()
            aborting.remove(attempt)


async def watch(attempts: dict[str, "Attempt"], tick: Optional[float]) -> None:
    """Sweep the attempts in memory every `tick` seconds (forever; nothing if None)."""
    if tick is None:
        return
    aborting: list[Attempt] = []
    while True:
        await asyncio.sleep(tick)
        now = time.monotonic()
        for attempt in list(attempts.values()):
            check(attempt, now, aborting)
        cancel_stuck(aborting, now)
