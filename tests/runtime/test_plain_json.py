"""_core.is_plain_json: True exactly for values a JSON round trip gives back unchanged in type and value."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import uuid
from collections import OrderedDict, defaultdict
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from runtime import _core

is_plain_json = _core.is_plain_json


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    LOW = 1


class Tag(str, enum.Enum):
    A = "a"


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyList(list):  # type: ignore[type-arg]
    pass


class MyDict(dict):  # type: ignore[type-arg]
    pass


@dataclasses.dataclass
class Point:
    x: int


class Model(pydantic.BaseModel):
    x: int


PLAIN: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**200,
    -(2**200),
    0.0,
    -0.0,
    1.5,
    1e308,
    "",
    "héllo \x00 \U0001f600",
    [],
    {},
    [None, True, 1, 1.5, "s", [], {}],
    {"a": 1, "b": [1, 2, {"c": None}], "": {"d": [[["x"]]]}},
    [{"k": [{"k": [1.0]}]}],
]

NOT_PLAIN: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    (),
    (1, 2),
    {1, 2},
    frozenset(),
    b"bytes",
    bytearray(b"x"),
    memoryview(b"x"),
    uuid.uuid4(),
    Decimal("1.5"),
    1j,
    Color.RED,
    Level.LOW,
    Tag.A,
    MyStr("s"),
    MyInt(1),
    MyFloat(1.0),
    MyList(),
    MyDict(),
    OrderedDict(),
    defaultdict(list),
    Point(1),
    Model(x=1),
    datetime.datetime(2024, 1, 1),
    datetime.date(2024, 1, 1),
    object(),
    int,
    len,
    {1: "a"},
    {None: "a"},
    {(1,): "a"},
    {MyStr("k"): 1},
    {Tag.A: 1},
]


@pytest.mark.parametrize("value", PLAIN, ids=repr)
def test_plain_values(value: Any) -> None:
    assert is_plain_json(value) is True
    # What "plain" promises: the round trip gives back equal values of identical types.
    assert json.loads(json.dumps(value)) == value


@pytest.mark.parametrize("value", NOT_PLAIN, ids=repr)
def test_not_plain_values(value: Any) -> None:
    assert is_plain_json(value) is False


@pytest.mark.parametrize("value", NOT_PLAIN, ids=repr)
def test_not_plain_nested(value: Any) -> None:
    """Found wherever it sits: list item, dict value, deeper, after plain siblings."""
    assert is_plain_json([value]) is False
    assert is_plain_json(["a", 1, value]) is False
    assert is_plain_json({"k": value}) is False
    assert is_plain_json({"a": 1, "k": [{"x": [value]}]}) is False
    assert is_plain_json(["s"] * 1000 + [value]) is False


def test_dict_keys_must_be_exact_str() -> None:
    assert is_plain_json({"a": 1}) is True
    assert is_plain_json({"a": 1, 2: 1}) is False
    assert is_plain_json({"a": 1, MyStr("b"): 1}) is False
    assert is_plain_json({"a": {1.5: "x"}}) is False
    assert is_plain_json([{"a": 1}, {True: 1}]) is False


def test_non_finite_floats_nested() -> None:
    for bad in (float("nan"), float("inf"), float("-inf")):
        assert is_plain_json({"a": [1.0, 2.0, bad]}) is False
        assert is_plain_json([[[bad]]]) is False


def nested_lists(depth: int) -> list[Any]:
    """`depth` lists, one inside the other: nested_lists(1) == []."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nested_dicts(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


def test_depth_boundary() -> None:
    """The outermost container is at depth 1; 64 containers deep is plain, 65 is not."""
    assert is_plain_json(nested_lists(1)) is True
    assert is_plain_json(nested_lists(64)) is True
    assert is_plain_json(nested_lists(65)) is False
    assert is_plain_json(nested_dicts(64)) is True
    assert is_plain_json(nested_dicts(65)) is False
    # Lists and dicts count alike; scalars at the bottom do not add a level.
    mixed: Any = "leaf"
    for i in range(64):
        mixed = [mixed] if i % 2 else {"k": mixed}
    assert is_plain_json(mixed) is True
    assert is_plain_json([mixed]) is False
    assert is_plain_json({"k": mixed}) is False


def test_very_deep_nesting_returns_false() -> None:
    assert is_plain_json(nested_lists(100_000)) is False
    assert is_plain_json(nested_dicts(100_000)) is False


def test_large_list_of_strs() -> None:
    value = json.loads(json.dumps([f"item-{i}" for i in range(100_000)]))
    assert is_plain_json(value) is True
    value[-1] = MyStr("item")
    assert is_plain_json(value) is False


def test_cycles_return_false() -> None:
    lst: list[Any] = ["a"]
    lst.append(lst)
    assert is_plain_json(lst) is False
    dct: dict[str, Any] = {"a": 1}
    dct["self"] = dct
    assert is_plain_json(dct) is False
    # Shared (not cyclic) subvalues are fine.
    shared = ["x"]
    assert is_plain_json([shared, shared, {"a": shared}]) is True


def test_positional_only() -> None:
    with pytest.raises(TypeError):
        is_plain_json(obj=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        is_plain_json()  # type: ignore[call-arg]


# ---- is_flat_json_list and list_extends (the appended-items encoding of state_values) ----


def test_flat_json_list_is_a_list_of_plain_scalars_only() -> None:
    assert _core.is_flat_json_list([])
    assert _core.is_flat_json_list(["a", 1, 2.5, None, True])
    assert not _core.is_flat_json_list(["a", ["b"]])
    assert not _core.is_flat_json_list(["a", {}])
    assert not _core.is_flat_json_list(["a", float("inf")])
    assert not _core.is_flat_json_list(("a",))
    assert not _core.is_flat_json_list("a")
    assert not _core.is_flat_json_list({"a": 1})


def test_list_extends_compares_identity_of_the_prefix() -> None:
    items = ["a" * 3, "b" * 3]
    snapshot = items.copy()
    assert _core.list_extends(items, snapshot)
    items.append("c")
    assert _core.list_extends(items, snapshot)
    assert not _core.list_extends(snapshot, items), "shorter than the prefix"
    equal_but_other = [str("".join(["a", "aa"])), snapshot[1], "c"]
    assert equal_but_other == items and not _core.list_extends(equal_but_other, snapshot)
    assert _core.list_extends(items, [])
    assert not _core.list_extends(tuple(items), snapshot)
    assert not _core.list_extends(items, tuple(snapshot))
