"""The replay state machine: live recording, replay, determinism checks, steps."""
from __future__ import annotations

import json
from datetime import timedelta

import pytest

from .fakes import FakeBackend, drive, run
from pysdk import ObjectContext, RunOptions, Service, TerminalError, VirtualObject
from pysdk._context import Context, ObjectSharedContext
from pysdk._entries import CLEAR_ALL, CLEAR_STATE, GET_STATE, RUN, SET_STATE, STATE_KEYS
from pysdk._errors import NonDeterminismError, ReplayRequested, Suspended


# -- state, live --------------------------------------------------------------------


def test_live_state_ops_update_the_view_and_record_entries(backend: FakeBackend) -> None:
    backend.state = {"a": b"1", "b": b"2"}
    m = backend.machine()
    ctx = ObjectContext(m)

    async def body() -> None:
        assert await ctx.get("a") == 1
        assert await ctx.get("missing") is None
        ctx.set("c", [1, 2])
        ctx.clear("a")
        assert await ctx.state_keys() == ["b", "c"]
        ctx.clear_all()
        assert await ctx.state_keys() == []

    run(body())
    assert m.take_pending() == [
        (GET_STATE, "a", b"1", 0, None),
        (GET_STATE, "missing", None, 0, None),
        (SET_STATE, "c", b"[1,2]", 0, None),
        (CLEAR_STATE, "a", None, 0, None),
        (STATE_KEYS, None, b'["b","c"]', 0, None),
        (CLEAR_ALL, None, None, 0, None),
        (STATE_KEYS, None, b"[]", 0, None),
    ]
    assert m.state == {}
    assert m.journal_index == 7
    assert m.take_pending() == []
    assert backend.state == {"a": b"1", "b": b"2"}, "the machine works on its own copy"


def test_get_sees_own_writes(backend: FakeBackend) -> None:
    ctx = ObjectContext(backend.machine())

    async def body() -> object:
        ctx.set("n", 5)
        return await ctx.get("n")

    assert run(body()) == 5


def test_set_none_reads_back_as_none(backend: FakeBackend) -> None:
    m = backend.machine()
    ctx = ObjectContext(m)

    async def body() -> object:
        ctx.set("n", None)
        return await ctx.get("n")

    assert run(body()) is None
    assert m.state == {"n": b""}


# -- state, replay ----------------------------------------------------------------------


def test_replayed_get_returns_the_recorded_value_not_the_state() -> None:
    b = FakeBackend(state={"a": b'"now"'}, journal=[(GET_STATE, "a", b'"then"', 0, None)])
    m = b.machine()
    assert m.replaying
    assert run(ObjectContext(m).get("a")) == "then"
    assert not m.replaying
    assert run(ObjectContext(m).get("a")) == "now"
    assert m.take_pending() == [(GET_STATE, "a", b'"now"', 0, None)]


def test_replayed_writes_do_not_touch_the_state_view() -> None:
    journal = [
        (SET_STATE, "a", b"1", 0, None),
        (CLEAR_STATE, "b", None, 0, None),
        (CLEAR_ALL, None, None, 0, None),
        (STATE_KEYS, None, b'["x"]', 0, None),
    ]
    b = FakeBackend(state={"b": b"2", "x": b"3"}, journal=journal)
    m = b.machine()
    ctx = ObjectContext(m)

    async def body() -> list[str]:
        ctx.set("a", 99)
        ctx.clear("b")
        ctx.clear_all()
        return await ctx.state_keys()

    assert run(body()) == ["x"]
    assert m.state == {"b": b"2", "x": b"3"}
    assert m.take_pending() == []
    assert m.journal_index == 4 and not m.replaying


@pytest.mark.parametrize(
    "op, recorded, expected_text",
    [
        (lambda c: c.set("b", 1), (SET_STATE, "a", b"1", 0, None), "SET_STATE('a')"),
        (lambda c: c.clear("a"), (SET_STATE, "a", b"1", 0, None), "CLEAR_STATE('a')"),
        (lambda c: c.clear_all(), (CLEAR_STATE, "a", None, 0, None), "CLEAR_ALL"),
    ],
)
def test_write_mismatch_is_non_determinism(op, recorded, expected_text) -> None:  # type: ignore[no-untyped-def]
    m = FakeBackend(journal=[recorded]).machine()
    with pytest.raises(NonDeterminismError, match=r"entry 0") as info:
        op(ObjectContext(m))
    assert expected_text in str(info.value)
    assert m.journal_index == 0


