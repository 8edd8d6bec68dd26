"""Encoding and strict decoding of the deployment protocol's messages in one pass each.

betterproto2 (0.10) is general and slow: a W1 Start took 57 µs to encode, and 14 µs to
walk (wire.py's strictness check) plus 65 µs to parse; every remote invocation pays
that for its Start and End on both sides. For each message class whose fields are
all of the kinds the protocol uses (varint scalars, enums, strings, bytes, messages;
repeated; proto3 optional; oneofs), `plan(cls)` precomputes what encoding and
decoding need from betterproto2's own metadata, and:

- `encode(msg)` writes the same bytes as betterproto2's `bytes(msg)` (fields in
  declaration order, defaults and None left out, repeated scalars packed, unknown
  fields kept at the end);
- `decode(data, cls)` checks what wire.py's walk checks (field numbers, wire types,
  lengths within their message, UTF-8, one member per oneof, nesting depth) while it
  builds the message betterproto2's parse would build, raising `MalformedMessage`
  for garbage.

Classes with anything else (maps, fixed-size or zig-zag scalars, wrapped types) have
no plan; wire.py and codec.py then use betterproto2 as before. The equivalence is
tested against betterproto2 on generated messages and fuzzed bytes
(tests/pysdk/test_deployment_fastproto.py, tests/reliability/test_fuzz_protocol.py).
"""
from __future__ import annotations

import functools
from typing import Any, Optional

__all__ = ["Plan", "plan", "encode", "decode", "read_value", "MalformedMessage"]

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5
_FIXED_SIZE = {_FIXED64: 8, _FIXED32: 4}
_M32, _M64 = (1 << 32) - 1, (1 << 64) - 1
MAX_DEPTH = 32

# proto type -> how a varint becomes the value (None: not a varint type)
_U32, _U64, _S32, _S64, _BOOL, _ENUM, _STR, _BYTES, _MSG = range(9)
_KINDS = {"uint32": _U32, "uint64": _U64, "int32": _S32, "int64": _S64, "bool": _BOOL, "enum": _ENUM,
          "string": _STR, "bytes": _BYTES, "message": _MSG}


class MalformedMessage(ValueError):
    """Bytes that are not an encoding of the expected message (wire.py re-exports it)."""


class _Field:
    __slots__ = ("name", "what", "short", "number", "kind", "wire", "repeated", "group", "sub", "enum",
                 "default", "tag")

    def __init__(self, cls: type, name: str, meta: Any, kind: int, sub: Any, default: Any) -> None:
        self.name = name
        self.what = f"{cls.__name__}.{name}"
        self.short = name
        self.number = meta.number
        self.kind = kind
        self.wire = _LEN if kind in (_STR, _BYTES, _MSG) else _VARINT
        self.repeated = bool(meta.repeated)
        self.group = meta.group
        self.sub: Optional[Plan] = sub if kind == _MSG else None
        self.enum: Any = sub if kind == _ENUM else None
        self.default = default
        # a packed repeated scalar is length-delimited
        self.tag = _varint_bytes(meta.number << 3 | (_LEN if self.repeated else self.wire))


class Plan:
    __slots__ = ("cls", "name", "fields", "by_number", "template", "lists")

    def __init__(self, cls: Any, fields: list[_Field]) -> None:
        self.cls = cls
        self.name = cls.__name__
        self.fields = fields
        self.by_number = {f.number: f for f in fields}
        self.template = {f.name: f.default for f in fields if not f.repeated}
        self.lists = [f.name for f in fields if f.repeated]


@functools.cache
def plan(cls: type) -> Optional[Plan]:
    """What encoding and decoding `cls` need, or None if it has a field of another kind."""
    meta = cls._betterproto  # type: ignore[attr-defined]
    fields = []
    for name, f in meta.meta_by_field_name.items():
        kind = _KINDS.get(f.proto_type)
        if kind is None or f.unwrap is not None or f.map_meta:
            return None
        sub: Any = None
        if kind == _MSG:
            sub = plan(meta.cls_by_field[name])
            if sub is None:
                return None
        elif kind == _ENUM:
            sub = meta.cls_by_field[name]
        fields.append(_Field(cls, name, f, kind, sub, meta.default_gen[name]()))
    return Plan(cls, fields)


# ---- encoding ------------------------------------------------------------------------


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    _put_varint(out, value)
    return bytes(out)


def _put_varint(out: bytearray, value: int) -> None:
    if value < 0:
        value &= _M64
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _encode(msg: Any, p: Plan, out: bytearray) -> None:
    d = msg.__dict__
    for f in p.fields:
        value = d[f.name]
        if value is None:
            continue
        kind = f.kind
        if f.repeated:
            if not value:
                continue
            if f.wire == _VARINT:  # packed
                buf = bytearray()
                for item in value:
                    _put_varint(buf, int(item))
                out += f.tag
                _put_varint(out, len(buf))
                out += buf
            else:
                tag = f.tag
                for item in value:
                    data = _encode_sub(item, f.sub) if kind == _MSG else (
                        item.encode() if kind == _STR else item)
                    out += tag
                    _put_varint(out, len(data))
                    out += data
            continue
        if value == f.default:
            continue
        out += f.tag
        if kind == _MSG:
            data = _encode_sub(value, f.sub)
        elif kind == _STR:
            data = value.encode()
        elif kind == _BYTES:
            data = value
        else:
            _put_varint(out, int(value))
            continue
        _put_varint(out, len(data))
        out += data
    out += d["_unknown_fields"]


