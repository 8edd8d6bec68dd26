"""The deployment process: a gRPC server (grpclib) that runs an App's handlers for a
remote Stead runtime (proto/stead/deployment.proto).

    await serve(app, host="127.0.0.1", port=9080, identity_keys=None)
    main(["MODULE:ATTR", "--host", H, "--port", P, "--identity-key", K, "--ready-file", F])

`stead deployment serve MODULE:ATTR ...` and `python -m pysdk._deployment MODULE:ATTR ...`
both end in `main`. `--port 0` binds a free port; `--ready-file PATH` then tells
which: once the server listens, PATH holds `{"pid": ..., "port": ...}` (written
to a temporary file and renamed, so a reader never sees half of it).

Every invocation attempt is run by `stream.InvokeStream`, on an Invoke stream of
its own (protocol version 1) or on a Session shared by many (version 2,
`session.DeploymentSession`); many run concurrently on one event loop (uvloop when
installed).

Request identity: with identity keys (the `identity_keys` argument or
`--identity-key`, else the App's own `identity_keys`), every request is verified
(pysdk._identity) when it arrives, before any handler runs, and refused with
UNAUTHENTICATED otherwise.

Shutdown (SIGTERM, SIGINT, or `DeploymentServer.shutdown`): the server stops
accepting connections and refuses new attempts (UNAVAILABLE); attempts in
flight get `grace` seconds (5 by default) to end; then the remaining ones are
dropped: their machines are closed (nothing more is journaled), their handler
tasks cancelled, and their streams end without End, so the runtime resumes them
by replay.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import tempfile
from typing import TYPE_CHECKING, Any, Optional, Sequence

from grpclib import GRPCError
from grpclib.const import Cardinality, Handler, Status
from grpclib.events import RecvRequest, listen
from grpclib.server import Server, Stream

from .._proto.stead.deployment import v1 as pb
from .discovery import check_versions, discover
from .session import DeploymentSession
from .stream import InvokeStream
from .wire import MalformedMessage, StrictCodec

if TYPE_CHECKING:
    from .._app import App

__all__ = ["DeploymentServer", "DeploymentService", "serve", "main", "DEFAULT_GRACE_S", "INVOKE_PATH", "SESSION_PATH"]

log = logging.getLogger("stead.deployment")

DISCOVER_PATH = "/stead.deployment.v1.Deployment/Discover"
INVOKE_PATH = "/stead.deployment.v1.Deployment/Invoke"
SESSION_PATH = "/stead.deployment.v1.Deployment/Session"
DEFAULT_GRACE_S = 5.0


class DeploymentService(pb.DeploymentBase):
    """The Deployment service of one App, on grpclib's low-level streams."""

    def __init__(self, app: "App") -> None:
        self.app = app
        self.draining = False
        self.active: set[InvokeStream] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    def __mapping__(self) -> dict[str, Handler]:
        return {
            DISCOVER_PATH: Handler(self._discover, Cardinality.UNARY_UNARY, pb.DiscoverRequest, pb.DiscoverResponse),
            INVOKE_PATH: Handler(self._invoke, Cardinality.STREAM_STREAM, pb.RuntimeMessage, pb.DeploymentMessage),
            SESSION_PATH: Handler(self._session, Cardinality.STREAM_STREAM, bytes, bytes),
        }

    async def _discover(self, stream: "Stream[pb.DiscoverRequest, pb.DiscoverResponse]") -> None:
        try:
            request = await stream.recv_message()
        except MalformedMessage as exc:
            raise _invalid(exc) from None
        assert request is not None
        problem = check_versions(request.min_protocol_version, request.max_protocol_version)
        if problem is not None:
            raise GRPCError(Status.FAILED_PRECONDITION, problem)
        await stream.send_message(discover(self.app))

    async def _invoke(self, stream: "Stream[pb.RuntimeMessage, pb.DeploymentMessage]") -> None:
        if self.draining:
            raise GRPCError(Status.UNAVAILABLE, "the deployment is shutting down")
        attempt = InvokeStream(self.app, stream)
        self.attempt_started(attempt)
        try:
            await attempt.run()
        except MalformedMessage as exc:  # Start, or its Directory (later ones end the attempt)
            raise _invalid(exc) from None
        finally:
            self.attempt_ended(attempt)

    async def _session(self, stream: "Stream[bytes, bytes]") -> None:
        if self.draining:
            raise GRPCError(Status.UNAVAILABLE, "the deployment is shutting down")
        await DeploymentSession(self, stream).run()

    def attempt_started(self, attempt: InvokeStream) -> None:
        self.active.add(attempt)
        self._idle.clear()

    def attempt_ended(self, attempt: InvokeStream) -> None:
        self.active.discard(attempt)
        if not self.active:
            self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def _invalid(exc: MalformedMessage) -> GRPCError:
    """The runtime sent garbage (pysdk/_deployment/wire.py): the call fails with
    INVALID_ARGUMENT naming what, not UNKNOWN after an AttributeError deep inside."""
    log.warning("refused a malformed message: %s", exc)
    return GRPCError(Status.INVALID_ARGUMENT, f"a malformed message: {exc}")


