"""Handler definitions: `HandlerSpec`, built when `@svc.handler()` is applied.

All the per-handler work happens once, at decoration time: the signature is
checked (an `async def`, the context first, at most one input), mistakes are
reported there with the handler's name rather than at the first request,
and the input parser, output encoder and context class are resolved into
plain attributes. `parse_input` and `invoke` then do no inspection, no
typing work and no serde dispatch per call.
"""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Optional

import pydantic

from ._context import Context, ObjectContext, ObjectSharedContext, WorkflowContext, WorkflowSharedContext
from ._errors import InputError
from ._machine import Machine
from ._limits import RateLimit
from ._retry import InvocationRetryPolicy
from ._serde import DEFAULT_SERDE, DefaultSerde, Serde, codec_for_hint, input_codec, is_pydantic_model, json_dumps

CONTEXT_CLASSES: dict[str, type[Context]] = {
    "service": Context,
    "exclusive": ObjectContext,
    "shared": ObjectSharedContext,
}
WORKFLOW_CONTEXT_CLASSES: dict[str, type[Context]] = {
    "workflow": WorkflowContext,
    "shared": WorkflowSharedContext,
}

_NAME = re.compile(r"^[^/\s?#]+$")
_EMPTY = inspect.Parameter.empty


@dataclass(frozen=True)
class HandlerOptions:
    """Restate's per-handler settings that Stead carries but does not all
    enforce yet (they are there so ported code keeps its arguments)."""

    accept: str = "application/json"
    content_type: str = "application/json"
    description: Optional[str] = None
    metadata: Optional[dict[str, str]] = None
    inactivity_timeout: Optional[timedelta] = None
    abort_timeout: Optional[timedelta] = None
    journal_retention: Optional[timedelta] = None
    idempotency_retention: Optional[timedelta] = None
    enable_lazy_state: Optional[bool] = None
    ingress_private: Optional[bool] = None
    invocation_retry_policy: Optional[InvocationRetryPolicy] = None
    workflow_retention: Optional[timedelta] = None
    # Enforced by the runtime (runtime/queues.py); see pysdk/_limits.py.
    concurrency: Optional[int] = None
    concurrency_per_limit_key: Optional[int] = None
    rate_limit: Optional[RateLimit] = None


def validate_name(what: str, name: Any) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{what} name must be a non-empty string without '/', '?', '#' or spaces, got {name!r}")
    return name