def _encode_sub(msg: Any, p: Optional[Plan]) -> bytes:
    out = bytearray()
    _encode(msg, p, out)  # type: ignore[arg-type]
    return bytes(out)


def encode(msg: Any) -> bytes:
    """`bytes(msg)` as betterproto2 writes it (the class must have a plan)."""
    p = plan(type(msg))  # type: ignore[arg-type]
    assert p is not None, type(msg)
    out = bytearray()
    _encode(msg, p, out)
    return bytes(out)


# ---- decoding ------------------------------------------------------------------------


def _varint(data: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise MalformedMessage(f"{what}: a varint runs past the end")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise MalformedMessage(f"{what}: a varint longer than 10 bytes")


def read_value(data: bytes, pos: int, end: int, wire: int, what: str) -> tuple[int, int, int, int]:
    """The value of a field whose key ended at `pos`, checked against `end` (wire.py's walk
    reads fields with it too): (its varint, or 0; where its bytes start and stop; where the
    next field starts)."""
    if wire == _VARINT:
        value, pos = _varint(data, pos, end, what)
        return value, pos, pos, pos
    if wire == _LEN:
        n, start = _varint(data, pos, end, what)
        if n > end - start:
            raise MalformedMessage(f"{what}: {n} bytes claimed, {end - start} left in the message")
        return 0, start, start + n, start + n
    size = _FIXED_SIZE.get(wire)
    if size is None:
        raise MalformedMessage(f"{what}: wire type {wire} (groups and types 6, 7 are not used)")
    if pos + size > end:
        raise MalformedMessage(f"{what}: a fixed-size value runs past the end")
    return 0, pos, pos + size, pos + size


def _scalar(f: _Field, value: int) -> Any:
    kind = f.kind
    if kind == _U32:
        return value & _M32
    if kind == _U64:
        return value & _M64
    if kind == _BOOL:
        return value > 0
    bits = 32 if kind == _S32 else 64
    value &= (1 << bits) - 1
    sign = 1 << (bits - 1)
    value = (value ^ sign) - sign
    return f.enum(value) if kind == _ENUM else value


def _decode(data: bytes, pos: int, end: int, p: Plan, depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise MalformedMessage(f"{p.name}: nested deeper than {MAX_DEPTH} messages")
    d = dict(p.template)
    for name in p.lists:
        d[name] = []
    by_number = p.by_number
    groups: Optional[dict[str, str]] = None
    unknown = b""
    while pos < end:
        key_start = pos
        key = data[pos]
        if key < 0x80:
            pos += 1
        else:
            key, pos = _varint(data, pos, end, p.name)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise MalformedMessage(f"{p.name}: field number 0")
        f = by_number.get(number)
        if f is None:
            value, start, stop, pos = read_value(data, pos, end, wire, f"{p.name} field {number}")
            unknown += data[key_start:pos]  # as it came, as betterproto2 keeps it
            continue
        what = f.what
        # read_value's two common cases inline, a one-byte length or varint first (what it
        # raises for bad input is read_value's and _varint's, word for word)
        if wire == _LEN:
            if pos < end and data[pos] < 0x80:
                n, start = data[pos], pos + 1
            else:
                n, start = _varint(data, pos, end, what)
            if n > end - start:
                raise MalformedMessage(f"{what}: {n} bytes claimed, {end - start} left in the message")
            value, stop = 0, start + n
            pos = stop
        elif wire == _VARINT:
            if pos < end and data[pos] < 0x80:
                value = data[pos]
                pos += 1
            else:
                value, pos = _varint(data, pos, end, what)
            start = stop = pos
        else:
            value, start, stop, pos = read_value(data, pos, end, wire, what)
        if f.group is not None:
            if groups is None:
                groups = {}
            other = groups.setdefault(f.group, f.short)
            if other != f.short:
                raise MalformedMessage(f"{p.name}: both {other} and {f.short} of oneof {f.group}")
        kind = f.kind
        if wire == f.wire:
            if wire == _VARINT:
                item = _scalar(f, value)
            elif kind == _STR:
                try:
                    item = str(data[start:stop], "utf-8")
                except UnicodeDecodeError:
                    raise MalformedMessage(f"{what}: a string that is not UTF-8") from None
            elif kind == _BYTES:
                item = data[start:stop]
            else:
                item = _decode(data, start, stop, f.sub, depth + 1)  # type: ignore[arg-type]
            if f.repeated:
                d[f.name].append(item)
            else:
                d[f.name] = item
        elif wire == _LEN and f.repeated and f.wire == _VARINT:
            items = d[f.name]
            while start < stop:
                value, start = _varint(data, start, stop, what)
                items.append(_scalar(f, value))
        else:
            raise MalformedMessage(f"{what}: wire type {wire}, not that of a {_type_name(kind)}")
    msg = p.cls.__new__(p.cls)
    d["_unknown_fields"] = unknown
    msg.__dict__.update(d)
    return msg


def _type_name(kind: int) -> str:
    return next(name for name, k in _KINDS.items() if k == kind)


def decode(data: bytes, cls: type) -> Any:
    """The `cls` that `data` encodes (the class must have a plan); `MalformedMessage`
    if it is not one."""
    p = plan(cls)
    assert p is not None, cls
    return _decode(data, 0, len(data), p, 0)
