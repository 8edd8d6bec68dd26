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
from typing import Callable, Iterator, TypeVar

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
    servers: list[SteadServer] = []

    def make(**kwargs: object) -> SteadServer:
        kwargs.setdefault("always_replay", mode == "replay")
        server = SteadServer(tmp_path / "data", effects_dir, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    for server in servers:
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture
def server(make_server) -> SteadServer:  # type: ignore[no-untyped-def]
    return make_server().start()


FLOW_APP = "tests.apps.flowapp:application"
CORRECT_APP = "tests.apps.correctapp:application"
FAILPOINTS_ENV = {"STEAD_DEBUG_FAILPOINTS": "1"}


@pytest.fixture
def flow(make_server) -> SteadServer:  # type: ignore[no-untyped-def]
    """A server of the control-flow test app (tests/apps/flowapp.py), in both modes."""
    return make_server(target=FLOW_APP).start()


BEHAVIOUR_APP = "tests.apps.behaviourapp:application"


@pytest.fixture
def behaviour(make_server) -> SteadServer:  # type: ignore[no-untyped-def]
    """A server of the behaviour test app (tests/apps/behaviourapp.py), in both modes."""
    return make_server(target=BEHAVIOUR_APP).start()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """Threads for requests that block while the test goes on (a call whose turn has not
    come). Not joined at teardown: a request still open when a test fails ends when
    make_server's teardown kills the server."""
    executor = ThreadPoolExecutor(32)
    yield executor
    executor.shutdown(wait=False, cancel_futures=True)
