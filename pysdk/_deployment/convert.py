"""Conversions between pysdk's tuples and the deployment protocol's messages.

Both peers use these (the deployment in `pysdk._deployment.stream`, the runtime in
its deployment client), so an entry, a completion or a callee crosses the stream
unchanged: optional fields keep the difference between None and empty bytes/str
(a GET_STATE of a missing value is `None`, a fired sleep's completion is `b""`).

    entry_to_msg((kind, name, value, code, message)) -> pb.Entry
    entry_from_msg(pb.Entry) -> Entry tuple
    completion_to_msg(index, (value, code, message)) -> pb.Completion
    completion_from_msg(pb.Completion) -> (index, (value, code, message))
    child_to_msg(Child tuple) -> pb.Child
    child_from_msg(pb.Child) -> Child tuple
    headers_to_msg([(name, value)]) -> [pb.Header]
    headers_from_msg([pb.Header]) -> [(name, value)]
    state_to_msg({name: bytes}) -> [pb.StateValue]
    state_from_msg([pb.StateValue]) -> {name: bytes}
    directory_to_msg([(service, type, {handler: kind})]) -> bytes (a serialized Directory)
    directory_of_app(app) -> the same, for the services of an App
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Mapping, Optional

from .._entries import Completion, Entry
from .._proto.stead.deployment import v1 as pb

if TYPE_CHECKING:
    from .._app import App
    from .._machine import Child

__all__ = [
    "entry_to_msg", "entry_from_msg", "completion_to_msg", "completion_from_msg",
    "child_to_msg", "child_from_msg", "headers_to_msg", "headers_from_msg",
    "state_to_msg", "state_from_msg", "directory_to_msg", "directory_of_app",
]


def entry_to_msg(entry: Entry) -> pb.Entry:
    kind, name, value, code, message = entry
    return pb.Entry(kind=kind, name=name, value=value, failure_code=code, failure_message=message)


def entry_from_msg(msg: pb.Entry) -> Entry:
    return (msg.kind, msg.name, msg.value, msg.failure_code, msg.failure_message)


def completion_to_msg(index: int, completion: Completion) -> pb.Completion:
    value, code, message = completion
    return pb.Completion(index=index, value=value, failure_code=code, failure_message=message)


def completion_from_msg(msg: pb.Completion) -> tuple[int, Completion]:
    return msg.index, (msg.value, msg.failure_code, msg.failure_message)


def headers_to_msg(headers: Iterable[tuple[str, str]]) -> list[pb.Header]:
    return [pb.Header(name=n, value=v) for n, v in headers]


def headers_from_msg(headers: Iterable[pb.Header]) -> list[tuple[str, str]]:
    return [(h.name, h.value) for h in headers]


def child_to_msg(child: "Child") -> pb.Child:
    index, invocation_id, service, handler, key, arg, headers, idem, fire_ms, is_send = child
    return pb.Child(index=index, invocation_id=invocation_id, service=service, handler=handler, key=key,
                    input=arg, headers=headers_to_msg(headers), idempotency_key=idem, fire_ms=fire_ms,
                    is_send=is_send)


def child_from_msg(msg: pb.Child) -> "Child":
    return (msg.index, msg.invocation_id, msg.service, msg.handler, msg.key, msg.input,
            headers_from_msg(msg.headers), msg.idempotency_key, msg.fire_ms, msg.is_send)


def state_to_msg(state: Mapping[str, bytes]) -> list[pb.StateValue]:
    return [pb.StateValue(name=n, value=v) for n, v in state.items()]


def state_from_msg(values: Iterable[pb.StateValue]) -> dict[str, bytes]:
    return {v.name: v.value for v in values}


def directory_to_msg(services: Iterable[tuple[str, str, Mapping[str, str]]]) -> bytes:
    """A serialized Directory: (service name, "service"|"object"|"workflow", {handler: kind})."""
    return bytes(pb.Directory(services=[
        pb.DirectoryService(name=name, type=type_, handlers=dict(handlers))
        for name, type_, handlers in services
    ]))


def directory_of_app(app: "App") -> bytes:
    return directory_to_msg(
        (name, svc.service_type, {h: spec.kind for h, spec in svc.handlers.items()})
        for name, svc in app.services.items()
    )
