"""Registered deployments: handlers in processes of their own, reached over gRPC.

`POST /deployments {"uri"}` (or `stead deployments register URI`) runs discovery
against the deployment (`Discover`, signed like every request when the server has a
signing key), checks that its protocol range overlaps ours and that none of its
services is one the in-process app serves, and stores it in the data directory
(`deployments.json`, replaced atomically and fsynced), so registrations survive
restarts. Its services join the runtime's catalog (`Catalog`): the ingress, calls
between handlers, retries, timeouts and retention see them like in-process ones.

Versioning (Restate's rule): a service's new invocations go to the deployment
registered last that offers it; an invocation in flight stays on the deployment it
started on (`_core.Invocation.deployment`, written in its record), so a changed
handler never replays an old journal. A deployment with invocations pinned to it
can be removed only when forced.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Optional
from urllib.parse import urlsplit

import grpclib.exceptions
from grpclib.client import Channel

from pysdk._app import App
from pysdk._deployment.wire import StrictCodec
from pysdk._handler import HandlerOptions
from pysdk._limits import RateLimit
from pysdk._proto.stead.deployment import v1 as pb
from pysdk._retry import InvocationRetryPolicy
from runtime.ids import new_deployment_id, resource_id

log = logging.getLogger("stead.deployments")

PROTOCOL_MIN = 1
PROTOCOL_MAX = 2  # 2: Sessions (runtime/sessions.py)
DISCOVER_PATH = "/stead.deployment.v1.Deployment/Discover"
INVOKE_PATH = "/stead.deployment.v1.Deployment/Invoke"
SESSION_PATH = "/stead.deployment.v1.Deployment/Session"
FILE = "deployments.json"
# The deployment the in-process app's services belong to (Restate gives every service
# one; GET /deployments lists it when the app serves anything).
LOCAL_DEPLOYMENT_ID = resource_id("dp", 0)
LOCAL_URI = "stead://in-process"


class RegistrationError(ValueError):
    """A deployment that cannot be registered (the admin API answers 400 with this)."""


class DeploymentNotFound(LookupError):
    pass


class DeploymentBusy(RuntimeError):
    """Removal refused: invocations in flight are pinned to the deployment."""


# ---------------------------------------------------------------- the catalog's entries

def _td(ms: Optional[int]) -> Optional[timedelta]:
    return None if ms is None else timedelta(milliseconds=ms)


def _rate(rate: Optional[pb.RateLimit]) -> Optional[RateLimit]:
    """A deployment's rate limit; one that is not valid (starts 0) is no limit."""
    if rate is None or rate.starts < 1 or rate.period_ms < 1:
        return None
    return RateLimit(rate.starts, timedelta(milliseconds=rate.period_ms))


def _retry(policy: Optional[pb.RetryPolicy]) -> Optional[InvocationRetryPolicy]:
    if policy is None:
        return None
    fields = dict(
        initial_interval=_td(policy.initial_interval_ms), exponentiation_factor=policy.exponentiation_factor,
        max_interval=_td(policy.max_interval_ms), max_attempts=policy.max_attempts,
        on_max_attempts=policy.on_max_attempts)
    if all(v is None for v in fields.values()):
        return None
    return InvocationRetryPolicy(**fields)


class RemoteHandlerSpec:
    """A handler of a remote deployment, as the runtime sees it: the attributes of a
    pysdk `HandlerSpec` that the runtime reads (names, kind, options). Its input is
    passed through as bytes: the deployment parses it (a bad input fails there, 400)."""

    accepts_input = True

    def __init__(self, service: "RemoteService", info: pb.HandlerInfo) -> None:
        self.service_name = service.name
        self.service_type = service.service_type
        self.name = info.name
        self.kind = info.kind
        self.deployment_id = service.deployment_id
        o = info.options or pb.Options()
        self.options = HandlerOptions(
            accept=info.accept or "application/json", content_type=info.content_type or "application/json",
            description=info.description, metadata=dict(info.metadata) or None,
            inactivity_timeout=_td(o.inactivity_timeout_ms), abort_timeout=_td(o.abort_timeout_ms),
            journal_retention=_td(o.journal_retention_ms), idempotency_retention=_td(o.idempotency_retention_ms),
            enable_lazy_state=o.enable_lazy_state, ingress_private=o.ingress_private,
            invocation_retry_policy=_retry(o.retry_policy), workflow_retention=_td(o.workflow_retention_ms),
            concurrency=o.concurrency or None, concurrency_per_limit_key=o.concurrency_per_limit_key or None,
            rate_limit=_rate(o.rate_limit))
        self.input_schema = info.input_schema
        self.output_schema = info.output_schema

    def parse_input(self, body: bytes) -> bytes:
        return body

    def __repr__(self) -> str:
        return f"<RemoteHandlerSpec {self.service_name}/{self.name} kind={self.kind} on {self.deployment_id}>"


