"""An OpenAPI 3.1 document of one service's ingress (`GET /services/{name}/openapi`).

Every handler is a POST at the ingress path runtime/ingress.py serves (`/{Service}/
{handler}`, `/{Object}/{key}/{handler}`), plus its `/send` form answering 202. The
request and response bodies carry the JSON Schemas of the handler's input and
output, made from its type hints (pydantic models, dataclasses, primitives) by
pydantic, as discovery makes them for deployments. Their `$defs` move to
`components.schemas` and their references with them, since a reference inside an
OpenAPI document resolves from the document's root.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from pysdk._deployment.discovery import handler_schemas

_REF = "#/$defs/"
_COMPONENTS = "#/components/schemas/"


def _hoist(schema: Any, components: dict[str, Any]) -> Any:
    """`schema` with its $defs moved into `components` and their references rewritten."""
    if isinstance(schema, dict):
        for name, sub in schema.pop("$defs", {}).items():
            components[name] = _hoist(sub, components)
        out = {}
        for k, v in schema.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(_REF):
                out[k] = _COMPONENTS + v[len(_REF):]
            else:
                out[k] = _hoist(v, components)
        return out
    if isinstance(schema, list):
        return [_hoist(v, components) for v in schema]
    return schema


def _schema(text: Optional[str], components: dict[str, Any]) -> dict[str, Any]:
    if not text:
        return {}  # any JSON value: the handler has no hint to describe it
    return _hoist(json.loads(text), components)


def schemas_of(spec: Any) -> tuple[Optional[str], Optional[str]]:
    """(input, output) JSON Schema text of a local HandlerSpec or a remote handler's."""
    if hasattr(spec, "input_schema"):  # a deployment's handler: discovery sent them
        return spec.input_schema or None, spec.output_schema or None
    return handler_schemas(spec)


def document(service: Any, service_type: str) -> dict[str, Any]:
    name = service.name
    keyed = service_type in ("object", "workflow")
    components: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    key_param = [{"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
                  "description": f"the key of the {'workflow' if service_type == 'workflow' else 'object'}"}]
    idem_param = {"name": "idempotency-key", "in": "header", "required": False, "schema": {"type": "string"},
                  "description": "requests with the same key run once; a repeat gets the first one's result"}
    for handler, spec in service.handlers.items():
        input_text, output_text = schemas_of(spec)
        accepts_input = getattr(spec, "accepts_input", True)
        options = getattr(spec, "options", None)
        description = getattr(options, "description", None)
        base = f"/{name}/{{key}}/{handler}" if keyed else f"/{name}/{handler}"
        params = (key_param if keyed else []) + [idem_param]
        body = ({"requestBody": {"required": input_text is not None, "content": {
            getattr(options, "accept", None) or "application/json": {"schema": _schema(input_text, components)}}}}
                if accepts_input else {})
        paths[base] = {"post": {
            "operationId": handler, "summary": f"call {name}/{handler}", "description": description or "",
            "parameters": params, **body,
            "responses": {
                "200": {"description": "the handler's output", "content": {
                    getattr(options, "content_type", None) or "application/json": {
                        "schema": _schema(output_text, components)}}},
                "default": {"description": "a terminal failure", "content": {"application/json": {
                    "schema": {"$ref": _COMPONENTS + "Error"}}}}}}}
        paths[base + "/send"] = {"post": {
            "operationId": f"{handler}_send", "summary": f"send to {name}/{handler} (do not wait for its result)",
            "parameters": params + [{"name": "delay", "in": "query", "required": False,
                                     "schema": {"type": "string"}, "description": "e.g. 10s: run it later"}],
            **body,
            "responses": {"202": {"description": "accepted", "content": {"application/json": {
                "schema": {"$ref": _COMPONENTS + "SendResponse"}}}}}}}
    components["Error"] = {"type": "object", "properties": {"code": {"type": "integer"},
                                                             "message": {"type": "string"}},
                           "required": ["message"]}
    components["SendResponse"] = {"type": "object", "properties": {
        "invocationId": {"type": "string"}, "status": {"type": "string", "enum": ["Accepted", "PreviouslyAccepted"]}},
        "required": ["invocationId", "status"]}
    return {
        "openapi": "3.1.0",
        "info": {"title": name, "version": "1", "description": getattr(service, "description", None) or ""},
        "paths": paths,
        "components": {"schemas": components},
    }
