"""The ingress client, under the module name Restate uses (`restate.client`).

`create_client(ingress_url)` yields a `Client` that calls and sends to handlers over
Stead's ingress (Restate's paths: `POST /{Service}/{handler}`, `POST
/{Object|Workflow}/{key}/{handler}`, `.../send?delay=`, the `idempotency-key` header).
A typed call takes the handler function itself: its `HandlerSpec` (the one `ctx.object_call`
uses) names the service and handler and encodes the input and decodes the output with
the handler's serde, so a test sees the values the handler returned. An answer that is
not a success raises `HttpError` (a handler's TerminalError comes back with its status).

As Restate's client, with these differences:

- Scopes (Restate 1.7's flow control): Stead has none yet. `scope()` raises
  NotImplementedError, and `generic_call`/`generic_send` raise ValueError when given
  a `scope`, rather than sending something the ingress would route without it. A
  `limit_key` (every call and send takes one) is sent as Restate's
  `x-restate-limit-key` header, for the target's concurrency limits.
- The request's content-type is application/json whenever there is a body (Stead's
  ingress accepts JSON only), unless `headers` sets one; keys are percent-encoded.
- A response is awaited for up to `timeout` (60 s; httpx's default, which Restate's
  client keeps, is 5 s, shorter than a call to a handler that waits may take).
- Plain HTTP/1.1 (Stead's ingress does not speak HTTP/2, which Restate's client asks for).

Stead's additions, for tests: `attach` and `get_output` of an invocation by id (or send
handle), `workflow_attach` and `workflow_output` by workflow key, and `resolve_awakeable`
/ `reject_awakeable` from outside (the ingress's `/restate/...` paths).
"""
from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, AsyncIterator, Dict, Optional, TypeVar, Union
from urllib.parse import quote

import httpx

from ._commands import HANDLER_ATTR
from ._context import HandlerType
from ._handler import HandlerSpec
from ._limits import with_limit_key
from ._serde import DEFAULT_SERDE, Serde, codec, json_loads
from .client_types import HttpError, RestateClient, RestateClientSendHandle, RestateScopedClient

__all__ = ["Client", "create_client"]

I = TypeVar("I")  # noqa: E741 (Restate's name)
O = TypeVar("O")  # noqa: E741 (Restate's name)

DEFAULT_TIMEOUT_S = 60.0
NO_SCOPES = ("Stead has no scopes yet (Restate 1.7's flow control): call without scope=; "
             "limit_key= works without one (pysdk/_limits.py)")

Invocation = Union[str, RestateClientSendHandle]


def _spec(tpe: Any, method: str, keyed: Optional[bool]) -> HandlerSpec:
    """The spec behind a handler function, checked to be reachable the way `method` calls
    it: with a key (`keyed`), without one, or either (None)."""
    spec = getattr(tpe, HANDLER_ATTR, None)
    if not isinstance(spec, HandlerSpec):
        raise TypeError(f"{method}: {tpe!r} is not a handler (a function decorated with @service.handler(), "
                        "@object.handler(), @workflow.main() or @workflow.handler()); use generic_call or "
                        "generic_send to call a handler by name")
    if keyed is not None and keyed != (spec.service_type != "service"):
        right = "object_call or workflow_call" if spec.service_type != "service" else "service_call"
        raise TypeError(f"{method}: {spec.service_name}/{spec.name} is a handler of a {spec.service_type}, "
                        f"call it with {right}")
    return spec


def _path(service: str, handler: str, key: Optional[str], send: bool, delay: Optional[timedelta]) -> str:
    path = quote(service, safe="")
    if key is not None:
        path += "/" + quote(key, safe="")
    path += "/" + quote(handler, safe="")
    if send:
        path += "/send"
        if delay is not None:
            path += f"?delay={max(0, int(delay.total_seconds() * 1000))}"  # milliseconds, as Restate's
    return path


def _invocation_id(invocation: Invocation) -> str:
    return invocation.invocation_id if isinstance(invocation, RestateClientSendHandle) else invocation


