"""The admin API's deployments (Restate's paths and shapes):

    POST   /deployments {"uri": "http://host:port"}  discover and register: 201 {"id", "services"}
    GET    /deployments                              {"deployments": [...]}, the in-process app first
                                                     (LOCAL_DEPLOYMENT_ID, uri stead://in-process)
    GET    /deployments/{id}                         one deployment, its services and handlers
    DELETE /deployments/{id}[?force=true]            202; 409 while invocations are pinned to it

Bad input is a 400 saying what was wrong (a uri that does not answer, an answer that
is not a Stead deployment, a protocol range that does not overlap, a service the
in-process app already serves); nothing is registered then.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote

from runtime.admin_services import service
from runtime.deployments import (LOCAL_DEPLOYMENT_ID, DeploymentBusy, DeploymentNotFound, RegistrationError,
                                 RemoteService)
from runtime.http import HttpError, Receive, Scope, Send, json_body, read_body, respond
from runtime.invoker import Invoker

MAX_BODY = 64 * 1024


async def handle(invoker: Invoker, parts: list[str], scope: Scope, receive: Receive, send: Send) -> None:
    registry = invoker.registry
    if registry is None:
        raise HttpError(404, "this server has no deployment registry")
    method = scope["method"]
    if len(parts) == 1:
        if method == "GET":
            local = registry.local_summary()
            await respond(send, 200, json_body(
                {"deployments": ([local] if local else []) + [d.summary() for d in registry.deployments.values()]}))
            return
        if method != "POST":
            raise HttpError(405, f"method {method} not allowed: GET or POST /deployments")
        uri = _uri(await read_body(scope["headers"], receive, MAX_BODY))
        try:
            dep = await registry.register(uri)
        except RegistrationError as exc:
            raise HttpError(400, str(exc)) from None
        summary = dep.summary()
        await respond(send, 201, json_body({"id": dep.id, "services": summary["services"]}))
        return
    if len(parts) != 2:
        raise HttpError(404, f"unknown admin path {scope['path']}")
    dep_id = unquote(parts[1])
    if dep_id == LOCAL_DEPLOYMENT_ID:
        local = registry.local_summary()
        if local is None:
            raise HttpError(404, f"deployment {dep_id} not found")
        if method != "GET":
            raise HttpError(400, f"deployment {dep_id} is this runtime's in-process app: it cannot be removed")
        await respond(send, 200, json_body(_detailed(invoker, local)))
        return
    try:
        if method == "GET":
            await respond(send, 200, json_body(_detailed(invoker, registry.get(dep_id).summary())))
        elif method == "DELETE":
            query = parse_qs((scope.get("query_string") or b"").decode("latin-1"))
            force = query.get("force", ["false"])[-1].lower() in ("true", "1", "yes")
            await registry.remove(dep_id, invoker.pinned_to(dep_id), force)
            await respond(send, 202, json_body({"id": dep_id, "status": "removed"}))
        else:
            raise HttpError(405, f"method {method} not allowed: GET or DELETE /deployments/{{id}}")
    except DeploymentNotFound as exc:
        raise HttpError(404, str(exc)) from None
    except DeploymentBusy as exc:
        raise HttpError(409, str(exc)) from None


def _uri(body: bytes) -> str:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise HttpError(400, f"expected a JSON body {{\"uri\": \"http://host:port\"}}: {exc}") from None
    uri = doc.get("uri") if isinstance(doc, dict) else None
    if not isinstance(uri, str) or not uri:
        raise HttpError(400, 'expected a JSON body {"uri": "http://host:port"}')
    return uri


def _detailed(invoker: Invoker, summary: dict) -> dict:
    """Restate's DetailedDeploymentResponse: the deployment with its services in full
    (ServiceMetadata: handlers, schemas, options), as its catalog entries describe them."""
    dep_id = summary["id"]
    registry = invoker.registry
    full = []
    for item in summary["services"]:
        svc = invoker.app.services.get(item["name"])
        if svc is None or (getattr(svc, "deployment_id", None) or LOCAL_DEPLOYMENT_ID) != dep_id:
            # A newer deployment serves this service now: describe this one's own version.
            info = next(s for s in registry.get(dep_id).services if s.name == item["name"])
            svc = RemoteService(dep_id, info)
        full.append(service(svc))
    return {**summary, "services": full}
