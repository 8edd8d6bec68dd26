"""The test harness, under the module name Restate uses (`restate.harness`): a real Stead
runtime for an app, without Docker.

    async with pysdk.create_test_harness(app, always_replay=True) as env:
        assert await env.client.object_call(increment, key="a", arg=1) == 1

`create_test_harness` takes Restate's parameters and yields Restate's
`HarnessEnvironment(ingress_url, admin_api_url, client)`; `test_harness` is Restate's
deprecated synchronous form. Where Restate starts a restate-server container and serves
the app beside it over HTTP, Stead starts its own runtime, the one `stead serve` runs
(`runtime.server.serve`), with the app's handlers in-process, on a fresh temporary data
directory and free loopback ports; at exit it shuts down as on SIGTERM and the directory
is deleted. Each harness is independent: several can run side by side.

Why in a thread of the test's process rather than a child process: the app is an object,
not an importable `module:attribute` (it is often defined in the test module itself), the
handlers can share memory with the test as they do under Restate's harness (which also
serves the app from a thread), and a start costs no interpreter and no imports beyond the
first (bench/harness_start.py measures it). The runtime gets its own thread and its own
event loop (uvloop, as `stead serve`), so it runs whatever the test's loop does (asyncio
or trio through anyio, or none for `test_harness`) and a blocking test does not stall it;
handlers therefore must not touch objects bound to the test's loop. uvicorn installs no
signal handlers outside the main thread, so the test process keeps its own.

`serve(config, app, started=..., stop=...)` (runtime/server.py) says when it listens and
on which ports, and shuts down in order (as on SIGTERM) once `stop` is set: the invoker,
the commit writer and the store are then closed by `serve` itself.

Parameters, as Restate's:
- `always_replay`: the runtime's `--always-replay` (every invocation is dropped after each
  durable point and resumed by replay), which finds handlers that do not replay the same.
- `disable_retries`: one attempt per invocation: a handler that raises a retryable error
  fails its invocation (the caller gets the error) rather than being retried forever;
  handlers and services that set a retry policy of their own keep it, as under Restate
  (its default retry policy becomes max_attempts=1, on_max_attempts="kill").
- `follow_logs`: the runtime's log records (INFO and above, of every harness running in
  the process) are printed on stderr while the harness runs.
- `restate_image`: accepted and ignored (there is no container).
- `remote` (Stead's): the app's handlers run in a deployment (the gRPC server of `stead
  deployment serve`, on the runtime's loop, on a free port), registered with a runtime that
  serves none of its own, so a test covers the deployment protocol as Restate's harness
  (whose runtime always calls the SDK over the network) does.
- `time_skipping` (Stead's, after Temporal's time-skipping test environment): the runtime
  runs on a virtual clock that the test moves with `await env.advance(timedelta(days=30))`;
  with `time_skipping="auto"` it also moves by itself while the test waits for an answer
  of the client (pysdk/_autoskip.py).

Time skipping. The clock is injected, not patched: core_rs's clock (core_rs/src/clock.rs) is
the system clock plus one process-wide offset, which the runtime (runtime/clock.py) and the
in-process handlers (`ctx.time()`, sleeps' and delayed sends' fire times: pysdk/_clock.py)
all read; the harness owns the offset. `advance(delta)` moves it from timer to timer up to
`delta` later, waiting at each step until the runtime is quiescent (nothing runs, every
invocation in memory waits), so each sleep that falls in the window wakes in turn (weekly
reminders of a 30-day subscription fire four times), then returns once the last is done.
Sleeps, delayed sends, retry backoff between attempts, cron schedules, retention and the
records' times follow it; the watchdog's inactivity and abort timeouts, and the delays
between in-step retries of `ctx.run`, are real durations and do not. The offset is
process-wide, so only one time-skipping harness may run at a time (a second is refused)
and other harnesses running beside it see its clock too; it is back to 0 at its exit.
With `time_skipping=True` time moves only when the test calls `advance`. With
`time_skipping="auto"` it also skips, timer by timer, whenever the runtime is quiescent while
a request of `env.client` waits for its answer (Temporal's automatic mode): a call to a
workflow that sleeps a month answers at once.

Fixed for tests, unlike `stead serve`'s defaults: durability "wal" (no fsync: the data
directory is thrown away), and a shutdown that gives in-flight invocations half a second.
"""
from __future__ import annotations

import asyncio
import base64
import errno
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, AsyncIterator, Optional, Union
from urllib.parse import quote

