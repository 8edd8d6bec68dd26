"""State values between invocations of one key, over real HTTP: what a handler does
to a value it got is stored only if it sets it, and only as it was when set.

The runtime keeps decoded values of a key in memory between its writers (see
runtime/state_cache.py); these tests fail if a value it hands out again differs
from what its bytes on disk say."""

from __future__ import annotations


def test_a_value_changed_but_not_set_is_not_stored(server) -> None:
    for item in ("pear", "apple", "fig"):
        server.post("/Cart/unsorted/add", item)
    assert server.post("/Cart/unsorted/first_sorted").json() == "apple"
    # The in-place sort was not set: the next writer and a reader see the stored order.
    assert server.post("/Cart/unsorted/add", "plum").json() == 4
    assert server.post("/Cart/unsorted/items").json() == ["pear", "apple", "fig", "plum"]


def test_a_retried_attempt_starts_from_the_committed_value(server, effects_dir) -> None:
    server.post("/Cart/retry/add", "a")
    server.post("/Cart/retry/add", "b")
    assert server.post("/Cart/retry/add_then_fail_once", "c").json() == 3
    assert server.post("/Cart/retry/items").json() == ["a", "b", "c"]
    assert server.post("/Cart/retry/add", "d").json() == 4


def test_values_set_under_several_names_stay_apart(make_server) -> None:
    server = make_server().start()
    server.post("/Cart/alias/add", "a")
    assert server.post("/Cart/alias/add_and_remember", "b").json() == 2
    # Later writers change "items"; what was set under the other names stays as set.
    assert server.post("/Cart/alias/add", "c").json() == 3
    assert server.post("/Cart/alias/add", "d").json() == 4
    expected = {"copy": ["a", "b"], "last": {"item": "b", "items": ["a", "b"]}}
    assert server.post("/Cart/alias/remembered").json() == expected
    assert server.post("/Cart/alias/items").json() == ["a", "b", "c", "d"]
    server.stop()
    server.restart()
    assert server.post("/Cart/alias/remembered").json() == expected
    assert server.post("/Cart/alias/add", "e").json() == 5