def test_get_of_another_name_on_replay_is_non_determinism() -> None:
    m = FakeBackend(journal=[(GET_STATE, "a", b"1", 0, None)]).machine()
    with pytest.raises(NonDeterminismError) as info:
        run(ObjectContext(m).get("b"))
    msg = str(info.value)
    assert "entry 0" in msg and "GET_STATE('a')" in msg and "GET_STATE('b')" in msg


def test_handler_that_changes_its_steps_on_replay_gets_a_clear_error() -> None:
    svc = Service("S")
    calls = {"n": 0}

    @svc.handler()
    async def h(ctx: Context) -> str:
        calls["n"] += 1
        name = "first" if calls["n"] == 1 else "renamed"
        return await ctx.run_typed(name, lambda: "v")

    b = FakeBackend()
    assert run(drive(svc.handlers["h"], b"", b)) == b'"v"'
    with pytest.raises(NonDeterminismError) as info:
        run(drive(svc.handlers["h"], b"", b))
    assert "entry 0" in str(info.value)
    assert "RUN('first')" in str(info.value) and "RUN('renamed')" in str(info.value)


def test_handler_that_stops_early_on_replay_is_non_determinism() -> None:
    obj = VirtualObject("O")

    @obj.handler()
    async def h(ctx: ObjectContext) -> None:
        return None

    m = FakeBackend(journal=[(SET_STATE, "a", b"1", 0, None)]).machine()
    with pytest.raises(NonDeterminismError, match="returned after 0 journal entries"):
        run(obj.handlers["h"].invoke(m, None))


# -- run ---------------------------------------------------------------------------------


def test_replayed_run_returns_the_recorded_result_without_running(backend: FakeBackend) -> None:
    m = FakeBackend(journal=[(RUN, "step", b'{"x": 1}', 0, None)]).machine()
    ran = []
    result = run(Context(m).run_typed("step", lambda: ran.append(1)))
    assert result == {"x": 1}
    assert ran == []
    assert m.take_pending() == []


def test_replayed_terminal_failure_raises_without_running() -> None:
    m = FakeBackend(journal=[(RUN, "step", None, 409, "taken")]).machine()
    ran = []
    with pytest.raises(TerminalError) as info:
        run(Context(m).run("step", lambda: ran.append(1)))
    assert (info.value.message, info.value.status_code) == ("taken", 409)
    assert ran == []


def test_live_run_is_durable_before_it_returns(backend: FakeBackend) -> None:
    m = backend.machine(kind="service")
    ctx = Context(m)

    async def body() -> None:
        ctx_value = await ctx.run_typed("a", lambda x: x * 2, RunOptions(), 21)
        assert ctx_value == 42
        assert backend.flushes == 1
        assert backend.journal == [(RUN, "a", b"42", 0, None)]
        assert m.take_pending() == []

    run(body())


def test_run_flushes_the_state_entries_before_it(backend: FakeBackend) -> None:
    ctx = ObjectContext(backend.machine())

    async def body() -> None:
        ctx.set("a", 1)
        await ctx.run("s", lambda: None)

    run(body())
    assert backend.journal == [(SET_STATE, "a", b"1", 0, None), (RUN, "s", b"", 0, None)]
    assert backend.state == {"a": b"1"}


def test_async_action_with_args_and_kwargs(backend: FakeBackend) -> None:
    async def fetch(a: int, *, b: int) -> int:
        return a + b

    assert run(Context(backend.machine()).run_typed("f", fetch, RunOptions(), 1, b=2)) == 3
    assert backend.journal == [(RUN, "f", b"3", 0, None)]


def test_deprecated_run_passes_args(backend: FakeBackend) -> None:
    def add(a: int, b: int) -> int:
        return a + b

    assert run(Context(backend.machine()).run("add", add, args=(2, 3))) == 5


