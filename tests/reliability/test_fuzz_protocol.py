"""Fuzzed decoders of the deployment protocol (issue 11, part 3): proto/stead/deployment.proto
as each peer decodes it from the wire.

- The runtime decodes what a deployment sends (`DeploymentMessage` on an Invoke stream,
  `DiscoverResponse` at registration) with its channels' codec (runtime/sessions.py
  `LimitedCodec`): garbage must be a `DeploymentError` (the attempt fails and is
  retried, as for any other broken deployment), never another exception type.
- The deployment decodes what the runtime sends (`RuntimeMessage`, `DiscoverRequest`, and
  the `Directory` inside Start) with `pysdk._deployment.wire.StrictCodec`: garbage must be
  a `MalformedMessage` (answered with INVALID_ARGUMENT), never another exception type.
- A message that decodes holds values of its fields' declared types (no `Entry(name=5)`),
  converts with pysdk._deployment.convert as the peers convert it, and re-encodes to a
  message that decodes equal.

`check(data)` asserts all of that for one input. Here it runs on the corpus
(tests/reliability/fuzz_corpus/protocol/: real encodings, written by `--write-seeds`
below, and the inputs of the regressions) and on a few hundred hypothesis inputs, with
regression tests for what fuzzing found. Coverage-guided fuzzing with atheris runs from
scripts/fuzz, beside the cargo fuzz targets of core_rs, through this module's `main`:
atheris drives libFuzzer, which owns the process (it exits on the first crash and
writes the input as an artifact), so it cannot run inside pytest.

    python -m tests.reliability.test_fuzz_protocol -max_total_time=10 SCRATCH_DIR CORPUS_DIR
    python -m tests.reliability.test_fuzz_protocol --write-seeds
"""
from __future__ import annotations

import asyncio
import dataclasses
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any, Optional

import betterproto2
import pytest
from grpclib import GRPCError
from grpclib.exceptions import StreamTerminatedError
from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.encoding.base import CodecBase
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysdk import Context, ObjectContext, Service, VirtualObject, Workflow, WorkflowContext, app
from pysdk._deployment.convert import (child_from_msg, child_to_msg, completion_from_msg, completion_to_msg,
                                       directory_of_app, entry_from_msg, entry_to_msg, headers_from_msg,
                                       headers_to_msg, state_from_msg, state_to_msg)
from pysdk._deployment.discovery import discover
from pysdk._deployment.server import DISCOVER_PATH, INVOKE_PATH, SESSION_PATH, DeploymentServer
from pysdk._deployment.stream import Directory
from pysdk._deployment import fastproto
from pysdk._deployment.wire import MalformedMessage, StrictCodec, decode, walk_and_parse
from pysdk._entries import CALL, GET_STATE, RUN, SET_STATE, SLEEP
from pysdk._proto.stead.deployment import v1 as pb
from pysdk._retry import InvocationRetryPolicy
from runtime.sessions import Channels, DeploymentError
from tests.conftest import register
from tests.runtime.test_deployments_faults_e2e import FakeDeployment, runtime

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus" / "protocol"

# The runtime's decoder of what a deployment sends, as its channels use it.
RUNTIME_CODEC = Channels().codec
# The deployment's decoder of what the runtime sends (its server's codec, checked below).
DEPLOYMENT_CODEC = StrictCodec()


# ---- a small app: the deployment side of the end-to-end checks, and the seeds ---------------

shop = Service("Shop", description="sells", metadata={"team": "a"}, inactivity_timeout=timedelta(seconds=30),
               invocation_retry_policy=InvocationRetryPolicy(initial_interval=timedelta(milliseconds=100),
                                                             exponentiation_factor=2.0, max_attempts=3,
                                                             on_max_attempts="kill"))


@shop.handler(journal_retention=timedelta(hours=1))
async def buy(ctx: Context, item: str) -> str:
    return item


cart = VirtualObject("Cart", enable_lazy_state=True)


@cart.handler()
async def add(ctx: ObjectContext, item: str) -> int:
    return 1


signup = Workflow("Signup")


@signup.main()
async def run(ctx: WorkflowContext, email: str) -> None:
    return None


APP = app([shop, cart, signup])


# ---- the property checked for one input -------------------------------------------------------

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "bytes": (bytes,), "bool": (bool,), "double": (float,), "float": (float,),
    "message": (betterproto2.Message,),
}


