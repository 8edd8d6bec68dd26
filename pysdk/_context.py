"""The context objects handed to handlers: `Context` (services),
`ObjectSharedContext` (shared handlers of a virtual object: read-only),
`ObjectContext` (exclusive handlers: read and write), and the workflow ones,
`WorkflowContext` (the main handler) and `WorkflowSharedContext` (its other
handlers), which add durable promises.

Names, signatures and semantics follow Restate's Python SDK so that a handler
ports by changing its import. Unlike Restate's abstract classes these are the
concrete classes: a context is one slot (the `Machine`) and every method is a
thin, allocation-light forward to it, because a context is built for every
invocation and `get`/`set` are the hot path. `ObjectContext` extends
`ObjectSharedContext`, so a helper typed for the read-only context also
accepts the read-write one.

`ctx.run` / `ctx.run_typed` / `ctx.time` return an awaitable that does its
work when awaited (a coroutine); await it where it is created. `ctx.sleep`,
the calls, `attach_invocation`, `awakeable` and `promise(...).value()` journal
their command at once and return a durable future (`_futures`), which can be awaited later or
passed to the combinators (`_combinators`).
"""
from __future__ import annotations

import abc
import asyncio
import typing
import uuid as _uuid
from dataclasses import dataclass
from datetime import timedelta
from random import Random
from typing import Any, Awaitable, Callable, Coroutine, Mapping, Optional, ParamSpec, TypeVar, Union, overload


from . import _clock, _commands
from ._entries import COMPLETE_AWAKEABLE
from ._futures import (
    DurablePromise,
    RestateDurableCallFuture,
    RestateDurableFuture,
    RestateDurableRunFuture,
    RestateDurableSleepFuture,
    SendHandle,
    cancel_invocation,
)
from ._limits import LIMIT_KEY_HEADER, with_limit_key
from ._machine import Machine
from ._retry import DEFAULT_RUN_OPTIONS, RunOptions
from ._serde import DEFAULT_SERDE, JSON_CODEC, Codec, Serde, codec, codec_for_hint

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (Restate's name)
O = TypeVar("O")  # noqa: E741 (Restate's name)
P = ParamSpec("P")

HandlerType = Union[Callable[[Any, I], Awaitable[O]], Callable[[Any], Awaitable[O]]]
Headers = Optional[Mapping[str, str]]

RunAction = Union[Callable[..., Coroutine[Any, Any, T]], Callable[..., T]]

_return_hints: dict[Any, Any] = {}


class AttemptFinishedEvent(abc.ABC):
    """Set once this attempt of the invocation is over (it completed, failed,
    was suspended or killed, or is retried): resources that live only as long
    as the attempt (a pending third-party call of a step) can be released then
    (Restate's class)."""

    @abc.abstractmethod
    def is_set(self) -> bool:
        """Whether the attempt is over."""

    @abc.abstractmethod
    async def wait(self) -> None:
        """Return once the attempt is over."""


class _AttemptFinished(AttemptFinishedEvent):
    """The event of one attempt: made by the first `ctx.request()` and kept on the
    machine (`attempt_finished`), whose owner `set`s it when the attempt ends."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()

    def set(self) -> None:
        self._event.set()


def _attempt_finished(m: Machine) -> _AttemptFinished:
    event: Optional[_AttemptFinished] = m.attempt_finished
    if event is None:
        event = _AttemptFinished()
        m.attempt_finished = event
        if getattr(m, "closed", None) is not None:
            event.set()
    return event


@dataclass
class Request:
    """The invocation's request (Restate's `Request`, same fields).

    `headers` are those the invocation was sent with; `attempt_headers` those
    of the transport that carries this attempt to the handler (Restate's
    server-to-SDK request), which Stead's in-process runtime does not have: empty.
    `limit_key` is the key it was sent with for its handler's concurrency limits
    (pysdk/_limits.py); `scope` is a Restate feature Stead does not have: None.
    """

    id: str
    headers: dict[str, str]
    attempt_headers: dict[str, str]
    body: bytes
    attempt_finished_event: AttemptFinishedEvent
    scope: Optional[str] = None
    limit_key: Optional[str] = None
    idempotency_key: Optional[str] = None


def _run_codec(action: Any, serde: Serde[Any], type_hint: Any) -> Codec:
    """Codec of a step's result: from the serde and hint, else from the
    action's return annotation (so a model comes back as a model on replay)."""
    if type_hint is None and (serde is DEFAULT_SERDE or serde is None):
        annotations = getattr(action, "__annotations__", None)
        if not annotations:
            return JSON_CODEC
        hint = annotations.get("return")
        if hint is None:
            return JSON_CODEC
        if isinstance(hint, str):  # `from __future__ import annotations`
            hint = _resolve_return_hint(action)
        return codec_for_hint(hint)
    return codec(serde, type_hint)