def test_terminal_failure_is_recorded_flushed_and_raised(backend: FakeBackend) -> None:
    m = backend.machine()

    def boom() -> None:
        raise TerminalError("card declined", 402)

    with pytest.raises(TerminalError) as info:
        run(Context(m).run_typed("charge", boom))
    assert (info.value.message, info.value.status_code) == ("card declined", 402)
    assert backend.journal == [(RUN, "charge", None, 402, "card declined")]
    assert backend.flushes == 1
    # and a replay raises the same error without running the action
    with pytest.raises(TerminalError) as again:
        run(Context(backend.machine()).run_typed("charge", lambda: 1 / 0))
    assert (again.value.message, again.value.status_code) == ("card declined", 402)


def test_run_retries_then_succeeds(backend: FakeBackend, no_sleep: list[float]) -> None:
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 4:
            raise ConnectionError("down")
        return "ok"

    assert run(Context(backend.machine()).run_typed("f", flaky)) == "ok"
    assert len(attempts) == 4
    assert no_sleep == [0.05, 0.1, 0.2]
    assert backend.journal == [(RUN, "f", b'"ok"', 0, None)]


def test_max_attempts_exhausted_becomes_terminal(backend: FakeBackend, no_sleep: list[float]) -> None:
    attempts = []

    def always() -> None:
        attempts.append(1)
        raise ValueError("nope")

    with pytest.raises(TerminalError) as info:
        run(Context(backend.machine()).run_typed("f", always, RunOptions(max_attempts=3)))
    assert len(attempts) == 3
    assert len(no_sleep) == 2
    assert info.value.status_code == 500
    assert "ValueError: nope" in info.value.message and "3 attempt" in info.value.message
    assert backend.journal == [(RUN, "f", None, 500, info.value.message)]


def test_max_duration_exhausted_becomes_terminal(backend: FakeBackend) -> None:
    def always() -> None:
        raise ValueError("nope")

    opts: RunOptions[None] = RunOptions(max_duration=timedelta(milliseconds=30),
                                        initial_retry_interval=timedelta(milliseconds=5))
    with pytest.raises(TerminalError, match="ValueError: nope"):
        run(Context(backend.machine()).run_typed("f", always, opts))
    assert backend.journal[0][3] == 500


def test_deprecated_run_max_attempts(backend: FakeBackend, no_sleep: list[float]) -> None:
    with pytest.raises(TerminalError):
        run(Context(backend.machine()).run("f", lambda: 1 / 0, max_attempts=2))
    assert len(no_sleep) == 1


def test_base_exceptions_are_not_step_failures(backend: FakeBackend) -> None:
    def interrupt() -> None:
        raise ReplayRequested()

    with pytest.raises(ReplayRequested):
        run(Context(backend.machine()).run_typed("f", interrupt))
    assert backend.journal == []


def test_result_that_cannot_be_serialized_is_a_terminal_failure(backend: FakeBackend) -> None:
    with pytest.raises(TerminalError, match="cannot serialize"):
        run(Context(backend.machine()).run_typed("f", lambda: object()))
    assert backend.journal[0][:2] == (RUN, "f")


def test_live_and_replayed_run_return_equal_values(backend: FakeBackend) -> None:
    live = run(Context(backend.machine()).run_typed("t", lambda: (1, 2)))
    replayed = run(Context(backend.machine()).run_typed("t", lambda: (9, 9)))
    assert live == replayed == [1, 2]


# -- always_replay ----------------------------------------------------------------------------


def test_always_replay_raises_after_each_flush(backend: FakeBackend) -> None:
    m = backend.machine(always_replay=True)
    with pytest.raises(ReplayRequested):
        run(Context(m).run_typed("a", lambda: 1))
    assert backend.journal == [(RUN, "a", b"1", 0, None)]
    assert not isinstance(ReplayRequested(), Exception)


def test_always_replay_runs_each_step_once_and_swallowing_is_impossible(backend: FakeBackend) -> None:
    obj = VirtualObject("Counter")
    executions: dict[str, int] = {}
    bodies = []

    def step(name: str) -> str:
        executions[name] = executions.get(name, 0) + 1
        return name.upper()

    @obj.handler()
    async def h(ctx: ObjectContext) -> list[str]:
        bodies.append(1)
        out = []
        for name in ("a", "b", "c"):
            try:
                out.append(await ctx.run_typed(name, step, RunOptions(), name))
            except Exception:  # noqa: BLE001 - user code that catches everything
                out.append("swallowed")
            ctx.set(name, len(out))
        return out

    result = run(drive(obj.handlers["h"], b"", backend, always_replay=True))
    assert json.loads(result) == ["A", "B", "C"]
    assert executions == {"a": 1, "b": 1, "c": 1}
    assert len(bodies) == 4  # 3 forced replays + the final run
    assert backend.state == {"a": b"1", "b": b"2", "c": b"3"}
    assert [e[0] for e in backend.journal] == [RUN, SET_STATE, RUN, SET_STATE, RUN, SET_STATE]


