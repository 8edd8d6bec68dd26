"""The admin API's services and version (Restate's paths and shapes):

    GET /version                     {"version", "min_admin_api_version", "max_admin_api_version", "ingress_endpoint"}
    GET /services                    {"services": [Service]}
    GET /services/{name}             Service: type, handlers (kinds, schemas), options
    GET /services/{name}/openapi     an OpenAPI 3.1 document of its ingress (runtime/openapi.py)

Services are the catalog's: the in-process app's and the registered deployments'
(`deployment_id` says which: the in-process app is the deployment
LOCAL_DEPLOYMENT_ID, listed by GET /deployments like the others, since Restate's
tools expect every service to have one).
"""

from __future__ import annotations

import json
from datetime import timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Optional

from runtime import openapi
from runtime.deployments import LOCAL_DEPLOYMENT_ID
from runtime.http import HttpError, Send, json_body, respond
from runtime.invoker import Invoker

# The revisions of Restate's admin API whose paths and shapes this API answers, for what
# Stead has (GET /version; Restate's CLI then prefixes its paths with the newest, /v4/...).
MIN_API_VERSION, MAX_API_VERSION = 1, 4

_TYPES = {"service": "Service", "object": "VirtualObject", "workflow": "Workflow"}
_KINDS = {"service": None, "exclusive": "Exclusive", "shared": "Shared", "workflow": "Workflow"}


def stead_version() -> str:
    try:
        return version("stead")
    except PackageNotFoundError:  # a source checkout without an installed distribution
        return "0.0.0+unknown"


def _duration(value: Optional[timedelta]) -> Optional[str]:
    """Restate's humantime form ("1h 30m", "500ms")."""
    if value is None:
        return None
    ms = int(value.total_seconds() * 1000)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            parts.append(f"{ms // size}{unit}")
            ms %= size
    return " ".join(parts) or "0s"


def _retry(policy: Any) -> Optional[dict[str, Any]]:
    if policy is None:
        return None
    on_max = getattr(policy, "on_max_attempts", None)
    return _present({"initial_interval": _duration(policy.initial_interval),
                     "exponentiation_factor": policy.exponentiation_factor,
                     "max_interval": _duration(policy.max_interval), "max_attempts": policy.max_attempts,
                     "on_max_attempts": None if on_max is None
                     else str(getattr(on_max, "value", on_max)).capitalize()})


def _present(d: dict[str, Any]) -> dict[str, Any]:
    """Unset options are left out, as Restate leaves them out (its CLI reads a null
    duration or retry policy as an error, a missing one as the default)."""
    return {k: v for k, v in d.items() if v is not None}


def _handler(spec: Any) -> dict[str, Any]:
    opts = spec.options
    input_text, output_text = openapi.schemas_of(spec)
    accepts = getattr(spec, "accepts_input", True)
    return _present({
        "name": spec.name,
        "ty": _KINDS.get(spec.kind, spec.kind),
        "documentation": opts.description,
        "metadata": dict(opts.metadata or {}),
        "input_description": (f"one of [\"none\", \"value of content-type '{opts.accept}'\"]"
                              if accepts else "none"),
        "output_description": f"value of content-type '{opts.content_type}'",
        "input_json_schema": json.loads(input_text) if input_text else None,
        "output_json_schema": json.loads(output_text) if output_text else None,
        "public": not opts.ingress_private,
        "journal_retention": _duration(opts.journal_retention),
        "idempotency_retention": _duration(opts.idempotency_retention),
        "workflow_completion_retention": _duration(opts.workflow_retention),
        "inactivity_timeout": _duration(opts.inactivity_timeout),
        "abort_timeout": _duration(opts.abort_timeout),
        "enable_lazy_state": opts.enable_lazy_state,
        "retry_policy": _retry(opts.invocation_retry_policy) or {},
    })


def service(svc: Any) -> dict[str, Any]:
    return _present({
        "name": svc.name,
        "ty": _TYPES.get(svc.service_type, svc.service_type),
        "handlers": [_handler(spec) for spec in svc.handlers.values()],
        "deployment_id": getattr(svc, "deployment_id", None) or LOCAL_DEPLOYMENT_ID,
        "revision": 1,
        "public": not getattr(svc, "ingress_private", None),
        "documentation": getattr(svc, "description", None),
        "metadata": dict(getattr(svc, "metadata", None) or {}),
        "journal_retention": _duration(getattr(svc, "journal_retention", None)),
        "idempotency_retention": _duration(getattr(svc, "idempotency_retention", None)),
        "workflow_completion_retention": _duration(getattr(svc, "workflow_retention", None)),
        "inactivity_timeout": _duration(getattr(svc, "inactivity_timeout", None)),
        "abort_timeout": _duration(getattr(svc, "abort_timeout", None)),
        "enable_lazy_state": bool(getattr(svc, "enable_lazy_state", None)),
        "retry_policy": _retry(getattr(svc, "invocation_retry_policy", None)),
    })


def lookup(invoker: Invoker, name: str) -> Any:
    svc = invoker.app.services.get(name)
    if svc is None:
        raise HttpError(404, f"service {name!r} not found")
    return svc


async def handle(invoker: Invoker, parts: list[str], method: str, ingress_url: str, send: Send) -> None:
    if method != "GET":
        raise HttpError(405, f"method {method} not allowed here: GET")
    if parts == ["version"]:
        await respond(send, 200, json_body({"version": stead_version(), "min_admin_api_version": MIN_API_VERSION,
                                            "max_admin_api_version": MAX_API_VERSION, "ingress_endpoint": ingress_url.rstrip("/") + "/" if ingress_url else None,
                                            "features": {}}))
    elif parts == ["services"]:
        await respond(send, 200, json_body({"services": [service(s) for s in invoker.app.services.values()]}))
    elif len(parts) == 2:
        await respond(send, 200, json_body(service(lookup(invoker, parts[1]))))
    elif len(parts) == 3 and parts[2] == "openapi":
        svc = lookup(invoker, parts[1])
        await respond(send, 200, json_body(openapi.document(svc, svc.service_type)))
    else:
        raise HttpError(404, f"unknown admin path /{'/'.join(parts)}")
