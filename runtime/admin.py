"""The admin API (a minimal first part of it), on its own port, loopback by default:

    PATCH  /invocations/{id}/cancel     cooperative: the handler sees a TerminalError at its
                                        next await, compensations run; propagates to callees
    PATCH  /invocations/{id}/kill       stops at once, no compensation; kills callees too
    DELETE /invocations/{id}?mode=cancel|kill   (Restate's older form of the same)
    GET    /health
    POST   /deployments, GET /deployments[/{id}], DELETE /deployments/{id}: see admin_deployments.py
    PUT    /debug/failpoints/{name}     body: actions in the `fail` crate's syntax (e.g. pause);
    DELETE /debug/failpoints/{name}     only with STEAD_DEBUG_FAILPOINTS=1 and an extension built
                                        with the failpoints feature (tests hold or fail the writer)

202 {"invocationId", "status"} once the request is durable; 404 unknown invocation;
409 already completed.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import parse_qs, unquote

from runtime import _core, admin_deployments
from runtime.http import HttpError, Receive, Scope, Send, error_body, json_body, lifespan, read_body, respond
from runtime.invoker import Invoker

log = logging.getLogger("stead.admin")


class Admin:
    def __init__(self, invoker: Invoker) -> None:
        self.invoker = invoker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            return
        try:
            await self._handle(scope, receive, send)
        except HttpError as exc:
            await respond(send, exc.status, error_body(exc.status, exc.message))
        except _core.StorageError as exc:
            # Crash-only: the store failed, the server is stopping, and what was not durable
            # may or may not be there after recovery.
            await respond(send, 503, error_body(503, f"the outcome is unknown: the server's storage "
                                                     f"failed ({exc}); it restarts and recovers"))
        except Exception as exc:
            log.exception("internal error serving %s %s", scope["method"], scope["path"])
            await respond(send, 500, error_body(500, f"internal error: {exc}"))

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"].strip("/").split("/")
        method = scope["method"]
        if parts == ["health"]:
            await respond(send, 200, b'{"status":"ok"}')
            return
        if parts[0] == "deployments":
            await admin_deployments.handle(self.invoker, parts, scope, receive, send)
            return
        if len(parts) == 3 and parts[:2] == ["debug", "failpoints"] and _failpoints_enabled():
            await self._failpoint(unquote(parts[2]), method, scope, receive, send)
            return
        if len(parts) == 3 and parts[0] == "invocations" and parts[2] in ("cancel", "kill"):
            if method != "PATCH":
                raise HttpError(405, f"method {method} not allowed: use PATCH /invocations/{{id}}/{parts[2]}")
            await self._signal(unquote(parts[1]), parts[2], send)
            return
        if len(parts) == 2 and parts[0] == "invocations" and method == "DELETE":
            mode = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get("mode", ["cancel"])[-1]
            if mode not in ("cancel", "kill"):
                raise HttpError(400, f"mode must be cancel or kill, got {mode!r}")
            await self._signal(unquote(parts[1]), mode, send)
            return
        raise HttpError(404, f"unknown admin path {scope['path']}")

    async def _failpoint(self, name: str, method: str, scope: Scope, receive: Receive, send: Send) -> None:
        if method == "PUT":
            actions = (await read_body(scope["headers"], receive, 4096)).decode("utf-8", "replace")
            try:
                _core.set_failpoint(name, actions)
            except ValueError as exc:
                raise HttpError(400, str(exc)) from None
        elif method == "DELETE":
            _core.remove_failpoint(name)
        else:
            raise HttpError(405, f"method {method} not allowed: PUT or DELETE a failpoint")
        log.warning("failpoint %s %s", name, "set" if method == "PUT" else "removed")
        await respond(send, 200, json_body({"failpoint": name}))

    async def _signal(self, inv_id: str, action: str, send: Send) -> None:
        store = self.invoker.store
        answer, seq = store.cancel(inv_id) if action == "cancel" else store.kill(inv_id)
        if answer == _core.SIGNAL_UNKNOWN and self.invoker.persist_live(inv_id):
            # Running in memory without a durable point yet: now persisted, signal again.
            answer, seq = store.cancel(inv_id) if action == "cancel" else store.kill(inv_id)
        if answer == _core.SIGNAL_UNKNOWN:
            raise HttpError(404, f"invocation {inv_id} not found")
        if answer == _core.SIGNAL_ALREADY_COMPLETED:
            await self.invoker.commits.wait(seq)  # the 409 is true once its commit is durable
            raise HttpError(409, f"invocation {inv_id} is already completed")
        await self.invoker.signal(seq)
        status = "cancelling" if action == "cancel" else "killed"
        await respond(send, 202, json_body({"invocationId": inv_id, "status": status}))


def _failpoints_enabled() -> bool:
    return os.environ.get("STEAD_DEBUG_FAILPOINTS") == "1" and _core.failpoints_enabled()


class Router:
    """One ASGI app for both listening sockets: the admin port gets the admin API."""

    def __init__(self, ingress, admin: Admin, admin_port: int) -> None:  # type: ignore[no-untyped-def]
        self.ingress = ingress
        self.admin = admin
        self.admin_port = admin_port

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        server = scope.get("server")
        if server is not None and server[1] == self.admin_port:
            await self.admin(scope, receive, send)
        else:
            await self.ingress(scope, receive, send)
