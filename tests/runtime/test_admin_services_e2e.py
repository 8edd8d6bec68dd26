"""The admin API's services and version over real HTTP against a real `stead serve`:
Restate's shapes, the handlers' JSON Schemas from their type hints, the OpenAPI
document of a service's ingress (whose references resolve inside the document), and
Restate's error shape for what does not exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conftest import SteadServer


@pytest.fixture
def srv(tmp_path: Path, effects_dir: Path) -> Iterator[SteadServer]:
    server = SteadServer(tmp_path / "data", effects_dir).start()
    yield server
    server.kill()


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def test_version_names_the_ingress(srv: SteadServer) -> None:
    body = srv.admin("GET", "/version").json()
    assert body["min_admin_api_version"] == 1 and body["max_admin_api_version"] == 4
    assert body["version"]
    assert body["ingress_endpoint"] == f"http://127.0.0.1:{srv.port}/"
    # Restate's CLI prefixes paths with the newest revision it shares with the server.
    assert srv.admin("GET", "/v4/services").json() == srv.admin("GET", "/services").json()
    assert srv.admin("GET", "/v9/services").status_code == 404


def test_services_list_types_handlers_and_schemas(srv: SteadServer) -> None:
    resp = srv.admin("GET", "/services")
    assert resp.status_code == 200
    services = {s["name"]: s for s in resp.json()["services"]}
    assert {"Cart", "Steps", "Flaky", "Shop"} <= set(services)
    assert services["Cart"]["ty"] == "VirtualObject" and services["Shop"]["ty"] == "Service"
    # The in-process app is a deployment of its own, listed like the others (Restate's
    # tools expect every service to name one).
    local = services["Cart"]["deployment_id"]
    assert local.startswith("dp_1") and len(local) == 26
    [listed] = srv.admin("GET", "/deployments").json()["deployments"]
    assert listed["id"] == local and listed["uri"] == "stead://in-process"
    assert {s["name"] for s in listed["services"]} == set(services)
    detailed = srv.admin("GET", f"/deployments/{local}").json()
    assert {s["name"]: s["ty"] for s in detailed["services"]}["Cart"] == "VirtualObject"
    assert srv.admin("DELETE", f"/deployments/{local}").status_code == 400
    cart = {h["name"]: h for h in services["Cart"]["handlers"]}
    assert cart["items"]["ty"] == "Shared" and cart["slow_add"]["ty"] == "Exclusive"
    assert cart["slow_add"]["input_json_schema"] == {"type": "string"}
    assert cart["items"]["output_json_schema"] == {"type": "array", "items": {"type": "string"}}

    shop = srv.admin("GET", "/services/Shop").json()
    buy = {h["name"]: h for h in shop["handlers"]}["buy"]
    assert "ty" not in buy  # a Service handler has no kind (left out, as Restate does)
    assert set(buy["input_json_schema"]["properties"]) == {"sku", "quantity"}
    assert set(buy["output_json_schema"]["properties"]) == {"sku", "total"}
    private = {h["name"]: h for h in srv.admin("GET", "/services/Gatekeeper").json()["handlers"]}
    assert private["inner"]["public"] is False and private["outer"]["public"] is True


def test_openapi_document_of_a_service(srv: SteadServer) -> None:
    doc = srv.admin("GET", "/services/Shop/openapi").json()
    assert doc["openapi"] == "3.1.0" and doc["info"]["title"] == "Shop"
    op = doc["paths"]["/Shop/buy"]["post"]
    body = op["requestBody"]["content"]["application/json"]["schema"]
    assert set(body["properties"]) == {"sku", "quantity"}
    assert set(op["responses"]["200"]["content"]["application/json"]["schema"]["properties"]) == {"sku", "total"}
    assert "/Shop/buy/send" in doc["paths"]
    for ref in _refs(doc):  # every reference resolves inside the document
        assert isinstance(_resolve(doc, ref), dict), ref

    cart = srv.admin("GET", "/services/Cart/openapi").json()
    add = cart["paths"]["/Cart/{key}/slow_add"]["post"]
    assert [p["name"] for p in add["parameters"] if p["in"] == "path"] == ["key"]
    assert "requestBody" not in cart["paths"]["/Cart/{key}/items"]["post"]  # takes no input


def test_unknown_service_is_404_in_restates_shape(srv: SteadServer) -> None:
    for path in ("/services/Nope", "/services/Nope/openapi", "/services/Nope/state/k"):
        resp = srv.admin("GET", path)
        assert resp.status_code == 404, path
        body = resp.json()
        assert "Nope" in body["message"] and "restate_code" in body
    assert srv.admin("POST", "/services").status_code == 405
    assert srv.admin("GET", "/nothing-here").status_code == 404