class Client(RestateClient):
    """Restate's client over an httpx.AsyncClient whose base URL is the ingress."""

    def __init__(self, client: httpx.AsyncClient, headers: Optional[Dict[str, str]] = None):
        self.headers = headers or {}
        self.client = client

    def scope(self, scope: str) -> RestateScopedClient:
        raise NotImplementedError(NO_SCOPES)

    # ---- the HTTP exchange -----------------------------------------------------------------

    async def _request(self, method: str, path: str, content: bytes = b"",
                       headers: Optional[Dict[str, str]] = None) -> httpx.Response:
        res = await self.client.request(method, path, content=content, headers=headers)
        if res.status_code >= 400:
            raise HttpError(res.status_code, res.reason_phrase, res.text)
        return res

    async def _post(self, service: str, handler: str, send: bool, content: bytes,
                    headers: Optional[Dict[str, str]] = None, key: Optional[str] = None,
                    delay: Optional[timedelta] = None, idempotency_key: Optional[str] = None,
                    limit_key: Optional[str] = None) -> bytes:
        """POST to a handler (`/send` for a send); the response body."""
        merged = dict(with_limit_key(headers, limit_key) or {})
        if content and not any(name.lower() == "content-type" for name in merged):
            merged["Content-Type"] = "application/json"
        if idempotency_key is not None:
            merged["Idempotency-Key"] = idempotency_key
        res = await self._request("POST", _path(service, handler, key, send, delay), content, merged)
        return res.content

    async def _call(self, spec: HandlerSpec, arg: Any, key: Optional[str], idempotency_key: Optional[str],
                    headers: Optional[Dict[str, str]], limit_key: Optional[str] = None) -> Any:
        body = await self._post(spec.service_name, spec.name, False, spec.dump_input(arg), headers, key,
                                idempotency_key=idempotency_key, limit_key=limit_key)
        return spec.load_output(body)

    async def _send(self, spec: HandlerSpec, arg: Any, key: Optional[str], send_delay: Optional[timedelta],
                    idempotency_key: Optional[str], headers: Optional[Dict[str, str]],
                    limit_key: Optional[str] = None) -> RestateClientSendHandle:
        body = await self._post(spec.service_name, spec.name, True, spec.dump_input(arg), headers, key,
                                send_delay, idempotency_key, limit_key)
        return _send_handle(body)

    # ---- Restate's client ------------------------------------------------------------------

    async def service_call(self, tpe: HandlerType[I, O], arg: I, idempotency_key: Optional[str] = None,
                           headers: Optional[Dict[str, str]] = None,
                           limit_key: Optional[str] = None) -> O:
        return await self._call(_spec(tpe, "service_call", False), arg, None, idempotency_key, headers,
                                limit_key)

    async def service_send(self, tpe: HandlerType[I, O], arg: I, send_delay: Optional[timedelta] = None,
                           idempotency_key: Optional[str] = None,
                           headers: Optional[Dict[str, str]] = None,
                           limit_key: Optional[str] = None) -> RestateClientSendHandle:
        return await self._send(_spec(tpe, "service_send", False), arg, None, send_delay, idempotency_key, headers,
                                limit_key)

    async def object_call(self, tpe: HandlerType[I, O], key: str, arg: I, idempotency_key: Optional[str] = None,
                          headers: Optional[Dict[str, str]] = None,
                           limit_key: Optional[str] = None) -> O:
        return await self._call(_spec(tpe, "object_call", True), arg, key, idempotency_key, headers,
                                limit_key)

    async def object_send(self, tpe: HandlerType[I, O], key: str, arg: I, send_delay: Optional[timedelta] = None,
                          idempotency_key: Optional[str] = None,
                          headers: Optional[Dict[str, str]] = None,
                           limit_key: Optional[str] = None) -> RestateClientSendHandle:
        return await self._send(_spec(tpe, "object_send", True), arg, key, send_delay, idempotency_key, headers,
                                limit_key)

    async def workflow_call(self, tpe: HandlerType[I, O], key: str, arg: I, idempotency_key: Optional[str] = None,
                            headers: Optional[Dict[str, str]] = None,
                           limit_key: Optional[str] = None) -> O:
        return await self._call(_spec(tpe, "workflow_call", True), arg, key, idempotency_key, headers,
                                limit_key)

    async def workflow_send(self, tpe: HandlerType[I, O], key: str, arg: I, send_delay: Optional[timedelta] = None,
                            idempotency_key: Optional[str] = None,
                            headers: Optional[Dict[str, str]] = None,
                           limit_key: Optional[str] = None) -> RestateClientSendHandle:
        return await self._send(_spec(tpe, "workflow_send", True), arg, key, send_delay, idempotency_key, headers,
                                limit_key)

    async def generic_call(self, service: str, handler: str, arg: bytes, key: Optional[str] = None,
                           idempotency_key: Optional[str] = None, headers: Optional[Dict[str, str]] = None,
                           scope: Optional[str] = None, limit_key: Optional[str] = None) -> bytes:
        _no_scope(scope)
        return await self._post(service, handler, False, bytes(arg), headers, key, idempotency_key=idempotency_key,
                                limit_key=limit_key)

    async def generic_send(self, service: str, handler: str, arg: bytes, key: Optional[str] = None,
                           send_delay: Optional[timedelta] = None, idempotency_key: Optional[str] = None,
                           headers: Optional[Dict[str, str]] = None, scope: Optional[str] = None,
                           limit_key: Optional[str] = None) -> RestateClientSendHandle:
        _no_scope(scope)
        body = await self._post(service, handler, True, bytes(arg), headers, key, send_delay, idempotency_key,
                                limit_key)
        return _send_handle(body)

    # ---- Stead's additions -----------------------------------------------------------------

    async def attach(self, invocation: Invocation, tpe: Optional[HandlerType[Any, O]] = None) -> O:
        """Wait for an invocation (its id, or the handle a send returned) to complete and
        return its output: decoded by `tpe`'s serde (the handler it invoked) if given, else
        as JSON. A failed invocation raises HttpError with its status."""
        return await self._result(f"restate/invocation/{quote(_invocation_id(invocation), safe='')}/attach", tpe)

    async def get_output(self, invocation: Invocation, tpe: Optional[HandlerType[Any, O]] = None) -> O:
        """The output of a completed invocation, without waiting: HttpError 470 ("not
        ready") while it has not completed."""
        return await self._result(f"restate/invocation/{quote(_invocation_id(invocation), safe='')}/output", tpe)

    async def workflow_attach(self, tpe: HandlerType[Any, O], key: str) -> O:
        """Wait for the run of workflow `key` (`tpe` is the workflow's main handler) to
        complete and return its output."""
        return await self._result(self._workflow_path(tpe, key, "workflow_attach") + "/attach", tpe)

    async def workflow_output(self, tpe: HandlerType[Any, O], key: str) -> O:
        """The output of workflow `key`'s completed run; HttpError 470 while it runs."""
        return await self._result(self._workflow_path(tpe, key, "workflow_output") + "/output", tpe)

    async def resolve_awakeable(self, awakeable_id: str, value: Any, serde: Serde[Any] = DEFAULT_SERDE) -> None:
        """Complete an awakeable (a handler's `ctx.awakeable()`) with `value`, as JSON
        unless `serde` says otherwise. Completing one twice is accepted and ignored."""
        body = codec(serde).dumps(value)
        headers = {"Content-Type": "application/json"} if body else None
        await self._request("POST", f"restate/awakeables/{quote(awakeable_id, safe='')}/resolve", body, headers)

    async def reject_awakeable(self, awakeable_id: str, failure_message: str) -> None:
        """Fail an awakeable: its awaiter gets a TerminalError with `failure_message` (status 500)."""
        await self._request("POST", f"restate/awakeables/{quote(awakeable_id, safe='')}/reject",
                            failure_message.encode(), {"Content-Type": "text/plain"})

    def _workflow_path(self, tpe: Any, key: str, method: str) -> str:
        spec = _spec(tpe, method, True)
        if spec.kind != "workflow":
            raise TypeError(f"{method}: {spec.service_name}/{spec.name} is not a workflow's main handler")
        return f"restate/workflow/{quote(spec.service_name, safe='')}/{quote(key, safe='')}"

    async def _result(self, path: str, tpe: Any) -> Any:
        res = await self._request("GET", path)
        if tpe is None:
            return json_loads(res.content)
        return _spec(tpe, "attach", None).load_output(res.content)


def _send_handle(body: bytes) -> RestateClientSendHandle:
    accepted = json_loads(body) or {}
    return RestateClientSendHandle(accepted.get("invocationId", ""), 200, accepted.get("status"))


def _no_scope(scope: Optional[str]) -> None:
    if scope is not None:
        raise ValueError(NO_SCOPES)


@asynccontextmanager
async def create_client(ingress: str, headers: Optional[Dict[str, str]] = None, *,
                        timeout: Optional[float] = DEFAULT_TIMEOUT_S,
                        transport: Optional[httpx.AsyncBaseTransport] = None) -> AsyncIterator[RestateClient]:
    """A client of the ingress at `ingress` (like "http://127.0.0.1:8080"); `headers` go
    with every request. Stead's additions: `timeout`, seconds to wait for a response (None
    for no limit), and `transport`, httpx's (the harness's automatic time skipping counts
    the requests in flight with one)."""
    async with httpx.AsyncClient(base_url=ingress, headers=headers, timeout=timeout,
                                 transport=transport) as http_client:
        yield Client(http_client, headers)
