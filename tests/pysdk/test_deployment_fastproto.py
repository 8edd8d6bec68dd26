"""pysdk/_deployment/fastproto.py against betterproto2: the same bytes out, the same
messages in, and garbage refused exactly where wire.py's walk refuses it."""
from __future__ import annotations

from typing import Any

import betterproto2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pysdk._deployment  # noqa: F401  (installs the fast encoder on the protocol's classes)
from pysdk._deployment import fastproto, wire
from pysdk._proto.stead.deployment import v1 as pb

# Every class of the protocol that has a plan (all those of an invocation's exchanges).
PLANNED = [cls for cls in vars(pb).values() if isinstance(cls, type) and issubclass(cls, betterproto2.Message)
           and fastproto.plan(cls) is not None]

_VALUES: dict[int, Any] = {
    fastproto._U32: st.integers(0, 2**32 - 1), fastproto._U64: st.integers(0, 2**64 - 1),
    fastproto._S32: st.integers(-2**31, 2**31 - 1), fastproto._S64: st.integers(-2**63, 2**63 - 1),
    fastproto._BOOL: st.booleans(), fastproto._STR: st.text(max_size=8), fastproto._BYTES: st.binary(max_size=8),
}


def messages(cls: type, depth: int = 0) -> Any:
    """Messages of `cls` with any field values (one member per oneof, as a peer sends)."""
    p = fastproto.plan(cls)
    assert p is not None

    def value(f: Any) -> Any:
        if f.kind == fastproto._MSG:
            return st.deferred(lambda: messages(f.sub.cls, depth + 1)) if depth < 3 else st.just(f.sub.cls())
        if f.kind == fastproto._ENUM:
            return st.sampled_from(list(f.enum)) | st.integers(0, 50).map(f.enum)
        return _VALUES[f.kind]

    plain = {f.name: (st.lists(value(f), max_size=3) if f.repeated else st.none() | value(f)
                      if f.default is None else value(f))
             for f in p.fields if f.group is None}
    groups: dict[str, list[Any]] = {}
    for f in p.fields:
        if f.group is not None:
            groups.setdefault(f.group, []).append(f)
    oneofs = [st.none() | st.one_of([st.tuples(st.just(f.name), value(f)) for f in members])
              for members in groups.values()]

    def build(kwargs: dict[str, Any], chosen: list[Any]) -> Any:
        for pick in chosen:
            if pick is not None:
                kwargs[pick[0]] = pick[1]
        return cls(**kwargs)

    return st.builds(build, st.fixed_dictionaries(plain), st.tuples(*oneofs).map(list))


def test_the_messages_of_an_invocation_have_a_plan() -> None:
    for cls in (pb.RuntimeMessage, pb.DeploymentMessage, pb.Start, pb.End, pb.Flush, pb.Entry, pb.Child,
                pb.Completion, pb.Closed, pb.Stop, pb.Await, pb.PeekResult, pb.Failure):
        assert cls in PLANNED, cls
    assert fastproto.plan(pb.Directory) is None  # a map inside: betterproto2 as before


@pytest.mark.parametrize("cls", PLANNED, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_encode_and_decode_agree_with_betterproto2(cls: type, data: st.DataObject) -> None:
    msg = data.draw(messages(cls))
    encoded = bytes(msg)
    assert encoded == betterproto2.Message.__bytes__(msg)  # the library's own encoder
    decoded = wire.decode(encoded, cls)
    assert decoded == msg == cls.parse(encoded)
    assert type(decoded) is cls and decoded._unknown_fields == b""


@pytest.mark.parametrize("cls", [pb.RuntimeMessage, pb.DeploymentMessage, pb.Start, pb.Entry],
                         ids=lambda c: c.__name__)
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=40))
def test_garbage_is_refused_where_the_walk_refuses_it(cls: type, data: bytes) -> None:
    try:
        slow = wire.walk_and_parse(data, cls)
    except wire.MalformedMessage:
        with pytest.raises(wire.MalformedMessage):
            wire.decode(data, cls)
        return
    fast = wire.decode(data, cls)
    assert fast == slow
    # Unknown fields are kept as betterproto2 keeps them: re-encoding gives the same bytes.
    assert bytes(fast) == betterproto2.Message.__bytes__(slow)


def test_unknown_fields_and_enum_values_survive() -> None:
    data = bytes(pb.Stop(reason=pb.StopReason.KILLED)) + b"\x78\x05" + b"\x82\x01\x02hi"
    stop = wire.decode(data, pb.Stop)
    assert stop.reason == pb.StopReason.KILLED and bytes(stop) == data
    odd = wire.decode(b"\x08\x63", pb.Stop)
    assert odd == pb.Stop.parse(b"\x08\x63") and int(odd.reason) == 99


def test_an_unknown_field_keeps_its_bytes_as_they_came() -> None:
    # Found by scripts/fuzz: a key written in two bytes where one would do (0x58 as d8 00)
    # was re-encoded in one; betterproto2 keeps the bytes as they came.
    data = b"\xd8\x00\x05"
    assert bytes(wire.decode(data, pb.DeploymentMessage)) == data == bytes(pb.DeploymentMessage.parse(data))
