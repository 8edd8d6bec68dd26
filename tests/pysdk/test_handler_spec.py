"""Decoration-time validation, input parsing, invocation, serdes and App."""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any, Optional

import pydantic
import pytest

from .fakes import FakeBackend, drive, run
from pysdk import (
    Context,
    InvocationRetryPolicy,
    ObjectContext,
    ObjectSharedContext,
    OnMaxAttempts,
    RunOptions,
    Service,
    TerminalError,
    VirtualObject,
    app,
)
from pysdk._entries import RUN
from pysdk._errors import InputError
from pysdk.serde import BytesSerde, JsonSerde, Serde


class Item(pydantic.BaseModel):
    sku: str
    qty: int = 1


@dataclasses.dataclass
class Order:
    id: str
    total: float


# -- the example program of the brief ----------------------------------------------------


def build_example() -> Any:
    cart = VirtualObject("Cart")

    @cart.handler()
    async def add(ctx: ObjectContext, item: str) -> int:
        items = await ctx.get("items") or []
        items.append(item)
        ctx.set("items", items)
        return len(items)

    @cart.handler(kind="shared")
    async def count(ctx: ObjectSharedContext) -> int:
        return len(await ctx.get("items") or [])

    checkout = Service("Checkout")

    @checkout.handler()
    async def pay(ctx: Context, order: str) -> str:
        a = await ctx.run_typed("reserve", lambda: "r-" + order)
        return a

    return app([cart, checkout])


def test_example_program() -> None:
    application = build_example()
    b = FakeBackend()
    add = application.lookup("Cart", "add")
    assert (add.service_name, add.name, add.service_type, add.kind, add.accepts_input) == (
        "Cart", "add", "object", "exclusive", True)
    assert run(drive(add, b'"apple"', b)) == b"1"
    b = b.next_invocation()
    assert run(drive(add, b'"pear"', b)) == b"2"
    assert b.state == {"items": b'["apple","pear"]'}
    count = application.lookup("Cart", "count")
    assert (count.kind, count.accepts_input) == ("shared", False)
    assert run(drive(count, b"", b.next_invocation())) == b"2"
    pay = application.lookup("Checkout", "pay")
    assert (pay.service_type, pay.kind) == ("service", "service")
    sb = FakeBackend()
    assert run(drive(pay, b'"o-7"', sb)) == b'"r-o-7"'
    assert sb.journal == [(RUN, "reserve", b'"r-o-7"', 0, None)]
    assert application.service_type("Cart") == "object"
    assert application.service_type("Checkout") == "service"
    assert application.service_type("Nope") is None
    assert application.lookup("Cart", "nope") is None
    assert application.lookup("Nope", "add") is None


# -- signature validation at decoration time -----------------------------------------------


def test_sync_handler_is_rejected() -> None:
    svc = Service("S")
    with pytest.raises(TypeError, match=r"handler S/h .*must be declared with 'async def'"):
        @svc.handler()
        def h(ctx: Context) -> None:  # noqa: F811
            pass


def test_handler_without_context_is_rejected() -> None:
    svc = Service("S")
    with pytest.raises(TypeError, match=r"handler S/h .*context as its first parameter"):
        @svc.handler()
        async def h() -> None:
            pass


def test_two_inputs_are_rejected() -> None:
    obj = VirtualObject("O")
    with pytest.raises(TypeError, match=r"handler O/h .*at most one input parameter.*got 2 \(a, b\)"):
        @obj.handler()
        async def h(ctx: ObjectContext, a: int, b: int) -> None:
            pass


@pytest.mark.parametrize("sig", ["(ctx, *args)", "(ctx, **kw)", "(ctx, *, x)"])
def test_variadic_or_keyword_only_parameters_are_rejected(sig: str) -> None:
    ns: dict[str, Any] = {}
    exec(f"async def h{sig}: pass", ns)
    with pytest.raises(TypeError, match=r"handler S/h .*positional parameters"):
        Service("S").handler()(ns["h"])


def test_wrong_context_annotation_is_rejected() -> None:
    obj = VirtualObject("O")
    with pytest.raises(TypeError, match=r"O/peek .*shared handler.*ObjectSharedContext.*annotated ObjectContext"):
        @obj.handler(kind="shared")
        async def peek(ctx: ObjectContext) -> None:
            pass
    svc = Service("S")
    with pytest.raises(TypeError, match=r"S/h .*service handler.*annotated ObjectContext"):
        @svc.handler()
        async def h(ctx: ObjectContext) -> None:
            pass


