"""The `stead` command line (click): `stead serve` here, the other commands in the
`cli_*` modules by subject, the offline reader in `inspect`.

`main(argv)` returns the exit code instead of exiting, so that tests can call it:
0 done, 1 a command failed (`stead: <why>` on stderr), 2 bad usage or a server that
cannot start with what it was given, 3 a server stopped by a storage failure (a failed
write, a full disk: `stead: storage failed, stopping: <cause>; ...`) or refusing a
damaged data directory (`stead: data directory ... is damaged: <what>; ...`).
"""

from __future__ import annotations

import sys
from typing import Any, Optional

import click

from runtime.cli_deployments import deployments, keys
from runtime.cli_inspect import inspect_command
from runtime.cli_invocations import invocations
from runtime.cli_query import sql
from runtime.cli_replay import replay_command
from runtime.cli_limits import limits
from runtime.cli_schedules import schedules
from runtime.cli_services import services
from runtime.cli_state import state
from runtime.config import ServerConfig


class Size(click.ParamType):
    """A byte count: 1024, 64k, 32MiB, 1GB."""

    name = "size"
    _UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().removesuffix("b").removesuffix("i")
        try:
            if text and text[-1] in self._UNITS:
                return int(float(text[:-1]) * self._UNITS[text[-1]])
            return int(text)
        except ValueError:
            self.fail(f"{value!r} is not a size like 1024, 64KiB or 32MiB", param, ctx)


class Duration(click.ParamType):
    """Seconds: 5, 1.5, 250ms, 5s, 10m, 24h, 7d."""

    name = "duration"
    _UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        text = str(value).strip()
        try:
            for suffix in ("ms", "s", "m", "h", "d"):
                if text.endswith(suffix):
                    return float(text[: -len(suffix)]) * self._UNITS[suffix]
            return float(text)
        except ValueError:
            self.fail(f"{value!r} is not a duration like 250ms, 5s, 10m or 24h", param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Durable virtual objects and services."""


@cli.command()
@click.argument("target")
@click.option("--data-dir", default=".stead-data", show_default=True, help="data directory")
@click.option("--host", default="127.0.0.1", show_default=True, help="ingress address")
@click.option("--port", type=int, default=8080, show_default=True, help="ingress port")
@click.option("--admin-host", default="127.0.0.1", help="admin API address (default loopback)")
@click.option("--admin-port", type=int, default=9070, help="admin API port (default 9070; 0 disables it)")
@click.option("--admin-token", metavar="TOKEN", envvar="STEAD_ADMIN_TOKEN", default="",
              help="require `Authorization: Bearer TOKEN` on mutating admin requests (env STEAD_ADMIN_TOKEN)")
@click.option("--suspend-after", type=Duration(), default=5.0,
              help="suspend an invocation (drop its coroutine) after waiting this long, e.g. 5s")
@click.option("--durability", type=click.Choice(["sync", "wal"]), default="sync",
              help="sync: fsync the WAL per group commit (default); wal: write the WAL, no fsync")
@click.option("--always-replay", is_flag=True,
              help="drop every invocation after each durable point and resume it by replay")
@click.option("--max-body", type=Size(), default=32 * 1024 * 1024,
              help="largest request body accepted, e.g. 32MiB (default)")
@click.option("--retention", type=Duration(), default=24 * 3600.0,
              help="how long completed invocations are kept, e.g. 24h (default)")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
              show_default=True)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per log line")
@click.option("--otlp-endpoint", metavar="URL", default="",
              help="export traces over OTLP/HTTP there, e.g. http://127.0.0.1:4318 (default off)")
@click.option("--signing-key", metavar="PEM", default="",
              help="ed25519 private key (PEM) that signs every request to deployments (see `stead keys generate`)")
@click.option("--max-deployment-message", type=Size(), default=64 * 1024 * 1024,
              help="largest protocol message accepted from a deployment, e.g. 64MiB (default); "
                   "a larger one fails the attempt")
@click.option("--state-cache-keys", type=click.IntRange(min=0), default=ServerConfig.state_cache_keys,
              show_default=True, help="keys whose state is kept in memory between invocations (least recently used go first)")
@click.option("--state-cache-size", type=Size(), default=ServerConfig.state_cache_bytes,
              help="bytes of state values kept in memory, e.g. 32MiB (default)")
def serve(target: str, data_dir: str, host: str, port: int, admin_host: str, admin_port: int,
          admin_token: str, suspend_after: float, durability: str, always_replay: bool, max_body: int,
          retention: float, log_level: str, log_format: str, otlp_endpoint: str, signing_key: str,
          max_deployment_message: int, state_cache_keys: int, state_cache_size: int) -> None:
    """serve an application's handlers over HTTP

    TARGET is MODULE:ATTRIBUTE of the app, e.g. examples.cart:application.
    """
    from runtime import _core
    from runtime.server import StorageFailed, run

    config = ServerConfig(
        target=target, data_dir=data_dir, host=host, port=port, admin_host=admin_host, admin_port=admin_port,
        suspend_after_s=suspend_after, durability=durability, always_replay=always_replay,
        max_body_bytes=max_body, retention_s=retention, log_level=log_level, signing_key=signing_key,
        max_deployment_message_bytes=max_deployment_message, log_format=log_format, admin_token=admin_token,
        otlp_endpoint=otlp_endpoint, state_cache_keys=state_cache_keys, state_cache_bytes=state_cache_size,
    )
    ctx = click.get_current_context()
    try:
        run(config)
    except _core.SchemaVersionError as exc:
        click.echo(f"stead: {exc}", err=True)
        ctx.exit(2)
    except (StorageFailed, _core.StorageError) as exc:
        click.echo(_storage_failed(exc), err=True)
        ctx.exit(3)
    except (ValueError, ImportError) as exc:
        click.echo(f"stead: {exc}", err=True)
        ctx.exit(2)


def _storage_failed(exc: BaseException) -> str:
    """The last line of a server stopped by its storage: what failed, in RocksDB's words
    (which name the file), and what to do."""
    from runtime.ingress import storage_cause

    cause = storage_cause(exc)
    if cause.startswith("data directory ") and " is damaged: " in cause:
        # Refused at open (core_rs/src/db.rs): starting again will not help.
        return f"stead: {cause}"
    if "No space left on device" in cause:
        return (f"stead: storage failed, stopping: {cause}; free space on the data directory's "
                "filesystem, then restart to recover")
    return f"stead: storage failed, stopping: {cause}; restart to recover"


@cli.group()
def deployment() -> None:
    """run handlers as a deployment that a runtime calls over gRPC"""


# Everything after `serve`, --help included, belongs to the deployment's own parser
# (pysdk/_deployment/server.py: the SDK side cannot depend on click).
@deployment.command("serve", add_help_option=False,
                    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def deployment_serve(args: tuple[str, ...]) -> None:
    """serve an app's handlers to registered runtimes (see `stead deployment serve --help`)"""
    from pysdk._deployment.server import main as deployment_main

    click.get_current_context().exit(deployment_main(list(args)))


for command in (deployments, keys, services, invocations, state, sql, inspect_command, replay_command):
    cli.add_command(command)
cli.add_command(schedules)  # runtime/cli_schedules.py
cli.add_command(limits)  # runtime/cli_limits.py


def main(argv: Optional[list[str]] = None) -> int:
    try:
        code = cli.main(args=sys.argv[1:] if argv is None else argv, prog_name="stead", standalone_mode=False)
    except click.ClickException as exc:  # usage errors exit 2, CliError 1
        exc.show()
        return exc.exit_code
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
