"""The `stead` command line."""

from __future__ import annotations

import argparse
import sys

from runtime.cli_deployments import add_parsers, run_deployments, run_keys
from runtime.config import ServerConfig


def _size(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def _duration(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for suffix in ("ms", "s", "m", "h", "d"):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stead", description="Durable virtual objects and services.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve an application's handlers over HTTP")
    serve.add_argument("target", help="MODULE:ATTRIBUTE of the app, e.g. examples.cart:application")
    serve.add_argument("--data-dir", default=".stead-data", help="data directory (default .stead-data)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--admin-host", default="127.0.0.1", help="admin API address (default loopback)")
    serve.add_argument("--admin-port", type=int, default=9070,
                       help="admin API port (default 9070; 0 disables it)")
    serve.add_argument("--suspend-after", type=_duration, default=5.0,
                       help="suspend an invocation (drop its coroutine) after waiting this long, e.g. 5s")
    serve.add_argument("--durability", choices=["sync", "wal"], default="sync",
                       help="sync: fsync the WAL per group commit (default); wal: write the WAL, no fsync")
    serve.add_argument("--always-replay", action="store_true",
                       help="drop every invocation after each durable point and resume it by replay")
    serve.add_argument("--max-body", type=_size, default=32 * 1024 * 1024,
                       help="largest request body accepted, e.g. 32MiB (default)")
    serve.add_argument("--retention", type=_duration, default=24 * 3600.0,
                       help="how long completed invocations are kept, e.g. 24h (default)")
    serve.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    serve.add_argument("--signing-key", default="",
                       help="ed25519 private key (PEM) that signs every request to deployments "
                            "(see `stead keys generate`)")
    serve.add_argument("--max-deployment-message", type=_size, default=64 * 1024 * 1024,
                       help="largest protocol message accepted from a deployment, e.g. 64MiB (default); "
                            "a larger one fails the attempt")
    dep = sub.add_parser("deployment", help="run handlers as a deployment that a runtime calls over gRPC")
    dsub = dep.add_subparsers(dest="action", required=True)
    dserve = dsub.add_parser("serve", help="serve an app's handlers to registered runtimes",
                             add_help=False)
    dserve.add_argument("rest", nargs=argparse.REMAINDER)
    add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:2] == ["deployment", "serve"]:
        # Its own parser (pysdk/_deployment/server.py), options and --help included.
        from pysdk._deployment.server import main as deployment_main

        return deployment_main(argv[2:])
    args = build_parser().parse_args(argv)
    if args.command == "deployments":
        return run_deployments(args)
    if args.command == "keys":
        return run_keys(args)
    if args.command == "serve":
        from runtime import _core
        from runtime.server import StorageFailed, run

        config = ServerConfig(
            target=args.target, data_dir=args.data_dir, host=args.host, port=args.port,
            admin_host=args.admin_host, admin_port=args.admin_port, suspend_after_s=args.suspend_after,
            durability=args.durability, always_replay=args.always_replay,
            max_body_bytes=args.max_body, retention_s=args.retention, log_level=args.log_level,
            signing_key=args.signing_key, max_deployment_message_bytes=args.max_deployment_message,
        )
        try:
            run(config)
        except _core.SchemaVersionError as exc:
            print(f"stead: {exc}", file=sys.stderr)
            return 2
        except (StorageFailed, _core.StorageError) as exc:
            print(f"stead: storage failed, stopping: {exc}; restart to recover", file=sys.stderr)
            return 3
        except (ValueError, ImportError) as exc:
            print(f"stead: {exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