def _resolve_return_hint(action: Any) -> Any:
    key = getattr(action, "__code__", None) or action
    try:
        return _return_hints[key]
    except KeyError:
        pass
    try:
        hint = typing.get_type_hints(action).get("return")
    except Exception:  # noqa: BLE001 - unresolvable annotation: plain JSON
        hint = None
    _return_hints[key] = hint
    return hint


class Context:
    """Context of a service handler (and base of the object contexts)."""

    __slots__ = ("_m",)

    def __init__(self, machine: Machine) -> None:
        self._m = machine

    def request(self) -> Request:
        """The invocation's id, headers and input bytes, its idempotency key if it
        was sent with one, and the event of the end of this attempt."""
        m = self._m
        return Request(id=m.invocation_id, headers=dict(m.headers), attempt_headers={}, body=m.body,
                       attempt_finished_event=_attempt_finished(m),
                       idempotency_key=m.idempotency_key or None,
                       limit_key=dict(m.headers).get(LIMIT_KEY_HEADER))

    def random(self) -> Random:
        """A `random.Random` seeded from the invocation id: the same sequence on
        every replay. Not for secrets."""
        return self._m.random()

    def uuid(self) -> _uuid.UUID:
        """A UUID (v4 layout) from `random()`: stable across retries and replays."""
        return _uuid.UUID(int=self._m.random().getrandbits(128), version=4)

    def time(self) -> RestateDurableFuture[float]:
        """`time.time()` (by the harness's virtual clock under time skipping: pysdk/_clock.py),
        recorded as the step "timestamp": stable on replay."""
        m = self._m
        return RestateDurableRunFuture(m, lambda: m.run("timestamp", _clock.time, (), {}, JSON_CODEC,
                                                        DEFAULT_RUN_OPTIONS))

    @overload
    def run(
        self,
        name: str,
        action: Callable[..., Coroutine[Any, Any, T]],
        serde: Serde[T] = DEFAULT_SERDE,
        max_attempts: Optional[int] = None,
        max_retry_duration: Optional[timedelta] = None,
        type_hint: Optional[type[T]] = None,
        args: Optional[tuple[Any, ...]] = None,
    ) -> RestateDurableFuture[T]: ...

    @overload
    def run(
        self,
        name: str,
        action: Callable[..., T],
        serde: Serde[T] = DEFAULT_SERDE,
        max_attempts: Optional[int] = None,
        max_retry_duration: Optional[timedelta] = None,
        type_hint: Optional[type[T]] = None,
        args: Optional[tuple[Any, ...]] = None,
    ) -> RestateDurableFuture[T]: ...

    def run(
        self,
        name: str,
        action: RunAction[T],
        serde: Serde[T] = DEFAULT_SERDE,
        max_attempts: Optional[int] = None,
        max_retry_duration: Optional[timedelta] = None,
        type_hint: Optional[type[T]] = None,
        args: Optional[tuple[Any, ...]] = None,
    ) -> RestateDurableFuture[T]:
        """Run `action(*args)` once as the durable step `name` (sync or async).

        Its result is journaled and durable before the await returns; on
        replay the recorded result is returned without running it. A
        `TerminalError` is journaled and re-raised; other exceptions are
        retried with backoff until `max_attempts` / `max_retry_duration`
        (unlimited by default), then become a `TerminalError`.
        Prefer `run_typed`.
        """
        if max_attempts is None and max_retry_duration is None:
            options: RunOptions[Any] = DEFAULT_RUN_OPTIONS
        else:
            options = RunOptions(max_attempts=max_attempts, max_duration=max_retry_duration)
        m, codec_ = self._m, _run_codec(action, serde, type_hint)
        return RestateDurableRunFuture(m, lambda: m.run(name, action, args or (), {}, codec_, options))

    @overload
    def run_typed(
        self,
        name: str,
        action: Callable[P, Coroutine[Any, Any, T]],
        options: RunOptions[T] = DEFAULT_RUN_OPTIONS,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> RestateDurableFuture[T]: ...

    @overload
    def run_typed(
        self,
        name: str,
        action: Callable[P, T],
        options: RunOptions[T] = DEFAULT_RUN_OPTIONS,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> RestateDurableFuture[T]: ...

    def run_typed(
        self,
        name: str,
        action: Union[Callable[P, Coroutine[Any, Any, T]], Callable[P, T]],
        options: RunOptions[T] = DEFAULT_RUN_OPTIONS,
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> RestateDurableFuture[T]:
        """`run` with typed arguments: `await ctx.run_typed("charge", charge, RunOptions(max_attempts=3), amount)`."""
        m, codec_ = self._m, _run_codec(action, options.serde, options.type_hint)
        return RestateDurableRunFuture(m, lambda: m.run(name, action, args, kwargs, codec_, options))

    # -- durable control flow ----------------------------------------------------------

    def sleep(self, delta: timedelta, name: Optional[str] = None) -> RestateDurableSleepFuture:
        """A durable timer of `delta` from now: the invocation may be suspended
        while it waits, and a replay does not wait again."""
        return _commands.sleep(self._m, delta, name)

    def service_call(self, tpe: HandlerType[I, O], arg: I, idempotency_key: Optional[str] = None,
                     headers: Headers = None, limit_key: Optional[str] = None) -> RestateDurableCallFuture[O]:
        """Call a service handler (a function decorated with `@service.handler()`)."""
        spec = _commands.handler_spec(tpe, "service", "service_call")
        return _commands.call(self._m, spec, None, arg, idempotency_key, with_limit_key(headers, limit_key))

    def service_send(self, tpe: HandlerType[I, O], arg: I, send_delay: Optional[timedelta] = None,
                     idempotency_key: Optional[str] = None, headers: Headers = None,
                     limit_key: Optional[str] = None) -> SendHandle:
        """Start a service handler without waiting for it, after `send_delay` if given."""
        spec = _commands.handler_spec(tpe, "service", "service_send")
        return _commands.send(self._m, spec, None, arg, send_delay, idempotency_key,
                              with_limit_key(headers, limit_key))

    def object_call(self, tpe: HandlerType[I, O], key: str, arg: I, idempotency_key: Optional[str] = None,
                    headers: Headers = None, limit_key: Optional[str] = None) -> RestateDurableCallFuture[O]:
        """Call a virtual object's handler on `key`."""
        spec = _commands.handler_spec(tpe, "object", "object_call")
        return _commands.call(self._m, spec, _key(key), arg, idempotency_key, with_limit_key(headers, limit_key))

    def object_send(self, tpe: HandlerType[I, O], key: str, arg: I, send_delay: Optional[timedelta] = None,
                    idempotency_key: Optional[str] = None, headers: Headers = None,
                     limit_key: Optional[str] = None) -> SendHandle:
        spec = _commands.handler_spec(tpe, "object", "object_send")
        return _commands.send(self._m, spec, _key(key), arg, send_delay, idempotency_key,
                              with_limit_key(headers, limit_key))

    def workflow_call(self, tpe: HandlerType[I, O], key: str, arg: I, idempotency_key: Optional[str] = None,
                      headers: Headers = None, limit_key: Optional[str] = None) -> RestateDurableCallFuture[O]:
        """Call a workflow's handler on `key` (its main handler runs once per key)."""
        spec = _commands.handler_spec(tpe, "workflow", "workflow_call")
        return _commands.call(self._m, spec, _key(key), arg, idempotency_key, with_limit_key(headers, limit_key))

    def workflow_send(self, tpe: HandlerType[I, O], key: str, arg: I, send_delay: Optional[timedelta] = None,
                      idempotency_key: Optional[str] = None, headers: Headers = None,
                     limit_key: Optional[str] = None) -> SendHandle:
        spec = _commands.handler_spec(tpe, "workflow", "workflow_send")
        return _commands.send(self._m, spec, _key(key), arg, send_delay, idempotency_key,
                              with_limit_key(headers, limit_key))

    def generic_call(self, service: str, handler: str, arg: bytes, key: Optional[str] = None,
                     idempotency_key: Optional[str] = None, headers: Headers = None,
                     limit_key: Optional[str] = None) -> RestateDurableCallFuture[bytes]:
        """Call `service/handler` by name with raw input bytes; the result is raw bytes."""
        return _commands.generic_call(self._m, service, handler, arg, key, idempotency_key,
                                      with_limit_key(headers, limit_key))

    def generic_send(self, service: str, handler: str, arg: bytes, key: Optional[str] = None,
                     send_delay: Optional[timedelta] = None, idempotency_key: Optional[str] = None,
                     headers: Headers = None, limit_key: Optional[str] = None) -> SendHandle:
        return _commands.generic_send(self._m, service, handler, arg, key, send_delay, idempotency_key,
                                      with_limit_key(headers, limit_key))

    @overload
    def awakeable(self) -> tuple[str, RestateDurableFuture[Any]]: ...

    @overload
    def awakeable(self, serde: Serde[T] = DEFAULT_SERDE,
                  type_hint: Optional[type[T]] = None) -> tuple[str, RestateDurableFuture[T]]: ...

    def awakeable(self, serde: Serde[T] = DEFAULT_SERDE,
                  type_hint: Optional[type[T]] = None) -> tuple[str, RestateDurableFuture[T]]:
        """(id, future): hand the id to another system, which completes the
        future through the ingress or `ctx.resolve_awakeable`."""
        return _commands.awakeable(self._m, codec(serde, type_hint))

    def resolve_awakeable(self, name: str, value: I, serde: Serde[I] = DEFAULT_SERDE) -> None:
        encode = codec(serde).dumps
        _commands.complete_awakeable(self._m, name, lambda i: (COMPLETE_AWAKEABLE, name, encode(value), 0, None))

    def reject_awakeable(self, name: str, failure_message: str, failure_code: int = 500) -> None:
        _commands.complete_awakeable(
            self._m, name, lambda i: (COMPLETE_AWAKEABLE, name, None, failure_code, failure_message))

    def cancel_invocation(self, invocation_id: str) -> None:
        """Ask the runtime to cancel `invocation_id` (it raises `TerminalError`
        at its next await point, so its compensations run)."""
        cancel_invocation(self._m, invocation_id)

    def attach_invocation(self, invocation_id: str, serde: Serde[T] = DEFAULT_SERDE,
                          type_hint: Optional[type[T]] = None) -> RestateDurableFuture[T]:
        """A durable future of the result of the invocation `invocation_id` (from a
        `SendHandle`, say): its output decoded with `serde` (and `type_hint`), or its
        `TerminalError`. Attaching to an unknown invocation fails with 404, to the
        invocation itself with 400."""
        return _commands.attach(self._m, invocation_id, codec(serde, type_hint))


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"the key must be a str, got {type(key).__name__}")
    return key


class ObjectSharedContext(Context):
    """Context of a shared virtual-object handler: reads the object's state."""

    __slots__ = ()

    def key(self) -> str:
        return self._m.key

    async def get(self, name: str, serde: Serde[T] = DEFAULT_SERDE, type_hint: Optional[type[T]] = None) -> Any:
        """The value of state `name`, or None."""
        if serde is DEFAULT_SERDE and type_hint is None:
            return self._m.get_value(name)
        raw = self._m.get_state(name)
        if raw is None:
            return None
        return codec(serde, type_hint).loads(raw)

    async def state_keys(self) -> list[str]:
        """Names of the object's state entries (sorted)."""
        return self._m.state_keys()


class ObjectContext(ObjectSharedContext):
    """Context of an exclusive virtual-object handler: reads and writes state."""

    __slots__ = ()

    def set(self, name: str, value: T, serde: Serde[T] = DEFAULT_SERDE) -> None:
        """Set state `name`; visible to this handler at once, to others once committed.

        The value is stored as it is at this call (Restate's semantics): changing it
        afterwards changes nothing stored unless it is set again, and a later `get`
        returns a value of its own."""
        if serde is DEFAULT_SERDE:
            self._m.set_value(name, value)
        else:
            self._m.set_state(name, codec(serde).dumps(value))

    def clear(self, name: str) -> None:
        self._m.clear_state(name)

    def clear_all(self) -> None:
        self._m.clear_all()



class _Promises:
    """`promise(...)`, shared by the two workflow contexts."""

    __slots__ = ()
    _m: Machine

    @overload
    def promise(self, name: str) -> DurablePromise[Any]: ...

    @overload
    def promise(self, name: str, serde: Serde[T] = DEFAULT_SERDE,
                type_hint: Optional[type[T]] = None) -> DurablePromise[T]: ...

    def promise(self, name: str, serde: Serde[T] = DEFAULT_SERDE,
                type_hint: Optional[type[T]] = None) -> DurablePromise[T]:
        """The workflow's durable promise `name` (one per workflow key): any
        handler of the workflow can resolve it once, and `value()` waits for it."""
        return DurablePromise(self._m, name, serde, codec(serde, type_hint))


class WorkflowSharedContext(_Promises, ObjectSharedContext):
    """Context of a workflow's shared handlers: read state, use promises."""

    __slots__ = ()


class WorkflowContext(_Promises, ObjectContext):
    """Context of a workflow's main handler: read and write state, use promises."""

    __slots__ = ()
