"""`stead limits` over the admin API (runtime/admin_limits.py): each handler under a
concurrency or rate limit, its limits, and how many of its invocations run and wait."""

from __future__ import annotations

from typing import Any, Optional

import click

from runtime.cli_admin import admin_options, cell, client, console, json_option, print_json, table


def _limits(doc: Optional[dict[str, Any]]) -> str:
    if not doc:
        return ""
    parts = []
    if doc.get("concurrency") is not None:
        parts.append(f"{doc['concurrency']} at once")
    if doc.get("concurrency_per_limit_key") is not None:
        parts.append(f"{doc['concurrency_per_limit_key']} per limit key")
    rate = doc.get("rate_limit")
    if rate:
        parts.append(f"{rate['starts']} starts per {rate['per_ms'] / 1000:g}s")
    return ", ".join(parts)


@click.command()
@json_option
@admin_options
def limits(as_json: bool) -> None:
    """concurrency and rate limits: running and queued invocations per handler and limit key"""
    doc = client().get("/limits")
    if as_json:
        print_json(doc)
        return
    t = table("HANDLER", "SERVICE LIMITS", "HANDLER LIMITS", "RUNNING", "QUEUED")
    for item in doc["limits"]:
        t.add_row(cell(f"{item['service']}/{item['handler']}"), cell(_limits(item["service_limits"])),
                  cell(_limits(item["handler_limits"])), cell(str(item["running"])), cell(str(item["queued"])))
        for key in item["limit_keys"]:
            if key["limit_key"] is not None:
                t.add_row(cell(f"  limit key {key['limit_key']}"), cell(None), cell(None),
                          cell(str(key["running"])), cell(str(key["queued"])))
    console().print(t)
    count = len(doc["limits"])
    click.echo(f"{count} limited handler{'s' if count != 1 else ''}")