import anyio
import anyio.to_thread
import httpx

from ._app import App
from ._autoskip import AutoSkip
from .client import create_client
from .client_types import HttpError, RestateClient

__all__ = ["HarnessEnvironment", "RestateTestHarness", "create_test_harness", "test_harness"]

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
SHUTDOWN_GRACE_S = 0.5
PORT_TRIES = 5


@dataclass
class HarnessEnvironment:
    """What `create_test_harness` yields (Restate's fields), plus `get_state`."""

    ingress_url: str
    """The URL of the ingress: handlers are called there (`client` does)."""

    admin_api_url: str
    """The URL of the admin API (invocations, state, SQL, deployments: see README.md)."""

    client: RestateClient
    """A client of the ingress (pysdk/client.py)."""

    _time_skipping: Union[bool, str] = field(default=False, repr=False)

    async def advance(self, delta: timedelta) -> None:
        """Stead's addition, with `time_skipping=True`: move the virtual clock `delta` forward,
        timer by timer, and return once what those timers woke has run (see the module's
        docstring). ValueError for a negative `delta`."""
        if not self._time_skipping:
            raise RuntimeError("advance() needs a harness created with time_skipping=True")
        if not isinstance(delta, timedelta):
            raise TypeError(f"advance() takes a datetime.timedelta, got {type(delta).__name__}")
        ms = int(delta.total_seconds() * 1000)
        if ms < 0:
            raise ValueError(f"the clock only moves forward: cannot advance it by {delta}")
        from runtime import clock

        await anyio.to_thread.run_sync(clock.skip_ms, ms)

    async def get_state(self, service: Union[str, Any], key: str) -> dict[str, Any]:
        """Stead's addition: the state of a virtual object's (or workflow's) `key`, by name:
        each value decoded from JSON (a value that is not JSON comes back as bytes).
        `service` is its name or the VirtualObject/Workflow itself. What is read is the
        runtime's view: everything committed by invocations that completed."""
        name = service if isinstance(service, str) else service.name
        async with httpx.AsyncClient(base_url=self.admin_api_url) as admin:
            res = await admin.get(f"services/{quote(name, safe='')}/state/{quote(key, safe='')}")
        if res.status_code >= 400:
            raise HttpError(res.status_code, res.reason_phrase, res.text)
        return {name: _state_value(value) for name, value in res.json()["state"].items()}


def _state_value(value: Any) -> Any:
    # The admin API shows a value that is not JSON as {"base64": ...} (runtime/admin_views.py).
    if isinstance(value, dict) and len(value) == 1 and isinstance(value.get("base64"), str):
        return base64.b64decode(value["base64"])
    return value


@asynccontextmanager
async def create_test_harness(
    app: App,
    follow_logs: bool = False,
    restate_image: Optional[str] = None,
    always_replay: bool = False,
    disable_retries: bool = False,
    time_skipping: Union[bool, str] = False,
    remote: bool = False,
) -> AsyncIterator[HarnessEnvironment]:
    """Start a Stead runtime serving `app` and yield its `HarnessEnvironment`; stop it
    and delete its data at exit. See the module's docstring for the parameters."""
    if time_skipping not in (False, True, "auto"):
        raise ValueError(f"time_skipping is False, True (advance() moves the clock) or \"auto\", "
                         f"got {time_skipping!r}")
    runtime = _Runtime(app, follow_logs=follow_logs, always_replay=always_replay, disable_retries=disable_retries,
                       time_skipping=bool(time_skipping), remote=remote)
    skipper = AutoSkip() if time_skipping == "auto" else None
    try:
        await anyio.to_thread.run_sync(runtime.start)
        transport = skipper.transport() if skipper is not None else None
        async with create_client(runtime.ingress_url, transport=transport) as client:
            if skipper is not None:
                skipper.start()
            yield HarnessEnvironment(ingress_url=runtime.ingress_url, admin_api_url=runtime.admin_api_url,
                                     client=client, _time_skipping=time_skipping)
    finally:
        with anyio.CancelScope(shield=True):
            if skipper is not None:
                await anyio.to_thread.run_sync(skipper.stop)
            await anyio.to_thread.run_sync(runtime.stop)


