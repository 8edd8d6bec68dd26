"""`app(services)`: the set of services a process offers (Restate's `restate.app`).

Restate's `app` returns an ASGI application that speaks its protocol to a
Restate server; Stead's returns an `App` that the Stead runtime serves
(`stead serve module:application`), in-process or as a deployment. Handlers
are looked up through the services at call time, so a handler decorated
after `app(...)` was called is still found.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Union

from ._handler import HandlerSpec
from ._identity import parse_public_key
from ._service import Service, VirtualObject
from ._workflow import Workflow

ServiceDefinition = Union[Service, VirtualObject, Workflow]
_DEFINITIONS = (Service, VirtualObject, Workflow)


class App:
    """Services by name; what the runtime serves."""

    __slots__ = ("services", "identity_keys")

    def __init__(self, services: Iterable[ServiceDefinition],
                 identity_keys: Optional[Sequence[str]] = None) -> None:
        self.services: dict[str, ServiceDefinition] = {}
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


def app(services: Iterable[ServiceDefinition], *, identity_keys: Optional[Sequence[str]] = None) -> App:
    """Bundle services for the runtime; service names must be unique.

    ``identity_keys``: as Restate's, the request-identity public keys (``publickeyv1_...``,
    or here also a PEM public key file's path) whose signed requests a deployment accepts.
    """
    if isinstance(services, _DEFINITIONS):
        raise TypeError("app() takes a list of services: app([my_service])")
    return App(services, identity_keys)
