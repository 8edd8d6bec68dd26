"""`stead deployments register|list|describe|remove`: the admin API's deployments from
the command line (like `restate deployments ...`), and `stead keys generate`."""

from __future__ import annotations

import os
from typing import Any

import click

from runtime.cli_admin import CliError, admin_options, api_path, client


@click.group()
@admin_options
def deployments() -> None:
    """register, list, describe and remove deployments"""


@deployments.command()
@click.argument("uri")
@admin_options
def register(uri: str) -> None:
    """discover a deployment and route its services to it

    URI is the deployment's address, e.g. http://127.0.0.1:9080.
    """
    doc = client().post("/deployments", {"uri": uri})
    click.echo(f"registered {doc['id']}")
    _print_services(doc["services"])


@deployments.command("list")
@admin_options
def list_() -> None:
    """the registered deployments"""
    doc = client().get("/deployments")
    if not doc["deployments"]:
        click.echo("no deployments registered")
    for d in doc["deployments"]:
        names = ", ".join(s["name"] for s in d["services"])
        click.echo(f"{d['id']}  {d['uri']}  {d['created_at']}  {names}")


@deployments.command()
@click.argument("id")
@admin_options
def describe(id: str) -> None:
    """one deployment: its services and handlers"""
    doc = client().get(api_path("deployments", id))
    click.echo(f"{doc['id']}  {doc['uri']}")
    click.echo(f"  created {doc['created_at']}, protocol {doc['min_protocol_version']}.."
               f"{doc['max_protocol_version']}, {doc['sdk_version'] or 'unknown sdk'}")
    _print_services(doc["services"])


@deployments.command()
@click.argument("id")
@click.option("--force", is_flag=True, help="even if invocations are pinned to it")
@admin_options
def remove(id: str, force: bool) -> None:
    """remove a deployment"""
    client().delete(api_path("deployments", id), {"force": "true"} if force else None)
    click.echo(f"removed {id}")


def _print_services(services: list[dict[str, Any]]) -> None:
    for s in services:
        click.echo(f"  {s['name']} ({s['ty']})")
        for h in s["handlers"]:
            click.echo(f"    {h['name']}" + (f" [{h['ty']}]" if h.get("ty") else ""))


@click.group()
def keys() -> None:
    """request-identity keys"""


@keys.command()
@click.argument("path")
@click.option("--public", metavar="PATH",
              help="also write the public key as PEM there, e.g. ~/.stead/pub.pem "
                   "(for `stead deployment serve --identity-key`)")
def generate(path: str, public: str | None) -> None:
    """write a new ed25519 signing key (PEM) and print its public key

    PATH is where to write the private key, e.g. ~/.stead/key.pem.
    """
    from runtime.identity import generate_key, write_public_pem

    path = os.path.expanduser(path)
    try:
        public_key = generate_key(path)
        click.echo(f"wrote {path}")
        if public:
            write_public_pem(path, os.path.expanduser(public))
            click.echo(f"wrote {public}")
    except (OSError, ValueError) as exc:
        raise CliError(str(exc)) from None
    click.echo(f"public key (give it to deployments: --identity-key or app(..., identity_keys=[...])):\n"
               f"{public_key}")
