"""`stead` command-line parsing, refusal of bad arguments, and exit codes (in-process
through `main`; the commands over the admin API run as subprocesses in
test_cli_admin_e2e.py, `stead inspect` in test_inspect.py)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any, Callable, Optional

import click
import pytest

from runtime import _core
from runtime.cli import cli, main
from runtime.config import ServerConfig
from tests.conftest import ROOT, free_port


def stead(*args: str, env: Optional[dict[str, str]] = None, input: Optional[str] = None,
          timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`stead ARGS...` as an operator runs it: a process of its own, output not a terminal,
    no admin URL, token or editor from the test's environment unless `env` gives one."""
    unset = ("STEAD_ADMIN_URL", "STEAD_ADMIN_TOKEN", "COLUMNS", "EDITOR", "VISUAL")
    base = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], check=False, cwd=ROOT, input=input,
                          capture_output=True, text=True, timeout=timeout,
                          env={**base, "PYTHONPATH": str(ROOT), **(env or {})})


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[ServerConfig]:
    """`stead serve` with runtime.server.run replaced: the configs it was given."""
    import runtime.server

    configs: list[ServerConfig] = []
    monkeypatch.setattr(runtime.server, "run", configs.append)
    monkeypatch.delenv("STEAD_ADMIN_TOKEN", raising=False)
    return configs


def test_serve_defaults_are_the_configs(served: list[ServerConfig]) -> None:
    assert main(["serve", "examples.cart:application"]) == 0
    assert served == [ServerConfig(target="examples.cart:application")]


def test_serve_parses_sizes_durations_and_modes(served: list[ServerConfig]) -> None:
    assert main(["serve", "examples.cart:application", "--max-body", "1KiB", "--retention", "2h",
                 "--durability", "wal", "--always-replay", "--suspend-after", "250ms",
                 "--max-deployment-message", "2m", "--data-dir", "/d", "--host", "0.0.0.0", "--port", "81",
                 "--admin-host", "::1", "--admin-port", "0", "--log-level", "debug",
                 "--signing-key", "k.pem"]) == 0
    [config] = served
    assert dataclasses.asdict(config) == dataclasses.asdict(ServerConfig(
        target="examples.cart:application", max_body_bytes=1024, retention_s=7200.0, durability="wal",
        always_replay=True, suspend_after_s=0.25, max_deployment_message_bytes=2 * 1024 * 1024, data_dir="/d",
        host="0.0.0.0", port=81, admin_host="::1", admin_port=0, log_level="debug", signing_key="k.pem"))


