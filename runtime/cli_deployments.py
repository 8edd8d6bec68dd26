"""`stead deployments register|list|describe|remove`: the admin API's deployments from
the command line (like `restate deployments ...`), and `stead keys generate`."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any, Optional

DEFAULT_ADMIN = "http://127.0.0.1:9070"


def add_parsers(sub: Any) -> None:
    deps = sub.add_parser("deployments", help="register, list, describe and remove deployments")
    deps.add_argument("--admin-url", default=DEFAULT_ADMIN, help=f"the runtime's admin API (default {DEFAULT_ADMIN})")
    dsub = deps.add_subparsers(dest="action", required=True)
    reg = dsub.add_parser("register", help="discover a deployment and route its services to it")
    reg.add_argument("uri", help="the deployment's address, e.g. http://127.0.0.1:9080")
    dsub.add_parser("list", help="the registered deployments")
    desc = dsub.add_parser("describe", help="one deployment: its services and handlers")
    desc.add_argument("id")
    rm = dsub.add_parser("remove", help="remove a deployment")
    rm.add_argument("id")
    rm.add_argument("--force", action="store_true", help="even if invocations are pinned to it")

    keys = sub.add_parser("keys", help="request-identity keys")
    ksub = keys.add_subparsers(dest="action", required=True)
    gen = ksub.add_parser("generate", help="write a new ed25519 signing key (PEM) and print its public key")
    gen.add_argument("path", help="where to write the private key, e.g. ~/.stead/key.pem")
    gen.add_argument("--public", help="also write the public key as PEM there, e.g. ~/.stead/pub.pem "
                                      "(for `stead deployment serve --identity-key`)")


def run_deployments(args: argparse.Namespace) -> int:
    base = args.admin_url.rstrip("/")
    try:
        if args.action == "register":
            status, doc = _request("POST", f"{base}/deployments", {"uri": args.uri})
            if status != 201:
                return _fail(doc)
            print(f"registered {doc['id']}")
            _print_services(doc["services"])
        elif args.action == "list":
            status, doc = _request("GET", f"{base}/deployments")
            if status != 200:
                return _fail(doc)
            if not doc["deployments"]:
                print("no deployments registered")
            for d in doc["deployments"]:
                names = ", ".join(s["name"] for s in d["services"])
                print(f"{d['id']}  {d['uri']}  {d['created_at']}  {names}")
        elif args.action == "describe":
            status, doc = _request("GET", f"{base}/deployments/{args.id}")
            if status != 200:
                return _fail(doc)
            print(f"{doc['id']}  {doc['uri']}")
            print(f"  created {doc['created_at']}, protocol {doc['min_protocol_version']}..{doc['max_protocol_version']}"
                  f", {doc['sdk_version'] or 'unknown sdk'}")
            _print_services(doc["services"])
        elif args.action == "remove":
            query = "?force=true" if args.force else ""
            status, doc = _request("DELETE", f"{base}/deployments/{args.id}{query}")
            if status != 202:
                return _fail(doc)
            print(f"removed {args.id}")
    except urllib.error.URLError as exc:
        print(f"stead: the admin API at {base} does not answer: {exc.reason}", file=sys.stderr)
        return 1
    return 0


def run_keys(args: argparse.Namespace) -> int:
    import os

    from runtime.identity import generate_key, write_public_pem

    path = os.path.expanduser(args.path)
    try:
        public = generate_key(path)
        print(f"wrote {path}")
        if args.public:
            write_public_pem(path, os.path.expanduser(args.public))
            print(f"wrote {args.public}")
    except (OSError, ValueError) as exc:
        print(f"stead: {exc}", file=sys.stderr)
        return 1
    print(f"public key (give it to deployments: --identity-key or app(..., identity_keys=[...])):\n{public}")
    return 0


def _print_services(services: list[dict[str, Any]]) -> None:
    for s in services:
        print(f"  {s['name']} ({s['ty']})")
        for h in s["handlers"]:
            print(f"    {h['name']}" + (f" [{h['ty']}]" if h.get("ty") else ""))


def _fail(doc: Any) -> int:
    message = doc.get("message") if isinstance(doc, dict) else None
    print(f"stead: {message or doc}", file=sys.stderr)
    return 1


def _request(method: str, url: str, body: Optional[dict[str, Any]] = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode("utf-8", "replace")
