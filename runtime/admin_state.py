"""The admin API's view and edit of one object's (or workflow key's) state:

    GET  /services/{service}/state/{key}
         {"service", "object_key", "version", "state": {name: JSON | {"base64": ...}}}
    POST /services/{service}/state
         Restate's body {"object_key", "version" (optional), "new_state": {name: [byte, ...]}}:
         replaces the key's whole state; 202 {"service", "object_key", "version"}

The state shown is the runtime's own view of the key (runtime/state_cache.py: what
its committed invocations left, written to RocksDB or still queued), read from the
store in a worker thread when the key is not cached, and answered once the commits
it depends on are durable. `version` is a digest of that view: an edit that names
the version it read is refused (409) if anything changed the key since, so a
concurrent writer is never overwritten. An edit is also refused (409) while an
exclusive or workflow handler holds the key (the store checks ownership when it
queues the write, under its lock); then nothing changes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from typing import Any

from runtime import _core, admin_views as views
from runtime.admin_services import lookup
from runtime.http import HttpError, Receive, Scope, Send, json_body, read_body, respond
from runtime.invoker import Invoker

MAX_BODY = 32 * 1024 * 1024


def version(state: dict[str, bytes]) -> str:
    """Restate's state version (its StateMutationVersion): SHA-256 over the rows in name
    order, each as its index (8 bytes, big-endian), 0x01, name, 0x02, value, 0x03, in
    unpadded URL-safe base64. Restate's CLI computes it on its side for `state edit`
    and `kv clear`, so it must be this very digest."""
    h = hashlib.sha256()
    for i, (name, value) in enumerate(sorted((k.encode(), v) for k, v in state.items())):
        h.update(i.to_bytes(8, "big") + b"\x01" + name + b"\x02" + value + b"\x03")
    return base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def _keyed(invoker: Invoker, service: str) -> None:
    svc = lookup(invoker, service)
    if svc.service_type not in ("object", "workflow"):
        raise HttpError(404, f"service {service!r} is a {svc.service_type}: it has no state")


async def view(invoker: Invoker, service: str, key: str) -> tuple[dict[str, bytes], int]:
    """The runtime's view of the key's state and the commit it depends on."""
    cached = invoker.cache.peek(service, key)
    if cached is not None:
        return cached
    rows, seq = await asyncio.to_thread(invoker.store.load_state, service, key)
    cached = invoker.cache.peek(service, key)  # a handler may have loaded or written it meanwhile
    return cached if cached is not None else (dict(rows), seq)


async def get(invoker: Invoker, service: str, key: str, send: Send) -> None:
    _keyed(invoker, service)
    state, seq = await view(invoker, service, key)
    state = dict(state)
    await invoker.commits.wait(seq)
    await respond(send, 200, json_body({"service": service, "object_key": key, "version": version(state),
                                        "state": {k: views.value_json(v) for k, v in sorted(state.items())}}))


def _parse(body: bytes) -> tuple[str, Any, dict[str, bytes]]:
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise HttpError(400, f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise HttpError(400, "expected a JSON object {\"object_key\", \"version\", \"new_state\"}")
    key = doc.get("object_key")
    if not isinstance(key, str):
        raise HttpError(400, "object_key: expected a string")
    expected = doc.get("version")
    if expected is not None and not isinstance(expected, str):
        raise HttpError(400, "version: expected a string or null")
    new_state = doc.get("new_state")
    if not isinstance(new_state, dict):
        raise HttpError(400, "new_state: expected an object {name: [byte, ...]}")
    state: dict[str, bytes] = {}
    for name, value in new_state.items():
        if not isinstance(value, list) or not all(type(b) is int for b in value):
            raise HttpError(400, f"new_state[{name!r}]: expected an array of bytes (integers 0..255)")
        try:
            state[name] = bytes(value)
        except ValueError:
            raise HttpError(400, f"new_state[{name!r}]: a byte out of range 0..255") from None
    return key, expected, state


async def post(invoker: Invoker, service: str, scope: Scope, receive: Receive, send: Send) -> None:
    _keyed(invoker, service)
    key, expected, state = _parse(await read_body(scope["headers"], receive, MAX_BODY))
    current, _ = await view(invoker, service, key)
    # From here to the write nothing awaits: no handler can change the key in between.
    if expected is not None and expected != version(current):
        raise HttpError(409, f"the state of {service}/{key} changed since version {expected} was read "
                             f"(now {version(current)}): read it again and retry")
    try:
        _, seq = invoker.store.overwrite_state(service, key, sorted(state.items()))
    except _core.KeyBusyError as exc:
        raise HttpError(409, f"{service}/{key} is held by a running handler: {exc}") from None
    invoker.cache.put(service, key, dict(state), seq)
    await invoker.commits.wait(seq)
    await respond(send, 202, json_body({"service": service, "object_key": key, "version": version(state)}))
