"""The commands behind `ctx.sleep`, the calls and sends, attaching, and awakeables.

Each is journaled when the context method is called (`Machine.command`);
what must be computed live (a sleep's fire time, a callee's id, the target
check) is computed only when the command is new, and read back from the
entry on replay. A call or send also hands its callee to the runtime
(`Machine.add_child`), made durable with the entry.
"""
from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from . import _clock
from ._entries import ATTACH_INVOCATION, AWAKEABLE, CALL, COMPLETE_AWAKEABLE, RUN, SEND, SLEEP, Entry
from ._errors import TerminalError
from ._futures import RestateDurableCallFuture, RestateDurableFuture, RestateDurableSleepFuture, SendHandle
from ._ids import awakeable_id, child_invocation_id, parse_awakeable_id
from ._serde import Codec

if TYPE_CHECKING:
    from ._handler import HandlerSpec
    from ._machine import Machine

# The attribute of a decorated handler function that points back to its spec.
HANDLER_ATTR = "__stead_handler__"

_CALLS = {"service": "service_call", "object": "object_call", "workflow": "workflow_call"}

# A call or send refused by the target check (404, 400, 409) is journaled as a failed
# RUN entry with this prefix before its target label.
REFUSED = "refused call "


def handler_spec(tpe: Any, service_type: str, method: str) -> "HandlerSpec":
    """The spec of a handler function passed to `ctx.<method>`; it must be a
    handler of a `service_type` ("service", "object" or "workflow")."""
    spec = getattr(tpe, HANDLER_ATTR, None)
    if spec is None:
        raise TypeError(
            f"{method}: {tpe!r} is not a handler (a function decorated with @service.handler(), "
            "@object.handler(), @workflow.main() or @workflow.handler()); use generic_call/generic_send "
            "to call a handler by name"
        )
    if spec.service_type != service_type:
        raise TypeError(
            f"{method}: {spec.service_name}/{spec.name} is a handler of a {spec.service_type}, "
            f"call it with {_CALLS.get(spec.service_type, 'generic_call')}"
        )
    return spec


def _millis(delta: Optional[timedelta]) -> int:
    if delta is None:
        return 0
    if not isinstance(delta, timedelta):
        raise TypeError(f"expected a datetime.timedelta, got {type(delta).__name__}")
    return max(0, int(delta.total_seconds() * 1000))


def _now_ms() -> int:
    return _clock.now_ms()


def sleep(m: "Machine", delta: timedelta, name: Optional[str]) -> RestateDurableSleepFuture:
    ms = _millis(delta)

    def build(i: int) -> Entry:
        return (SLEEP, name, (_now_ms() + ms).to_bytes(8, "big"), 0, None)

    index, _ = m.command(SLEEP, name, build)
    return RestateDurableSleepFuture(m, index, _none)


def _none(raw: bytes) -> None:
    return None


def _bytes(raw: bytes) -> bytes:
    return raw


def label(service: str, handler: str, key: Optional[str]) -> str:
    """The target label of CALL/SEND entries: "Service/handler" or "Object/key/handler"."""
    return f"{service}/{handler}" if key is None else f"{service}/{key}/{handler}"


def _invoke(
    m: "Machine", service: str, handler: str, key: Optional[str], payload: bytes,
    idempotency_key: Optional[str], headers: Optional[Mapping[str, str]], is_send: bool,
    delay: Optional[timedelta],
) -> tuple[int, str]:
    kind = SEND if is_send else CALL
    target = label(service, handler, key)

    def build(i: int) -> Entry:
        m.backend.check_target(service, handler, key, is_send)
        callee = child_invocation_id(m.invocation_id, i)
        fire_ms = _now_ms() + _millis(delay) if delay else 0
        m.add_child((i, callee, service, handler, key, payload, list(headers.items()) if headers else [],
                     idempotency_key or "", fire_ms, is_send))
        return (kind, target, callee.encode(), 0, None)

    refusal = REFUSED + target
    recorded = m.next_recorded()
    if recorded is not None and recorded[0] == RUN and recorded[1] == refusal:
        m.journal_index += 1  # refused when first run: refused again, identically
        raise TerminalError(recorded[4] or "", recorded[3])
    try:
        index, entry = m.command(kind, target, build)
    except TerminalError as exc:
        # Journal the refusal (as a failed step named after the call), so that a replay
        # meets it at this index rather than the entry that followed.
        m.journal_failure(refusal, exc.status_code, exc.message)
        raise
    raw = entry[2]
    return index, raw.decode() if raw is not None else ""


def call(m: "Machine", spec: "HandlerSpec", key: Optional[str], arg: Any,
         idempotency_key: Optional[str], headers: Optional[Mapping[str, str]]) -> RestateDurableCallFuture[Any]:
    index, callee = _invoke(m, spec.service_name, spec.name, key, spec.dump_input(arg),
                            idempotency_key, headers, False, None)
    return RestateDurableCallFuture(m, index, spec.load_output, callee)


def send(m: "Machine", spec: "HandlerSpec", key: Optional[str], arg: Any, delay: Optional[timedelta],
         idempotency_key: Optional[str], headers: Optional[Mapping[str, str]]) -> SendHandle:
    _, callee = _invoke(m, spec.service_name, spec.name, key, spec.dump_input(arg),
                        idempotency_key, headers, True, delay)
    return SendHandle(m, callee)


def generic_call(m: "Machine", service: str, handler: str, arg: bytes, key: Optional[str],
                 idempotency_key: Optional[str], headers: Optional[Mapping[str, str]]) -> RestateDurableCallFuture[bytes]:
    index, callee = _invoke(m, service, handler, key, bytes(arg), idempotency_key, headers, False, None)
    return RestateDurableCallFuture(m, index, _bytes, callee)


def generic_send(m: "Machine", service: str, handler: str, arg: bytes, key: Optional[str],
                 delay: Optional[timedelta], idempotency_key: Optional[str],
                 headers: Optional[Mapping[str, str]]) -> SendHandle:
    _, callee = _invoke(m, service, handler, key, bytes(arg), idempotency_key, headers, True, delay)
    return SendHandle(m, callee)


def attach(m: "Machine", invocation_id: str, codec: Codec) -> RestateDurableFuture[Any]:
    """Journal ATTACH_INVOCATION: a durable future of `invocation_id`'s result (its output
    decoded with `codec`, or its `TerminalError`), completed by the runtime."""
    if invocation_id is None or invocation_id == "":
        raise ValueError("attach_invocation: invocation_id cannot be None or empty")
    if not isinstance(invocation_id, str):
        raise TypeError(f"attach_invocation: invocation_id must be a str, got {type(invocation_id).__name__}")
    index, _ = m.command(ATTACH_INVOCATION, invocation_id,
                         lambda i: (ATTACH_INVOCATION, invocation_id, None, 0, None))
    return RestateDurableFuture(m, index, codec.loads)


# -- awakeables ------------------------------------------------------------------------


def awakeable(m: "Machine", codec: Codec) -> tuple[str, RestateDurableFuture[Any]]:
    index, _ = m.command(AWAKEABLE, None, lambda i: (AWAKEABLE, None, None, 0, None))
    return awakeable_id(m.invocation_id, index), RestateDurableFuture(m, index, codec.loads)


def complete_awakeable(m: "Machine", name: str, build: Callable[[int], Entry]) -> None:
    try:
        parse_awakeable_id(name)
    except ValueError:
        raise TerminalError(f"not an awakeable id: {name!r}", 400) from None
    m.command(COMPLETE_AWAKEABLE, name, build)
