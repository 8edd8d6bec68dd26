"""Kept state values: encoding a lent list by its appended items gives the JSON of the
whole list in every case, and only when the old items are provably unchanged; a
completed writer's list is kept for the next one only if it still equals its bytes
and nothing else holds it."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from pysdk import ObjectContext
from pysdk._machine import Machine
from pysdk._serde import json_dumps
from runtime.state_values import Kept, kept_after


def kept(value: list) -> Kept:
    return Kept(value, json_dumps(value), value.copy())


def appended_only(k: Kept, snapshot: Any) -> bool:
    """Whether the last encode took the appended-items path (it extends the snapshot)."""
    return k.snapshot is snapshot


@pytest.mark.parametrize("change, appended", [
    (lambda v: v.append("d"), True),
    (lambda v: v.extend(["d", 4, 1.5, None, True]), True),
    (lambda v: None, True),
    (lambda v: v.sort(reverse=True), False),
    (lambda v: v.__setitem__(0, "z"), False),
    (lambda v: (v.pop(), v.append("e")), False),
    (lambda v: v.insert(0, "first"), False),
    (lambda v: v.clear(), False),
    (lambda v: v.append(["nested"]), False),
    (lambda v: v.append(("a", "tuple")), False),
    (lambda v: v.append(float("nan")), False),
])
def test_encode_gives_the_json_of_the_whole_list(change, appended) -> None:  # type: ignore[no-untyped-def]
    k = kept(["a", "b", "c"])
    snapshot = k.snapshot
    value = k.take()
    change(value)
    raw = k.encode(value)
    assert json.loads(raw) == json.loads(json_dumps(value))
    assert appended_only(k, snapshot) is appended


def test_an_empty_list_and_a_different_object() -> None:
    k = kept([])
    snapshot = k.snapshot
    value = k.take()
    value.append("x")
    assert k.encode(value) == b'["x"]' and appended_only(k, snapshot)
    k2 = kept(["a"])
    snapshot = k2.snapshot
    k2.take()
    assert k2.encode(["a", "b"]) == b'["a","b"]' and not appended_only(k2, snapshot), "another list: in full"


def test_random_changes_always_encode_to_the_list() -> None:
    rng = random.Random(7)
    ops = [
        lambda v: v.append(rng.choice(["s", 1, 2.5, None, False, "é\\n\""])),
        lambda v: v.pop() if v else None,
        lambda v: v.__setitem__(rng.randrange(len(v)), "w") if v else None,
        lambda v: v.reverse(),
        lambda v: v.extend(["x"] * rng.randrange(3)),
    ]
    k = kept(["a", "b"])
    for _ in range(500):
        value = k.take()
        for _ in range(rng.randrange(3)):
            rng.choice(ops)(value)
        raw = k.encode(value)  # called twice in a row: a second set of the same list
        assert json.loads(raw) == value
        assert k.encode(value) == raw
        k = Kept(value, raw, value.copy())


# ---- kept_after: what a completed writer leaves to the next one ----


class _Backend:
    async def flush(self, machine: Machine) -> None: ...
    async def barrier(self, machine: Machine) -> None: ...
    async def wait(self, machine: Machine) -> None: ...
    def check_target(self, *args: Any) -> None: ...
    def peek_promise(self, *args: Any) -> None: ...


def _writer(state: dict[str, bytes], decoded: dict[str, Kept] | None = None) -> Machine:
    return Machine(invocation_id="inv_1", key="k", handler_kind="exclusive", state=state, replay=[],
                   backend=_Backend(), headers=[], decoded=decoded)  # type: ignore[arg-type]


def _add(m: Machine, item: str, leak: list | None = None) -> None:
    ctx = ObjectContext(m)
    items = m.get_value("items") or []
    items.append(item)
    ctx.set("items", items)
    if leak is not None:
        leak.append(items)


def test_a_list_nothing_else_holds_is_kept_and_handed_over_without_decoding() -> None:
    m = _writer({})
    _add(m, "a")
    k = kept_after(m)
    assert k is not None and k["items"].value == ["a"] and k["items"].raw == b'["a"]'
    m2 = _writer({"items": b'["a"]'}, k)
    first = id(k["items"].value)  # not a reference: that would count as a holder
    _add(m2, "b")
    k2 = kept_after(m2)
    assert k2 is not None and id(k2["items"].value) == first, "the same list, appended to"
    assert k2["items"].raw == b'["a","b"]'


def test_a_list_held_elsewhere_is_not_kept() -> None:
    held: list = []
    m = _writer({})
    _add(m, "a", leak=held)
    assert kept_after(m) is None
    m2 = _writer({"items": b'["a"]'}, {"items": kept(["a"])})
    _add(m2, "b", leak=held)
    assert kept_after(m2) is None


def test_a_list_changed_after_its_set_is_not_kept() -> None:
    m = _writer({"items": b'["a"]'}, {"items": kept(["a"])})
    ctx = ObjectContext(m)
    items = m.get_value("items")
    items.append("b")
    ctx.set("items", items)
    items.append("c")  # not set
    del items
    assert kept_after(m) is None
    assert m.state == {"items": b'["a","b"]'}


def test_the_same_list_under_two_names_is_not_kept() -> None:
    m = _writer({})
    ctx = ObjectContext(m)
    items = ["a"]
    ctx.set("one", items)
    ctx.set("two", items)
    del items
    assert kept_after(m) is None


def test_nested_values_are_not_kept() -> None:
    m = _writer({})
    ObjectContext(m).set("cart", {"items": ["a"]})
    assert kept_after(m) is None
