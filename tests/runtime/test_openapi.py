"""runtime/openapi.py on handlers whose types nest (pydantic models inside models,
dataclasses, optionals): every `$ref` of the document resolves inside it, which is
what moving pydantic's `$defs` into `components.schemas` is for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from pydantic import BaseModel

from pysdk import Context, ObjectSharedContext, Service, VirtualObject
from runtime.openapi import document


class Address(BaseModel):
    street: str
    city: str


class Customer(BaseModel):
    name: str
    address: Address
    previous: list[Address] = []


@dataclass
class Line:
    sku: str
    quantity: int


orders = Service("Orders")


@orders.handler()
async def place(ctx: Context, customer: Customer) -> Optional[Line]:
    return None


@orders.handler()
async def lines(ctx: Context) -> list[Line]:
    return []


book = VirtualObject("Book")


@book.handler(kind="shared")
async def owner(ctx: ObjectSharedContext) -> Customer:
    raise NotImplementedError


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from ([v] if k == "$ref" else refs(v))
    elif isinstance(node, list):
        for v in node:
            yield from refs(v)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_nested_types_become_components_and_every_ref_resolves() -> None:
    doc = document(orders, "service")
    schemas = doc["components"]["schemas"]
    assert {"Address", "Line", "Error", "SendResponse"} <= set(schemas)
    body = doc["paths"]["/Orders/place"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["properties"]["address"] == {"$ref": "#/components/schemas/Address"}
    found = list(refs(doc))
    assert "#/components/schemas/Address" in found and "#/components/schemas/Line" in found
    for ref in found:
        assert isinstance(resolve(doc, ref), dict), ref
    assert "$defs" not in str(doc)
    assert "requestBody" not in doc["paths"]["/Orders/lines"]["post"]


def test_keyed_paths_take_the_key() -> None:
    doc = document(book, "object")
    op = doc["paths"]["/Book/{key}/owner"]["post"]
    assert [p["name"] for p in op["parameters"] if p["in"] == "path"] == ["key"]
    out = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert out["properties"]["address"] == {"$ref": "#/components/schemas/Address"}
    for ref in refs(doc):
        assert isinstance(resolve(doc, ref), dict), ref
