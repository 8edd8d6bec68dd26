"""pysdk/_deployment/codec.py: the protocol's classes encode faster and to the same bytes."""
from __future__ import annotations

import re
from pathlib import Path

import betterproto2

import pysdk._deployment  # noqa: F401  (applies the codec)
from pysdk._deployment.codec import _field_default, direct_defaults
from pysdk._proto.stead.deployment import v1 as pb

PROTO = Path(__file__).resolve().parents[2] / "proto" / "stead" / "deployment.proto"


def messages() -> list[betterproto2.Message]:
    start = pb.Start(protocol_version=1, invocation_id="inv_1", service="Cart", handler="add", key="k",
                     input=b'"x"', headers=[pb.Header(name="a", value="b")],
                     state=[pb.StateValue(name="items", value=b"[]"), pb.StateValue(name="empty", value=b"")],
                     journal=[pb.Entry(kind=1, name="items", value=None), pb.Entry(kind=4, value=b"")],
                     completions=[pb.Completion(index=3, value=b"", failure_code=0)],
                     retry_count=2, always_replay=True, cancelled=False, idempotency_key="", directory=b"\x0a\x00")
    end = pb.End(entries=[pb.Entry(kind=2, name="items", value=b'["x"]', failure_code=0)],
                 children=[pb.Child(index=1, invocation_id="inv_2", service="S", handler="h", key=None,
                                    input=b"", headers=[], fire_ms=5, is_send=True)],
                 terminal=pb.Failure(code=409, message="no"))
    return [pb.RuntimeMessage(start=start), pb.DeploymentMessage(end=end), pb.RuntimeMessage(ack=pb.Ack(flush_id=0)),
            pb.RuntimeMessage(stop=pb.Stop(reason=pb.StopReason.KILLED)), pb.DeploymentMessage(await_=pb.Await()),
            pb.DiscoverResponse(min_protocol_version=1, max_protocol_version=1, services=[pb.ServiceInfo(
                name="S", type="service", options=pb.Options(retry_policy=pb.RetryPolicy(max_attempts=0)))])]


def test_the_protocol_has_no_deprecated_field() -> None:
    # The library's slower lookup exists for deprecated fields' defaults only.
    assert not re.search(r"\bdeprecated\b", PROTO.read_text())


def test_the_protocol_classes_encode_to_the_library_bytes() -> None:
    classes = direct_defaults(pb)
    assert pb.Start in classes and pb.RuntimeMessage in classes
    fast = [bytes(m) for m in messages()]
    for cls in classes:
        del cls._get_field_default  # the library's own lookup
    try:
        slow = [bytes(m) for m in messages()]
    finally:
        direct_defaults(pb)
    assert fast == slow
    for data, m in zip(fast, messages()):
        assert type(m).parse(data) == m


def test_other_betterproto_classes_keep_the_library_lookup() -> None:
    assert betterproto2.Message._get_field_default is not _field_default
    assert pb.Start._get_field_default is _field_default
