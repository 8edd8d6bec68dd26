"""The runtime's streams to its deployments: an Invoke stream per attempt (protocol
version 1), or a `SubStream` of the deployment's one Session (version 2).

`Channels.open(dep)` is what `RemoteMachine` converses over: an async context
manager giving an object with grpclib's client-stream surface (`send_message`,
`recv_message`, `end`). For a version-2 deployment it is a `SubStream`: its
messages carry its `stream_id` on the Session that `Channels` keeps open per
deployment, so an attempt costs its messages and nothing else (no stream headers,
no trailers, no teardown).

A `Session` owns the Session call: one task opens it and reads it, handing every
message to the `SubStream` its `stream_id` names (a message for one that has ended
is dropped), decoding it first so that a message too large or undecodable fails
that attempt (`recv_message` raises it), not the session. A `Closed` from the
deployment ends the attempt as the end of an Invoke stream would: `recv_message`
returns None (OK) or raises the GRPCError it carries. When the Session ends or
breaks (the deployment went down, refused the call, the connection dropped), every
SubStream on it raises that error and the next attempt opens a new Session.

A SubStream that the runtime leaves while the deployment may still run its attempt
(an error on the runtime's side, a cancelled attempt) sends Stop, as the reset of an
Invoke stream would tell the deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from typing import Any, AsyncIterator, Callable, Optional, Union

import grpclib.exceptions
from grpclib.client import Channel, Stream
from grpclib.const import Cardinality, Status
from grpclib.metadata import decode_grpc_message
from pysdk._deployment import wire
from pysdk._deployment.eager import shielded
from pysdk._proto.stead.deployment import v1 as pb
from runtime.deployments import INVOKE_PATH, SESSION_PATH, Deployment, parse_uri

log = logging.getLogger("stead.remote")

SESSION_VERSION = 2  # the first protocol version with Session

_Inbox = Union[pb.DeploymentMessage, BaseException, None]


class DeploymentError(Exception):
    """The deployment failed the attempt without an outcome (down, refused, broke the
    stream, sent something malformed): retried under the handler's retry policy."""


class MessageTooLarge(DeploymentError):
    """A deployment sent a message over the runtime's limit."""


class UndecodableMessage(DeploymentError):
    """A deployment sent bytes that are not an encoding of the expected message."""


