"""The `stead serve` process: lifecycle of the store, invoker, timers and HTTP ingress.

Startup: open the data directory (refusing another schema version), load the
application, resume unfinished invocations, start the retry-timer and retention
loops, serve HTTP. The loops and the HTTP server run in one anyio task group:
a failure in any of them cancels the others. Shutdown on SIGTERM/SIGINT
(captured by uvicorn, which stops accepting and lets in-flight requests finish,
then re-raises the signal): running invocations get `shutdown_timeout_s` to
finish, then are cancelled (they resume by replay at the next start), the
writer drains every queued commit, and RocksDB is closed.

Once uvicorn serves, one line says so on stderr whatever the log level ("stead ready:
ingress http://..., admin http://..., data ..., durability ..., recovered N invocations":
the bound ports, and how many invocations recovery resumed). Logging (text or JSON
lines, with the invocation an attempt's records are about) is runtime/logs.py, metrics
runtime/metrics.py, traces (only with an OTLP endpoint) runtime/tracing.py.

Crash-only storage: a storage failure anywhere (a failed write or fsync, a full
disk, a panic in the writer, an error while recovering or resuming, in a request or
in one of the loops) stops the server; `serve` raises `StorageFailed` and the
process exits 3 with the cause (runtime/cli.py). Every request not answered yet is
answered at once, 503 {"code": 503, "message": "storage failed: <cause>; the server
is stopping: the outcome is unknown ..."} (`_Requests`): whatever it had begun is
decided by recovery at the next start.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import json
import logging
import os
import signal
import socket
import sys
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Optional

import anyio
import uvicorn

from pysdk._app import App
from runtime import _core, allocator, logs, schedules
from runtime.admin import Admin, Router
from runtime.admin import error_body as admin_error_body
from runtime.commits import Commits
from runtime.config import ServerConfig
from runtime.deployments import Catalog, Registry
from runtime.identity import RequestSigner
from runtime.ids import now_ms
from runtime.http import Receive, Scope, Send, respond
from runtime.http import error_body as http_error_body
from runtime.ingress import Ingress, storage_failed_message
from runtime.invoker import Invoker
from runtime.metrics import Metrics

if TYPE_CHECKING:
    from runtime.tracing import Tracing

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("stead.server")

PURGE_INTERVAL_S = 60.0  # at most; a short retention is purged more often (a tenth of it)


def load_app(target: str) -> App:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected MODULE:ATTRIBUTE (like examples.cart:application), got {target!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    try:
        app = getattr(module, attr)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(app, App):
        raise ValueError(f"{target} is a {type(app).__name__}, not an app built with pysdk.app([...])")
    return app


class StorageFailed(RuntimeError):
    """The store failed while serving: the server stopped (crash-only)."""


async def serve(config: ServerConfig, app: App, *, started: Optional[Callable[[str, str], None]] = None,
                stop: Optional[asyncio.Event] = None) -> None:
    """Serve `app` until SIGTERM/SIGINT (or `stop` is set: the same orderly shutdown);
    `started(ingress_url, admin_url)` is called once the server listens (the test
    harness, pysdk/harness.py, runs `serve` in a thread and needs both)."""
    loop = asyncio.get_running_loop()
    os.makedirs(config.data_dir, exist_ok=True)
    store = _core.Store(config.data_dir, config.durability)
    server: uvicorn.Server | None = None
    failures: list[BaseException] = []

    requests = _Requests()

    def on_storage_failure(exc: BaseException) -> None:
        if failures:
            return
        failures.append(exc)
        log.critical("storage failed: %s; stopping (recovery decides the outcome at the next start)", exc)
        invoker.storage_failed(exc)  # every waiter of a result fails (its callback comes back here)
        requests.fail(exc)
        if server is not None:
            server.should_exit = True

    metrics = Metrics()
    tracing = _tracing(config)
    commits = Commits(store, loop, lambda exc: invoker.storage_failed(exc), metrics=metrics)
    # The services served: the app's and those of the deployments registered so far.
    registry = Registry(config.data_dir, Catalog(app), _signer(config))
    declared = app.schedules  # created or updated once recovered (runtime/schedules.py)
    app = registry.catalog
    invoker = Invoker(store, app, commits, always_replay=config.always_replay,
                      retry_policy=config.default_retry_policy, suspend_after_s=config.suspend_after_s, on_storage_failure=on_storage_failure,
                      registry=registry, max_deployment_message_bytes=config.max_deployment_message_bytes,
                      metrics=metrics, tracing=tracing,
                      state_cache=(config.state_cache_keys, config.state_cache_bytes))
    metrics.watch(invoker)
    schedules.install(invoker)  # before recovery, which resumes its ticks
    try:
        resumed = invoker.recover()
        await schedules.declare(invoker, declared)
        ingress = Ingress(app, invoker, max_body_bytes=config.max_body_bytes)
        sockets = [_listen(config.host, config.port)]
        ingress_url = _url(config.host, sockets[0])
        handler = requests.guard(ingress, http_error_body)
        if config.admin_port:
            try:
                sockets.append(_listen(config.admin_host, config.admin_port))
            except BaseException:
                sockets[0].close()
                raise
            admin = Admin(invoker, ingress_url=ingress_url, token=config.admin_token)
            handler = Router(handler, requests.guard(admin, admin_error_body), config.admin_port)
        _announce(sockets)
        admin_url = _url(config.admin_host, sockets[1]) if config.admin_port else "off"
        ready = (f"stead ready: ingress {ingress_url}, admin {admin_url}, data {config.data_dir}, "
                 f"durability {config.durability}, recovered {resumed} invocations")
        uv_config = uvicorn.Config(
            handler, host=config.host, port=config.port, loop="none", http="httptools",
            lifespan="off", access_log=False, log_level=config.log_level, log_config=None,
            timeout_graceful_shutdown=config.shutdown_timeout_s, server_header=False,
            date_header=False, proxy_headers=False,
        )
        def on_ready() -> None:
            logs.announce(log, ready, ingress=ingress_url, admin=admin_url, data_dir=config.data_dir,
                          durability=config.durability, recovered=resumed)
            if started is not None:
                started(ingress_url, admin_url)

        server = _Server(uv_config, on_ready)
        if failures:  # a resumed invocation already met a failing store
            server.should_exit = True
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_crash_only, invoker.timer_loop, on_storage_failure)
                tg.start_soon(_crash_only, lambda: _purge_loop(invoker, config.retention_s), on_storage_failure)
                tg.start_soon(_crash_only, invoker.watchdog, on_storage_failure)
                if stop is not None:
                    tg.start_soon(_stop_when, stop, server)
                await server.serve(sockets=sockets)
                tg.cancel_scope.cancel()
        except* _core.StorageError as group:
            # A loop of the group met the failing store (the timers' commit, the purge): anyio
            # raises it in an ExceptionGroup, which must still stop the server as crash-only.
            on_storage_failure(group.exceptions[0])
    except _core.StorageError as exc:
        on_storage_failure(exc)
    finally:
        # Crash-only: after a storage failure nothing more can be made durable, so the
        # attempts in flight are dropped at once rather than given the shutdown timeout.
        await invoker.close(0.0 if failures else config.shutdown_timeout_s)
        commits.close()
        if tracing is not None:
            await asyncio.to_thread(tracing.shutdown)  # exports the spans still buffered
        try:
            store.close()
        except _core.StorageError as exc:
            if not failures:
                on_storage_failure(exc)
    if failures:
        raise StorageFailed(str(failures[0])) from failures[0]


async def _stop_when(stop: asyncio.Event, server: uvicorn.Server) -> None:
    await stop.wait()
    server.should_exit = True  # uvicorn's orderly shutdown, as on SIGTERM


async def _crash_only(loop: Callable[[], Awaitable[None]], on_storage_failure: Callable[[BaseException], None]) -> None:
    """Run one of the server's loops; a storage failure in it stops the server the way a
    failed commit does (uvicorn's orderly shutdown, every request in flight answered),
    rather than cancelling uvicorn in the middle of serving."""
    try:
        await loop()
    except _core.StorageError as exc:
        on_storage_failure(exc)


class _Requests:
    """The HTTP requests in flight, so that a storage failure answers every one at once.

    Crash-only: once the store failed, nothing more becomes durable and the server stops. A
    request whose commit failed learns it from its own wait (503 from the ingress or the
    admin API), but one waiting for something else (a handler waiting for an awakeable or a
    call, in the request's task) would wait through uvicorn's graceful-shutdown timeout, and
    then be cancelled into uvicorn's bare "500 Internal Server Error". So the failure cancels
    every request whose response has not started, and each is answered 503 with the
    failure (`storage_failed_message`); a request arriving after it is answered so at once.
    What it had begun is decided by recovery at the next start, like any crash.
    """

    def __init__(self) -> None:
        self.failure: Optional[BaseException] = None
        self._unanswered: set[asyncio.Task[Any]] = set()

    def fail(self, exc: BaseException) -> None:
        if self.failure is None:
            self.failure = exc
        current = asyncio.current_task()  # the request that met the failure answers it itself
        for task in list(self._unanswered):
            if task is not current:
                task.cancel()

    def guard(self, app: ASGIApp, error_body: Callable[[int, str], bytes]) -> ASGIApp:
        unanswered = self._unanswered

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if self.failure is not None:
                await respond(send, 503, error_body(503, storage_failed_message(self.failure)))
                return
            task = asyncio.current_task()
            assert task is not None

            async def tracked(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    unanswered.discard(task)  # answered (or answering): not cancelled any more
                await send(message)

            unanswered.add(task)
            try:
                await app(scope, receive, tracked)
            except asyncio.CancelledError:
                if self.failure is None or task not in unanswered:
                    raise  # not ours (or answered already): uvicorn's, or the loop's
                task.uncancel()
            finally:
                waiting = task in unanswered
                unanswered.discard(task)
            if waiting and self.failure is not None:
                await respond(send, 503, error_body(503, storage_failed_message(self.failure)))

        return guarded


class _Server(uvicorn.Server):
    """uvicorn's server, which says once that it is ready: serving on every socket."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: Optional[list[socket.socket]] = None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit:
            self._on_ready()


def _tracing(config: ServerConfig) -> Optional["Tracing"]:
    """Traces over OTLP/HTTP if an endpoint is configured; nothing is imported otherwise."""
    if not config.otlp_endpoint:
        return None
    from runtime.tracing import Tracing

    return Tracing(config.otlp_endpoint)


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _signer(config: ServerConfig) -> Optional[RequestSigner]:
    """Signs every request to a deployment (Restate's request identity), if configured."""
    return RequestSigner.from_pem_file(config.signing_key) if config.signing_key else None


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _announce(sockets: list[socket.socket]) -> None:
    """If STEAD_READY_FILE names a file, write {"pid", "port", "admin_port"} (the bound
    ports: --port 0 binds any free one) to it atomically once listening, so whoever
    started this process (the tests) knows it is this process that answers there."""
    path = os.environ.get("STEAD_READY_FILE")
    if not path:
        return
    ports = [sock.getsockname()[1] for sock in sockets] + [0]
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump({"pid": os.getpid(), "port": ports[0], "admin_port": ports[1]}, f)
    os.replace(tmp, path)


async def _purge_loop(invoker: Invoker, retention_s: float) -> None:
    """Delete completed invocations once their retention has run out (their service's or
    handler's retention option, else the server's `retention_s`); a purged workflow run
    takes its key's state and promises with it."""
    store = invoker.store
    app = invoker.app
    # Often enough for the shortest retention in effect (runtime/retention.py).
    period = min(PURGE_INTERVAL_S, max(0.1, invoker.retention.shortest_s(retention_s) / 10))
    default_ms = int(retention_s * 1000)
    while True:
        await anyio.sleep(period)
        purged = 0
        while True:
            n = await asyncio.to_thread(store.purge_completed, now_ms(), default_ms, 10_000)
            purged += n
            if n < 10_000:
                break
        # The catalog's workflows now (a deployment registered since start brings its own).
        workflows = {name for name in app.services if app.service_type(name) == "workflow"}
        if purged and workflows:
            await invoker.commits.wait(store.last_seq())
            invoker.cache.forget_services(workflows)


def run(config: ServerConfig) -> None:
    import uvloop

    # Before RocksDB and the worker threads allocate anything (runtime/allocator.py).
    allocator.tune()
    logs.configure(config.log_level, config.log_format)
    app = load_app(config.target)
    # uvicorn captures SIGINT/SIGTERM while serving and re-raises them when it returns,
    # which would kill the process before the store is closed. Our handlers only note
    # the signal; it is re-raised once everything is shut down.
    captured: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: captured.append(signum))
    # What the app and the runtime loaded lives as long as the process: out of the
    # collector's sight, so that the older generations' collections do not traverse it
    # (bench/RESULTS.md, 2026-11-27). The thresholds stay Python's: larger ones saved a
    # little CPU on W2 but each young collection then costs W1's p99 a few hundred us.
    gc.freeze()
    uvloop.run(serve(config, app))
    for sig in dict.fromkeys(captured):
        signal.signal(sig, signal.SIG_DFL)
        signal.raise_signal(sig)