class RemoteService:
    """A service of a remote deployment, with the attributes of a pysdk service
    definition that the runtime reads."""

    def __init__(self, deployment_id: str, info: pb.ServiceInfo) -> None:
        self.deployment_id = deployment_id
        self.name = info.name
        self.service_type = info.type
        o = info.options or pb.Options()
        self.description = info.description
        self.metadata = dict(info.metadata) or None
        self.inactivity_timeout = _td(o.inactivity_timeout_ms)
        self.abort_timeout = _td(o.abort_timeout_ms)
        self.journal_retention = _td(o.journal_retention_ms)
        self.idempotency_retention = _td(o.idempotency_retention_ms)
        self.workflow_retention = _td(o.workflow_retention_ms)
        self.ingress_private = o.ingress_private
        self.enable_lazy_state = o.enable_lazy_state
        self.invocation_retry_policy = _retry(o.retry_policy)
        self.concurrency = o.concurrency or None  # 0 from a deployment: no limit (not "never")
        self.concurrency_per_limit_key = o.concurrency_per_limit_key or None
        self.rate_limit = _rate(o.rate_limit)
        self.handlers: dict[str, RemoteHandlerSpec] = {h.name: RemoteHandlerSpec(self, h) for h in info.handlers}


class Catalog(App):
    """Every service the runtime serves: the in-process app's and the registered
    deployments' (the newest deployment of a remote service wins)."""

    __slots__ = ("local",)

    def __init__(self, app: App) -> None:
        super().__init__(app.services.values())
        self.local = frozenset(app.services)

    def set_remote(self, services: dict[str, RemoteService]) -> None:
        for name in [n for n in self.services if n not in self.local]:
            del self.services[name]
        for name, svc in services.items():
            self.services[name] = svc  # type: ignore[assignment]


# ---------------------------------------------------------------- the registry

@dataclass
class Deployment:
    id: str
    uri: str
    created_ms: int
    sdk: str
    min_protocol_version: int
    max_protocol_version: int
    services: list[pb.ServiceInfo] = field(default_factory=list)

    @property
    def protocol_version(self) -> int:
        return min(self.max_protocol_version, PROTOCOL_MAX)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "uri": self.uri, "created_at_ms": self.created_ms, "sdk": self.sdk,
                "min_protocol_version": self.min_protocol_version,
                "max_protocol_version": self.max_protocol_version,
                "services": [s.to_dict() for s in self.services]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Deployment":
        return cls(id=d["id"], uri=d["uri"], created_ms=d["created_at_ms"], sdk=d.get("sdk", ""),
                   min_protocol_version=d["min_protocol_version"], max_protocol_version=d["max_protocol_version"],
                   services=[pb.ServiceInfo.from_dict(s) for s in d["services"]])

    def summary(self) -> dict[str, Any]:
        """The admin API's shape (Restate's `GET /deployments` items, as far as they apply)."""
        return summary(self.id, self.uri, self.created_ms, self.sdk, self.min_protocol_version,
                       self.max_protocol_version, [(s.name, s.type, [(h.name, h.kind) for h in s.handlers])
                                                   for s in self.services])


def summary(dep_id: str, uri: str, created_ms: int, sdk: str, min_version: int, max_version: int,
            services: list[tuple[str, str, list[tuple[str, str]]]]) -> dict[str, Any]:
    """Restate's `DeploymentResponse` (Http) for a deployment, with each service's type
    and handlers besides its name and revision."""
    return {"id": dep_id, "uri": uri, "protocol_type": "BidiStream", "http_version": "HTTP/2.0",
            "created_at": _iso(created_ms), "min_protocol_version": min_version,
            "max_protocol_version": max_version, "sdk_version": sdk,
            "services": [{"name": name, "revision": 1, "ty": _RESTATE_TYPES.get(ty, ty),
                          "handlers": [{"name": h, "ty": _RESTATE_KINDS.get(k, k)} for h, k in handlers]}
                         for name, ty, handlers in services]}


_RESTATE_TYPES = {"service": "Service", "object": "VirtualObject", "workflow": "Workflow"}
_RESTATE_KINDS = {"service": None, "exclusive": "Exclusive", "shared": "Shared", "workflow": "Workflow"}


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def parse_uri(uri: str) -> tuple[str, int]:
    """(host, port) of `http://host[:port]` (port 80 by default). Anything else is refused,
    including a path, query or credentials: the gRPC channel could not honour them, and
    dropping them silently would register an address the operator did not give."""
    expected = f"deployment uri must be http://host:port, got {uri!r}"
    parts = urlsplit(uri)
    if (parts.scheme not in ("http", "") or not parts.hostname or parts.path not in ("", "/")
            or parts.query or parts.fragment or parts.username is not None):
        raise RegistrationError(expected)
    try:
        port = parts.port
    except ValueError:
        raise RegistrationError(f"{expected}: bad port") from None
    if port == 0:  # `port or 80` would have turned it into 80
        raise RegistrationError(f"{expected}: port 0")
    return parts.hostname, 80 if port is None else port


