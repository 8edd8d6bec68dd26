"""Serialization of inputs, outputs, state values and step results.

The public classes follow Restate's `restate.serde` (`Serde`, `DefaultSerde`,
`JsonSerde`, `BytesSerde`, `PydanticJsonSerde`): `None` is the empty byte
string both ways, and the default is JSON, with pydantic models and
dataclasses rebuilt from a type hint.

The SDK itself does not call these classes on the hot path. Everything
is resolved once into a `Codec` (two plain functions): when a handler is
decorated for its input and output, and through a per-type-hint cache for
`ctx.get` and `ctx.run`.

The default codec reads with pydantic-core's `from_json` and writes with
orjson, rather than the stdlib `json`: both work on bytes without a decode
or encode step, and on the hot path (a small list in and out) each is
~0.2 µs against ~1.5-1.9 µs for `json.loads(bytes)` / `json.dumps(...).encode()`.
For large values the writer matters most (a state value is written on every
change): orjson encodes a list of 80,000 short strings in ~0.3 ms, four times
faster than pydantic-core's `to_json` and ten times faster than `json.dumps`.
Types orjson does not encode itself (models, dataclasses, datetimes, sets,
subclasses of the JSON types) go through pydantic-core's `to_jsonable_python`,
and values orjson refuses (ints beyond 64 bits, non-string dict keys) through
`to_json`, so every value `to_json` encoded is still encoded, to the same
JSON. The output is compact JSON (`["a","b"]`, UTF-8), the same value as
Restate's `json.dumps` output for every JSON reader (NaN and infinities, which
are not JSON, are written as null).

Pydantic models are written as Restate writes them, as `model_dump_json()`
does: by field name (or by alias if the model's config says
`serialize_by_alias`), wherever they appear (handler outputs, state, step
results, awakeable and promise values), not by alias as pydantic-core's
encoder would by default. Reading a model accepts its field names and its
aliases both (`by_name` and `by_alias`), so a value Stead wrote reads back
whatever the model's config, and so does a value a client wrote by alias.
"""
from __future__ import annotations

import abc
import dataclasses
import inspect
import typing
from typing import Any, Callable, Generic, Optional, TypeVar

import orjson
import pydantic
import pydantic_core

T = TypeVar("T")
I = TypeVar("I")  # noqa: E741 (Restate's name)

_from_json = pydantic_core.from_json
_to_json = pydantic_core.to_json
_orjson_dumps = orjson.dumps
_bytes, _memoryview = bytes, memoryview
_OrjsonError = orjson.JSONEncodeError
# Types beyond orjson's JSON core are converted by pydantic (as `to_json` would).
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
_to_jsonable = pydantic_core.to_jsonable_python
_BaseModel = pydantic.BaseModel

# Keyword arguments of a model's JSON validation that accept field names and aliases
# both (pydantic >= 2.11; older versions validate as the model's config says).
_BY_NAME_OR_ALIAS: dict[str, Any] = (
    {"by_alias": True, "by_name": True}
    if "by_name" in inspect.signature(pydantic.BaseModel.model_validate_json).parameters
    else {}
)


def _jsonable(obj: Any) -> Any:
    """orjson's `default`: a value orjson does not encode itself, as JSON-able Python.
    A model as `model_dump_json()` writes it; anything else by field name."""
    if isinstance(obj, _BaseModel):
        return obj.model_dump(mode="json")
    return _to_jsonable(obj, by_alias=False)


class Serde(Generic[T], abc.ABC):
    """serializer/deserializer interface (Restate's)."""

    @abc.abstractmethod
    def deserialize(self, buf: bytes) -> Optional[T]:
        """bytes -> value"""

    @abc.abstractmethod
    def serialize(self, obj: Optional[T]) -> bytes:
        """value -> bytes"""


class BytesSerde(Serde[bytes]):
    """Pass-through."""

    def deserialize(self, buf: bytes) -> Optional[bytes]:
        return buf

    def serialize(self, obj: Optional[bytes]) -> bytes:
        return b"" if obj is None else bytes(obj)


def json_loads(buf: bytes) -> Any:
    """JSON, with the empty byte string meaning None (Restate's convention)."""
    return _from_json(buf) if buf else None


def json_dumps(obj: Any) -> bytes:
    """Compact JSON; None is the empty byte string (Restate's convention).
    Raises ValueError (PydanticSerializationError) for unencodable values."""
    if obj is None:
        return b""
    try:
        # A copy: orjson (3.13) returns its 4 KiB working buffer as the bytes object, even
        # for `1`, and these bytes live on in the state cache and the journal's overlay
        # (a million small values held 4 GiB instead of 45 MiB).
        return _bytes(_memoryview(_orjson_dumps(obj, default=_jsonable, option=_ORJSON_OPTIONS)))
    except _OrjsonError:
        # Ints beyond 64 bits, non-string dict keys, deep nesting: pydantic-core's
        # encoder takes those (and raises for what is not encodable at all). Models
        # by field name (here even one whose config says `serialize_by_alias`).
        return _to_json(obj, by_alias=False)


