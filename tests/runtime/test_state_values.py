"""Kept state values: encoding a taken list by its appended items gives the JSON of the
whole list in every case, and only when the old items are provably unchanged."""

from __future__ import annotations

import json
import random

import pytest

from pysdk._serde import json_dumps
from runtime.state_values import Kept


def kept(value: list) -> Kept:
    return Kept(value, json_dumps(value), flat=True)


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
    value = k.take()
    change(value)
    raw = k.encode(value)
    assert json.loads(raw) == json.loads(json_dumps(value))
    assert k.appended is appended


def test_an_empty_list_and_a_different_object() -> None:
    k = kept([])
    value = k.take()
    value.append("x")
    assert k.encode(value) == b'["x"]' and k.appended
    k2 = kept(["a"])
    k2.take()
    assert k2.encode(["a", "b"]) == b'["a","b"]' and not k2.appended, "not the taken list: in full"


def test_a_value_not_taken_or_not_flat_is_encoded_in_full() -> None:
    k = kept(["a"])
    value = k.value
    value.append("b")  # without take: there is no snapshot to compare with
    assert k.encode(value) == b'["a","b"]' and not k.appended
    nested = Kept([["a"]], b'[["a"]]', flat=False)
    v = nested.take()
    v[0].append("b")  # an item changed in place: only a full encoding sees it
    assert nested.encode(v) == b'[["a","b"]]' and not nested.appended


def test_random_changes_always_encode_to_the_list() -> None:
    rng = random.Random(7)
    ops = [
        lambda v: v.append(rng.choice(["s", 1, 2.5, None, False, "é\\n\""])),
        lambda v: v.pop() if v else None,
        lambda v: v.__setitem__(rng.randrange(len(v)), "w") if v else None,
        lambda v: v.reverse(),
        lambda v: v.extend(["x"] * rng.randrange(3)),
    ]
    value: list = ["a", "b"]
    k = kept(value)
    for _ in range(500):
        value = k.take()
        for _ in range(rng.randrange(3)):
            rng.choice(ops)(value)
        raw = k.encode(value)
        assert json.loads(raw) == value
        k = Kept(value, raw, flat=True)
