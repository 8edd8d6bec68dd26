"""Restate SDK semantics that a ported handler relies on (issue 8): TerminalError's
metadata, RetryableError and its retry_after, internal control flow out of reach of
`except Exception`, pydantic models written by field name, and `ctx.request()`.

The end-to-end tests serve `application` below with a real `stead serve`.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pydantic
import pytest

import pysdk
import pysdk.context
import pysdk.exceptions
from pysdk import Context, ObjectContext, RunOptions, Service, VirtualObject, app
from pysdk import _errors
from pysdk._context import ObjectSharedContext
from pysdk._entries import COMPLETE_AWAKEABLE, RUN, SET_STATE
from pysdk._ids import awakeable_id
from pysdk._serde import DefaultSerde, PydanticJsonSerde, codec_for_hint, json_dumps

from .fakes import FakeBackend, drive, run


class Item(pydantic.BaseModel):
    """A model whose field has an alias, and no `populate_by_name`."""

    field_name: int = pydantic.Field(alias="x")


ITEM_BY_NAME = b'{"field_name":1}'


# -- the app served by the end-to-end tests ----------------------------------------------

compat = Service("Compat")
compat_obj = VirtualObject("CompatObj")
_attempts: dict[str, list[float]] = {}


@compat.handler()
async def later(ctx: Context, delay_ms: int) -> int:
    """Fails its first attempt with RetryableError (retry_after=`delay_ms`, none if 0);
    returns the ms between the attempts."""
    times = _attempts.setdefault(ctx.request().id, [])
    times.append(time.monotonic())
    if len(times) == 1:
        after = timedelta(milliseconds=delay_ms) if delay_ms else None
        raise pysdk.RetryableError("not yet", 503, retry_after=after)
    return int((times[1] - times[0]) * 1000)


@compat.handler()
async def request(ctx: Context, value: Any) -> dict[str, Any]:
    req = ctx.request()
    return {
        "id": req.id, "headers": req.headers, "attempt_headers": req.attempt_headers,
        "body": req.body.decode(), "scope": req.scope, "limit_key": req.limit_key,
        "idempotency_key": req.idempotency_key, "finished": req.attempt_finished_event.is_set(),
    }


@compat_obj.handler()
async def put(ctx: ObjectContext, n: int) -> None:
    ctx.set("item", Item(x=n))


@compat_obj.handler(kind="shared")
async def read(ctx: ObjectSharedContext) -> dict[str, Any]:
    typed = await ctx.get("item", type_hint=Item)
    return {"untyped": await ctx.get("item"), "typed": typed.field_name}


application = app([compat, compat_obj])
COMPAT_APP = "tests.pysdk.test_restate_compat:application"


# -- 1. TerminalError(message, status_code=500, metadata=None) ------------------------------


def test_terminal_error_has_restates_signature_and_metadata() -> None:
    params = inspect.signature(pysdk.TerminalError).parameters
    assert [(p.name, p.default) for p in params.values()] == [
        ("message", inspect.Parameter.empty), ("status_code", 500), ("metadata", None)]
    err = pysdk.TerminalError("out of stock", 409, metadata={"sku": "a-1"})
    assert (err.message, err.status_code, err.metadata) == ("out of stock", 409, {"sku": "a-1"})
    assert str(err) == "out of stock"
    plain = pysdk.TerminalError("boom")
    assert (plain.status_code, plain.metadata) == (500, None)
    assert pysdk.TerminalError("m", 400).status_code == 400


# -- 2. RetryableError(message, status_code=500, retry_after=None) ----------------------------


def test_retryable_error_has_restates_signature() -> None:
    cls = pysdk.RetryableError
    assert cls is pysdk.exceptions.RetryableError is _errors.RetryableError
    params = inspect.signature(cls).parameters
    assert [(p.name, p.default) for p in params.values()] == [
        ("message", inspect.Parameter.empty), ("status_code", 500), ("retry_after", None)]
    err = cls("busy", 503, retry_after=timedelta(seconds=2))
    assert (err.message, err.status_code, err.retry_after, str(err)) == ("busy", 503, timedelta(seconds=2), "busy")
    assert cls("x").retry_after is None and cls("x").status_code == 500
    # Not terminal: the runtime's `except TerminalError` does not take it, `except Exception` does.
    assert issubclass(cls, Exception) and not issubclass(cls, pysdk.TerminalError)


class _BackoffStore:
    """The part of the core's Store that `Invoker._backoff` uses."""

    def __init__(self) -> None:
        self.backoffs: list[tuple[str, int, int]] = []

    def backoff(self, inv: Any, retry: int, fire_ms: int) -> None:
        self.backoffs.append((inv.id, retry, fire_ms))

    def next_timer_ms(self) -> None:
        return None


