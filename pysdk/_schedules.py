"""`Schedule`: a durable recurring invocation of a handler, and its two policies.

    from pysdk import CatchupPolicy, OverlapPolicy, Schedule, app

    application = app([reports, accounts], schedules=[
        Schedule("nightly-report", run_report, cron="0 3 * * MON-FRI", timezone="Europe/Paris"),
        Schedule("sync-acme", sync, key="acme", every="5m", overlap=OverlapPolicy.BUFFER_ONE),
    ])

A schedule names its target (a handler function, or "Service/handler" by name), when it
fires (a standard 5-field cron expression in an IANA time zone, or a fixed interval), the
input each firing gets, and two policies with Temporal's names:

- catch-up (`CatchupPolicy`): what to do with firings that were missed, that is found more
  than `grace` late (10 s by default, Temporal's shortest catch-up window), typically
  because the server was down: `SKIP` them, run `ONE` for all of them (at the latest
  missed time; `LATEST` is another name for it), or run `ALL` of them, oldest first (at
  most the latest 100). A firing less than `grace` late is not missed: it runs.
- overlap (`OverlapPolicy`): what to do when a firing comes while the invocation of the
  previous one has not finished: `SKIP` it, `BUFFER_ONE` (start it as soon as the previous
  one finishes; while one is buffered, further ones are skipped), or `ALLOW_ALL`.

Intervals are anchored to the Unix epoch, as Temporal's are: `every="1h"` fires on the
hour (UTC), `every="1s"` on whole seconds, whatever time the schedule was created.

Each firing is one invocation of the target. Its idempotency key, and for a workflow its
key, is `fire_key(t)`: "<schedule id>@<fire time, RFC 3339 UTC>"; the handler receives
the schedule's id and the fire time in the headers `x-stead-schedule` and
`x-stead-schedule-time`. The runtime's side (durability, catch-up, overlap) is
runtime/schedules.py; this module is the definition and the time arithmetic, checked
when the `Schedule` is built, so a bad expression fails where the app is defined.

Cron expressions are evaluated by cronsim (imported on first use): small, no
dependencies, zoneinfo-native, with documented behaviour on daylight-saving changes (a
time skipped by a spring-forward fires at the first instant after the gap; a repeated
hour fires once), and in production use by Healthchecks.io.
"""
from __future__ import annotations

import enum
import re
from collections import deque
from datetime import datetime, timedelta, timezone as _tz
from typing import Any, Iterator, Optional, Union, cast

from ._commands import HANDLER_ATTR

__all__ = ["CatchupPolicy", "OverlapPolicy", "Schedule", "ScheduleError"]

HEADER_ID = "x-stead-schedule"
HEADER_TIME = "x-stead-schedule-time"
DEFAULT_GRACE_MS = 10_000
MIN_EVERY_MS = 1_000
MAX_CATCHUP = 100  # ALL runs at most this many missed firings (the latest); the others are missed
_SCAN_CAP = 100_000  # fire times counted one by one before a long gap is taken from its end

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
           "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_FIELDS = ("id", "service", "handler", "key", "cron", "every", "timezone", "input", "catchup", "overlap",
           "grace", "paused")


class ScheduleError(ValueError):
    """A schedule that cannot be: its message names the field (the admin API answers 400 with it)."""


class CatchupPolicy(str, enum.Enum):
    """What happens to firings missed (more than `grace` late), e.g. while the server was down."""

    SKIP = "SKIP"
    ONE = "ONE"
    ALL = "ALL"
    LATEST = "ONE"  # Temporal's other word for running the latest missed firing only

    def __str__(self) -> str:
        return self.value


class OverlapPolicy(str, enum.Enum):
    """What happens to a firing while the previous firing's invocation has not finished."""

    SKIP = "SKIP"
    BUFFER_ONE = "BUFFER_ONE"
    ALLOW_ALL = "ALLOW_ALL"

    def __str__(self) -> str:
        return self.value


