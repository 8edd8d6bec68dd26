"""`stead services list|describe`: the services a runtime serves (in-process or in a
registered deployment), from the admin API's GET /services."""

from __future__ import annotations

from typing import Any

import click

from runtime.cli_admin import admin_options, api_path, cell, client, console, fields, json_option, print_json, table


@click.group()
@admin_options
def services() -> None:
    """the services a runtime serves, and their handlers"""


@services.command("list")
@json_option
@admin_options
def list_(as_json: bool) -> None:
    """every service: its type, handlers and where it runs"""
    doc = client().get("/services")
    if as_json:
        print_json(doc)
        return
    if not doc["services"]:
        click.echo("no services")
        return
    t = table("NAME", "TYPE", "HANDLERS", "DEPLOYMENT", "REVISION")
    for s in doc["services"]:
        t.add_row(cell(s["name"]), cell(s["ty"]), cell(", ".join(h["name"] for h in s["handlers"])),
                  cell(s.get("deployment_id") or "in-process"), cell(s.get("revision")))
    console().print(t)


@services.command()
@click.argument("name")
@json_option
@admin_options
def describe(name: str, as_json: bool) -> None:
    """one service: its settings and handlers"""
    doc = client().get(api_path("services", name))
    if as_json:
        print_json(doc)
        return
    show_service(doc)


def show_service(s: dict[str, Any]) -> None:
    out = console()
    settings = ["public", "idempotency_retention", "journal_retention", "workflow_completion_retention",
                "inactivity_timeout", "abort_timeout", "retry_policy"]
    out.print(fields([("service", s["name"]), ("type", s["ty"]),
                      ("deployment", s.get("deployment_id") or "in-process"), ("revision", s.get("revision")),
                      *[(name.replace("_", " "), s.get(name)) for name in settings],
                      ("documentation", s.get("documentation"))]))
    t = table("HANDLER", "TYPE", "INPUT", "OUTPUT", "PUBLIC", title="\nHandlers")
    for h in s["handlers"]:
        t.add_row(cell(h["name"]), cell(h.get("ty")), cell(h.get("input_description")),
                  cell(h.get("output_description")), cell(h.get("public")))
    out.print(t)
