"""The harness itself (tests/conftest.py): it talks only to the server it started, it
survives losing a port to another process, and the test apps have no shared effects path."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.apps import testapp
from tests.conftest import SteadServer


def _server(tmp_path: Path) -> SteadServer:
    effects = tmp_path / "effects"
    effects.mkdir()
    return SteadServer(tmp_path / "data", effects)


def test_start_refuses_a_ready_file_written_by_another_process(tmp_path: Path) -> None:
    class Impostor(SteadServer):
        def command(self) -> list[str]:
            # Announces itself under its parent's pid (not the child start() spawned).
            script = ("import json, os, time; path = os.environ['STEAD_READY_FILE']; "
                      "open(path + '.tmp', 'w').write(json.dumps({'pid': os.getppid(), 'port': 1, "
                      f"'admin_port': {self._admin_request}}})); os.replace(path + '.tmp', path); time.sleep(60)")
            return [sys.executable, "-c", script]

    server = Impostor(tmp_path / "data", tmp_path)
    try:
        with pytest.raises(RuntimeError, match="not our child"):
            server.start()
    finally:
        assert server.proc is not None
        server.proc.kill()
        server.proc.wait()


def test_start_takes_another_admin_port_when_its_port_was_taken(tmp_path: Path) -> None:
    server = _server(tmp_path)
    taken = server._admin_request
    with socket.socket() as squatter:  # another process got the port free_port handed on
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        server.start()
        try:
            assert server.admin_port not in (0, taken)
            assert server.admin("GET", "/health").status_code == 200
            assert server.post("/Cart/h/add", "x").json() == 1
            assert server.log().count("Address already in use") == 1
        finally:
            assert server.stop() in (0, -15)


def test_restart_reads_the_new_ports_from_the_new_process(tmp_path: Path) -> None:
    server = _server(tmp_path).start()
    try:
        first = (server.proc.pid if server.proc else 0, server.port)
        assert server.post("/Cart/r/add", "x").json() == 1
        server.kill()
        server.restart()
        assert server.proc is not None and (server.proc.pid, server.port) != first
        assert server.post("/Cart/r/add", "y").json() == 2
    finally:
        server.stop()


def test_test_apps_have_no_default_effects_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STEAD_TEST_EFFECTS", raising=False)
    with pytest.raises(RuntimeError, match="STEAD_TEST_EFFECTS is not set"):
        testapp.effect("x", "y")
    with pytest.raises(RuntimeError, match="STEAD_TEST_EFFECTS is not set"):
        testapp.EFFECTS  # noqa: B018 - the old constant is resolved when read