class HandlerSpec:
    """One handler of one service, ready to be invoked by the runtime."""

    __slots__ = (
        "service_name", "name", "service_type", "kind", "accepts_input", "fn",
        "context_class", "input_serde", "output_serde", "input_type", "output_type",
        "options", "_loads", "_dumps", "_has_default", "_default", "_where",
        "dump_input", "load_output",
    )

    def __init__(
        self,
        *,
        service_name: str,
        service_type: str,
        kind: str,
        fn: Callable[..., Any],
        name: Optional[str],
        input_serde: Serde[Any],
        output_serde: Serde[Any],
        options: HandlerOptions,
    ) -> None:
        self.service_name = service_name
        self.service_type = service_type
        self.kind = kind
        self.fn = fn
        self.options = options
        self.input_serde = input_serde
        self.output_serde = output_serde
        self.name = validate_name("handler", name if name is not None else getattr(fn, "__name__", None))
        self._where = f"handler {service_name}/{self.name}"
        classes = WORKFLOW_CONTEXT_CLASSES if service_type == "workflow" else CONTEXT_CLASSES
        self.context_class = classes[kind]
        self._check_signature()

    # -- decoration time -----------------------------------------------------

    def _fail(self, problem: str) -> TypeError:
        qualname = getattr(self.fn, "__qualname__", repr(self.fn))
        return TypeError(f"{self._where} ({qualname}): {problem}")

    def _check_signature(self) -> None:
        fn = self.fn
        if not callable(fn):
            raise self._fail("is not callable")
        if not inspect.iscoroutinefunction(fn):
            raise self._fail("must be declared with 'async def'")
        try:
            sig = inspect.signature(fn, eval_str=True)
        except (NameError, SyntaxError) as exc:
            raise self._fail(f"cannot resolve its type annotations ({type(exc).__name__}: {exc})") from exc
        params = list(sig.parameters.values())
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY):
                raise self._fail(
                    f"parameter {p.name!r} is {p.kind.description}; a handler takes "
                    "(ctx) or (ctx, input) as positional parameters"
                )
        if not params:
            raise self._fail("must take the context as its first parameter, e.g. (ctx: Context)")
        if len(params) > 2:
            names = ", ".join(p.name for p in params[1:])
            raise self._fail(
                f"takes at most one input parameter after the context, got {len(params) - 1} ({names}); "
                "wrap them in a pydantic model or a dataclass"
            )
        self._check_context_annotation(params[0].annotation)

        self.accepts_input = len(params) == 2
        self._has_default = False
        self._default = None
        self.input_type = None
        if self.accepts_input:
            p = params[1]
            self.input_type = None if p.annotation is _EMPTY else p.annotation
            if p.default is not _EMPTY:
                self._has_default, self._default = True, p.default
        self._loads = self._input_loader()

        ret = sig.return_annotation
        self.output_type = None if ret is _EMPTY or ret is None or ret is type(None) else ret
        self._dumps = self._output_dumper()
        self.dump_input = self._input_dumper()
        self.load_output = self._output_loader()

    def _check_context_annotation(self, ann: Any) -> None:
        if isinstance(ann, type) and issubclass(ann, Context) and not issubclass(self.context_class, ann):
            raise self._fail(
                f"is a {self.kind} handler, so its context is {self.context_class.__name__}, "
                f"but its first parameter is annotated {ann.__name__}"
            )

    def _input_loader(self) -> Callable[[bytes], Any]:
        serde = self.input_serde
        if serde is DEFAULT_SERDE or type(serde) is DefaultSerde:
            hint = self.input_type if self.input_type is not None else getattr(serde, "type_hint", None)
            return input_codec(hint).loads
        return serde.deserialize

    def _output_dumper(self) -> Callable[[Any], bytes]:
        serde = self.output_serde
        if serde is DEFAULT_SERDE or type(serde) is DefaultSerde:
            hint = self.output_type if self.output_type is not None else getattr(serde, "type_hint", None)
            if is_pydantic_model(hint):
                return codec_for_hint(hint).dumps
            return json_dumps
        custom = serde.serialize
        return lambda value: bytes(custom(value))

    # The caller's side (ctx.*_call / *_send): the inverse of the two above.

    def _input_dumper(self) -> Callable[[Any], bytes]:
        if not self.accepts_input:
            where = self._where

            def no_input(value: Any) -> bytes:
                if value is not None:
                    raise TypeError(f"{where} takes no input, got {type(value).__name__}")
                return b""

            return no_input
        serde = self.input_serde
        if serde is DEFAULT_SERDE or type(serde) is DefaultSerde:
            hint = self.input_type if self.input_type is not None else getattr(serde, "type_hint", None)
            return codec_for_hint(hint).dumps
        custom = serde.serialize
        return lambda value: bytes(custom(value))

    def _output_loader(self) -> Callable[[bytes], Any]:
        serde = self.output_serde
        if serde is DEFAULT_SERDE or type(serde) is DefaultSerde:
            hint = self.output_type if self.output_type is not None else getattr(serde, "type_hint", None)
            return codec_for_hint(hint).loads
        return serde.deserialize

    # -- per invocation ------------------------------------------------------------

    def parse_input(self, body: bytes) -> Any:
        """The handler's input value from the request body; InputError if it does not fit."""
        if not self.accepts_input:
            return None
        if not body:
            if self._has_default:
                return self._default
            raise InputError(f"{self._where} expects an input, but the request body is empty")
        try:
            return self._loads(body)
        except pydantic.ValidationError as exc:
            raise InputError(f"invalid input for {self._where}: {_summarize(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - any decoding failure is the caller's error
            raise InputError(f"invalid input for {self._where}: {type(exc).__name__}: {exc}") from None

    async def invoke(self, machine: Machine, value: Any) -> bytes:
        """Run the handler against `machine`; return its encoded output."""
        ctx = self.context_class(machine)
        if self.accepts_input:
            out = await self.fn(ctx, value)
        else:
            out = await self.fn(ctx)
        if machine.journal_index < machine._replay_len:
            machine.check_replay_complete()
        return self._dumps(out)

    def __repr__(self) -> str:
        return f"<HandlerSpec {self.service_name}/{self.name} kind={self.kind}>"


def _summarize(exc: pydantic.ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(x) for x in err.get("loc", ()))
        parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts) or str(exc)
