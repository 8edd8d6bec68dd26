"""Shared fixtures: real `stead serve` processes on loopback with real data directories."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def free_port() -> int:
    """A port that was free a moment ago. Another process may take it before the server
    binds it; `SteadServer.start` then sees the bind fail and tries another."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], T], timeout: float = 20.0, what: str | None = None,
               interval: float = 0.02) -> T:
    """Poll `predicate` until it returns a truthy value, and return that value; fail the test
    when `timeout` seconds pass first. The one way tests wait for something to happen
    (never a fixed sleep that hopes it has happened)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"gave up after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def read_lines(path: Path) -> list[str]:
    """The lines of an effects file; none if it does not exist yet."""
    return path.read_text().splitlines() if path.exists() else []


def wait_for_lines(path: Path, count: int, timeout: float = 20.0) -> list[str]:
    """Wait until an effects file has at least `count` lines, and return its lines."""
    wait_until(lambda: len(read_lines(path)) >= count, timeout, f"{count} lines in {path}")
    return read_lines(path)


class _PortTaken(Exception):
    """The admin port free_port chose was taken before the server could bind it."""


_server_numbers = itertools.count(1)


class SteadServer:
    """One `stead serve` subprocess. Started and stopped (or killed) by tests.

    The ingress binds port 0 (the kernel picks a free one); the admin API binds a port
    chosen by free_port (0 would disable it), and a start whose bind lost that port to
    another process is tried again on another. The server announces itself in a ready
    file (STEAD_READY_FILE: its pid and bound ports); `start` reads the ports from it
    after checking that the pid is its own child's, so it never talks to a server
    somebody else started on the same port.
    """

    def __init__(self, data_dir: Path, effects_dir: Path, *, target: str = "tests.apps.testapp:application",
                 always_replay: bool = False, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.effects_dir = effects_dir
        self.target = target
        self.always_replay = always_replay
        self.extra_args = extra_args or []
        self.port = 0  # bound ports of the running process, read from its ready file
        self.admin_port = 0
        self._admin_request = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        number = next(_server_numbers)
        self.log_path = data_dir.parent / f"server-{number}.log"
        self.ready_path = data_dir.parent / f"server-{number}.ready.json"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "runtime.cli", "serve", self.target, "--data-dir", str(self.data_dir),
               "--port", "0", "--admin-port", str(self._admin_request), *self.extra_args]
        if self.always_replay:
            cmd.append("--always-replay")
        return cmd

    def start(self, timeout: float = 30.0, tries: int = 5) -> "SteadServer":
        for _ in range(tries):
            try:
                return self._start(timeout)
            except _PortTaken:
                self._admin_request = free_port()
        raise RuntimeError(f"stead serve lost its admin port to another process {tries} times")

    def _start(self, timeout: float) -> "SteadServer":
        self.port = self.admin_port = 0
        self.ready_path.unlink(missing_ok=True)
        env = dict(os.environ, STEAD_TEST_EFFECTS=str(self.effects_dir), PYTHONPATH=str(ROOT),
                   STEAD_READY_FILE=str(self.ready_path), **self.env)
        log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc = self.proc

        def running() -> None:
            if proc.poll() is not None:
                if "Address already in use" in self.log()[log_from:]:
                    raise _PortTaken()
                raise RuntimeError(f"stead serve exited with {proc.returncode}:\n{self.log()}")

        def announced() -> dict[str, int]:
            running()
            try:
                return json.loads(self.ready_path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):  # not yet (or not whole)
                return {}

        def healthy() -> bool:
            running()
            try:
                return httpx.get(f"{self.url}/restate/health", timeout=1.0).status_code == 200
            except httpx.TransportError:
                return False

        deadline = time.monotonic() + timeout
        try:
            ready = wait_until(announced, timeout, "the server's ready file")
            if ready["pid"] != proc.pid:
                raise RuntimeError(f"the ready file names pid {ready['pid']}, not our child {proc.pid}")
            if ready["admin_port"] != self._admin_request:
                raise RuntimeError(f"admin API on {ready['admin_port']}, asked for {self._admin_request}")
            self.port, self.admin_port = ready["port"], ready["admin_port"]
            # The port is held by our child: a 200 there is our server's.
            wait_until(healthy, max(1.0, deadline - time.monotonic()), "the health endpoint")
        except AssertionError as exc:
            raise TimeoutError(f"stead serve did not become healthy in {timeout}s ({exc}):\n{self.log()}") from None
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM: graceful shutdown."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode

    def restart(self) -> "SteadServer":
        """Start again on the same data directory (new ports: no client reaches the old process)."""
        self._admin_request = free_port()
        return self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def post(self, path: str, body: object = None, *, headers: dict[str, str] | None = None,
             timeout: float = 30.0) -> httpx.Response:
        content = b"" if body is None else json.dumps(body).encode()
        all_headers = {"content-type": "application/json"} if body is not None else {}
        all_headers.update(headers or {})
        return httpx.post(f"{self.url}{path}", content=content, headers=all_headers, timeout=timeout)

    def get(self, path: str, timeout: float = 30.0) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", timeout=timeout)

    def admin(self, method: str, path: str, content: bytes | None = None) -> httpx.Response:
        return httpx.request(method, f"{self.admin_url}{path}", content=content, timeout=30.0)

    def failpoint(self, name: str, actions: str | None) -> None:
        """Configure a failpoint of the core in the running server (None removes it); the
        server must run with STEAD_DEBUG_FAILPOINTS=1 (see `FAILPOINTS_ENV`)."""
        if actions is None:
            resp = self.admin("DELETE", f"/debug/failpoints/{name}")
        else:
            resp = self.admin("PUT", f"/debug/failpoints/{name}", actions.encode())
        assert resp.status_code == 200, resp.text


class DeploymentProcess:
    """One `stead deployment serve` subprocess (handlers served over gRPC to a runtime),
    on a port the kernel picks, announced in its ready file like `SteadServer`."""

    def __init__(self, target: str, work_dir: Path, effects_dir: Path, *,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.target = target
        self.effects_dir = effects_dir
        self.extra_args = extra_args or []
        self.env = env or {}
        number = next(_server_numbers)
        self.log_path = work_dir / f"deployment-{number}.log"
        self.ready_path = work_dir / f"deployment-{number}.ready.json"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, port: int = 0) -> "DeploymentProcess":
        """Start the process; on `port` if given (a restart where the runtime expects it),
        else on one the kernel picks."""
        self.ready_path.unlink(missing_ok=True)
        env = dict(os.environ, STEAD_TEST_EFFECTS=str(self.effects_dir), PYTHONPATH=str(ROOT), **self.env)
        cmd = [sys.executable, "-m", "runtime.cli", "deployment", "serve", self.target, "--port", str(port),
               "--ready-file", str(self.ready_path), *self.extra_args]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        proc = self.proc

        def announced() -> dict[str, int]:
            if proc.poll() is not None:
                raise RuntimeError(f"stead deployment serve exited with {proc.returncode}:\n{self.log()}")
            try:
                return json.loads(self.ready_path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                return {}

        ready = wait_until(announced, timeout, "the deployment's ready file")
        if ready["pid"] != proc.pid:
            raise RuntimeError(f"the ready file names pid {ready['pid']}, not our child {proc.pid}")
        self.port = ready["port"]
        return self

    kill = SteadServer.kill
    stop = SteadServer.stop

    def restart(self, timeout: float = 30.0) -> "DeploymentProcess":
        """Start again on the port it had (the runtime reaches a deployment by its uri);
        retried for a while if the port is not free again yet."""
        assert self.port, "restart() needs a process that was started before"
        port, deadline = self.port, time.monotonic() + timeout
        while True:
            try:
                return self.start(timeout, port=port)
            except RuntimeError:
                if time.monotonic() >= deadline or "Address already in use" not in self.log():
                    raise
                time.sleep(0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class RemoteSteadServer(SteadServer):
    """A `stead serve` with no handlers of its own and the app's handlers in a
    deployment process, registered at the first start (the registration is kept in the
    data directory, so a restarted runtime still routes to it). Tests use it exactly as
    a `SteadServer` serving the app in-process."""

    def __init__(self, data_dir: Path, effects_dir: Path, *, target: str = "tests.apps.testapp:application",
                 **kwargs: Any) -> None:
        super().__init__(data_dir, effects_dir, target=EMPTY_APP, **kwargs)
        self.deployment = DeploymentProcess(target, data_dir.parent, effects_dir, env=self.env)
        self.registered = False

    def start(self, timeout: float = 30.0, tries: int = 5) -> "SteadServer":
        if self.deployment.proc is None or self.deployment.proc.poll() is not None:
            self.deployment.start()
        super().start(timeout, tries)
        if not self.registered:
            register(self, self.deployment)
            self.registered = True
        return self

    def log(self) -> str:
        return super().log() + "\n--- deployment ---\n" + self.deployment.log()


EMPTY_APP = "tests.apps.empty:application"


def kill_all(procs: list) -> None:
    """Teardown: SIGKILL whichever of these (SteadServer, DeploymentProcess) still runs."""
    for p in procs:
        for proc in [p.proc] + ([p.deployment.proc] if isinstance(p, RemoteSteadServer) else []):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def register(server: SteadServer, deployment: DeploymentProcess) -> dict:
    """Register a deployment with a running server through its admin API."""
    resp = server.admin("POST", "/deployments", json.dumps({"uri": deployment.uri}).encode())
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture
def effects_dir(tmp_path: Path) -> Path:
    path = tmp_path / "effects"
    path.mkdir()
    return path


@pytest.fixture(params=["normal", "replay"])
def mode(request: pytest.FixtureRequest) -> str:
    """Every end-to-end test runs twice: normally, and with forced replay after each durable point."""
    return request.param


@pytest.fixture
def make_server(tmp_path: Path, effects_dir: Path, mode: str) -> Iterator:
    """`make(**kwargs)`: a SteadServer, or with `placement="remote"` a RemoteSteadServer
    (the app's handlers in a deployment process)."""
    servers: list[SteadServer] = []

    def make(placement: str = "local", **kwargs: Any) -> SteadServer:
        kwargs.setdefault("always_replay", mode == "replay")
        cls = RemoteSteadServer if placement == "remote" else SteadServer
        server = cls(tmp_path / "data", effects_dir, **kwargs)
        servers.append(server)
        return server

    yield make
    kill_all(servers)


@pytest.fixture(params=["local", "remote"])
def placement(request: pytest.FixtureRequest) -> str:
    """Where the handlers run: in the runtime's process, or in a deployment over gRPC."""
    return request.param


@pytest.fixture
def server(make_server, placement: str) -> SteadServer:  # type: ignore[no-untyped-def]
    """A server of the default test app (tests/apps/testapp.py), in both modes, with its
    handlers in-process and in a deployment."""
    return make_server(placement=placement).start()


FLOW_APP = "tests.apps.flowapp:application"
CORRECT_APP = "tests.apps.correctapp:application"
FAILPOINTS_ENV = {"STEAD_DEBUG_FAILPOINTS": "1"}


@pytest.fixture
def flow(make_server, placement: str) -> SteadServer:  # type: ignore[no-untyped-def]
    """A server of the control-flow test app (tests/apps/flowapp.py), in both modes, with
    its handlers in-process and in a deployment."""
    return make_server(target=FLOW_APP, placement=placement).start()


BEHAVIOUR_APP = "tests.apps.behaviourapp:application"


@pytest.fixture
def behaviour(make_server, placement: str) -> SteadServer:  # type: ignore[no-untyped-def]
    """A server of the behaviour test app (tests/apps/behaviourapp.py), in both modes, with
    its handlers in-process and in a deployment."""
    return make_server(target=BEHAVIOUR_APP, placement=placement).start()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads for requests that block while the test goes on (a call whose turn has not
    come). Not joined at teardown: a request still open when a test fails ends when
    make_server's teardown kills the server."""
    executor = ThreadPoolExecutor(32)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)
