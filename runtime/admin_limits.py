"""The admin API's view of concurrency and rate limits (runtime/queues.py):

    GET /limits     {"limits": [...]}: one item per handler under a limit, by service and
                    handler: the limits it is under (its service's and its own), how many
                    of its attempts run now and how many wait in the queue, and the same
                    per limit key ("limit_keys", those running or queued now)

Queued invocations are also listed by GET /invocations with the status "ready" (Restate's
name for an invocation not yet taken by the invoker), and counted by the metric
stead_queue_depth{service,handler}.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Optional

from runtime.http import HttpError, Send, json_body, respond
from runtime.invoker import Invoker
from runtime.queues import limit_key_of


def _ms(delta: Optional[timedelta]) -> Optional[int]:
    return None if delta is None else int(delta.total_seconds() * 1000)


def _declared(src: Any) -> dict[str, Any]:
    rate = getattr(src, "rate_limit", None)
    return {
        "concurrency": getattr(src, "concurrency", None),
        "concurrency_per_limit_key": getattr(src, "concurrency_per_limit_key", None),
        "rate_limit": None if rate is None else {"starts": rate.starts, "per_ms": _ms(rate.per)},
    }


def limits_view(invoker: Invoker) -> list[dict[str, Any]]:
    counts: dict[tuple[str, str], dict[str, dict[str, int]]] = {}

    def count(service: str, handler: str, limit_key: str, what: str) -> None:
        keys = counts.setdefault((service, handler), {})
        entry = keys.setdefault(limit_key, {"running": 0, "queued": 0})
        entry[what] += 1

    for attempt in list(invoker.live.values()):
        inv = attempt.inv
        count(inv.service, inv.handler, limit_key_of(inv), "running")
    for waiter in invoker.queues.waiters():
        inv = waiter.inv
        count(inv.service, inv.handler, limit_key_of(inv), "queued")
    out = []
    for service_name in sorted(invoker.app.services):
        service = invoker.app.services[service_name]
        for handler_name in sorted(service.handlers):
            spec = service.handlers[handler_name]
            if invoker.queues.policy(spec) is None:
                continue
            keys = counts.get((service_name, handler_name), {})
            out.append({
                "service": service_name,
                "handler": handler_name,
                "service_limits": _declared(service),
                "handler_limits": _declared(spec.options),
                "running": sum(k["running"] for k in keys.values()),
                "queued": sum(k["queued"] for k in keys.values()),
                "limit_keys": [{"limit_key": key or None, **keys[key]} for key in sorted(keys)],
            })
    return out


async def handle(invoker: Invoker, parts: list[str], method: str, send: Send) -> None:
    if len(parts) != 1:
        raise HttpError(404, "unknown admin path: GET /limits")
    if method != "GET":
        raise HttpError(405, f"method {method} not allowed: GET /limits")
    await respond(send, 200, json_body({"limits": limits_view(invoker)}))
