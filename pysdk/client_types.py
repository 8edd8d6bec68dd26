"""Types of the ingress client, under the module name Restate uses (`restate.client_types`).

`RestateClient` is the interface `pysdk.client.create_client` yields (and the harness's
`HarnessEnvironment.client` is); `RestateScopedClient` is what Restate's `client.scope()`
returns. Stead has no scopes yet, so the scoped interface is here only for code that
names it in type hints: `Client.scope()` refuses (see pysdk/client.py).
"""
from __future__ import annotations

import abc
from datetime import timedelta
from typing import Dict, Optional, TypeVar

from ._context import HandlerType

__all__ = ["HttpError", "RestateClient", "RestateClientSendHandle", "RestateScopedClient"]

I = TypeVar("I")  # noqa: E741 (Restate's name)
O = TypeVar("O")  # noqa: E741 (Restate's name)


class RestateClientSendHandle:
    """What a send returns: the invocation's id (attach to it, or read its output, with it).

    `status_code` is 200 for an accepted send, as Restate's client reports it (the ingress
    itself answers 202). `status` is Stead's addition: the ingress's word, "Accepted", or
    "PreviouslyAccepted" when an idempotency key (or a workflow's key) named an invocation
    that already existed; then `invocation_id` is that invocation's."""

    def __init__(self, invocation_id: str, status_code: int, status: Optional[str] = None):
        self.invocation_id = invocation_id
        self.status_code = status_code
        self.status = status

    def __repr__(self) -> str:
        return f"RestateClientSendHandle({self.invocation_id!r}, {self.status_code}, status={self.status!r})"


class HttpError(Exception):
    """An answer of the ingress (or the admin API) that is not a success: `status_code`,
    the HTTP reason phrase as `message`, and the response's text as `body` (Stead's
    errors are `{"code", "message"}`; a handler's TerminalError comes back this way,
    with its status code)."""

    def __init__(self, status_code: int, message: str, body: Optional[str] = None):
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.body = body


class RestateScopedClient(abc.ABC):
    """Restate's client within one scope (`client.scope(scope)`), where each call may also
    carry a `limit_key`. Stead has no scopes yet: no client of this type is ever made."""

    @abc.abstractmethod
    async def service_call(self, tpe: HandlerType[I, O], arg: I, limit_key: Optional[str] = None,
                           idempotency_key: Optional[str] = None,
                           headers: Optional[Dict[str, str]] = None) -> O: ...

    @abc.abstractmethod
    async def service_send(self, tpe: HandlerType[I, O], arg: I, send_delay: Optional[timedelta] = None,
                           limit_key: Optional[str] = None, idempotency_key: Optional[str] = None,
                           headers: Optional[Dict[str, str]] = None) -> RestateClientSendHandle: ...

    @abc.abstractmethod
    async def object_call(self, tpe: HandlerType[I, O], key: str, arg: I, limit_key: Optional[str] = None,
                          idempotency_key: Optional[str] = None,
                          headers: Optional[Dict[str, str]] = None) -> O: ...

    @abc.abstractmethod
    async def object_send(self, tpe: HandlerType[I, O], key: str, arg: I, send_delay: Optional[timedelta] = None,
                          limit_key: Optional[str] = None, idempotency_key: Optional[str] = None,
                          headers: Optional[Dict[str, str]] = None) -> RestateClientSendHandle: ...

    @abc.abstractmethod
    async def workflow_call(self, tpe: HandlerType[I, O], key: str, arg: I, limit_key: Optional[str] = None,
                            idempotency_key: Optional[str] = None,
                            headers: Optional[Dict[str, str]] = None) -> O: ...

    @abc.abstractmethod
    async def workflow_send(self, tpe: HandlerType[I, O], key: str, arg: I, send_delay: Optional[timedelta] = None,
                            limit_key: Optional[str] = None, idempotency_key: Optional[str] = None,
                            headers: Optional[Dict[str, str]] = None) -> RestateClientSendHandle: ...


class RestateClient(abc.ABC):
    """Calls and sends to handlers through the ingress, with the handlers' own serdes:
    `tpe` is the handler function itself (decorated with `@service.handler()` and so on),
    which names the service and handler and says how to encode the input and decode the
    output. The generic forms take names and raw bytes."""

    @abc.abstractmethod
    def scope(self, scope: str) -> RestateScopedClient:
        """Restate's scoped client. Stead has no scopes yet: raises NotImplementedError."""

    @abc.abstractmethod
    async def service_call(self, tpe: HandlerType[I, O], arg: I, idempotency_key: Optional[str] = None,
                           headers: Optional[Dict[str, str]] = None) -> O:
        """Call a service's handler and return its output."""

    @abc.abstractmethod
    async def service_send(self, tpe: HandlerType[I, O], arg: I, send_delay: Optional[timedelta] = None,
                           idempotency_key: Optional[str] = None,
                           headers: Optional[Dict[str, str]] = None) -> RestateClientSendHandle:
        """Start a service's handler without waiting for it (after `send_delay` if given)."""

    @abc.abstractmethod
    async def object_call(self, tpe: HandlerType[I, O], key: str, arg: I, idempotency_key: Optional[str] = None,
                          headers: Optional[Dict[str, str]] = None) -> O:
        """Call a virtual object's handler on `key` and return its output."""

    @abc.abstractmethod
    async def object_send(self, tpe: HandlerType[I, O], key: str, arg: I, send_delay: Optional[timedelta] = None,
                          idempotency_key: Optional[str] = None,
                          headers: Optional[Dict[str, str]] = None) -> RestateClientSendHandle:
        """Start a virtual object's handler on `key` without waiting for it."""

    @abc.abstractmethod
    async def workflow_call(self, tpe: HandlerType[I, O], key: str, arg: I, idempotency_key: Optional[str] = None,
                            headers: Optional[Dict[str, str]] = None) -> O:
        """Call a workflow's handler (its main handler runs once per key) and return its output."""

    @abc.abstractmethod
    async def workflow_send(self, tpe: HandlerType[I, O], key: str, arg: I, send_delay: Optional[timedelta] = None,
                            idempotency_key: Optional[str] = None,
                            headers: Optional[Dict[str, str]] = None) -> RestateClientSendHandle:
        """Start a workflow's handler on `key` without waiting for it."""

    @abc.abstractmethod
    async def generic_call(self, service: str, handler: str, arg: bytes, key: Optional[str] = None,
                           idempotency_key: Optional[str] = None, headers: Optional[Dict[str, str]] = None,
                           scope: Optional[str] = None, limit_key: Optional[str] = None) -> bytes:
        """Call `service/handler` (on `key` for objects and workflows) with raw input bytes;
        the output's raw bytes. `scope` and `limit_key` must be None in Stead (no scopes yet)."""

    @abc.abstractmethod
    async def generic_send(self, service: str, handler: str, arg: bytes, key: Optional[str] = None,
                           send_delay: Optional[timedelta] = None, idempotency_key: Optional[str] = None,
                           headers: Optional[Dict[str, str]] = None, scope: Optional[str] = None,
                           limit_key: Optional[str] = None) -> RestateClientSendHandle:
        """Start `service/handler` with raw input bytes without waiting for it."""