# -- determinism helpers -------------------------------------------------------------------------


def test_random_and_uuid_are_deterministic_per_invocation_id() -> None:
    def sample(inv: str) -> tuple[float, str, int]:
        ctx = Context(FakeBackend().machine(invocation_id=inv))
        return ctx.random().random(), str(ctx.uuid()), ctx.random().randint(0, 10**9)

    assert sample("inv_1") == sample("inv_1")
    assert sample("inv_1") != sample("inv_2")
    assert Context(FakeBackend().machine()).uuid().version == 4


def test_time_is_recorded_and_replayed(backend: FakeBackend) -> None:
    t1 = run(Context(backend.machine()).time())
    assert backend.journal == [(RUN, "timestamp", json.dumps(t1).encode(), 0, None)]
    t2 = run(Context(backend.machine()).time())
    assert t1 == t2 and isinstance(t2, float)


def test_request_and_key(backend: FakeBackend) -> None:
    ctx = ObjectSharedContext(backend.machine(key="cart-1"))
    assert ctx.key() == "cart-1"
    req = ctx.request()
    assert req.id == "inv_1" and req.headers == {"x-test": "1"} and req.body == b""


# -- state values: serialized at the set (value semantics), decoded values lent by the runtime --


def test_set_stores_the_value_as_it_is_at_the_call(backend: FakeBackend) -> None:
    m = backend.machine()
    ctx = ObjectContext(m)
    items = ["a"]

    async def body() -> None:
        ctx.set("items", items)
        items.append("b")  # after the set: not stored (Restate's semantics)

    run(body())
    assert m.take_pending() == [(SET_STATE, "items", b'["a"]', 0, None)]
    assert m.written == {"items": (items, b'["a"]', None)}
    assert m.state == {"items": b'["a"]'}


def test_get_after_set_returns_a_fresh_value(backend: FakeBackend) -> None:
    m = backend.machine()
    ctx = ObjectContext(m)
    items = ["a"]

    async def body() -> object:
        ctx.set("items", items)
        got = await ctx.get("items")
        assert got == ["a"] and got is not items
        got.append("x")  # the handler's own copy: changes nothing stored
        return got

    run(body())
    assert m.take_pending() == [
        (SET_STATE, "items", b'["a"]', 0, None),
        (GET_STATE, "items", b'["a"]', 0, None),
    ]
    assert m.state == {"items": b'["a"]'}


def test_setting_a_name_twice_keeps_each_value_as_it_was_set(backend: FakeBackend) -> None:
    m = backend.machine()
    ctx = ObjectContext(m)

    async def body() -> None:
        first = [1]
        ctx.set("x", first)
        ctx.set("x", [2])
        first.append(3)
        ctx.set("y", [4])
        ctx.clear("y")

    run(body())
    assert m.take_pending() == [
        (SET_STATE, "x", b"[1]", 0, None),
        (SET_STATE, "x", b"[2]", 0, None),
        (SET_STATE, "y", b"[4]", 0, None),
        (CLEAR_STATE, "y", None, 0, None),
    ]
    assert m.state == {"x": b"[2]"}
    assert list(m.written) == ["x"]


class FakeLent:
    """A lent value that records how it was used (runtime/state_values.py has the real one)."""

    def __init__(self, value: object) -> None:
        self.value = value
        self.taken = 0
        self.encoded: list[object] = []

    def take(self) -> object:
        self.taken += 1
        return self.value

    def encode(self, value: object) -> bytes:
        self.encoded.append(value)
        return json.dumps(value, separators=(",", ":")).encode()


def test_lent_decoded_values_are_handed_out_once(backend: FakeBackend) -> None:
    backend.state = {"items": b'["a"]', "n": b"1"}
    lent = FakeLent(["a"])
    m = backend.machine(decoded={"items": lent})
    ctx = ObjectContext(m)

    async def body() -> tuple[object, object]:
        first = await ctx.get("items")
        second = await ctx.get("items")
        return first, second

    first, second = run(body())
    assert first is lent.value and lent.taken == 1, "the lent value itself: no decoding"
    assert second == ["a"] and second is not lent.value, "a second get decodes the bytes"
    assert m.decoded == {}
    assert m.take_pending() == [(GET_STATE, "items", b'["a"]', 0, None)] * 2


