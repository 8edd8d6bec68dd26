"""`stead invocations list|describe|cancel|kill|purge` over the admin API.

The renderers (`invocations_table`, `show_invocation`) take the API's JSON shapes;
`stead inspect` builds the same shapes from a data directory and shows them with them.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from runtime.cli_admin import (
    admin_options, api_path, cell, client, compact, console, fields, json_option, print_json, table)
from runtime.cli_replay import export_command

STATUSES = ["pending", "scheduled", "ready", "running", "paused", "backing-off", "suspended", "completed"]


@click.group()
@admin_options
def invocations() -> None:
    """list, describe, cancel, kill and purge invocations"""


@invocations.command("list")
@click.option("--service", help="only invocations of this service")
@click.option("--handler", help="only invocations of this handler")
@click.option("--key", help="only invocations of this object or workflow key")
@click.option("--status", type=click.Choice(STATUSES), multiple=True, help="only these statuses (repeatable)")
@click.option("--created-after", metavar="TIME", help="RFC 3339 time or ms since the epoch")
@click.option("--created-before", metavar="TIME", help="RFC 3339 time or ms since the epoch")
@click.option("--limit", type=click.IntRange(1, 1000), help="at most this many (the API's default: 100)")
@click.option("--cursor", help="the next page: the cursor a previous list printed")
@json_option
@admin_options
def list_(service: Optional[str], handler: Optional[str], key: Optional[str], status: tuple[str, ...],
          created_after: Optional[str], created_before: Optional[str], limit: Optional[int],
          cursor: Optional[str], as_json: bool) -> None:
    """invocations, ordered by id (that is, by creation time)"""
    doc = client().get("/invocations", {
        "service": service, "handler": handler, "key": key, "status": list(status),
        "created_after": created_after, "created_before": created_before, "limit": limit, "cursor": cursor})
    if as_json:
        print_json(doc)
        return
    console().print(invocations_table(doc["invocations"]))
    count = len(doc["invocations"])
    click.echo(f"{count} invocation{'s' if count != 1 else ''}")
    if doc.get("next_cursor"):
        click.echo(f"more: --cursor {doc['next_cursor']}")


@invocations.command()
@click.argument("id")
@json_option
@admin_options
def describe(id: str, as_json: bool) -> None:
    """one invocation: its status, input, result and journal"""
    doc = client().get(api_path("invocations", id))
    if as_json:
        print_json(doc)
        return
    show_invocation(doc)


def _signal(action: str, help: str) -> click.Command:
    @click.command(action, help=help)
    @click.argument("id")
    @json_option
    @admin_options
    def command(id: str, as_json: bool) -> None:
        doc = client().patch(api_path("invocations", id, action))
        if as_json:
            print_json(doc)
        else:
            click.echo(f"{doc.get('invocationId', id)}: {doc.get('status', action)}")

    return command


for _action, _help in [
    ("cancel", "cancel an invocation: the handler sees a TerminalError at its next await and its "
               "compensations run; its callees are cancelled too"),
    ("kill", "stop an invocation at once, with no compensation; its callees are killed too"),
    ("purge", "remove a completed invocation (its record and journal) before its retention ends"),
    ("pause", "pause a started invocation: it runs nothing (and keeps its key) until resumed"),
    ("resume", "resume a paused invocation (it replays from its journal with fresh attempts), or "
               "replay a suspended one now"),
]:
    invocations.add_command(_signal(_action, _help))
invocations.add_command(export_command)  # runtime/cli_replay.py


# ---- renderers of the API's shapes


def invocations_table(rows: list[dict[str, Any]]) -> Any:
    t = table("ID", "TARGET", "STATUS", "CREATED", "JOURNAL")
    for inv in rows:
        t.add_row(cell(inv["id"]), cell(inv["target"]), cell(_status(inv)), cell(inv.get("created_at")),
                  cell(str(inv.get("journal_size", ""))))
    return t


def _status(inv: dict[str, Any]) -> str:
    status = str(inv["status"])
    if status == "completed" and inv.get("completion_result"):
        status += f" ({inv.get('completion_failure') or inv['completion_result']})"
    elif inv.get("cancel_requested"):
        status += " (cancel requested)"
    return status


def show_invocation(inv: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("invocation", inv["id"]), ("target", inv["target"]), ("status", _status(inv)),
        ("created", inv.get("created_at")), ("modified", inv.get("modified_at")),
    ]
    optional = [("completed", "completed_at"), ("next retry", "next_retry_at"), ("idempotency key", "idempotency_key"),
                ("deployment", "pinned_deployment_id"), ("invoked by", "invoked_by_id")]
    rows += [(label, inv[name]) for label, name in optional if inv.get(name)]
    if inv.get("retry_count"):
        rows.append(("retries", inv["retry_count"]))
    if "input" in inv:
        rows.append(("input", _value(inv["input"])))
    if inv.get("output") is not None:
        rows.append(("output", _value(inv["output"])))
    if inv.get("failure"):
        rows.append(("failure", _failure(inv["failure"])))
    out = console()
    out.print(fields(rows))
    journal = inv.get("journal") or []
    if not journal:
        click.echo("\nJournal: empty")
        return
    out.print(journal_table(journal, title=f"\nJournal ({len(journal)} entr{'y' if len(journal) == 1 else 'ies'})"))


def journal_table(entries: list[dict[str, Any]], title: Optional[str] = None) -> Any:
    t = table("#", "KIND", "NAME", "VALUE", "RESULT", title=title)
    for e in entries:
        t.add_row(cell(str(e["index"])), cell(e["kind"]), cell(e.get("name")), cell(_entry_value(e)),
                  cell(_entry_result(e)))
    return t


def _entry_value(e: dict[str, Any]) -> Optional[str]:
    if e.get("invoked_target") or e.get("invoked_id"):  # the NAME column has the target already
        target = e.get("invoked_target")
        callee = e.get("invoked_id") or "?"
        return f"-> {callee}" if target in (None, e.get("name")) else f"{target} -> {callee}"
    if e.get("wakeup_at"):
        return f"until {e['wakeup_at']}"
    return None if e.get("value") is None else _value(e["value"])


def _entry_result(e: dict[str, Any]) -> Optional[str]:
    if e.get("failure"):
        return _failure(e["failure"])
    completion = e.get("completion")
    if completion:
        if completion.get("failure"):
            return _failure(completion["failure"])
        return "done" if completion.get("value") is None else _value(completion["value"])
    if e.get("completed") is False:
        return "pending"
    return None


def _value(value: Any) -> str:
    if isinstance(value, dict) and set(value) == {"base64"}:  # bytes that are not JSON
        size = len(value["base64"]) * 3 // 4 - value["base64"].count("=")
        return f"<{size} bytes, not JSON>" if size else "<empty>"
    return compact(value)


def _failure(failure: dict[str, Any]) -> str:
    return f"failed [{failure.get('code')}] {failure.get('message')}"