def parse_duration_ms(value: Union[str, timedelta], what: str) -> int:
    """Milliseconds of a timedelta or of "250ms", "30s", "5m", "1h30m", "1d"."""
    if isinstance(value, timedelta):
        ms = round(value.total_seconds() * 1000)
    elif isinstance(value, str):
        text, pos, total = value.strip(), 0, 0.0
        for m in _DURATION.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS_MS[m.group(2)]
            pos = m.end()
        if not text or pos != len(text):
            raise ScheduleError(f"{what}: expected a duration like 30s, 5m, 1h30m or 1d, got {value!r}")
        ms = round(total)
    else:
        raise ScheduleError(f"{what}: expected a duration like \"30s\" or a timedelta, got {type(value).__name__}")
    if ms < 0:
        raise ScheduleError(f"{what}: must not be negative")
    return ms


def format_duration(ms: int) -> str:
    """The canonical text of a duration: 90000 -> "1m30s", 1500 -> "1s500ms", 0 -> "0s"."""
    if ms == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s", "ms"):
        n, ms = divmod(ms, _UNITS_MS[unit])
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def format_time(ms: int) -> str:
    """RFC 3339 in UTC, with milliseconds only when there are some."""
    dt = datetime.fromtimestamp(ms / 1000, _tz.utc)
    text = dt.strftime("%Y-%m-%dT%H:%M:%S")
    return text + (f".{ms % 1000:03d}Z" if ms % 1000 else "Z")


def _target(target: Any) -> tuple[str, str, Optional[str]]:
    """(service, handler, service type or None when named by string) of a target."""
    spec = getattr(target, HANDLER_ATTR, None)
    if spec is not None:
        return spec.service_name, spec.name, spec.service_type if spec.kind != "workflow" else "workflow-main"
    if isinstance(target, str):
        service, sep, handler = target.partition("/")
        if sep and service and handler and "/" not in handler:
            return service, handler, None
    raise ScheduleError(f"target: expected a handler (a function decorated with @service.handler(), ...) "
                        f"or \"Service/handler\", got {target!r}")