def test_a_taken_value_encodes_what_is_set_under_its_name(backend: FakeBackend) -> None:
    backend.state = {"items": b'["a"]', "other": b"[]"}
    lent, other = FakeLent(["a"]), FakeLent([])
    m = backend.machine(decoded={"items": lent, "other": other})
    ctx = ObjectContext(m)

    async def body() -> None:
        items = await ctx.get("items")
        items.append("b")
        ctx.set("items", items)
        ctx.set("copy", items)  # another name: encoded in full
        await ctx.get("other")
        ctx.clear("other")  # taken, then cleared: nothing for it to encode

    run(body())
    assert m.take_pending()[1] == (SET_STATE, "items", b'["a","b"]', 0, None)
    assert lent.encoded == [["a", "b"]] and other.encoded == []
    assert m.written == {"items": (lent.value, b'["a","b"]', lent), "copy": (lent.value, b'["a","b"]', None)}


def test_setting_or_clearing_a_name_drops_its_lent_value(backend: FakeBackend) -> None:
    backend.state = {"a": b"[1]", "b": b"[2]", "c": b"[3]"}
    m = backend.machine(decoded={"a": FakeLent([1]), "b": FakeLent([2]), "c": FakeLent([3])})
    ctx = ObjectContext(m)

    async def body() -> None:
        ctx.set("a", [9])
        ctx.clear("b")

    run(body())
    assert list(m.decoded) == ["c"]
    ctx.clear_all()
    assert m.decoded == {}


def test_unencodable_set_value_fails_at_the_set(backend: FakeBackend) -> None:
    m = backend.machine()
    with pytest.raises(ValueError):
        ObjectContext(m).set("x", object())
    assert m.take_pending() == [] and m.state == {}


def test_replayed_set_value_is_not_written_again(backend: FakeBackend) -> None:
    backend.journal = [(SET_STATE, "x", b"[1]", 0, None)]
    backend.state = {"x": b"[1]"}
    m = backend.machine()
    ObjectContext(m).set("x", [1])
    assert m.take_pending() == [] and m.written == {}


# -- a closed attempt journals nothing more ----------------------------------------------


def test_a_closed_machine_refuses_every_operation(backend: FakeBackend) -> None:
    m = backend.machine()
    ctx = ObjectContext(m)
    ctx.set("a", 1)
    m.close(Suspended)
    ran: list[str] = []

    async def step() -> None:
        await ctx.run("cleanup", lambda: ran.append("cleanup"))

    with pytest.raises(Suspended):
        run(step())
    with pytest.raises(Suspended):
        ctx.set("b", 2)
    with pytest.raises(Suspended):
        run(ctx.get("a"))
    with pytest.raises(Suspended):
        ctx.clear_all()
    assert ran == [], "the body of a step of a closed attempt does not run"
    assert m.take_pending() == [] and m.closed is Suspended


def test_a_machine_closed_while_its_step_runs_does_not_journal_the_result(backend: FakeBackend) -> None:
    m = backend.machine()
    ctx = ObjectContext(m)

    def body() -> str:
        m.close(Suspended)  # e.g. killed while the step's body was running
        return "late"

    with pytest.raises(Suspended):
        run(ctx.run("step", body))
    assert backend.journal == [] and m.take_pending() == []


def test_a_step_waits_at_the_barrier_before_its_body(backend: FakeBackend) -> None:
    m = backend.machine()
    ctx = ObjectContext(m)
    seen: list[int] = []
    assert run(ctx.run("step", lambda: seen.append(backend.barriers) or "x")) == "x"
    assert seen == [1], "the barrier was passed before the body ran"


def test_an_awakeable_is_durable_before_a_step_body_runs(backend: FakeBackend) -> None:
    m = backend.machine()
    ctx = ObjectContext(m)
    journaled: list[int] = []
    ctx.awakeable()
    run(ctx.run("publish", lambda: journaled.append(len(backend.journal)) or "ok"))
    assert journaled == [1], "the AWAKEABLE entry was flushed before the body ran"
