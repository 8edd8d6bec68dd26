"""Micro-benchmarks of runtime._core.is_plain_json, the decoded-state cache's check, on the sizes
of state values it sees (values built by json.loads, as the runtime decodes them).

Run with bench/micro/run (CI's pytest never collects bench/: testpaths and --benchmark-skip).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime import _core

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("n", [10, 1_000, 80_000])
def test_is_plain_json_strs(benchmark: Any, n: int) -> None:
    """A flat list of short distinct strs: the hot case (target < 1.5 ns per item)."""
    value = json.loads(json.dumps([f"item-{i}" for i in range(n)]))
    assert benchmark(_core.is_plain_json, value) is True


def test_is_plain_json_records(benchmark: Any) -> None:
    """10,000 small records (dicts of str, int, float, bool, None and a short list)."""
    value = json.loads(json.dumps([{"id": i, "name": f"n{i}", "price": i * 0.5, "ok": True, "note": None,
                                    "tags": ["a", "b"]} for i in range(10_000)]))
    assert benchmark(_core.is_plain_json, value) is True


def test_list_copy_80k(benchmark: Any) -> None:
    """For comparison: list.copy() of the same 80k strs (one incref per item)."""
    value = json.loads(json.dumps([f"item-{i}" for i in range(80_000)]))
    assert benchmark(value.copy) == value