def _typed(msg: betterproto2.Message) -> None:
    """Every field of a decoded message (recursively) holds a value of its declared type."""
    for field in dataclasses.fields(msg):  # type: ignore[arg-type]
        meta = field.metadata["betterproto"]
        value = getattr(msg, field.name)
        if value is None and (meta.optional or meta.group is not None):
            continue
        if meta.proto_type == "map":
            assert isinstance(value, dict), (type(msg).__name__, field.name, value)
            key_meta, value_meta = meta.map_meta
            for k, v in value.items():
                _is(msg, field.name, key_meta.proto_type, k)
                _is(msg, field.name, value_meta.proto_type, v)
            continue
        if meta.repeated:
            assert isinstance(value, list), (type(msg).__name__, field.name, value)
        for v in value if meta.repeated else [value]:
            _is(msg, field.name, meta.proto_type, v)


def _is(msg: betterproto2.Message, name: str, proto_type: str, value: Any) -> None:
    assert isinstance(value, _TYPES.get(proto_type, (int,))), (type(msg).__name__, name, proto_type, value)
    if isinstance(value, betterproto2.Message):
        _typed(value)


def _runtime_uses(msg: betterproto2.Message) -> None:
    """What runtime/remote.py (`_receive`, `_take`, `_end`) reads of a DeploymentMessage."""
    if not isinstance(msg, pb.DeploymentMessage):
        return
    which, body_ = betterproto2.which_one_of(msg, "message")
    body: Any = body_
    if which in ("flush", "end"):
        for e in body.entries:
            kind, name, value, code, message = entry_from_msg(e)
            assert isinstance(kind, int) and isinstance(code, int)
            assert name is None or isinstance(name, str)
            assert value is None or isinstance(value, bytes)
        for c in body.children:
            child_from_msg(c)
    if which == "end":
        betterproto2.which_one_of(body, "outcome")
    if which == "await_":
        assert all(isinstance(i, int) for i in body.indexes)


def _deployment_uses(msg: betterproto2.Message) -> None:
    """What pysdk/_deployment/stream.py (`_run`, `deliver`) reads of a RuntimeMessage."""
    if not isinstance(msg, pb.RuntimeMessage):
        return
    which, body_ = betterproto2.which_one_of(msg, "message")
    body: Any = body_
    if which == "start":
        [entry_from_msg(e) for e in body.journal]
        dict(completion_from_msg(c) for c in body.completions)
        state_from_msg(body.state)
        headers_from_msg(body.headers)
        try:
            Directory.parse(body.directory)
        except MalformedMessage as exc:
            assert exc.__cause__ is None, f"the walk missed what betterproto2 met: {exc}"
    elif which == "completion":
        completion_from_msg(body)
    elif which == "peek_result" and body.outcome is not None:
        completion_from_msg(body.outcome)


def check(data: bytes) -> None:
    """The properties of the module docstring, for one input (see scripts/fuzz)."""
    for cls in (pb.DeploymentMessage, pb.DiscoverResponse, pb.RuntimeMessage, pb.DiscoverRequest, pb.Directory):
        try:
            msg = decode(data, cls)
        except MalformedMessage as exc:
            # Refused by the walk itself: betterproto2 never raised on bytes that passed it.
            assert exc.__cause__ is None, f"the walk missed what betterproto2 met: {exc!r}"
            ok = False
        else:
            ok = True
            _typed(msg)
            again = decode(bytes(msg), cls)
            assert again == msg, (msg, again)
            _runtime_uses(msg)
            _deployment_uses(msg)
        # The one-pass decoder (fastproto.py) agrees with the walk and betterproto2's parse.
        if fastproto.plan(cls) is not None:
            try:
                slow = walk_and_parse(data, cls)
            except MalformedMessage:
                assert not ok, "fastproto took what the walk refuses"
            else:
                assert ok and slow == msg, (slow, msg)
                assert bytes(msg) == betterproto2.Message.__bytes__(slow)
        # Each peer's own decoder: the same answer, with its own error type.
        if cls in (pb.DeploymentMessage, pb.DiscoverResponse):
            try:
                RUNTIME_CODEC.decode(data, cls)
                assert ok
            except DeploymentError as exc:
                assert not ok and "malformed" in str(exc), exc
        else:
            try:
                DEPLOYMENT_CODEC.decode(data, cls)
                assert ok
            except MalformedMessage:
                assert not ok


# ---- the seeds --------------------------------------------------------------------------------