class JsonSerde(Serde[I]):
    """Plain JSON."""

    def deserialize(self, buf: bytes) -> Optional[I]:
        value: Optional[I] = json_loads(buf)
        return value

    def serialize(self, obj: Optional[I]) -> bytes:
        return json_dumps(obj)


class PydanticJsonSerde(Serde[I]):
    """A pydantic model to and from JSON."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def deserialize(self, buf: bytes) -> Optional[I]:
        return self.model.model_validate_json(buf, **_BY_NAME_OR_ALIAS) if buf else None

    def serialize(self, obj: Optional[I]) -> bytes:
        if obj is None:
            return b""
        if isinstance(obj, pydantic.BaseModel):
            return obj.model_dump_json().encode()
        return json_dumps(obj)


class DefaultSerde(Serde[I]):
    """JSON; with a type hint naming a pydantic model, a dataclass or another
    typed structure, values are validated and rebuilt into that type."""

    def __init__(self, type_hint: Optional[Any] = None) -> None:
        self.type_hint = type_hint

    def with_maybe_type(self, type_hint: Optional[Any] = None) -> "DefaultSerde[I]":
        return DefaultSerde(type_hint)

    def deserialize(self, buf: bytes) -> Optional[I]:
        value: Optional[I] = codec_for_hint(self.type_hint).loads(buf)
        return value

    def serialize(self, obj: Optional[I]) -> bytes:
        return codec_for_hint(self.type_hint).dumps(obj)


class Codec:
    """The resolved pair of functions the SDK calls on the hot path."""

    __slots__ = ("loads", "dumps")

    def __init__(self, loads: Callable[[bytes], Any], dumps: Callable[[Any], bytes]) -> None:
        self.loads = loads
        self.dumps = dumps


JSON_CODEC = Codec(json_loads, json_dumps)
DEFAULT_SERDE: DefaultSerde[Any] = DefaultSerde()

_UNTYPED = (None, Any, object, typing.Any)
_hint_cache: dict[Any, Codec] = {}


def is_pydantic_model(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, pydantic.BaseModel)


def _model_codec(model: type[pydantic.BaseModel]) -> Codec:
    validate = model.model_validate_json

    def loads(buf: bytes) -> Any:
        return validate(buf, **_BY_NAME_OR_ALIAS) if buf else None

    def dumps(obj: Any) -> bytes:
        if isinstance(obj, pydantic.BaseModel):
            return obj.model_dump_json().encode()
        return json_dumps(obj)

    return Codec(loads, dumps)


def _adapter_codec(hint: Any) -> Codec:
    try:
        adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(hint)
    except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
        # A type pydantic cannot describe: keep Restate's behaviour (plain JSON).
        return JSON_CODEC
    validate = adapter.validate_json

    def loads(buf: bytes) -> Any:
        return validate(buf, **_BY_NAME_OR_ALIAS) if buf else None

    # Encoding needs no schema: the schema-less encoder (a schema-bound
    # dump_json would warn on values of an unexpected type).
    return Codec(loads, json_dumps)


def codec_for_hint(hint: Any) -> Codec:
    """The codec for values annotated `hint`, built once per hint."""
    if hint in _UNTYPED:
        return JSON_CODEC
    try:
        return _hint_cache[hint]
    except KeyError:
        pass
    except TypeError:  # unhashable hint: build without caching
        return _build_codec(hint)
    codec = _hint_cache[hint] = _build_codec(hint)
    return codec


def _build_codec(hint: Any) -> Codec:
    if is_pydantic_model(hint):
        return _model_codec(hint)
    if hint in (str, int, float, bool, list, dict):
        # plain JSON already yields these; skip a validation pass for state and
        # step results. (Handler inputs are validated: see input_codec.)
        return JSON_CODEC
    return _adapter_codec(hint)


def input_codec(hint: Any) -> Codec:
    """Like codec_for_hint, but scalar hints are validated too: a handler input
    that does not fit its annotation is the caller's error, answered with 400."""
    if hint in (str, int, float, bool, list, dict):
        return _adapter_codec(hint)
    return codec_for_hint(hint)


def codec(serde: Optional[Serde[Any]], type_hint: Any = None) -> Codec:
    """Resolve a (serde, type_hint) pair as accepted by ctx.get / ctx.run."""
    if serde is None or serde is DEFAULT_SERDE:
        return codec_for_hint(type_hint)
    if type(serde) is DefaultSerde:
        return codec_for_hint(type_hint if type_hint is not None else serde.type_hint)
    if type(serde) is JsonSerde:
        return JSON_CODEC
    return Codec(serde.deserialize, serde.serialize)


def is_dataclass_type(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)