class DeploymentServer:
    """A started-once server: `await start(host, port)` returns the bound port;
    `await shutdown(grace)` stops it (see the module docstring)."""

    def __init__(self, app: "App", identity_keys: Optional[Sequence[str]] = None) -> None:
        self.app = app
        self.service = DeploymentService(app)
        self.server = Server([self.service], codec=StrictCodec())
        keys = list(identity_keys) if identity_keys else list(getattr(app, "identity_keys", ()) or ())
        self.verifier: Any = None
        if keys:
            from .._identity import IdentityVerifier
            self.verifier = IdentityVerifier(keys)
            listen(self.server, RecvRequest, self._verify)
        self.port: Optional[int] = None
        self._closed = False

    async def _verify(self, event: RecvRequest) -> None:
        from .._identity import IdentityError
        headers = {k.lower(): v for k, v in event.metadata.items() if isinstance(v, str)}
        try:
            self.verifier.verify(event.method_name, headers)
        except IdentityError as exc:
            log.warning("refused %s: %s", event.method_name, exc)
            raise GRPCError(Status.UNAUTHENTICATED, str(exc)) from None

    async def start(self, host: str = "127.0.0.1", port: int = 9080) -> int:
        await self.server.start(host, port)
        listener: Any = self.server._server
        sockets = listener.sockets if listener is not None else ()
        self.port = sockets[0].getsockname()[1] if sockets else port
        return self.port

    async def shutdown(self, grace: float = DEFAULT_GRACE_S) -> None:
        if self._closed:
            return
        self._closed = True
        service = self.service
        service.draining = True
        listener = self.server._server
        if listener is not None:
            listener.close()  # no new connections; open ones may still finish their streams
        if service.active:
            try:
                await asyncio.wait_for(service.wait_idle(), timeout=grace)
            except asyncio.TimeoutError:
                log.warning("%d attempt(s) still running after %.1fs: dropping them (the runtime "
                            "resumes them by replay)", len(service.active), grace)
                for attempt in list(service.active):
                    attempt.abort()
                try:
                    await asyncio.wait_for(service.wait_idle(), timeout=1.0)
                except asyncio.TimeoutError:
                    pass
        self.server.close()
        await self.server.wait_closed()


def _write_ready_file(path: str, port: int) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".ready-", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"pid": os.getpid(), "port": port}, f)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


async def serve(app: "App", host: str = "127.0.0.1", port: int = 9080,
                identity_keys: Optional[Sequence[str]] = None, *, ready_file: Optional[str] = None,
                grace: float = DEFAULT_GRACE_S, stop: Optional[asyncio.Event] = None) -> None:
    """Serve `app` until SIGTERM/SIGINT (when running in the main thread), `stop` is set,
    or this coroutine is cancelled; then shut down gracefully."""
    server = DeploymentServer(app, identity_keys)
    bound = await server.start(host, port)
    log.info("deployment serving %s on %s:%d", app, host, bound)
    if ready_file:
        _write_ready_file(ready_file, bound)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread, or no signals here
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await asyncio.shield(server.shutdown(grace))


def load_app(target: str) -> "App":
    """The App named by MODULE:ATTR (ATTR defaults to `app`)."""
    from .._app import App
    module_name, _, attr = target.partition(":")
    if not module_name:
        raise SystemExit(f"expected MODULE:ATTR, got {target!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    obj = getattr(module, attr or "app", None)
    if not isinstance(obj, App):
        raise SystemExit(f"{target}: expected a pysdk App (app([...])), got {type(obj).__name__}")
    return obj


def parser(prog: str = "stead deployment serve") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Serve an App's handlers to a remote Stead runtime over gRPC.")
    p.add_argument("target", metavar="MODULE:ATTR", help="the App to serve, e.g. myapp:app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9080, help="0: any free port (see --ready-file)")
    p.add_argument("--identity-key", action="append", default=[], dest="identity_keys", metavar="KEY",
                   help="accept only requests signed with this key (publickeyv1_... or a PEM file); repeatable")
    p.add_argument("--ready-file", default=None, metavar="PATH",
                   help='once listening, write {"pid", "port"} to PATH (atomically)')
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S,
                   help="seconds in-flight attempts get to finish at shutdown")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: str = "stead deployment serve") -> int:
    args = parser(prog).parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = load_app(args.target)
    coro = serve(app, args.host, args.port, args.identity_keys or None, ready_file=args.ready_file,
                 grace=args.grace)
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)
    return 0
