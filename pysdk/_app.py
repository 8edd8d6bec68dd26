"""`app(services)`: the set of services a process offers (Restate's `restate.app`).

Restate's `app` returns an ASGI application that speaks its protocol to a
Restate server; Stead's returns an `App` that the Stead runtime serves
(`stead serve module:application`), in-process or as a deployment. Handlers
are looked up through the services at call time, so a handler decorated
after `app(...)` was called is still found.

`schedules=[Schedule(...)]` declares recurring invocations (pysdk/_schedules.py), which
`stead serve` creates or updates at start. `internal` holds services the runtime serves
itself without listing them (the schedules' object, runtime/schedules.py): `lookup` and
`service_type` find them, the listings (`services`) do not show them.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

from ._handler import HandlerSpec
from ._identity import parse_public_key
from ._schedules import Schedule
from ._service import Service, VirtualObject
from ._workflow import Workflow

ServiceDefinition = Union[Service, VirtualObject, Workflow]
_DEFINITIONS = (Service, VirtualObject, Workflow)


class App:
    """Services by name; what the runtime serves."""

    __slots__ = ("services", "identity_keys", "schedules", "internal")

    def __init__(self, services: Iterable[ServiceDefinition],
                 identity_keys: Optional[Sequence[str]] = None,
                 schedules: Optional[Sequence[Schedule]] = None) -> None:
        self.services: dict[str, ServiceDefinition] = {}
        self.internal: dict[str, ServiceDefinition] = {}
        # Request identity (Restate's `identity_keys`): the public keys, `publickeyv1_...`
        # or PEM file paths, whose signatures this deployment accepts; empty, unchecked.
        # Parsed here so that a bad key fails when the module defining the app is imported.
        if isinstance(identity_keys, str):
            raise TypeError("identity_keys takes a list of keys: identity_keys=[key]")
        self.identity_keys: tuple[str, ...] = tuple(identity_keys or ())
        for key in self.identity_keys:
            parse_public_key(key)
        for svc in services:
            if not isinstance(svc, _DEFINITIONS):
                raise TypeError(f"app() takes Service, VirtualObject and Workflow instances, got {svc!r}")
            if svc.name in self.services:
                raise ValueError(f"two services are named {svc.name!r}; service names must be unique")
            self.services[svc.name] = svc
        self.schedules: tuple[Schedule, ...] = _schedules(schedules, self.services)

    def lookup(self, service: str, handler: str) -> Optional[HandlerSpec]:
        svc = self.services.get(service) or self.internal.get(service)
        if svc is None:
            return None
        return svc.handlers.get(handler)

    def service_type(self, name: str) -> Optional[str]:
        """"service", "object" or "workflow"; None for an unknown service."""
        svc = self.services.get(name) or self.internal.get(name)
        return None if svc is None else svc.service_type

    def __repr__(self) -> str:
        return f"App({list(self.services)})"


def _schedules(schedules: Optional[Sequence[Schedule]],
               services: dict[str, ServiceDefinition]) -> tuple[Schedule, ...]:
    if schedules is None:
        return ()
    if isinstance(schedules, Schedule):
        raise TypeError("schedules takes a list of schedules: schedules=[Schedule(...)]")
    seen: set[str] = set()
    for s in schedules:
        if not isinstance(s, Schedule):
            raise TypeError(f"schedules takes pysdk.Schedule instances, got {s!r}")
        if s.id in seen:
            raise ValueError(f"two schedules have the id {s.id!r}; schedule ids must be unique")
        seen.add(s.id)
        svc = services.get(s.service)
        # A handler of this app must be one of its services; a name may be a deployment's.
        if svc is not None and s.handler not in svc.handlers:
            raise ValueError(f"schedule {s.id!r}: {s.service} has no handler {s.handler!r}")
    return tuple(schedules)


def app(services: Iterable[ServiceDefinition], *, identity_keys: Optional[Sequence[str]] = None,
        schedules: Optional[Sequence[Schedule]] = None) -> App:
    """Bundle services for the runtime; service names must be unique.

    ``identity_keys``: as Restate's, the request-identity public keys (``publickeyv1_...``,
    or here also a PEM public key file's path) whose signed requests a deployment accepts.
    ``schedules``: Stead's addition, recurring invocations of the app's handlers
    (``pysdk.Schedule``), created or updated by ``stead serve`` at start.
    """
    if isinstance(services, _DEFINITIONS):
        raise TypeError("app() takes a list of services: app([my_service])")
    return App(services, identity_keys, schedules)