def seeds() -> dict[str, bytes]:
    """Real encodings of every message either peer decodes, built as the peers build them."""
    journal = [(GET_STATE, "count", b"41", 0, None), (SET_STATE, "count", b"42", 0, None),
               (RUN, "charge", None, 409, "declined"), (SLEEP, None, (5).to_bytes(8, "big"), 0, None),
               (CALL, "Cart/add", b"inv_1child", 0, None)]
    child: Any = (4, "inv_1child", "Cart", "add", "alice", b'"apple"', [("x-trace", "1")], "", 0, False)
    send: Any = (5, "inv_1send", "Shop", "buy", None, b'"pear"', [], "order-17", 1_760_000_000_000, True)
    entries = [entry_to_msg(e) for e in journal]
    completion = completion_to_msg(3, (b"", 0, None))
    dm = pb.DeploymentMessage
    rm = pb.RuntimeMessage
    messages: dict[str, betterproto2.Message] = {
        "flush": dm(flush=pb.Flush(flush_id=7, entries=entries, children=[child_to_msg(child), child_to_msg(send)])),
        "await": dm(await_=pb.Await(indexes=[3, 4, 300])),
        "peek-promise": dm(peek_promise=pb.PeekPromise(request_id=2, name="email-verified")),
        "end-output": dm(end=pb.End(entries=entries[:1], output=b'{"total":3}')),
        "end-output-empty": dm(end=pb.End(output=b"")),
        "end-terminal": dm(end=pb.End(terminal=pb.Failure(code=409, message="out of stock"))),
        "end-retryable": dm(end=pb.End(retryable=pb.Failure(code=500, message="ValueError()", retry_after_ms=250,
                                                            non_determinism=True))),
        "start": rm(start=pb.Start(
            protocol_version=1, invocation_id="inv_1test", service="Cart", handler="add", key="alice",
            input=b'"apple"', headers=headers_to_msg([("content-type", "application/json")]),
            state=state_to_msg({"count": b"42", "empty": b""}), journal=entries, completions=[completion],
            retry_count=2, always_replay=True, cancelled=False, idempotency_key="order-17",
            directory=directory_of_app(APP))),
        "ack": rm(ack=pb.Ack(flush_id=7)),
        "completion": rm(completion=completion_to_msg(4, (None, 500, "callee failed"))),
        "cancel": rm(cancel=pb.Cancel()),
        "peek-result": rm(peek_result=pb.PeekResult(request_id=2, outcome=completion_to_msg(0, (b"1", 0, None)))),
        "peek-result-pending": rm(peek_result=pb.PeekResult(request_id=3)),
        "stop": rm(stop=pb.Stop(reason=pb.StopReason.KILLED)),
        "discover-request": pb.DiscoverRequest(min_protocol_version=1, max_protocol_version=1),
        "discover-response": discover(APP),
    }
    out = {name: bytes(msg) for name, msg in messages.items()}
    out["directory"] = directory_of_app(APP)
    return out


def write_seeds() -> None:
    """(Re)write the corpus's seed-* and regression-* files; other inputs stay."""
    CORPUS.mkdir(parents=True, exist_ok=True)
    for old in [*CORPUS.glob("seed-*"), *CORPUS.glob("regression-*")]:
        old.unlink()
    for name, data in seeds().items():
        (CORPUS / f"seed-{name}").write_bytes(data)
    for name, (data, _) in REGRESSIONS.items():
        (CORPUS / f"regression-{name}").write_bytes(data)
    print(f"{CORPUS}: {len(seeds())} seeds, {len(REGRESSIONS)} regressions")


# ---- tests ------------------------------------------------------------------------------------

def test_seeds_are_what_the_peers_write() -> None:
    """The corpus's seeds are current: what `--write-seeds` writes now."""
    on_disk = {p.name[len("seed-"):]: p.read_bytes() for p in CORPUS.glob("seed-*")}
    assert on_disk == seeds(), "run: python -m tests.reliability.test_fuzz_protocol --write-seeds"


def test_corpus() -> None:
    files = sorted(CORPUS.iterdir())
    assert len(files) >= len(seeds())
    for path in files:
        check(path.read_bytes())


@settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=256) | st.sampled_from(sorted(seeds().values())).flatmap(
    lambda seed: st.tuples(st.integers(0, len(seed)), st.binary(max_size=8), st.integers(0, 8)).map(
        lambda t: seed[:t[0]] + t[1] + seed[t[0] + t[2]:])))
def test_random_bytes(data: bytes) -> None:
    check(data)