class Schedule:
    """A recurring invocation of one handler; see the module docstring.

    `target` is a handler function or "Service/handler"; `key` the object key (for a
    virtual object's handler, or a workflow's shared handler; a workflow's main handler
    gets a key of its own per firing, `fire_key`). Exactly one of `cron` (5 fields, or
    @hourly, @daily, @weekly, @monthly, @yearly) and `every` (at least 1s) is given;
    `timezone` (IANA, default UTC) applies to `cron`. `input` is the JSON value each
    firing is invoked with (None: no input). `paused` creates it paused.
    """

    __slots__ = ("id", "service", "handler", "key", "cron", "every_ms", "timezone", "input", "catchup",
                 "overlap", "grace_ms", "paused", "_zone", "_target_type")

    def __init__(self, id: str, target: Any, *, cron: Optional[str] = None,
                 every: Union[str, timedelta, None] = None, timezone: Optional[str] = None,
                 key: Optional[str] = None, input: Any = None,
                 catchup: Union[CatchupPolicy, str] = CatchupPolicy.ONE,
                 overlap: Union[OverlapPolicy, str] = OverlapPolicy.SKIP,
                 grace: Union[str, timedelta, None] = None, paused: bool = False) -> None:
        if not isinstance(id, str) or not _ID.match(id):
            raise ScheduleError(f"id: expected 1 to 128 letters, digits, '.', '_' or '-' (not first), got {id!r}")
        self.id = id
        self.service, self.handler, self._target_type = _target(target)
        if key is not None and (not isinstance(key, str) or not key):
            raise ScheduleError(f"key: expected a non-empty string, got {key!r}")
        if self._target_type == "service" and key is not None:
            raise ScheduleError(f"key: {self.service} is a service: its handlers take no key")
        if self._target_type == "object" and key is None:
            raise ScheduleError(f"key: {self.service} is a virtual object: give the key each firing invokes")
        if self._target_type == "workflow-main" and key is not None:
            raise ScheduleError(f"key: {self.service}/{self.handler} is a workflow's main handler: each "
                                "firing gets a key of its own (<schedule id>@<fire time>)")
        self.key = key
        if (cron is None) == (every is None):
            raise ScheduleError("give exactly one of cron (e.g. \"0 3 * * *\") and every (e.g. \"30s\")")
        self.cron: Optional[str] = None
        self.every_ms: Optional[int] = None
        self.timezone: Optional[str] = None
        self._zone: Any = None
        if cron is not None:
            if not isinstance(cron, str):
                raise ScheduleError(f"cron: expected a string, got {type(cron).__name__}")
            self.cron = " ".join(cron.split())
            self.timezone = timezone or "UTC"
            self._zone = _zone(self.timezone)
            _check_cron(self.cron, self._zone)
        else:
            if timezone is not None and timezone != "UTC":
                raise ScheduleError("timezone: applies to cron schedules only (intervals are anchored to the epoch)")
            self.every_ms = parse_duration_ms(every, "every")  # type: ignore[arg-type]
            if self.every_ms < MIN_EVERY_MS:
                raise ScheduleError(f"every: at least 1s, got {format_duration(self.every_ms)}")
        self.input = input
        self.catchup = _policy(CatchupPolicy, catchup, "catchup")
        self.overlap = _policy(OverlapPolicy, overlap, "overlap")
        self.grace_ms = DEFAULT_GRACE_MS if grace is None else parse_duration_ms(grace, "grace")
        if not isinstance(paused, bool):
            raise ScheduleError(f"paused: expected true or false, got {paused!r}")
        self.paused = paused

    # -- JSON (the admin API's and the stored shape) -------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "service": self.service, "handler": self.handler, "key": self.key,
                "cron": self.cron, "every": None if self.every_ms is None else format_duration(self.every_ms),
                "timezone": self.timezone, "input": self.input, "catchup": self.catchup.value,
                "overlap": self.overlap.value, "grace": format_duration(self.grace_ms), "paused": self.paused}

    @classmethod
    def from_json(cls, doc: Any) -> "Schedule":
        """A schedule from its JSON; `ScheduleError` naming the field if it is not one."""
        if not isinstance(doc, dict):
            raise ScheduleError("expected a JSON object {\"id\", \"service\", \"handler\", \"cron\" or \"every\", ...}")
        unknown = sorted(set(doc) - set(_FIELDS))
        if unknown:
            raise ScheduleError(f"unknown field {unknown[0]!r} (fields: {', '.join(_FIELDS)})")
        for name in ("service", "handler"):
            if not isinstance(doc.get(name), str) or not doc[name] or "/" in doc[name]:
                raise ScheduleError(f"{name}: expected a name (a non-empty string without '/'), got {doc.get(name)!r}")
        for name in ("cron", "every", "timezone", "grace"):
            if doc.get(name) is not None and not isinstance(doc[name], str):
                raise ScheduleError(f"{name}: expected a string, got {doc[name]!r}")
        return cls(cast(str, doc.get("id")), f"{doc['service']}/{doc['handler']}", cron=doc.get("cron"),
                   every=doc.get("every"), timezone=doc.get("timezone"), key=doc.get("key"),
                   input=doc.get("input"), catchup=doc.get("catchup") or CatchupPolicy.ONE,
                   overlap=doc.get("overlap") or OverlapPolicy.SKIP, grace=doc.get("grace"),
                   paused=False if doc.get("paused") is None else doc["paused"])

    def same_as(self, other: "Schedule") -> bool:
        """The same definition, whether paused or not (pausing is the schedule's state)."""
        a, b = self.to_json(), other.to_json()
        a.pop("paused")
        b.pop("paused")
        return a == b

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        when = f"cron={self.cron!r} timezone={self.timezone!r}" if self.cron else f"every={format_duration(self.every_ms or 0)!r}"
        key = f" key={self.key!r}" if self.key is not None else ""
        return f"Schedule({self.id!r}, '{self.service}/{self.handler}'{key}, {when})"

    @property
    def target(self) -> str:
        return f"{self.service}/{self.handler}"

    # -- time ----------------------------------------------------------------------------

    def fire_key(self, fire_ms: int) -> str:
        """The idempotency key of the firing at `fire_ms` (and a workflow's key)."""
        return f"{self.id}@{format_time(fire_ms)}"

    def next_after(self, ms: int) -> int:
        """The first fire time strictly after `ms` (ms since the epoch)."""
        if self.every_ms is not None:
            return (ms // self.every_ms + 1) * self.every_ms
        return next(self._cron_times(ms))

    def upcoming(self, ms: int, count: int) -> list[int]:
        """The next `count` fire times after `ms`."""
        out: list[int] = []
        for _ in range(count):
            ms = self.next_after(ms)
            out.append(ms)
        return out

    def times_between(self, after_ms: int, upto_ms: int, limit: int = MAX_CATCHUP) -> tuple[list[int], int]:
        """(the latest `limit` fire times in (after_ms, upto_ms], ascending; how many there are).
        The count is exact for intervals; for a cron expression over a very long gap it stops
        at 100,000 (a lower bound)."""
        if upto_ms <= after_ms:
            return [], 0
        if self.every_ms is not None:
            first = self.next_after(after_ms)
            if first > upto_ms:
                return [], 0
            total = (upto_ms - first) // self.every_ms + 1
            last = first + (total - 1) * self.every_ms
            n = min(limit, total)
            return [last - (n - 1 - i) * self.every_ms for i in range(n)], total
        latest: deque[int] = deque(maxlen=limit)
        total = 0
        for t in self._cron_times(after_ms):
            if t > upto_ms:
                return list(latest), total
            latest.append(t)
            total += 1
            if total >= _SCAN_CAP:
                break
        # A long gap: take its latest times from its end instead of walking all of it.
        back: list[int] = []
        for t in self._cron_times(upto_ms + 1000, reverse=True):
            if t <= after_ms or len(back) == limit:
                break
            if t <= upto_ms:
                back.append(t)
        return sorted(back), total

    def _cron_times(self, ms: int, reverse: bool = False) -> Iterator[int]:
        from cronsim import CronSim

        start = datetime.fromtimestamp(ms / 1000, self._zone)
        for dt in CronSim(_expand(self.cron or ""), start, reverse=reverse):
            yield int(dt.timestamp() * 1000)


def _policy(enum_type: Any, value: Any, what: str) -> Any:
    if isinstance(value, enum_type):
        return value
    if isinstance(value, str):
        try:
            return enum_type[value.strip().upper().replace("-", "_")]
        except KeyError:
            pass
    names = ", ".join(m for m in enum_type.__members__)
    raise ScheduleError(f"{what}: expected one of {names}, got {value!r}")


def _zone(name: Any) -> Any:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not isinstance(name, str) or not name:
        raise ScheduleError(f"timezone: expected an IANA time zone name like Europe/Paris, got {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(f"timezone: unknown time zone {name!r} (an IANA name like Europe/Paris or UTC)") from None


def _expand(cron: str) -> str:
    return _MACROS.get(cron.lower(), cron)


def _check_cron(cron: str, zone: Any) -> None:
    from cronsim import CronSim, CronSimError

    expr = _expand(cron)
    if len(expr.split()) != 5:
        raise ScheduleError(f"cron: expected 5 fields (minute hour day-of-month month day-of-week) "
                            f"or @hourly/@daily/@weekly/@monthly/@yearly, got {cron!r}")
    try:
        next(iter(CronSim(expr, datetime.now(zone))))
    except CronSimError as exc:
        raise ScheduleError(f"cron: {exc} in {cron!r}") from None
    except StopIteration:  # e.g. "0 0 30 2 *": February 30th never comes
        raise ScheduleError(f"cron: {cron!r} never fires") from None
