"""Value semantics of state, as in Restate (issue 8, section 4): `set` stores the value
as it is at the call; `get` returns a value that nothing else holds (not a module's
template, not a list a handler kept, not a list changed after it was set)."""

from __future__ import annotations

import pytest

from tests.conftest import CORRECT_APP


@pytest.fixture
def carts(make_server):  # type: ignore[no-untyped-def]
    return make_server(target=CORRECT_APP).start()


def test_a_module_template_is_not_shared_between_keys(carts) -> None:
    assert carts.post("/Carts/k1/reset").status_code == 200
    assert carts.post("/Carts/k1/add", "apple").json() == {"items": ["apple"]}
    assert carts.post("/Carts/k2/reset").status_code == 200
    assert carts.post("/Carts/k2/cart").json() == {"items": []}
    assert carts.post("/Carts/k1/cart").json() == {"items": ["apple"]}
    assert carts.post("/Carts/k2/add", "pear").json() == {"items": ["pear"]}
    assert carts.post("/Carts/k1/cart").json() == {"items": ["apple"]}


def test_set_stores_the_value_as_it_is_at_the_call(carts) -> None:
    assert carts.post("/Carts/s/set_then_append").json() == [1, 2]
    assert carts.post("/Carts/s/items").json() == [1]


def test_a_list_a_handler_keeps_is_not_handed_to_the_next_writer(carts) -> None:
    assert carts.post("/Carts/l/push_and_leak", "a").json() == 1
    assert carts.post("/Carts/l/push", "b").json() == 2
    assert carts.post("/Carts/l/leaked").json() == ["a"], "the next writer appended to the kept list"
    assert carts.post("/Carts/l/items").json() == ["a", "b"]


def test_a_list_changed_after_its_set_is_not_handed_to_the_next_writer(carts) -> None:
    assert carts.post("/Carts/m/push", "a").json() == 1
    assert carts.post("/Carts/m/push_then_mutate", "b").json() == 3
    assert carts.post("/Carts/m/items").json() == ["a", "b"]
    assert carts.post("/Carts/m/push", "c").json() == 3
    assert carts.post("/Carts/m/items").json() == ["a", "b", "c"]


def test_the_hot_key_path_still_appends_correctly_across_a_restart(carts) -> None:
    for i in range(50):
        assert carts.post("/Carts/h/push", f"i{i}").json() == i + 1
    carts.stop()
    carts.restart()
    assert carts.post("/Carts/h/push", "last").json() == 51
    assert carts.post("/Carts/h/items").json() == [f"i{i}" for i in range(50)] + ["last"]