# Regressions: what fuzzing found (inputs also in the corpus as regression-*).
REGRESSIONS = {
    # A field with another wire type than its declared one was kept as it came:
    # DeploymentMessage(flush=5), then `body.entries` raised AttributeError in the runtime.
    "oneof-member-as-varint": (b"\x08\x05", "DeploymentMessage.flush: wire type 0"),
    # Entry(name=5): an int where the journal wants a str.
    "string-as-varint": (b"\x0a\x06\x12\x04\x10\x05\x08\x02", "Entry.name: wire type 0"),
    # A value claiming more bytes than the message holds was cut short silently.
    "truncated-value": (bytes(pb.DeploymentMessage(end=pb.End(output=b"0123456789")))[:-3],
                        "DeploymentMessage.end: 12 bytes claimed, 9 left"),
    # Two members of one oneof: which_one_of raised RuntimeError.
    "two-oneof-members": (bytes(pb.DeploymentMessage(await_=pb.Await(indexes=[1])))
                          + bytes(pb.DeploymentMessage(end=pb.End(output=b"x"))),
                          "both await_ and end of oneof message"),
    # betterproto2 raised KeyError (a fixed32 where bytes are declared), EOFError, ...
    "bytes-as-fixed32": (b"\x0a\x07\x12\x05\x1d\x01\x02\x03\x04", "Entry.value: wire type 5"),
    "truncated-varint": (b"\x08", "DeploymentMessage.flush: a varint runs past the end"),
    "group": (b"\x0b\x0c", "wire type 3"),
}


@pytest.mark.parametrize("case", list(REGRESSIONS))
def test_runtime_refuses_garbage_from_a_deployment(case: str) -> None:
    data, what = REGRESSIONS[case]
    with pytest.raises(DeploymentError, match="malformed") as info:
        RUNTIME_CODEC.decode(data, pb.DeploymentMessage)
    assert what in str(info.value)
    check(data)


def test_a_message_that_decodes_has_its_declared_types() -> None:
    msg = RUNTIME_CODEC.decode(bytes(pb.DeploymentMessage(flush=pb.Flush(
        flush_id=3, entries=[pb.Entry(kind=SET_STATE, name="n", value=b"v")]))), pb.DeploymentMessage)
    assert msg.flush.entries[0].name == "n" and msg.flush.entries[0].value == b"v"


class RawCodec(CodecBase):
    """Bytes through as they are: a runtime that sends garbage."""

    __content_subtype__ = "proto"

    def encode(self, message: Any, message_type: Any) -> bytes:
        return bytes(message)

    def decode(self, data: bytes, message_type: Any) -> bytes:
        return data


async def _call(path: str, cardinality: Cardinality, data: bytes) -> GRPCError:
    """Send `data` as the one message of a call to a real deployment server; its error."""
    server = DeploymentServer(APP)
    assert isinstance(server.server._codec, StrictCodec)  # what `check` fuzzes
    port = await server.start("127.0.0.1", 0)
    channel = Channel("127.0.0.1", port, codec=RawCodec())
    try:
        async with channel.request(path, cardinality, bytes, bytes) as stream:
            await stream.send_message(data, end=True)
            with pytest.raises(GRPCError) as info:
                await stream.recv_message()
                await stream.recv_trailing_metadata()
            return info.value
    finally:
        channel.close()
        await server.shutdown(grace=1.0)


def _start(**fields: Any) -> bytes:
    fields.setdefault("directory", directory_of_app(APP))
    return bytes(pb.RuntimeMessage(start=pb.Start(protocol_version=1, invocation_id="inv_1fuzz", service="Shop",
                                                  handler="buy", input=b'"x"', **fields)))


DEPLOYMENT_CASES = {
    "invoke-garbage": (INVOKE_PATH, Cardinality.STREAM_STREAM, b"\x0a\x05\x10\x05", "RuntimeMessage.start"),
    "invoke-start-as-varint": (INVOKE_PATH, Cardinality.STREAM_STREAM, b"\x08\x05", "RuntimeMessage.start"),
    "invoke-directory-garbage": (INVOKE_PATH, Cardinality.STREAM_STREAM, _start(directory=b"\x0a\x03\x08\x05\x00"),
                                 "DirectoryService.name: wire type 0"),
    "discover-garbage": (DISCOVER_PATH, Cardinality.UNARY_UNARY, b"\x08", "DiscoverRequest"),
}


@pytest.mark.parametrize("case", list(DEPLOYMENT_CASES))
def test_deployment_answers_garbage_with_invalid_argument(case: str) -> None:
    path, cardinality, data, what = DEPLOYMENT_CASES[case]
    error = asyncio.run(asyncio.wait_for(_call(path, cardinality, data), 20))
    assert error.status == Status.INVALID_ARGUMENT, error
    assert "malformed" in str(error.message) and what in str(error.message), error.message