def _backoff_delay_ms(exc: Exception) -> int:
    from runtime.ids import now_ms
    from runtime.invoker import Invoker

    store = _BackoffStore()
    invoker = Invoker(store, application, None)  # type: ignore[arg-type]
    before = now_ms()
    inv = SimpleNamespace(id="inv_1", retry_count=0, service=compat.name, handler="later")
    invoker._backoff(inv, compat.handlers["later"], exc)  # type: ignore[arg-type]
    [(inv_id, retry, fire_ms)] = store.backoffs
    assert (inv_id, retry) == ("inv_1", 1)
    return fire_ms - before


def test_invocation_retry_waits_retry_after_instead_of_the_backoff() -> None:
    assert _backoff_delay_ms(RuntimeError("x")) < 1_000  # the policy: 50 ms
    assert _backoff_delay_ms(pysdk.RetryableError("x")) < 1_000  # no retry_after: the policy
    delay = _backoff_delay_ms(pysdk.RetryableError("x", retry_after=timedelta(seconds=30)))
    assert 30_000 <= delay < 31_000


def test_step_retry_waits_retry_after(backend: FakeBackend, no_sleep: list[float]) -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise pysdk.RetryableError("rate limited", 429, retry_after=timedelta(seconds=3))
        if len(calls) == 2:
            raise RuntimeError("plain failure")
        return "ok"

    assert run(_await(Context(backend.machine()).run_typed("step", flaky))) == "ok"
    assert no_sleep == [3.0, 0.1], "retry_after, then the step's backoff at its second retry"

    # The step's limits still apply; the exhausted step fails with the error's code.
    def always() -> None:
        raise pysdk.RetryableError("rate limited", 429, retry_after=timedelta(seconds=1))

    no_sleep.clear()
    with pytest.raises(pysdk.TerminalError) as info:
        run(_await(Context(FakeBackend().machine()).run_typed("step", always, RunOptions(max_attempts=2))))
    assert no_sleep == [1.0] and info.value.status_code == 429


async def _await(awaitable: Any) -> Any:
    return await awaitable


# -- 3. internal control flow is out of reach of `except Exception` ------------------------------


@pytest.mark.parametrize("name", ["Suspended", "ReplayRequested", "AttemptClosed"])
def test_internal_control_flow_is_not_an_exception(name: str) -> None:
    cls = getattr(_errors, name)
    assert issubclass(cls, pysdk.SdkInternalBaseException) and issubclass(cls, BaseException)
    assert not issubclass(cls, Exception)
    assert pysdk.is_internal_exception(cls()) and "re-raise" in str(cls())
    assert not pysdk.is_internal_exception(pysdk.TerminalError("x"))
    assert name not in pysdk.__all__, "internal: not exported"


def test_a_suspension_unwinds_a_handler_that_catches_exception() -> None:
    svc = Service("S")
    caught = []

    @svc.handler()
    async def h(ctx: Context) -> str:
        try:
            await ctx.sleep(timedelta(seconds=1))
        except Exception as exc:  # noqa: BLE001 - user code that catches everything
            caught.append(exc)
            return "swallowed"
        return "slept"

    with pytest.raises(_errors.Suspended):
        run(drive(svc.handlers["h"], b"", FakeBackend()))  # nothing completes the timer: suspended
    assert caught == []


# -- 4. pydantic models are written by field name (model_dump_json), read by name or alias ----------


def test_the_serde_writes_models_by_field_name() -> None:
    item = Item(x=1)
    assert item.model_dump_json().encode() == ITEM_BY_NAME  # what Restate stores
    assert json_dumps(item) == ITEM_BY_NAME
    assert json_dumps([item, {"k": item}]) == b'[{"field_name":1},{"k":{"field_name":1}}]'
    assert json_dumps({"big": 2**70, "item": item}) == b'{"big":1180591620717411303424,"item":{"field_name":1}}'
    assert DefaultSerde[Item]().serialize(item) == ITEM_BY_NAME
    assert DefaultSerde[Item](Item).serialize(item) == ITEM_BY_NAME
    assert PydanticJsonSerde[Item](Item).serialize(item) == ITEM_BY_NAME
    assert codec_for_hint(Item).dumps(item) == ITEM_BY_NAME
    assert codec_for_hint(list[Item]).dumps([item]) == b"[" + ITEM_BY_NAME + b"]"


