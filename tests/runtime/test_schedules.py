"""Cron schedules without a server: the definitions (pysdk/_schedules.py), their time
arithmetic (cron in time zones, epoch-anchored intervals), and the decisions a tick makes
(runtime/schedules.py `on_tick`, `on_done`: catch-up and overlap policies), applied to a
status and checked by what they return and leave."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

import pysdk
from pysdk import CatchupPolicy, OverlapPolicy, Schedule, Service, VirtualObject, Workflow
from pysdk._schedules import ScheduleError, format_duration, format_time, parse_duration_ms
from runtime.schedules import Status, arm, check_target, on_done, on_tick, pause

svc = Service("Svc")
obj = VirtualObject("Obj")
wf = Workflow("Wf")


@svc.handler()
async def job(ctx: pysdk.Context) -> None: ...


@svc.handler()
async def takes(ctx: pysdk.Context, n: int) -> None: ...


@obj.handler()
async def touch(ctx: pysdk.ObjectContext) -> None: ...


@wf.main()
async def flow(ctx: pysdk.WorkflowContext) -> None: ...


@wf.handler()
async def peek(ctx: pysdk.WorkflowSharedContext) -> None: ...


APP = pysdk.app([svc, obj, wf])
S = 1000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


# ---- definitions -----------------------------------------------------------------------


def test_a_schedule_of_a_handler_function_and_its_json() -> None:
    s = Schedule("nightly", job, cron="0 3 * * MON-FRI", timezone="Europe/Paris", input=None)
    assert (s.service, s.handler, s.key) == ("Svc", "job", None)
    doc = s.to_json()
    assert doc == {"id": "nightly", "service": "Svc", "handler": "job", "key": None, "cron": "0 3 * * MON-FRI",
                   "every": None, "timezone": "Europe/Paris", "input": None, "catchup": "ONE",
                   "overlap": "SKIP", "grace": "10s", "paused": False}
    assert Schedule.from_json(doc) == s
    t = Schedule("t", "Obj/touch", key="k", every=timedelta(minutes=90), catchup="all", overlap="buffer-one")
    assert t.to_json()["every"] == "1h30m" and t.catchup is CatchupPolicy.ALL and t.overlap is OverlapPolicy.BUFFER_ONE
    assert Schedule("l", job, every="1s", catchup=CatchupPolicy.LATEST).catchup is CatchupPolicy.ONE


@pytest.mark.parametrize("kwargs, field", [
    (dict(cron="* * * *"), "cron"),  # 4 fields
    (dict(cron="0 0 0 * * *"), "cron"),  # 6 fields (seconds): not the standard 5
    (dict(cron="61 * * * *"), "cron"),
    (dict(cron="0 0 30 2 *"), "cron"),  # February 30th
    (dict(cron="0 3 * * *", timezone="Mars/Olympus"), "timezone"),
    (dict(every="1s", timezone="Europe/Paris"), "timezone"),
    (dict(every="500ms"), "every"),
    (dict(every="soon"), "every"),
    (dict(every=30), "every"),
    (dict(), "exactly one"),
    (dict(cron="@daily", every="1h"), "exactly one"),
    (dict(every="1s", catchup="SOMETIMES"), "catchup"),
    (dict(every="1s", overlap="BUFFER_ALL"), "overlap"),
    (dict(every="1s", grace="-1s"), "grace"),
    (dict(every="1s", key="k"), "key"),  # a service takes no key
])
def test_bad_definitions_name_their_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ScheduleError, match=field):
        Schedule("s", job, **kwargs)


def test_keys_follow_the_target_and_ids_are_plain() -> None:
    with pytest.raises(ScheduleError, match="key: Obj is a virtual object"):
        Schedule("s", touch, every="1s")
    with pytest.raises(ScheduleError, match="main handler"):
        Schedule("s", flow, every="1s", key="k")
    for bad in ("", "a/b", "-x", "x y", "x" * 129):
        with pytest.raises(ScheduleError, match="id"):
            Schedule(bad, job, every="1s")
    with pytest.raises(ScheduleError, match="target"):
        Schedule("s", lambda: None, every="1s")
    with pytest.raises(ScheduleError, match="unknown field 'when'"):
        Schedule.from_json({"id": "s", "service": "Svc", "handler": "job", "when": "now"})


def test_the_app_takes_schedules() -> None:
    s = Schedule("s", job, every="1s")
    assert pysdk.app([svc], schedules=[s]).schedules == (s,)
    assert pysdk.app([svc]).schedules == ()
    with pytest.raises(ValueError, match="unique"):
        pysdk.app([svc], schedules=[s, Schedule("s", job, every="2s")])
    with pytest.raises(ValueError, match="no handler 'nope'"):
        pysdk.app([svc], schedules=[Schedule("s", "Svc/nope", every="2s")])
    with pytest.raises(TypeError, match="a list"):
        pysdk.app([svc], schedules=s)  # type: ignore[arg-type]


def test_targets_are_checked_against_what_the_runtime_serves() -> None:
    check_target(APP, Schedule("a", job, every="1s"))
    check_target(APP, Schedule("b", "Obj/touch", key="k", every="1s"))
    check_target(APP, Schedule("c", flow, every="1s"))
    check_target(APP, Schedule("d", "Wf/peek", key="k", every="1s"))
    check_target(APP, Schedule("e", takes, every="1s", input=3))
    for s, field in [(Schedule("x", "Nope/job", every="1s"), "service"),
                     (Schedule("x", "Svc/nope", every="1s"), "handler"),
                     (Schedule("x", "Obj/touch", every="1s"), "key"),
                     (Schedule("x", "Svc/job", every="1s", key="k"), "key"),
                     (Schedule("x", "Wf/run", every="1s", key="k"), "handler"),
                     (Schedule("x", "Wf/flow", every="1s", key="k"), "key"),
                     (Schedule("x", takes, every="1s", input="three"), "input")]:
        with pytest.raises(ScheduleError, match=field):
            check_target(APP, s)
    check_target(APP, Schedule("x", "Remote/job", every="1s"), unknown_ok=True)


def test_durations() -> None:
    assert parse_duration_ms("1h30m", "x") == 90 * 60 * S
    assert parse_duration_ms("250ms", "x") == 250
    assert parse_duration_ms("1.5s", "x") == 1500
    assert parse_duration_ms(timedelta(days=1), "x") == 86_400 * S
    assert [format_duration(v) for v in (0, 1500, 90_000, 86_400_000 + 1)] == ["0s", "1s500ms", "1m30s", "1d1ms"]
    assert format_time(ms("2026-03-01T03:00:00+00:00")) == "2026-03-01T03:00:00Z"
    assert format_time(ms("2026-03-01T03:00:00.250+00:00")) == "2026-03-01T03:00:00.250Z"


# ---- fire times ------------------------------------------------------------------------


def test_intervals_are_anchored_to_the_epoch() -> None:
    s = Schedule("s", job, every="1h")
    assert s.next_after(ms("2026-01-01T10:17:03+00:00")) == ms("2026-01-01T11:00:00+00:00")
    assert s.next_after(ms("2026-01-01T11:00:00+00:00")) == ms("2026-01-01T12:00:00+00:00")  # strictly after
    due, total = Schedule("t", job, every="1s").times_between(10 * S + 500, 15 * S)
    assert (due, total) == ([11 * S, 12 * S, 13 * S, 14 * S, 15 * S], 5)
    due, total = Schedule("t", job, every="1s").times_between(0, 86_400 * S, limit=3)
    assert (due, total) == ([86_398 * S, 86_399 * S, 86_400 * S], 86_400)


def test_cron_in_a_time_zone_across_daylight_saving() -> None:
    paris = Schedule("s", job, cron="30 2 * * *", timezone="Europe/Paris")
    # 2026-03-29: clocks jump from 02:00 to 03:00 in Paris; 02:30 does not exist that day.
    start = datetime(2026, 3, 28, 12, 0, tzinfo=ZoneInfo("Europe/Paris"))
    times = [datetime.fromtimestamp(t / 1000, ZoneInfo("Europe/Paris")) for t in
             paris.upcoming(int(start.timestamp() * 1000), 3)]
    assert [t.strftime("%m-%d %H:%M %Z") for t in times] == ["03-29 03:00 CEST", "03-30 02:30 CEST",
                                                             "03-31 02:30 CEST"]
    utc = Schedule("u", job, cron="@hourly")
    assert utc.next_after(ms("2026-01-01T10:17:00+00:00")) == ms("2026-01-01T11:00:00+00:00")


def test_a_long_gap_of_a_cron_schedule_is_taken_from_its_end() -> None:
    s = Schedule("s", job, cron="* * * * *")  # every minute: 525,600 in a year
    start, end = ms("2025-01-01T00:00:00+00:00"), ms("2026-01-01T00:00:30+00:00")
    due, total = s.times_between(start, end, limit=3)
    assert due == [ms("2025-12-31T23:58:00+00:00"), ms("2025-12-31T23:59:00+00:00"), ms("2026-01-01T00:00:00+00:00")]
    assert total >= 100_000


# ---- decisions ------------------------------------------------------------------------


def status(last: int) -> Status:
    return Status(last_ms=last, gen="g")


def test_on_time_firings_run_and_the_next_is_armed() -> None:
    s = Schedule("s", job, every="1s")
    st = status(10 * S)
    assert on_tick(s, st, 11 * S + 5, busy=False) == [11 * S]
    assert (st.last_ms, st.next_ms, st.missed, st.caught_up) == (11 * S, 12 * S, 0, 0)
    assert on_tick(s, st, 11 * S + 900, busy=False) == []  # early or repeated: nothing due
    assert st.next_ms == 12 * S
    # A short stall (within grace) is not a miss: everything due runs, ALL or not.
    assert on_tick(s, st, 14 * S + 10, busy=False) == [12 * S]  # overlap SKIP: one at a time
    assert st.overlapped == 2


@pytest.mark.parametrize("policy, fires, missed, caught_up", [
    (CatchupPolicy.SKIP, [20 * S], 9, 0),
    (CatchupPolicy.ONE, [19 * S, 20 * S], 8, 1),
    (CatchupPolicy.ALL, [t * S for t in range(11, 21)], 0, 9),
])
def test_catchup_policies(policy: CatchupPolicy, fires: list[int], missed: int, caught_up: int) -> None:
    # Down from just after 10s to 20.5s: 11..20 are due; with grace 1s, 20 is on time
    # (0.5s late) and 11..19 were missed.
    s = Schedule("s", job, every="1s", catchup=policy, overlap=OverlapPolicy.ALLOW_ALL, grace="1s")
    st = status(10 * S)
    assert on_tick(s, st, 20 * S + 500, busy=False) == fires
    assert (st.missed, st.caught_up, st.fired) == (missed, caught_up, 0)  # `fired` counts sends
    assert (st.last_ms, st.next_ms) == (20 * S, 21 * S)


def test_overlap_applies_to_catch_up_runs_too() -> None:
    # ONE runs the latest missed firing; the on-time one comes while it runs: SKIP skips it.
    s = Schedule("s", job, cron="0 * * * *")
    st = status(ms("2026-01-01T00:00:00+00:00"))
    assert on_tick(s, st, ms("2026-01-01T05:00:03+00:00"), busy=False) == [ms("2026-01-01T04:00:00+00:00")]
    assert (st.missed, st.caught_up, st.overlapped) == (3, 1, 1)
    assert st.next_ms == ms("2026-01-01T06:00:00+00:00")


def test_catch_up_all_is_bounded() -> None:
    s = Schedule("s", job, every="1s", catchup=CatchupPolicy.ALL, overlap=OverlapPolicy.ALLOW_ALL, grace="0s")
    st = status(0)
    got = on_tick(s, st, 1000 * S, busy=False)
    assert len(got) == 100 and got[-1] == 1000 * S
    assert (st.missed, st.caught_up) == (900, 99)  # 1000s itself is on time


def test_overlap_skip_and_allow_all() -> None:
    skip = Schedule("s", job, every="1s")
    st = status(10 * S)
    st.running = "inv_a"
    assert on_tick(skip, st, 11 * S, busy=True) == []
    assert (st.overlapped, st.running) == (1, "inv_a")
    assert on_tick(skip, st, 12 * S, busy=False) == [12 * S]
    assert st.running is None  # the tick's handler records the new firing's invocation
    allow = Schedule("a", job, every="1s", overlap=OverlapPolicy.ALLOW_ALL)
    st = status(10 * S)
    assert on_tick(allow, st, 12 * S, busy=True) == [11 * S, 12 * S]


def test_buffer_one_keeps_the_first_and_starts_it_when_the_running_one_is_done() -> None:
    s = Schedule("s", job, every="1s", overlap=OverlapPolicy.BUFFER_ONE)
    st = status(10 * S)
    st.running = "inv_a"
    assert on_tick(s, st, 11 * S, busy=True) == []
    assert st.buffered_ms == 11 * S
    assert on_tick(s, st, 12 * S, busy=True) == []
    assert (st.buffered_ms, st.overlapped) == (11 * S, 1)
    assert on_done(st, "inv_other") == []  # an older firing's
    assert on_done(st, "inv_a") == [11 * S]
    assert (st.running, st.buffered_ms) == (None, None)
    # The running one finished before its `done` came: the next tick starts the buffered one
    # first, and buffers what is due now.
    st.running, st.buffered_ms, st.last_ms = "inv_b", 13 * S, 13 * S
    assert on_tick(s, st, 14 * S, busy=False) == [13 * S]
    assert st.buffered_ms == 14 * S


def test_pause_drops_the_buffered_firing_and_arm_starts_from_now() -> None:
    s = Schedule("s", job, every="1s", overlap=OverlapPolicy.BUFFER_ONE)
    st = status(10 * S)
    st.running, st.buffered_ms = "inv_a", 11 * S
    pause(st)
    assert (st.paused, st.next_ms, st.buffered_ms, st.overlapped) == (True, None, None, 1)
    assert on_done(st, "inv_a") == []
    st.paused = False
    arm(s, st, 50 * S + 300, "g2")
    assert (st.gen, st.last_ms, st.next_ms) == ("g2", 50 * S + 300, 51 * S)
    assert on_tick(s, st, 51 * S, busy=False) == [51 * S]  # nothing of the paused time