def test_deployment_answers_session_garbage_on_the_attempt_it_names() -> None:
    """On a Session, garbage that names its attempt (stream_id) fails that attempt with
    Closed(INVALID_ARGUMENT), and the session goes on: a good Start after it runs; garbage
    that names none fails the session."""
    async def go() -> tuple[list[pb.DeploymentMessage], GRPCError]:
        server = DeploymentServer(APP)
        port = await server.start("127.0.0.1", 0)
        channel = Channel("127.0.0.1", port, codec=RawCodec())
        answers: list[pb.DeploymentMessage] = []
        try:
            # The refusal ends the call: its status is raised while reading, or (when the
            # reset that follows it is processed first) when the call ends.
            with pytest.raises(GRPCError) as info:
                async with channel.request(SESSION_PATH, Cardinality.STREAM_STREAM, bytes, bytes) as stream:
                    await stream.send_message(bytes(pb.RuntimeMessage(stream_id=7)) + b"\x0a\x05\x10\x05")
                    good = pb.RuntimeMessage.parse(_start())
                    good.stream_id = 8
                    await stream.send_message(bytes(good))
                    answers = [decode(await stream.recv_message(), pb.DeploymentMessage) for _ in range(2)]
                    await stream.send_message(b"\x0a\x05\x10\x05")  # no stream_id
                    try:
                        await stream.recv_message()
                        await stream.recv_trailing_metadata()
                    except StreamTerminatedError:
                        await stream.cancel()
            return answers, info.value
        finally:
            channel.close()
            await server.shutdown(grace=1.0)

    answers, error = asyncio.run(asyncio.wait_for(go(), 20))
    by_id = {a.stream_id: a for a in answers}
    closed = by_id[7].closed
    assert closed is not None and closed.code == Status.INVALID_ARGUMENT.value, by_id
    assert "malformed" in closed.message and "RuntimeMessage.start" in closed.message, closed
    assert by_id[8].end is not None, by_id  # the good attempt ran to its End
    assert error.status == Status.INVALID_ARGUMENT and "stream_id" in str(error.message), error


class GarbageDeployment(FakeDeployment):
    """tests/runtime's fake deployment (one object `Fake/run`, 3 attempts), answering every
    Start with `garbage`: bytes that are not a DeploymentMessage (on a Session, after the
    attempt's stream_id, which names the attempt they fail)."""

    def __init__(self, garbage: bytes, version: int = 1) -> None:
        super().__init__(lambda start: pb.Flush(), version)
        self.garbage = garbage

    def reply(self, stream_id: int, start: pb.Start) -> bytes:
        return bytes(pb.DeploymentMessage(stream_id=stream_id)) + self.garbage

    async def _invoke(self, stream: Any) -> None:
        first = await stream.recv_message()
        self.starts.append(first.start)
        stream._codec = RawCodec()  # the garbage as it is, on this stream only
        await stream.send_message(self.garbage)
        while await stream.recv_message() is not None:
            pass


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("case", ["oneof-member-as-varint", "truncated-value"])
def test_garbage_from_a_deployment_fails_the_attempt(make_server, case: str, version: int) -> None:  # type: ignore[no-untyped-def]
    """End to end, through a real runtime: every attempt fails with the error logged and
    the retry policy ends the invocation. Before: an AttributeError deep in the runtime;
    and for the truncated End, a success with a truncated output. On a Session, the
    garbage fails the attempt it names, not the session."""
    data, what = REGRESSIONS[case]
    server = runtime(make_server)
    fake = GarbageDeployment(data, version).start()
    try:
        register(server, fake)  # type: ignore[arg-type]
        resp = server.post("/Fake/k1/run", "x", timeout=20)
        assert resp.status_code == 500, resp.text
        message = resp.json()["message"]
        assert "failed after 3 attempts" in message and "sent a malformed message" in message, message
        assert what in message, message
        assert "ERROR stead.remote" in server.log() and len(fake.starts) == 3
        assert fake.sessions == (1 if version == 2 else 0)
    finally:
        fake.close()


# ---- atheris (scripts/fuzz) -------------------------------------------------------------------

def _one_input(data: bytes) -> None:
    check(data)


# Whose code atheris instruments for coverage: the decoders and what reads their messages
# (`atheris.instrument_all` would take a minute and a half over every module loaded).
INSTRUMENTED = ("betterproto2", "pysdk._deployment", "pysdk._proto", "runtime.remote", "runtime.sessions", __name__)


def main(argv: Optional[list[str]] = None) -> None:
    argv = list(sys.argv if argv is None else argv)
    if "--write-seeds" in argv:
        write_seeds()
        return
    import gc
    import types

    import atheris  # the `test` extra; scripts/fuzz runs this

    for obj in gc.get_objects():
        if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith(INSTRUMENTED):
            atheris.instrument_func(obj)
    atheris.Setup(argv, _one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
