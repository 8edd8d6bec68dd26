"""Strict decoding of the deployment protocol's messages, on both sides of a stream.

betterproto2 (0.10) parses whatever it is given, and what it makes of bytes that are
not a message of the expected type is not an error that a peer can catch as such:

- a field that arrives with another wire type than its declared type's is kept as it
  came: `Entry.parse(b"\\x10\\x05")` is `Entry(name=5)`, `DeploymentMessage.parse(b"\\x08\\x05")`
  a `DeploymentMessage(flush=5)`, which fail later, far from the decoder, as an
  AttributeError or a TypeError (or not at all);
- a length-delimited field that runs past the end of its message is cut short
  silently (a value would be journaled truncated);
- two members of one oneof are both kept, and `which_one_of` raises RuntimeError;
- other garbage raises whatever it meets: KeyError, EOFError, ValueError,
  OverflowError, AttributeError, UnicodeDecodeError.

`decode(data, cls)` first walks the bytes against `cls`'s schema (betterproto2's own
field metadata): field numbers valid, every wire type the declared type's (or a
packed repeated scalar), no groups, every length within its message, strings UTF-8,
at most one member per oneof, nested messages and map entries recursively. Only then
does betterproto2 parse them. Garbage is a `MalformedMessage` naming the message and
the field, and nothing else. The walk reads each field's key and length, not the
contents of bytes fields (strings are decoded, as the parse decodes them anyway).

`StrictCodec` is grpclib's protobuf codec with this decoding: the deployment's server
and the runtime's channels use it. For the message type `bytes` it passes bytes through
untouched: a Session's peers encode and decode its messages themselves, so that a
message they cannot decode fails the one attempt it names (`stream_id_of`), not the
session. tests/reliability/test_fuzz_protocol.py and
scripts/fuzz (atheris) fuzz it.
"""
from __future__ import annotations

import functools
from typing import Any, Optional, TypeVar

import betterproto2
from grpclib.encoding.proto import ProtoCodec

from . import fastproto
from .fastproto import MalformedMessage, _varint, read_value  # one error type, one field reader

__all__ = ["MalformedMessage", "decode", "walk_and_parse", "stream_id_of", "StrictCodec", "STREAM_ID_FIELD"]

M = TypeVar("M", bound=betterproto2.Message)

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
# The wire type of each scalar type (everything else is length-delimited).
_SCALAR_WIRE = {
    "int32": _VARINT, "int64": _VARINT, "uint32": _VARINT, "uint64": _VARINT, "sint32": _VARINT,
    "sint64": _VARINT, "bool": _VARINT, "enum": _VARINT,
    "double": _FIXED64, "fixed64": _FIXED64, "sfixed64": _FIXED64,
    "float": _FIXED32, "fixed32": _FIXED32, "sfixed32": _FIXED32,
}
_FIXED_SIZE = {_FIXED64: 8, _FIXED32: 4}
# `stream_id` of RuntimeMessage and DeploymentMessage (proto/stead/deployment.proto).
STREAM_ID_FIELD = 15
# Deeper nesting than any message of the protocol has; bounds the recursion.
MAX_DEPTH = 32




class _Field:
    __slots__ = ("name", "short", "proto_type", "wire", "sub", "repeated", "group")

    def __init__(self, cls: type, name: str, proto_type: str, sub: Optional[type], repeated: bool,
                 group: Optional[str]) -> None:
        self.name = f"{cls.__name__}.{name}"
        self.short = name
        self.proto_type = proto_type
        self.wire = _SCALAR_WIRE.get(proto_type, _LEN)
        self.sub = sub
        self.repeated = repeated
        self.group = group


@functools.cache
def _schema(cls: type) -> dict[int, _Field]:
    """Field number -> what the walk needs of it, from betterproto2's metadata of `cls`."""
    meta = cls._betterproto  # type: ignore[attr-defined]
    fields = {}
    for name, f in meta.meta_by_field_name.items():
        sub = None
        if f.unwrap is not None:
            sub = f.unwrap()
        elif f.proto_type in ("message", "map"):
            sub = meta.cls_by_field[name]  # a map's entry class: key = 1, value = 2
        fields[f.number] = _Field(cls, name, f.proto_type, sub, bool(f.repeated), f.group)
    return fields