class RestateTestHarness:
    """Restate's synchronous harness (`test_harness(app)`): `start()` / `stop()`, or `with`."""

    def __init__(self, app: App, *, follow_logs: bool = False, always_replay: bool = False,
                 disable_retries: bool = False) -> None:
        self.app = app
        self._options = dict(follow_logs=follow_logs, always_replay=always_replay, disable_retries=disable_retries)
        self._runtime: Optional[_Runtime] = None

    def start(self) -> None:
        """Start the runtime (returns once it serves)."""
        runtime = _Runtime(self.app, **self._options)
        runtime.start()
        self._runtime = runtime

    def stop(self) -> None:
        """Stop the runtime and delete its data directory."""
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.stop()

    @property
    def ingress_url(self) -> str:
        return self._started().ingress_url

    @property
    def admin_api_url(self) -> str:
        return self._started().admin_api_url

    def ingress_client(self) -> httpx.Client:
        """An httpx client of the ingress (close it, or use it in a `with`)."""
        return httpx.Client(base_url=self.ingress_url)

    def _started(self) -> "_Runtime":
        if self._runtime is None:
            raise AssertionError("the harness is not running: call .start() (or use it in a `with`)")
        return self._runtime

    def __enter__(self) -> "RestateTestHarness":
        self.start()
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        self.stop()


def test_harness(
    app: App,
    follow_logs: bool = False,
    restate_image: Optional[str] = None,
    always_replay: bool = False,
    disable_retries: bool = False,
) -> RestateTestHarness:
    """DEPRECATED (as in Restate): use create_test_harness instead."""
    return RestateTestHarness(app, follow_logs=follow_logs, always_replay=always_replay,
                              disable_retries=disable_retries)


test_harness.__test__ = False  # type: ignore[attr-defined]  # imported into a test module, not a test


# ---- the runtime in its thread ----------------------------------------------------------------