def test_wider_context_annotation_is_accepted() -> None:
    obj = VirtualObject("O")

    @obj.handler()
    async def a(ctx: ObjectSharedContext) -> None:
        pass

    @obj.handler()
    async def b(ctx: Context) -> None:
        pass

    @obj.handler()
    async def c(ctx) -> None:  # type: ignore[no-untyped-def]
        pass

    assert sorted(obj.handlers) == ["a", "b", "c"]


def test_unresolvable_annotation_is_reported() -> None:
    ns: dict[str, Any] = {}
    exec("from __future__ import annotations\nasync def h(ctx, x: Missing) -> None: pass", ns)
    with pytest.raises(TypeError, match=r"S/h .*cannot resolve its type annotations.*Missing"):
        Service("S").handler()(ns["h"])


def test_bad_kind_duplicate_and_names() -> None:
    obj = VirtualObject("O")
    with pytest.raises(ValueError, match="'exclusive' or 'shared'"):
        obj.handler(kind="workflow")

    @obj.handler()
    async def h(ctx: ObjectContext) -> None:
        pass

    with pytest.raises(ValueError, match="already has a handler named 'h'"):
        @obj.handler(name="h")
        async def other(ctx: ObjectContext) -> None:
            pass

    with pytest.raises(ValueError, match="handler name"):
        @obj.handler(name="a/b")
        async def third(ctx: ObjectContext) -> None:
            pass

    with pytest.raises(ValueError, match="Service name"):
        Service("")


def test_decorator_returns_the_function_and_name_override() -> None:
    svc = Service("S")

    async def impl(ctx: Context) -> str:
        return "x"

    assert svc.handler(name="greet")(impl) is impl
    assert svc.handlers["greet"].fn is impl
    assert impl.__stead_handler__ is svc.handlers["greet"]  # type: ignore[attr-defined]


