"""Shared fixtures: real `stead serve` processes on loopback with real data directories."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SteadServer:
    """One `stead serve` subprocess. Started and stopped (or killed) by tests."""

    def __init__(self, data_dir: Path, effects_dir: Path, *, target: str = "tests.apps.testapp:application",
                 always_replay: bool = False, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.effects_dir = effects_dir
        self.target = target
        self.always_replay = always_replay
        self.extra_args = extra_args or []
        self.port = free_port()
        self.admin_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "runtime.cli", "serve", self.target, "--data-dir", str(self.data_dir),
               "--port", str(self.port), "--admin-port", str(self.admin_port), *self.extra_args]
        if self.always_replay:
            cmd.append("--always-replay")
        return cmd

    def start(self, timeout: float = 30.0) -> "SteadServer":
        env = dict(os.environ, STEAD_TEST_EFFECTS=str(self.effects_dir), PYTHONPATH=str(ROOT), **self.env)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stead serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/restate/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"stead serve did not become healthy in {timeout}s:\n{self.log()}")

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
        self.port = free_port()
        self.admin_port = free_port()
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


def wait_for_lines(path: Path, count: int, timeout: float = 20.0) -> list[str]:
    """Poll an effects file until it has at least `count` lines."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)