def _walk(data: bytes, pos: int, end: int, cls: type, depth: int) -> None:
    """Check the encoding of one `cls` in data[pos:end] (see the module docstring)."""
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"{cls.__name__}: nested deeper than {MAX_DEPTH} messages")
    schema = _schema(cls)
    oneofs: dict[str, str] = {}
    while pos < end:
        key, pos = _varint(data, pos, end, cls.__name__)
        number, wire = key >> 3, key & 7
        field = schema.get(number)
        what = field.name if field is not None else f"{cls.__name__} field {number}"
        if number == 0:
            raise MalformedMessage(f"{cls.__name__}: field number 0")
        _, start, stop, pos = read_value(data, pos, end, wire, what)
        if field is None:
            continue  # an unknown field, skipped (kept by betterproto2 as unknown)
        if field.group is not None:
            other = oneofs.setdefault(field.group, field.short)
            if other != field.short:
                raise MalformedMessage(f"{cls.__name__}: both {other} and {field.short} of oneof {field.group}")
        if wire == field.wire:
            if field.proto_type == "string":
                try:
                    str(memoryview(data)[start:stop], "utf-8")
                except UnicodeDecodeError:
                    raise MalformedMessage(f"{what}: a string that is not UTF-8") from None
            elif field.sub is not None:
                _walk(data, start, stop, field.sub, depth + 1)
        elif wire == _LEN and field.repeated and field.wire != _LEN:
            _packed(data, start, stop, field, what)
        else:
            raise MalformedMessage(f"{what}: wire type {wire}, not that of a {field.proto_type}")


def _packed(data: bytes, pos: int, end: int, field: _Field, what: str) -> None:
    """A packed repeated scalar: whole varints or whole fixed-size values, nothing left over."""
    size = _FIXED_SIZE.get(field.wire)
    if size is not None:
        if (end - pos) % size:
            raise MalformedMessage(f"{what}: {end - pos} bytes of packed {field.proto_type}s")
        return
    while pos < end:
        _, pos = _varint(data, pos, end, what)


def decode(data: Any, cls: type[M]) -> M:
    """The `cls` that `data` encodes; `MalformedMessage` if it is not one. The
    protocol's own messages are checked and built in one pass (fastproto.py); other
    classes are walked, then parsed by betterproto2."""
    data = bytes(data)
    if fastproto.plan(cls) is not None:
        return fastproto.decode(data, cls)  # type: ignore[no-any-return]
    return walk_and_parse(data, cls)


def walk_and_parse(data: bytes, cls: type[M]) -> M:
    """`decode` by the walk and betterproto2's parse (what fastproto must agree with)."""
    _walk(data, 0, len(data), cls, 0)
    try:
        return cls.parse(data)
    except Exception as exc:  # noqa: BLE001 - the walk missed something: still a malformed message
        raise MalformedMessage(f"{cls.__name__}: {type(exc).__name__}: {exc}") from exc


def stream_id_of(data: bytes) -> Optional[int]:
    """The top-level `stream_id` (field 15, a varint) of an encoded RuntimeMessage or
    DeploymentMessage, read without decoding the rest; None if the bytes do not get
    that far as a message (its last occurrence wins, as in a parse)."""
    found = None
    pos, end = 0, len(data)
    try:
        while pos < end:
            key, pos = _varint(data, pos, end, "")
            number, wire = key >> 3, key & 7
            if wire == _VARINT:
                value, pos = _varint(data, pos, end, "")
                if number == STREAM_ID_FIELD:
                    found = value
            elif wire == _LEN:
                n, pos = _varint(data, pos, end, "")
                pos += n
            elif wire in _FIXED_SIZE:
                pos += _FIXED_SIZE[wire]
            else:
                return found
    except MalformedMessage:
        return found
    return found


class StrictCodec(ProtoCodec):
    """grpclib's protobuf codec, decoding with `decode`: a peer's garbage raises
    `MalformedMessage` out of `recv_message`. Messages of type `bytes` pass through."""

    def encode(self, message: Any, message_type: Any) -> bytes:
        if message_type is bytes:
            return message  # type: ignore[no-any-return]
        return super().encode(message, message_type)  # type: ignore[no-any-return]

    def decode(self, data: bytes, message_type: Any) -> Any:
        if message_type is bytes:
            return bytes(data)
        return decode(data, message_type)