def test_app_rejects_duplicates_and_non_services() -> None:
    with pytest.raises(ValueError, match="'X'"):
        app([Service("X"), VirtualObject("X")])
    with pytest.raises(TypeError):
        app(["nope"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="a list of services"):
        app(Service("X"))  # type: ignore[arg-type]


def test_handlers_added_after_app_are_found() -> None:
    svc = Service("Late")
    application = app([svc])

    @svc.handler()
    async def h(ctx: Context) -> None:
        pass

    assert application.lookup("Late", "h") is svc.handlers["h"]
    assert list(application.services) == ["Late"]


# -- input parsing ------------------------------------------------------------------------------


def spec_of(fn: Any, **kw: Any) -> Any:
    svc = Service("S")
    svc.handler(**kw)(fn)
    return next(iter(svc.handlers.values()))


def test_parse_input_errors() -> None:
    async def h(ctx: Context, n: int) -> int:
        return n

    spec = spec_of(h)
    assert spec.parse_input(b"41") == 41
    with pytest.raises(InputError, match=r"S/h expects an input, but the request body is empty"):
        spec.parse_input(b"")
    with pytest.raises(InputError, match=r"invalid input for handler S/h: .*JSON"):
        spec.parse_input(b"{not json")
    with pytest.raises(InputError, match=r"invalid input for handler S/h: .*integer"):
        spec.parse_input(b'"abc"')


def test_untyped_input_is_plain_json_and_no_input_accepts_any_body() -> None:
    async def h(ctx, value):  # type: ignore[no-untyped-def]
        return value

    spec = spec_of(h)
    assert spec.parse_input(b'{"a": [1]}') == {"a": [1]}
    with pytest.raises(InputError):
        spec.parse_input(b"nope")

    async def g(ctx: Context) -> None:
        pass

    assert spec_of(g).parse_input(b"") is None
    assert spec_of(g).parse_input(b"ignored") is None


def test_input_with_default_accepts_an_empty_body() -> None:
    async def h(ctx: Context, name: Optional[str] = "world") -> str:
        return f"hi {name}"

    spec = spec_of(h)
    assert spec.parse_input(b"") == "world"
    assert run(spec.invoke(FakeBackend().machine(kind="service"), spec.parse_input(b""))) == b'"hi world"'


def test_pydantic_model_in_and_out() -> None:
    async def h(ctx: Context, item: Item) -> Item:
        assert isinstance(item, Item)
        return Item(sku=item.sku.upper(), qty=item.qty * 2)

    spec = spec_of(h)
    value = spec.parse_input(b'{"sku": "ab", "qty": 2}')
    assert value == Item(sku="ab", qty=2)
    assert run(spec.invoke(FakeBackend().machine(kind="service"), value)) == b'{"sku":"AB","qty":4}'
    with pytest.raises(InputError, match=r"qty: Input should be a valid integer"):
        spec.parse_input(b'{"sku": "ab", "qty": "many"}')
    with pytest.raises(InputError, match=r"sku: Field required"):
        spec.parse_input(b'{"qty": 1}')


def test_dataclass_in_and_out() -> None:
    async def h(ctx: Context, order: Order) -> Order:
        assert isinstance(order, Order)
        return Order(id=order.id, total=order.total + 1)

    spec = spec_of(h)
    value = spec.parse_input(b'{"id": "o1", "total": 1.5}')
    assert value == Order("o1", 1.5)
    out = run(spec.invoke(FakeBackend().machine(kind="service"), value))
    assert pydantic.TypeAdapter(Order).validate_json(out) == Order("o1", 2.5)
    with pytest.raises(InputError, match="total"):
        spec.parse_input(b'{"id": "o1", "total": "x"}')


def test_none_output_is_empty_and_handler_errors_propagate() -> None:
    async def h(ctx: Context, fail: bool) -> None:
        if fail:
            raise TerminalError("bad", 418)
        return None

    spec = spec_of(h)
    assert run(spec.invoke(FakeBackend().machine(kind="service"), False)) == b""
    with pytest.raises(TerminalError) as info:
        run(spec.invoke(FakeBackend().machine(kind="service"), True))
    assert info.value.status_code == 418


def test_custom_serdes() -> None:
    class Upper(Serde[str]):
        def deserialize(self, buf: bytes) -> Optional[str]:
            return buf.decode().upper()

        def serialize(self, obj: Optional[str]) -> bytes:
            return (obj or "").encode()

    async def h(ctx: Context, text: str) -> str:
        return text + "!"

    spec = spec_of(h, input_serde=Upper(), output_serde=BytesSerde())
    assert spec.parse_input(b"abc") == "ABC"

    async def raw(ctx: Context, text: str) -> str:
        return text

    spec = spec_of(raw, output_serde=Upper())
    assert run(spec.invoke(FakeBackend().machine(kind="service"), "x")) == b"x"
    assert JsonSerde().serialize(None) == b"" and JsonSerde().deserialize(b"") is None


def test_handler_options_are_carried() -> None:
    svc = Service("S", invocation_retry_policy={"max_attempts": 3, "on_max_attempts": "pause"})
    assert svc.invocation_retry_policy == InvocationRetryPolicy(max_attempts=3, on_max_attempts=OnMaxAttempts.PAUSE)

    @svc.handler(accept="text/plain", invocation_retry_policy=InvocationRetryPolicy(
        initial_interval=timedelta(seconds=1), on_max_attempts="kill"))
    async def h(ctx: Context) -> None:
        pass

    opts = svc.handlers["h"].options
    assert opts.accept == "text/plain"
    assert opts.invocation_retry_policy.on_max_attempts is OnMaxAttempts.KILL
    with pytest.raises(ValueError, match="on_max_attempts"):
        InvocationRetryPolicy(on_max_attempts="explode")
    with pytest.raises(ValueError, match="unknown"):
        Service("T", invocation_retry_policy={"tries": 3})


# -- typed state and steps -----------------------------------------------------------------------


def test_typed_state_and_run_results_come_back_as_models() -> None:
    obj = VirtualObject("O")

    def make() -> Item:
        return Item(sku="s")

    @obj.handler()
    async def h(ctx: ObjectContext) -> list[Any]:
        ctx.set("item", Item(sku="a", qty=2))
        ctx.set("order", Order("o", 3.0))
        got = await ctx.get("item", type_hint=Item)
        order = await ctx.get("order", type_hint=Order)
        plain = await ctx.get("item")
        made = await ctx.run_typed("make", make)
        hinted = await ctx.run_typed("hinted", lambda: {"sku": "h"}, RunOptions(type_hint=Item))
        return [type(got).__name__, type(order).__name__, plain, type(made).__name__, type(hinted).__name__]

    b = FakeBackend()
    assert run(drive(obj.handlers["h"], b"", b)) == b'["Item","Order",{"sku":"a","qty":2},"Item","Item"]'
    # replayed from the journal, the same types come back
    assert run(drive(obj.handlers["h"], b"", FakeBackend(journal=b.journal))).startswith(b'["Item","Order"')
