"""Reading and overwriting one object's state through the admin API (Restate's
`POST /services/{name}/state` shape), over real HTTP against a real `stead serve`:
the next handler sees the new state, a stale version or a key held by an exclusive
handler is refused with 409 and changes nothing, bad bodies are 400, and with an
admin token a request without it is 401 and changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.conftest import SteadServer, wait_for_lines
from tests.disk import DiskReader


@pytest.fixture
def make(tmp_path: Path, effects_dir: Path) -> Iterator[Callable[..., SteadServer]]:
    servers: list[SteadServer] = []

    def start(**kwargs: Any) -> SteadServer:
        server = SteadServer(tmp_path / f"data{len(servers)}", effects_dir, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.kill()


def state(srv: SteadServer, service: str, key: str) -> dict[str, Any]:
    resp = srv.admin("GET", f"/services/{service}/state/{key}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def edit(srv: SteadServer, service: str, key: str, new_state: dict[str, Any], version: str | None,
         token: str | None = None) -> Any:
    body: dict[str, Any] = {"object_key": key, "new_state": {
        k: list(json.dumps(v).encode()) for k, v in new_state.items()}}
    if version is not None:
        body["version"] = version
    headers = {"authorization": f"Bearer {token}"} if token else {}
    import httpx
    return httpx.post(f"{srv.admin_url}/services/{service}/state", json=body, headers=headers, timeout=30)


def test_read_edit_and_the_next_handler_sees_it(make: Callable[..., SteadServer]) -> None:
    srv = make()
    assert srv.post("/Cart/c1/slow_add", "apple").json() == 1
    before = state(srv, "Cart", "c1")
    assert before["state"] == {"items": ["apple"]} and before["object_key"] == "c1"
    assert state(srv, "Cart", "never")["state"] == {}  # an unknown key has empty state, as in Restate

    resp = edit(srv, "Cart", "c1", {"items": ["pear", "fig"], "note": "edited"}, before["version"])
    assert resp.status_code == 202, resp.text
    after = state(srv, "Cart", "c1")
    assert after["state"] == {"items": ["pear", "fig"], "note": "edited"}
    assert after["version"] == resp.json()["version"] != before["version"]
    # The next invocation of the key starts from the new state (no stale cached copy).
    assert srv.post("/Cart/c1/slow_add", "kiwi").json() == 3
    assert srv.post("/Cart/c1/items", None).json() == ["pear", "fig", "kiwi"]
    srv.stop()
    with DiskReader(srv.data_dir) as disk:
        assert disk.state("Cart", "c1") == {"items": ["pear", "fig", "kiwi"], "note": "edited"}


def test_stale_version_is_409_and_changes_nothing(make: Callable[..., SteadServer]) -> None:
    srv = make()
    srv.post("/Cart/c2/slow_add", "apple")
    read = state(srv, "Cart", "c2")
    srv.post("/Cart/c2/slow_add", "plum")  # a concurrent writer, after our read
    resp = edit(srv, "Cart", "c2", {"items": []}, read["version"])
    assert resp.status_code == 409 and "changed since" in resp.json()["message"]
    assert state(srv, "Cart", "c2")["state"] == {"items": ["apple", "plum"]}
    assert edit(srv, "Cart", "c2", {"items": []}, None).status_code == 202  # no version: last writer wins
    assert state(srv, "Cart", "c2")["state"] == {"items": []}


def test_refused_while_an_exclusive_handler_holds_the_key(make: Callable[..., SteadServer],
                                                          effects_dir: Path) -> None:
    srv = make()
    resp = srv.post("/Steps/held/run/send", "t3")
    assert resp.status_code == 202
    wait_for_lines(effects_dir / "gates", 1)  # it runs, holding the key, at its gate
    read = state(srv, "Steps", "held")
    resp = edit(srv, "Steps", "held", {"result": "forged"}, read["version"])
    assert resp.status_code == 409 and "held" in resp.json()["message"]
    (effects_dir / "t3.gate").touch()
    assert srv.post("/Steps/held/result", None).json() == "abc"  # the handler's own write stands


@pytest.mark.parametrize("body, problem", [
    (b"not json", "not JSON"), (b"[]", "JSON object"), (b'{"new_state": {}}', "object_key"),
    (b'{"object_key": "k", "new_state": {"a": "text"}}', "array of bytes"),
    (b'{"object_key": "k", "new_state": {"a": [300]}}', "out of range"),
    (b'{"object_key": "k", "version": 3, "new_state": {}}', "version"),
])
def test_bad_bodies_are_400(make: Callable[..., SteadServer], body: bytes, problem: str) -> None:
    srv = make()
    resp = srv.admin("POST", "/services/Cart/state", body)
    assert resp.status_code == 400 and problem in resp.json()["message"], resp.text
    assert state(srv, "Cart", "k")["state"] == {}


def test_services_without_state_and_unknown_ones_are_404(make: Callable[..., SteadServer]) -> None:
    srv = make()
    assert srv.admin("GET", "/services/Shop/state/k").status_code == 404
    assert edit(srv, "Shop", "k", {"a": 1}, None).status_code == 404
    assert edit(srv, "Nope", "k", {"a": 1}, None).status_code == 404


def test_admin_token_guards_every_change(make: Callable[..., SteadServer]) -> None:
    srv = make(extra_args=["--admin-token", "s3cret"])
    srv.post("/Cart/t/slow_add", "apple")
    read = state(srv, "Cart", "t")  # reads need no token
    for token in (None, "wrong"):
        resp = edit(srv, "Cart", "t", {"items": []}, read["version"], token=token)
        assert resp.status_code == 401 and "token" in resp.json()["message"]
    assert srv.admin("PATCH", "/invocations/inv_x/kill").status_code == 401
    assert state(srv, "Cart", "t")["state"] == {"items": ["apple"]}
    assert edit(srv, "Cart", "t", {"items": []}, read["version"], token="s3cret").status_code == 202


def test_the_version_is_restates_digest() -> None:
    """Restate's CLI computes the version on its side (StateMutationVersion); the vector is
    that digest of {"a": b"1", "b": b"xy"} worked out from its definition."""
    import base64
    import hashlib

    from runtime.admin_state import version
    rows = b"".join(i.to_bytes(8, "big") + b"\x01" + k + b"\x02" + v + b"\x03"
                    for i, (k, v) in enumerate([(b"a", b"1"), (b"b", b"xy")]))
    expected = base64.urlsafe_b64encode(hashlib.sha256(rows).digest()).rstrip(b"=").decode()
    assert version({"b": b"xy", "a": b"1"}) == expected
    assert version({}) == base64.urlsafe_b64encode(hashlib.sha256(b"").digest()).rstrip(b"=").decode()
