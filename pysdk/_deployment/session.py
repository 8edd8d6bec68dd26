"""A Session (protocol version 2): many attempts on one stream, the deployment's side.

The runtime keeps one Session stream per deployment and runs every attempt on it:
each message carries the attempt's `stream_id` (proto/stead/deployment.proto). A
Session costs one stream's headers and trailers per connection instead of per
attempt, which is most of what a short remote invocation costs on the wire.

`DeploymentSession.run` reads the runtime's messages and hands each to its attempt:
a Start with a new `stream_id` starts one (`stream.InvokeStream`, exactly as on an
Invoke stream, over a `SubStream` that looks like one); anything else is handed to
the attempt's backend as it comes (no reader task per attempt, as an Invoke stream
needs), and is dropped if the attempt has ended already (a Completion or a Stop that
crossed its End). An attempt that ends without End tells the runtime with
Closed: OK (closed by Stop, or a replay asked for), or the status its Invoke stream
would have failed with (a malformed Start, say).

Messages are encoded and decoded here, not by grpclib (the stream's type is
`bytes`): a message that cannot be decoded fails the attempt it names (wire.py
`stream_id_of`) with INVALID_ARGUMENT, as it would fail an Invoke stream; one that
names no attempt ends the session. When the session's stream ends or breaks (the
runtime stopped, the connection dropped), every attempt on it is dropped, as when
an Invoke stream breaks; the runtime resumes them by replay.
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Optional, Union

from grpclib import GRPCError
from grpclib.const import Status

from .._proto.stead.deployment import v1 as pb
from .._errors import Suspended
from .eager import shielded
from .stream import InvokeStream, StreamBackend, ended
from .wire import MalformedMessage, decode, stream_id_of

if TYPE_CHECKING:
    from grpclib.server import Stream

    from .server import DeploymentService

__all__ = ["DeploymentSession", "SubStream"]

log = logging.getLogger("stead.deployment")

_Inbox = Union[pb.RuntimeMessage, BaseException, None]


class SubStream:
    """One attempt's view of a Session: the surface of grpclib's server stream that
    `InvokeStream` uses (its first message is the Start that opened it)."""

    def __init__(self, session: "DeploymentSession", stream_id: int, start: pb.RuntimeMessage) -> None:
        self.session = session
        self.stream_id = stream_id
        self.inbox: asyncio.Queue[_Inbox] = asyncio.Queue()
        self.inbox.put_nowait(start)
        self.ended = False  # End or Closed sent: nothing more goes out
        self.backend: Optional[StreamBackend] = None

    def put(self, item: _Inbox) -> None:
        """A message of the runtime for this attempt (None: the session ended; an
        exception: a message that could not be decoded)."""
        backend = self.backend
        if backend is None:
            self.inbox.put_nowait(item)  # Start is still being read
        elif item is None:
            backend.close(Suspended)
        elif isinstance(item, BaseException):
            ended(backend, item)
        else:
            try:
                backend.deliver(item)
            except GRPCError as exc:
                ended(backend, exc)

    def attach(self, backend: StreamBackend) -> None:
        """From now on, hand the runtime's messages to `backend` as they come (no reader
        task): first those that came while Start was read."""
        self.backend = backend
        while not self.inbox.empty():
            self.put(self.inbox.get_nowait())

    async def send_initial_metadata(self) -> None:
        return None

    async def recv_message(self) -> Optional[pb.RuntimeMessage]:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def send_message(self, msg: pb.DeploymentMessage) -> None:
        if self.ended:
            return
        if msg.end is not None:
            self.ended = True
        msg.stream_id = self.stream_id
        await self.session.send(bytes(msg))

    async def close(self, code: Status = Status.OK, message: str = "") -> None:
        """Closed, unless End (or Closed) went already, or the session is over."""
        if self.ended or self.session.over:
            return
        self.ended = True
        await self.session.send(bytes(pb.DeploymentMessage(
            stream_id=self.stream_id, closed=pb.Closed(code=code.value, message=message))))


class DeploymentSession:
    """The body of one Session call (see the module docstring)."""

    def __init__(self, service: "DeploymentService", stream: "Stream[bytes, bytes]") -> None:
        self.service = service
        self.stream = stream
        self.subs: dict[int, SubStream] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.over = False  # the stream ended or broke: nothing more is sent
        self._send_lock = asyncio.Lock()

    async def send(self, data: bytes) -> None:
        # A message leaves whole even if the attempt sending it is cancelled meanwhile
        # (closed by Stop): grpclib sends one larger than the flow-control window in
        # frames, waiting for the window in between, and half a message would make the
        # rest of the stream garbage for every attempt on the session. (`shielded`: with
        # no task of its own unless the write has to wait.)
        await shielded(self._write(data))

    async def _write(self, data: bytes) -> None:
        async with self._send_lock:  # one writer at a time: messages must not interleave
            await self.stream.send_message(data)

    async def run(self) -> None:
        await self.stream.send_initial_metadata()
        try:
            while True:
                data = await self.stream.recv_message()
                if data is None:
                    return  # the runtime ended the session
                self._dispatch(data)
        finally:
            # Ended or broken: every attempt still on it is dropped (resumed by replay).
            self.over = True
            for sub in list(self.subs.values()):
                sub.put(None)  # its backend closes the attempt (or Start's reader meets None)
            if self.tasks:
                await asyncio.wait(list(self.tasks))

    def _dispatch(self, data: bytes) -> None:
        stream_id = stream_id_of(data)
        if not stream_id:
            raise GRPCError(Status.INVALID_ARGUMENT, "a Session message without its stream_id")
        try:
            msg = decode(data, pb.RuntimeMessage)
        except MalformedMessage as exc:
            sub = self.subs.get(stream_id)
            log.warning("stream %d: the runtime sent a malformed message: %s", stream_id, exc)
            if sub is not None:
                sub.put(exc)
            else:
                self._refuse(stream_id, Status.INVALID_ARGUMENT, f"a malformed message: {exc}")
            return
        sub = self.subs.get(stream_id)
        if sub is not None:
            sub.put(msg)
        elif msg.start is not None:
            self._begin(stream_id, msg)
        # else: for an attempt that has ended (a Completion or Stop that crossed its end)

    def _begin(self, stream_id: int, start: pb.RuntimeMessage) -> None:
        if self.service.draining:
            self._refuse(stream_id, Status.UNAVAILABLE, "the deployment is shutting down")
            return
        sub = self.subs[stream_id] = SubStream(self, stream_id, start)
        attempt = InvokeStream(self.service.app, sub)  # type: ignore[arg-type]
        task = asyncio.get_running_loop().create_task(self._attempt(sub, attempt))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _refuse(self, stream_id: int, code: Status, message: str) -> None:
        sub = SubStream(self, stream_id, pb.RuntimeMessage())
        task = asyncio.get_running_loop().create_task(self._close(sub, code, message))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _attempt(self, sub: SubStream, attempt: InvokeStream) -> None:
        service = self.service
        service.attempt_started(attempt)
        code, message = Status.OK, ""
        try:
            await attempt.run()
        except MalformedMessage as exc:
            log.warning("refused a malformed message: %s", exc)
            code, message = Status.INVALID_ARGUMENT, f"a malformed message: {exc}"
        except GRPCError as exc:
            code, message = exc.status, exc.message or ""
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - what grpclib would answer UNKNOWN on Invoke
            log.exception("stream %d: the attempt failed", sub.stream_id)
            code, message = Status.UNKNOWN, f"{type(exc).__name__}: {exc}"
        finally:
            self.subs.pop(sub.stream_id, None)
            service.attempt_ended(attempt)
        await self._close(sub, code, message)

    async def _close(self, sub: SubStream, code: Status, message: str) -> None:
        try:
            await sub.close(code, message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the session broke: the runtime knows
            log.info("stream %d: the session broke while closing: %r", sub.stream_id, exc)