def test_serve_operations_options(served: list[ServerConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["serve", "x:y", "--log-format", "json", "--admin-token", "s3cret",
                 "--otlp-endpoint", "http://127.0.0.1:4318"]) == 0
    assert (served[-1].log_format, served[-1].admin_token, served[-1].otlp_endpoint) == (
        "json", "s3cret", "http://127.0.0.1:4318")
    monkeypatch.setenv("STEAD_ADMIN_TOKEN", "from-env")
    assert main(["serve", "x:y"]) == 0
    assert served[-1].admin_token == "from-env"
    assert (served[-1].log_format, served[-1].otlp_endpoint) == ("text", "")
    assert main(["serve", "x:y", "--admin-token", "flag-wins"]) == 0
    assert served[-1].admin_token == "flag-wins"


@pytest.mark.parametrize("args, words", [
    (["--durability", "none"], ["--durability", "'none' is not one of"]),
    (["--log-format", "xml"], ["--log-format"]),
    (["--log-level", "loud"], ["--log-level"]),
    (["--max-body", "lots"], ["--max-body", "not a size"]),
    (["--retention", "forever"], ["--retention", "not a duration"]),
    (["--port", "http"], ["--port"]),
    (["--no-such-option"], ["No such option"]),
    ([], []),
])
def test_bad_serve_arguments_are_usage_errors(served: list[ServerConfig], capsys: pytest.CaptureFixture[str],
                                              args: list[str], words: list[str]) -> None:
    target = [] if not args else ["x:y"]  # no args at all: the missing TARGET
    assert main(["serve", *target, *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: stead serve") and "Traceback" not in err
    assert all(w in err for w in words), err
    assert served == []


def test_bad_target_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert main(["serve", "no_colon_here", "--data-dir", str(tmp_path / "d")]) == 2
    assert "MODULE:ATTRIBUTE" in capsys.readouterr().err
    assert main(["serve", "examples.cart:nothing", "--data-dir", str(tmp_path / "d")]) == 2
    assert "no attribute 'nothing'" in capsys.readouterr().err


@pytest.mark.parametrize("error, code, words", [
    (lambda: _core.SchemaVersionError("schema version 9, expected 1"), 2, ["schema version 9"]),
    (lambda: _core.StorageError("disk gone"), 3, ["storage failed", "disk gone", "restart to recover"]),
    (lambda: ImportError("No module named 'nope'"), 2, ["No module named 'nope'"]),
])
def test_serve_failures_exit_codes(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                   error: Callable[[], Exception], code: int, words: list[str]) -> None:
    import runtime.server

    def run(config: ServerConfig) -> None:
        raise error()

    monkeypatch.setattr(runtime.server, "run", run)
    assert main(["serve", "x:y"]) == code
    err = capsys.readouterr().err
    assert err.startswith("stead: ") and all(w in err for w in words), err


def test_deployment_serve_has_its_own_options_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["deployment", "serve", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "MODULE:ATTR" in out and "--identity-key" in out and "--ready-file" in out
    with pytest.raises(SystemExit) as exit_:
        main(["deployment", "serve"])  # no app
    assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:
        main(["deployment", "serve", "x:y", "--no-such-option"])  # its parser, not click, refuses
    assert exit_.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err


def _commands(group: click.Group, prefix: list[str]) -> list[list[str]]:
    out = [prefix]
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            out += _commands(command, prefix + [name])
        elif prefix + [name] != ["deployment", "serve"]:  # its own parser: above
            out.append(prefix + [name])
    return out


COMMANDS = _commands(cli, [])


def test_the_command_tree() -> None:
    """The operator's commands (a rename or a lost command fails here)."""
    assert sorted(" ".join(c) for c in COMMANDS) == sorted([
        "", "serve", "deployment", "deployments", "deployments register", "deployments list",
        "deployments describe", "deployments remove", "keys", "keys generate", "services", "services list",
        "services describe", "invocations", "invocations list", "invocations describe", "invocations cancel",
        "invocations kill", "invocations purge", "invocations pause", "invocations resume", "state",
        "state get", "state set", "state clear", "state edit", "sql", "inspect",
        "replay", "invocations export",
        "schedules", "schedules add", "schedules list", "schedules describe", "schedules update",
        "schedules pause", "schedules resume", "schedules remove", "limits"])


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "stead")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*command, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: stead {' '.join(command)}".rstrip()), out
    assert "--help" in out


def _admin_url_used(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Which admin URL a command talked to: the one its not-running error names."""
    assert main(list(args)) == 1
    err = capsys.readouterr().err
    assert err.startswith("stead: the admin API at ") and "does not answer" in err, err
    return err.removeprefix("stead: the admin API at ").split(" ", 1)[0]


def test_admin_url_from_the_innermost_option_then_env_then_default(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = (f"http://127.0.0.1:{free_port()}" for _ in range(3))
    monkeypatch.delenv("STEAD_ADMIN_URL", raising=False)
    assert _admin_url_used(capsys, "invocations", "--admin-url", a, "list") == a
    assert _admin_url_used(capsys, "invocations", "--admin-url", a, "list", "--admin-url", b) == b
    assert _admin_url_used(capsys, "deployments", "--admin-url", a, "list") == a
    assert _admin_url_used(capsys, "sql", "--admin-url", f"{b}/", "SELECT 1") == b  # a trailing / is dropped
    monkeypatch.setenv("STEAD_ADMIN_URL", c)
    assert _admin_url_used(capsys, "state", "get", "Cart", "k") == c
    assert _admin_url_used(capsys, "services", "list", "--admin-url", a) == a
    monkeypatch.delenv("STEAD_ADMIN_URL")
    # The default is Restate's admin port; whether something answers there is not ours
    # to know, so only the client's choice is checked.
    from runtime import cli_admin

    urls: list[Any] = []
    def call(self: cli_admin.AdminClient, *args: Any, **kwargs: Any) -> Any:
        urls.append(self.url)
        return {"rows": []}

    monkeypatch.setattr(cli_admin.AdminClient, "call", call)
    assert main(["sql", "SELECT 1"]) == 0
    assert urls == ["http://127.0.0.1:9070"]


@pytest.mark.parametrize("url", ["localhost:9070", "http://", "ftp://127.0.0.1:9070"])
def test_an_admin_url_that_is_not_one(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["services", "list", "--admin-url", url]) == 1
    assert capsys.readouterr().err == (f"stead: the admin URL {url!r} is not a URL like http://127.0.0.1:9070 "
                                       "(--admin-url or STEAD_ADMIN_URL)\n")


def test_an_answer_that_is_not_the_admin_apis(capsys: pytest.CaptureFixture[str]) -> None:
    """Something else answers at the admin URL: what it said, never a traceback."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = (200, b"<html>hello</html>") if self.path == "/services" else (502, b"Bad Gateway")
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        assert main(["services", "list", "--admin-url", url]) == 1
        assert capsys.readouterr().err == (f"stead: the admin API at {url} answered GET /services with something "
                                           "that is not JSON: '<html>hello</html>'\n")
        assert main(["invocations", "list", "--admin-url", url]) == 1
        assert capsys.readouterr().err == "stead: Bad Gateway (HTTP 502)\n"
    finally:
        httpd.shutdown()
        httpd.server_close()