class _Runtime:
    """One Stead runtime serving `app` from a thread of this process, on its own event loop."""

    def __init__(self, app: App, *, follow_logs: bool, always_replay: bool, disable_retries: bool,
                 time_skipping: bool = False, remote: bool = False) -> None:
        if not isinstance(app, App):
            raise TypeError(f"the harness serves an app built with pysdk.app([...]), got {app!r}")
        self.app = app
        self.remote = remote
        self.follow_logs = follow_logs
        self.always_replay = always_replay
        self.disable_retries = disable_retries
        self.time_skipping = time_skipping
        self._owns_clock = False
        self.ingress_url = ""
        self.admin_api_url = ""
        self._dir: Optional[str] = None
        self._thread: Optional[threading.Thread] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._stopping: Optional[asyncio.Event] = None
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        # Imported here: `import pysdk` must not load the runtime.
        from runtime.config import ServerConfig
        from runtime.retry import RetryPolicy

        if self.time_skipping:
            _take_clock()
            self._owns_clock = True
        self._dir = tempfile.mkdtemp(prefix="stead-harness-")
        if self.follow_logs:
            _follow_logs(True)
        try:
            for _ in range(PORT_TRIES):
                # The ingress binds a port the kernel picks. The admin API needs a number (0
                # turns it off): one that was free a moment ago, again if another process took it.
                config = ServerConfig(
                    target=f"<test harness of {self.app!r}>", data_dir=os.path.join(self._dir, "data"),
                    port=0, admin_port=_free_port(), durability="wal", always_replay=self.always_replay,
                    shutdown_timeout_s=SHUTDOWN_GRACE_S, log_level="info" if self.follow_logs else "warning",
                    default_retry_policy=(RetryPolicy(max_attempts=1, on_max_attempts="kill")
                                          if self.disable_retries else RetryPolicy()),
                )
                if self._run(config, timeout):
                    return
            raise RuntimeError(f"the harness lost its admin port to another process {PORT_TRIES} times")
        except BaseException:
            try:
                self.stop()
            except RuntimeError:
                pass  # the start's own failure is the one to report
            raise

    def _run(self, config: Any, timeout: float) -> bool:
        """Start serving with `config`; False if the admin port was taken meanwhile."""
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._main, args=(config,), name="stead-harness", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the Stead runtime did not start within {timeout}s")
        error = self._error
        if error is None:
            return True
        self._thread.join()
        if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
            return False
        raise RuntimeError(f"the Stead runtime failed to start: {error!r}") from error

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        try:
            if thread is not None and thread.is_alive() and loop is not None and stopping is not None:
                try:
                    loop.call_soon_threadsafe(stopping.set)
                except RuntimeError:  # its loop closed meanwhile: serve() ended on its own
                    pass
            if thread is not None:
                thread.join(timeout)
                if thread.is_alive():
                    raise RuntimeError(f"the Stead runtime did not stop within {timeout}s")
        finally:
            if thread is None or not thread.is_alive():  # an open store's files stay while it runs
                self._cleanup()
        error, self._error = self._error, None  # reported once
        if error is not None:
            raise RuntimeError(f"the Stead runtime stopped with an error: {error!r}") from error

    def _cleanup(self) -> None:
        if self._owns_clock:
            _release_clock()
            self._owns_clock = False
        if self.follow_logs:
            _follow_logs(False)
            self.follow_logs = False
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- in the runtime's thread -------------------------------------------------------------------

    def _main(self, config: Any) -> None:
        import uvloop

        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(self._serve(config))
        except BaseException as exc:  # noqa: BLE001 - reported to the test's thread by start/stop
            self._error = exc
        finally:
            self._ready.set()  # a runtime that failed before it served must not leave start() waiting

    async def _serve(self, config: Any) -> None:
        from runtime.server import serve

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        listening = asyncio.Event()
        deployment = None
        served = self.app
        if self.remote:
            # The app's handlers in a deployment (the gRPC server of `stead deployment serve`)
            # on this loop, registered with a runtime that serves none of its own.
            from ._app import app as make_app
            from ._deployment.server import DeploymentServer

            deployment = DeploymentServer(self.app)
            await deployment.start("127.0.0.1", 0)
            served = make_app([])

        def started(ingress_url: str, admin_url: str) -> None:
            self.ingress_url, self.admin_api_url = ingress_url, admin_url
            listening.set()

        serving = asyncio.ensure_future(serve(config, served, started=started, stop=self._stopping))
        ready = asyncio.ensure_future(listening.wait())
        try:
            await asyncio.wait({serving, ready}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if serving.done():
                await serving  # failed to start: its exception goes to start()
                return
            if deployment is not None:
                await _register(self.admin_api_url, f"http://127.0.0.1:{deployment.port}")
            self._ready.set()
            await serving
        finally:
            if not serving.done():  # the registration failed: stop the runtime too
                self._stopping.set()
                await asyncio.wait({serving})
            if deployment is not None:
                await deployment.shutdown(SHUTDOWN_GRACE_S)


async def _register(admin_url: str, uri: str) -> None:
    """Register the harness's deployment, as `stead deployments register` does."""
    async with httpx.AsyncClient(base_url=admin_url, timeout=START_TIMEOUT_S) as admin:
        res = await admin.post("deployments", json={"uri": uri})
    if res.status_code != 201:
        raise RuntimeError(f"registering the harness's deployment {uri} failed: {res.status_code} {res.text}")


_clock_lock = threading.Lock()
_clock_taken = False


def _take_clock() -> None:
    """Make this harness the owner of the process-wide clock offset (0 on its entry)."""
    global _clock_taken
    from runtime import _core, clock

    from . import _clock

    with _clock_lock:
        if _clock_taken:
            raise RuntimeError("another time-skipping harness is running in this process: the virtual "
                               "clock is process-wide, so only one at a time")
        _clock_taken = True
        clock.set_offset_ms(0)
        _clock.use_offset(_core.clock_offset_ms)


def _release_clock() -> None:
    global _clock_taken
    from runtime import clock

    from . import _clock

    with _clock_lock:
        _clock.use_offset(None)
        clock.set_offset_ms(0)
        _clock_taken = False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_follow_lock = threading.Lock()
_followers = 0
_follow_handler: Optional[logging.Handler] = None
_followed_levels: dict[str, int] = {}
_FOLLOWED = ("stead", "uvicorn.error")


def _follow_logs(on: bool) -> None:
    """Print the runtime's records (INFO and above) on stderr while some harness asks for
    it (one handler for all of them; the loggers' levels are restored after the last)."""
    global _followers, _follow_handler
    from runtime import logs

    with _follow_lock:
        _followers += 1 if on else -1
        if on and _follow_handler is None:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(logs.TextFormatter())
            handler.addFilter(logs.InvocationFilter())
            for name in _FOLLOWED:
                logger = logging.getLogger(name)
                _followed_levels[name] = logger.level
                logger.addHandler(handler)
                logger.setLevel(logging.INFO)
            _follow_handler = handler
        elif not on and _followers == 0 and _follow_handler is not None:
            for name in _FOLLOWED:
                logger = logging.getLogger(name)
                logger.removeHandler(_follow_handler)
                logger.setLevel(_followed_levels.pop(name, logging.NOTSET))
            _follow_handler = None

