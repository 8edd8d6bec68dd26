"""Micro-benchmark of the SDK's share of an invocation: get + set + return of a
JSON list (run by bench/run with --benchmark-enable; skipped otherwise)."""
from __future__ import annotations

from typing import Any, Optional

import pytest

from pysdk import ObjectContext, VirtualObject, app
from pysdk._entries import Completion
from pysdk._machine import Machine


class NullBackend:
    async def barrier(self, machine: Machine) -> None:
        return None

    async def flush(self, machine: Machine) -> None:
        machine.take_pending()

    async def wait(self, machine: Machine) -> None:
        raise AssertionError("the hot path does not wait")

    def check_target(self, service: str, handler: str, key: Optional[str], is_send: bool) -> None:
        return None

    async def peek_promise(self, machine: Machine, name: str) -> Optional[Completion]:
        return None


@pytest.mark.bench
def test_get_set_return(benchmark: Any) -> None:
    cart = VirtualObject("Cart")

    @cart.handler()
    async def add(ctx: ObjectContext, item: str) -> int:
        items = await ctx.get("items") or []
        items.append(item)
        ctx.set("items", items)
        return len(items)

    spec = app([cart]).lookup("Cart", "add")
    assert spec is not None
    backend = NullBackend()
    state = {"items": b'["a","b","c"]'}

    def one() -> bytes:
        m = Machine(invocation_id="inv_1", key="k", handler_kind="exclusive", state=state,
                    replay=[], backend=backend, headers=[])
        coro = spec.invoke(m, spec.parse_input(b'"x"'))
        try:
            coro.send(None)
        except StopIteration as done:
            m.take_pending()
            return done.value  # type: ignore[no-any-return]
        raise AssertionError("the hot path must not suspend")

    assert benchmark(one) == b"4"