class Registry:
    """The deployments registered with this runtime, kept in the data directory."""

    def __init__(self, data_dir: str, catalog: Catalog, signer: Any = None) -> None:
        self.path = os.path.join(data_dir, FILE)
        self.catalog = catalog
        self.signer = signer
        self.deployments: dict[str, Deployment] = {}
        self.on_change: list[Any] = []
        self.started_ms = int(time.time() * 1000)
        if os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                for d in json.load(f)["deployments"]:
                    dep = Deployment.from_json(d)
                    self.deployments[dep.id] = dep
        self._rebuild()

    def local_summary(self) -> Optional[dict[str, Any]]:
        """The in-process app as a deployment (None when it serves nothing)."""
        catalog = self.catalog
        if not catalog.local:
            return None
        from pysdk._deployment.discovery import MAX_PROTOCOL_VERSION, MIN_PROTOCOL_VERSION, SDK
        services = [(name, catalog.services[name].service_type,
                     [(h, spec.kind) for h, spec in catalog.services[name].handlers.items()])
                    for name in sorted(catalog.local)]
        return summary(LOCAL_DEPLOYMENT_ID, LOCAL_URI, self.started_ms, SDK, MIN_PROTOCOL_VERSION,
                       MAX_PROTOCOL_VERSION, services)

    def get(self, deployment_id: str) -> Deployment:
        dep = self.deployments.get(deployment_id)
        if dep is None:
            raise DeploymentNotFound(f"deployment {deployment_id} not found")
        return dep

    def metadata(self, path: str) -> Optional[list[tuple[str, str]]]:
        return self.signer.headers(path) if self.signer is not None else None

    async def discover(self, uri: str) -> pb.DiscoverResponse:
        host, port = parse_uri(uri)
        channel = Channel(host, port, codec=StrictCodec())  # garbage: MalformedMessage, below
        try:
            stub = pb.DeploymentStub(channel)
            return await stub.discover(
                pb.DiscoverRequest(min_protocol_version=PROTOCOL_MIN, max_protocol_version=PROTOCOL_MAX),
                timeout=10, metadata=self.metadata(DISCOVER_PATH))
        except grpclib.exceptions.GRPCError as exc:
            raise RegistrationError(f"deployment at {uri} refused discovery: {exc.status.name}: {exc.message}") from None
        except (OSError, TimeoutError) as exc:
            raise RegistrationError(f"deployment at {uri} does not answer: {exc or type(exc).__name__}") from None
        except Exception as exc:  # an HTTP server that is not gRPC, garbage bytes, ...
            raise RegistrationError(
                f"{uri} is not a Stead deployment (discovery failed: {type(exc).__name__}: {exc})") from None
        finally:
            channel.close()

    async def register(self, uri: str) -> Deployment:
        answer = await self.discover(uri)
        if answer.max_protocol_version < PROTOCOL_MIN or answer.min_protocol_version > PROTOCOL_MAX:
            raise RegistrationError(
                f"deployment at {uri} speaks protocol versions {answer.min_protocol_version}.."
                f"{answer.max_protocol_version}; this runtime speaks {PROTOCOL_MIN}..{PROTOCOL_MAX}")
        if not answer.services:
            raise RegistrationError(f"deployment at {uri} offers no services")
        for svc in answer.services:
            if svc.name in self.catalog.local:
                raise RegistrationError(
                    f"service {svc.name!r} of the deployment at {uri} is served in-process by this runtime")
            if svc.type not in _RESTATE_TYPES:
                raise RegistrationError(f"service {svc.name!r} has an unknown type {svc.type!r}")
            for h in svc.handlers:
                if h.kind not in _RESTATE_KINDS:
                    raise RegistrationError(f"handler {svc.name}/{h.name} has an unknown kind {h.kind!r}")
        dep = Deployment(id=new_deployment_id(), uri=uri, created_ms=int(time.time() * 1000),
                         sdk=answer.sdk, min_protocol_version=answer.min_protocol_version,
                         max_protocol_version=answer.max_protocol_version, services=list(answer.services))
        self.deployments[dep.id] = dep
        await self._save()
        self._rebuild()
        log.warning("registered deployment %s at %s: %s", dep.id, uri, ", ".join(s.name for s in dep.services))
        return dep

    async def remove(self, deployment_id: str, in_flight: int, force: bool) -> None:
        self.get(deployment_id)
        if in_flight and not force:
            raise DeploymentBusy(f"deployment {deployment_id} has {in_flight} invocations in flight; "
                                 "remove it with force=true to strand them")
        del self.deployments[deployment_id]
        await self._save()
        self._rebuild()

    def _rebuild(self) -> None:
        remote: dict[str, RemoteService] = {}
        for dep in sorted(self.deployments.values(), key=lambda d: d.created_ms):
            for info in dep.services:
                remote[info.name] = RemoteService(dep.id, info)  # the newest registration wins
        self.catalog.set_remote(remote)
        for callback in self.on_change:
            callback()

    async def _save(self) -> None:
        # Durable before the change is acknowledged; the fsyncs run off the event loop.
        body = json.dumps({"deployments": [d.to_json() for d in self.deployments.values()]}, indent=1)
        await asyncio.to_thread(self._write, body)

    def _write(self, body: str) -> None:
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        fd = os.open(os.path.dirname(self.path) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
