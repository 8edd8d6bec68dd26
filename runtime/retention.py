"""How long a completed invocation is kept: Restate's retention options, per
service and per handler (the handler's wins), over the server's `--retention`.

- `workflow_retention` (a workflow's main handler): a workflow run, with its
  key's state and promises, and the key's one-run-per-key guard.
- `idempotency_retention`: an invocation sent with an idempotency key, with
  its idempotency row (the key is free again once it is purged).
- `journal_retention`: every other completed invocation.

Stead keeps an invocation's record, result and journal together, so the one
option that applies decides how long all of them are kept. The choice is made
when the invocation completes and stored in its record (`Store.complete(...,
retention_ms=...)`); an invocation no option applies to carries none and is kept
for the server's default, read at purge time, so changing `--retention` applies
to it too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator, Optional

from pysdk._app import App
from pysdk._handler import HandlerSpec
from runtime import _core

_OPTIONS = ("journal_retention", "idempotency_retention", "workflow_retention")


def _ms(value: Any, where: str, option: str) -> Optional[int]:
    if value is None:
        return None
    if not isinstance(value, timedelta):
        raise ValueError(f"{where}: {option} must be a datetime.timedelta, got {type(value).__name__}")
    return max(0, int(value.total_seconds() * 1000))


class Retention:
    """The retention options of one app, resolved per (service, handler) once."""

    def __init__(self, app: App) -> None:
        self.app = app
        # (service, handler) -> {option: ms or None}, the handler's value over the service's.
        self._resolved: dict[tuple[str, str], dict[str, Optional[int]]] = {}
        for spec in self._specs():
            self._resolve(spec)  # a malformed value fails at start, not at the first completion
        self._any = any(ms is not None for r in self._resolved.values() for ms in r.values())

    def _specs(self) -> Iterator[HandlerSpec]:
        for service in self.app.services.values():
            yield from service.handlers.values()

    def _resolve(self, spec: HandlerSpec) -> dict[str, Optional[int]]:
        ident = (spec.service_name, spec.name)
        resolved = self._resolved.get(ident)
        if resolved is None:
            service = self.app.services.get(spec.service_name)
            resolved = {}
            for option in _OPTIONS:
                handler_ms = _ms(getattr(spec.options, option, None), f"handler {ident[0]}/{ident[1]}", option)
                service_ms = _ms(getattr(service, option, None), f"service {ident[0]}", option)
                resolved[option] = handler_ms if handler_ms is not None else service_ms
            self._resolved[ident] = resolved
        return resolved

    def ms(self, inv: _core.Invocation) -> Optional[int]:
        """The retention of `inv` once completed, or None for the server's default."""
        if not self._any:  # no service or handler sets one: skip the lookups per completion
            return None
        spec = self.app.lookup(inv.service, inv.handler)
        if spec is None:
            return None
        resolved = self._resolve(spec)
        if inv.kind == _core.KIND_WORKFLOW:
            return resolved["workflow_retention"]
        if inv.idempotency_key:
            return resolved["idempotency_retention"]
        return resolved["journal_retention"]

    def shortest_s(self, default_s: float) -> float:
        """The shortest retention in effect (the purge must look at least this often)."""
        shortest = default_s
        for resolved in self._resolved.values():
            for ms in resolved.values():
                if ms is not None:
                    shortest = min(shortest, ms / 1000)
        return shortest
