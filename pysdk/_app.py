"""`app(services)`: the set of services a process offers (Restate's `restate.app`).

Restate's `app` returns an ASGI application that speaks its protocol to a
Restate server; Stead's returns an `App` that the Stead runtime serves
(`stead serve module:application`), in-process or as a deployment. Handlers
are looked up through the services at call time, so a handler decorated
after `app(...)` was called is still found.
"""
from __future__ import annotations

from typing import Iterable, Optional, Union

from ._handler import HandlerSpec
from ._service import Service, VirtualObject
from ._workflow import Workflow

ServiceDefinition = Union[Service, VirtualObject, Workflow]
_DEFINITIONS = (Service, VirtualObject, Workflow)


class App:
    """Services by name; what the runtime serves."""

    __slots__ = ("services",)

    def __init__(self, services: Iterable[ServiceDefinition]) -> None:
        self.services: dict[str, ServiceDefinition] = {}
        for svc in services:
            if not isinstance(svc, _DEFINITIONS):
                raise TypeError(f"app() takes Service, VirtualObject and Workflow instances, got {svc!r}")
            if svc.name in self.services:
                raise ValueError(f"two services are named {svc.name!r}; service names must be unique")
            self.services[svc.name] = svc

    def lookup(self, service: str, handler: str) -> Optional[HandlerSpec]:
        svc = self.services.get(service)
        if svc is None:
            return None
        return svc.handlers.get(handler)

    def service_type(self, name: str) -> Optional[str]:
        """"service", "object" or "workflow"; None for an unknown service."""
        svc = self.services.get(name)
        return None if svc is None else svc.service_type

    def __repr__(self) -> str:
        return f"App({list(self.services)})"


def app(services: Iterable[ServiceDefinition]) -> App:
    """Bundle services for the runtime; service names must be unique."""
    if isinstance(services, _DEFINITIONS):
        raise TypeError("app() takes a list of services: app([my_service])")
    return App(services)