class LimitedCodec(wire.StrictCodec):
    """The deployment protocol's strict codec (pysdk/_deployment/wire.py), refusing a
    message from a deployment over `limit` bytes (grpclib itself takes any length): the
    attempt fails with a clear error instead of the runtime decoding and journaling
    whatever a broken deployment sends. Garbage is an `UndecodableMessage`, never
    whatever betterproto2 would have made of it. A Session's messages (type `bytes`)
    pass through: `Session` decodes them with `check`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, data: bytes, message_type: Any) -> Any:
        if len(data) > self.limit:
            raise MessageTooLarge(f"a message of {len(data)} bytes, over the limit of {self.limit} "
                                  "(stead serve --max-deployment-message)")
        try:
            return wire.decode(data, message_type)
        except wire.MalformedMessage as exc:
            raise UndecodableMessage(f"a malformed message: {exc}") from None

    def decode(self, data: bytes, message_type: Any) -> Any:
        if message_type is bytes:
            return bytes(data)
        return self.check(data, message_type)


class SubStream:
    """One attempt on a Session (see the module docstring)."""

    def __init__(self, session: "Session", stream_id: int) -> None:
        self.session = session
        self.stream_id = stream_id
        self.inbox: asyncio.Queue[_Inbox] = asyncio.Queue()
        self.remote_done = False  # End or Closed came: the deployment's attempt is over
        self.stopped = False  # Stop went

    async def send_message(self, msg: pb.RuntimeMessage) -> None:
        if msg.stop is not None:
            self.stopped = True
        msg.stream_id = self.stream_id
        await self.session.send(bytes(msg))

    async def recv_message(self) -> Optional[pb.DeploymentMessage]:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def end(self) -> None:
        return None  # the deployment's attempt ends with End, Closed or Stop, not with this

    def deliver(self, item: _Inbox) -> None:
        if isinstance(item, pb.DeploymentMessage):
            closed = item.closed
            if closed is not None:
                self.remote_done = True
                item = None if closed.code == Status.OK.value else grpclib.exceptions.GRPCError(
                    _status(closed.code), closed.message)
            elif item.end is not None:
                self.remote_done = True
        self.inbox.put_nowait(item)

    def leave(self) -> None:
        """The runtime is done with this attempt: Stop it on the deployment unless it is
        over there (or was stopped)."""
        self.session.subs.pop(self.stream_id, None)
        if not (self.remote_done or self.stopped or self.session.over):
            self.stopped = True
            self.session.send_soon(bytes(pb.RuntimeMessage(
                stream_id=self.stream_id, stop=pb.Stop(reason=pb.StopReason.SHUTDOWN))))


def _status(code: int) -> Status:
    try:
        return Status(code)
    except ValueError:
        return Status.UNKNOWN


class Session:
    """The Session call to one deployment (see the module docstring)."""

    def __init__(self, channels: "Channels", dep: Deployment) -> None:
        self.channels = channels
        self.dep = dep
        self.subs: dict[int, SubStream] = {}
        self.over = False
        self._ids = itertools.count(1)
        self._stream: Optional[Stream[bytes, bytes]] = None
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._send_lock = asyncio.Lock()
        self._failure: Optional[BaseException] = None
        self.task = asyncio.get_running_loop().create_task(self._run())

    def open_sub(self) -> SubStream:
        sub = SubStream(self, next(self._ids))
        self.subs[sub.stream_id] = sub
        return sub

    async def opened(self) -> None:
        """Once the Session call is open (or failed to open: `send` raises the failure)."""
        if not self._opened.done():
            await asyncio.shield(self._opened)

    async def send(self, data: bytes) -> None:
        await self.opened()
        if self._failure is not None:
            raise self._failure
        # A message leaves whole even if the attempt sending it is cancelled meanwhile
        # (killed, shut down): grpclib sends one larger than the flow-control window in
        # frames, waiting for the window in between, and half a message would make the
        # rest of the stream garbage for every attempt on the session. (`shielded`: with
        # no task of its own unless the write has to wait.)
        await shielded(self._write(data))

    async def _write(self, data: bytes) -> None:
        assert self._stream is not None
        async with self._send_lock:  # one message at a time, in the order sent
            await self._stream.send_message(data)

    def send_soon(self, data: bytes) -> None:
        """Send without waiting (a Stop on leaving); a failure is of no interest."""
        async def send() -> None:
            try:
                await self.send(data)
            except Exception as exc:  # noqa: BLE001 - the session broke: the deployment knows
                log.debug("deployment %s: a Stop was not sent: %r", self.dep.id, exc)
        self.channels.spawn(send())

    async def _run(self) -> None:
        channel = self.channels.get(self.dep)
        codec = self.channels.codec
        stream: Optional[Stream[bytes, bytes]] = None
        failure: BaseException
        try:
            async with channel.request(SESSION_PATH, Cardinality.STREAM_STREAM, bytes, bytes,
                                       metadata=self.channels.metadata(SESSION_PATH)) as stream:
                await stream.send_request()
                self._stream = stream
                self._opened.set_result(None)
                while True:
                    data = await stream.recv_message()
                    if data is None:
                        break
                    self._dispatch(codec, data)
                await stream.recv_trailing_metadata()
                await stream.end()
            failure = grpclib.exceptions.StreamTerminatedError("the deployment ended the session")
        except asyncio.CancelledError:
            failure = grpclib.exceptions.StreamTerminatedError("the runtime closed the session")
            self._finish(failure)
            raise
        except grpclib.exceptions.StreamTerminatedError as exc:
            failure = (_refusal(stream) if stream is not None else None) or exc
        except BaseException as exc:  # noqa: BLE001 - every attempt on it gets it
            failure = exc
        self._finish(failure)

    def _finish(self, failure: BaseException) -> None:
        self.over = True
        self._failure = failure
        if not self._opened.done():
            self._opened.set_result(None)
        self.channels.forget(self)
        for sub in list(self.subs.values()):
            sub.remote_done = True
            sub.inbox.put_nowait(failure)
        self.subs.clear()
        if not isinstance(failure, grpclib.exceptions.GRPCError):
            log.debug("deployment %s: the session ended: %r", self.dep.id, failure)

    def _dispatch(self, codec: LimitedCodec, data: bytes) -> None:
        stream_id = wire.stream_id_of(data)
        sub = self.subs.get(stream_id) if stream_id else None
        if sub is None:
            if not stream_id:
                raise UndecodableMessage("a Session message without its stream_id")
            return  # for an attempt the runtime has left
        try:
            sub.deliver(codec.check(data, pb.DeploymentMessage))
        except (MessageTooLarge, UndecodableMessage) as exc:
            sub.deliver(exc)

    def close(self) -> None:
        self.task.cancel()


class Channels:
    """One HTTP/2 connection per deployment, shared by its streams, and its Session."""

    def __init__(self, max_message_bytes: int = 64 * 1024 * 1024,
                 metadata: Optional[Callable[[str], Optional[list[tuple[str, str]]]]] = None) -> None:
        self._channels: dict[str, Channel] = {}
        self._sessions: dict[str, Session] = {}
        self._streams: set[asyncio.Task[None]] = set()
        self.codec = LimitedCodec(max_message_bytes)
        self._metadata = metadata

    def metadata(self, path: str) -> Optional[list[tuple[str, str]]]:
        """The request's headers: its signature (runtime/identity.py), if the runtime signs."""
        return self._metadata(path) if self._metadata is not None else None

    def get(self, dep: Deployment) -> Channel:
        channel = self._channels.get(dep.id)
        if channel is None:
            host, port = parse_uri(dep.uri)
            channel = self._channels[dep.id] = Channel(host, port, codec=self.codec)
        return channel

    def session_sub(self, dep: Deployment) -> Optional[SubStream]:
        """A SubStream for one attempt on `dep`'s Session (opened if need be), or None for a
        deployment that speaks version 1 only (`open` then). The caller leaves it."""
        if dep.protocol_version < SESSION_VERSION:
            return None
        session = self._sessions.get(dep.id)
        if session is None or session.over:
            session = self._sessions[dep.id] = Session(self, dep)
        return session.open_sub()

    @contextlib.asynccontextmanager
    async def open(self, dep: Deployment) -> AsyncIterator[Any]:
        """A stream for one attempt on `dep` (see the module docstring)."""
        sub = self.session_sub(dep)
        if sub is not None:
            try:
                yield sub
            finally:
                sub.leave()
            return
        async with self.get(dep).request(INVOKE_PATH, Cardinality.STREAM_STREAM, pb.RuntimeMessage,
                                         pb.DeploymentMessage, metadata=self.metadata(INVOKE_PATH)) as stream:
            await stream.send_request()
            yield stream

    def forget(self, session: Session) -> None:
        if self._sessions.get(session.dep.id) is session:
            del self._sessions[session.dep.id]

    def spawn(self, coro: Any) -> "asyncio.Task[None]":
        """A task that owns one stream or message; it may outlive its attempt (the
        stream's teardown), so `aclose` ends those still running."""
        task = asyncio.get_running_loop().create_task(coro)
        self._streams.add(task)
        task.add_done_callback(self._streams.discard)
        return task

    def drop(self, deployment_id: str) -> None:
        session = self._sessions.pop(deployment_id, None)
        if session is not None:
            session.close()
        channel = self._channels.pop(deployment_id, None)
        if channel is not None:
            channel.close()

    async def aclose(self) -> None:
        """End the streams still open (teardowns after an outcome, or attempts the
        invoker gave up on), the sessions, then the connections."""
        streams = list(self._streams)
        for task in streams:
            task.cancel()
        if streams:
            await asyncio.wait(streams)
        sessions = list(self._sessions.values())
        for session in sessions:
            session.close()
        if sessions:
            await asyncio.wait([s.task for s in sessions])
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()


def _refusal(stream: Any) -> Optional[grpclib.exceptions.GRPCError]:
    """The status of a trailers-only refusal (UNAUTHENTICATED, say) that arrived just before
    the deployment reset the stream. grpclib cancels a stream's waiters when the reset is
    processed, even when its response headers were read in the same packet, so the reader
    sees "Stream reset by remote party" instead of the status: read the headers h2 gave it."""
    headers = getattr(getattr(stream, "_stream", None), "headers", None)
    if not headers:
        return None
    fields = dict(headers)
    code = fields.get("grpc-status")
    try:
        status = Status(int(code)) if code is not None else None
    except ValueError:
        return None
    if status is None or status is Status.OK:
        return None
    return grpclib.exceptions.GRPCError(status, decode_grpc_message(fields.get("grpc-message", "")))