def test_a_model_that_serializes_by_alias_is_written_as_model_dump_json_does() -> None:
    class ByAlias(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(serialize_by_alias=True)
        field_name: int = pydantic.Field(alias="x")

    assert json_dumps(ByAlias(x=1)) == ByAlias(x=1).model_dump_json().encode() == b'{"x":1}'


def test_models_read_back_by_field_name_and_by_alias() -> None:
    for raw in (ITEM_BY_NAME, b'{"x":1}'):
        assert codec_for_hint(Item).loads(raw) == Item(x=1)
        assert DefaultSerde(Item).deserialize(raw) == Item(x=1)
        assert PydanticJsonSerde(Item).deserialize(raw) == Item(x=1)
        assert codec_for_hint(list[Item]).loads(b"[" + raw + b"]") == [Item(x=1)]


def test_model_state_is_stored_by_field_name_and_read_back_by_a_handler() -> None:
    obj = VirtualObject("O")

    @obj.handler()
    async def put(ctx: ObjectContext) -> None:
        ctx.set("item", Item(x=7))

    @obj.handler()
    async def get(ctx: ObjectContext) -> list[Any]:
        return [await ctx.get("item"), await ctx.get("item", type_hint=Item)]

    backend = FakeBackend()
    run(drive(obj.handlers["put"], b"", backend))
    assert backend.state == {"item": b'{"field_name":7}'}
    assert (SET_STATE, "item", b'{"field_name":7}', 0, None) in backend.journal
    untyped, typed = run(_get_values(get, backend.next_invocation()))
    assert untyped == {"field_name": 7} and typed == Item(x=7)


async def _get_values(handler: Any, backend: FakeBackend) -> Any:
    return await handler(ObjectContext(backend.machine()))


def test_step_results_and_awakeable_values_are_written_by_field_name(backend: FakeBackend) -> None:
    m = backend.machine(kind="service")
    ctx = Context(m)

    async def body() -> Any:
        step = await ctx.run_typed("step", lambda: Item(x=2))
        ctx.resolve_awakeable(awakeable_id("inv_2", 1), Item(x=3))
        return step

    assert run(body()) == {"field_name": 2}
    assert backend.journal == [(RUN, "step", b'{"field_name":2}', 0, None)]
    [(kind, _, value, _, _)] = m.take_pending()
    assert (kind, value) == (COMPLETE_AWAKEABLE, b'{"field_name":3}')


# -- 5. ctx.request() ---------------------------------------------------------------------------


def test_request_has_restates_fields() -> None:
    fields = [(f.name, f.default) for f in dataclasses.fields(pysdk.Request)]
    missing = dataclasses.MISSING
    assert fields == [("id", missing), ("headers", missing), ("attempt_headers", missing), ("body", missing),
                      ("attempt_finished_event", missing), ("scope", None), ("limit_key", None),
                      ("idempotency_key", None)]


def test_request_is_filled_from_the_invocation() -> None:
    backend = FakeBackend()
    m = backend.machine(kind="service", invocation_id="inv_9")
    m.body = b'{"a":1}'
    req = Context(m).request()
    assert (req.id, req.headers, req.attempt_headers, req.body) == ("inv_9", {"x-test": "1"}, {}, b'{"a":1}')
    assert (req.scope, req.limit_key, req.idempotency_key) == (None, None, None)
    event = req.attempt_finished_event
    assert isinstance(event, pysdk.context.AttemptFinishedEvent) and not event.is_set()
    assert Context(m).request().attempt_finished_event is event, "one event per attempt"


def test_attempt_finished_event_is_set_when_the_attempt_closes() -> None:
    m = FakeBackend().machine(kind="service")
    event = Context(m).request().attempt_finished_event
    m.close(_errors.Suspended)
    assert event.is_set()


# -- end to end -----------------------------------------------------------------------------------


@pytest.fixture
def compat_server(make_server):  # type: ignore[no-untyped-def]
    return make_server(target=COMPAT_APP).start()


def test_e2e_a_handlers_retryable_error_is_retried_after_retry_after(compat_server: Any) -> None:
    resp = compat_server.post("/Compat/later", 700)
    assert resp.status_code == 200, resp.text
    assert resp.json() >= 690, "the retry waited retry_after, not the 50 ms backoff"
    resp = compat_server.post("/Compat/later", 0)
    assert resp.status_code == 200, resp.text
    assert resp.json() < 690, "without retry_after: the policy's backoff"


def test_e2e_model_state_by_field_name(compat_server: Any) -> None:
    assert compat_server.post("/CompatObj/k/put", 5).status_code == 200
    resp = compat_server.post("/CompatObj/k/read")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"untyped": {"field_name": 5}, "typed": 5}


def test_e2e_request(compat_server: Any) -> None:
    resp = compat_server.post("/Compat/request", {"v": 1}, headers={"x-custom": "yes"})
    assert resp.status_code == 200, resp.text
    req = resp.json()
    assert req["id"].startswith("inv_") and req["headers"]["x-custom"] == "yes"
    assert json.loads(req["body"]) == {"v": 1}
    assert (req["attempt_headers"], req["scope"], req["limit_key"], req["finished"]) == ({}, None, None, False)


def test_e2e_request_idempotency_key(compat_server: Any) -> None:
    resp = compat_server.post("/Compat/request", 1, headers={"idempotency-key": "idem-1"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["idempotency_key"] == "idem-1"
