"""`stead schedules add|list|describe|update|pause|resume|remove` over the admin API
(runtime/admin_schedules.py)."""

from __future__ import annotations

import json
from typing import Any, Optional

import click

from runtime.cli_admin import CliError, admin_options, api_path, cell, client, console, fields, json_option, print_json, table

CATCHUP = ["skip", "one", "latest", "all"]
OVERLAP = ["skip", "buffer-one", "allow-all"]


@click.group()
@admin_options
def schedules() -> None:
    """cron schedules: recurring invocations of a handler"""


def _target(target: str, key: Optional[str]) -> dict[str, Any]:
    parts = target.split("/")
    if len(parts) == 3 and all(parts) and key is None:
        return {"service": parts[0], "key": parts[1], "handler": parts[2]}
    if len(parts) == 2 and all(parts):
        return {"service": parts[0], "handler": parts[1], "key": key}
    raise click.BadParameter(f"expected Service/handler or Object/key/handler, got {target!r}", param_hint="TARGET")


def _input(text: Optional[str]) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from None


def _definition_options(f: Any) -> Any:
    for option in reversed([
        click.option("--cron", metavar="EXPR", help="5-field cron expression, e.g. \"0 3 * * MON-FRI\", or @daily"),
        click.option("--every", metavar="DURATION", help="fixed interval, e.g. 30s, 5m, 1h (epoch-anchored)"),
        click.option("--timezone", "--tz", "timezone", metavar="ZONE", help="IANA time zone of --cron (default UTC)"),
        click.option("--input", "input_", metavar="JSON", help="the JSON input of each firing"),
        click.option("--catchup", type=click.Choice(CATCHUP, case_sensitive=False),
                     help="missed firings (server down): skip, one (the latest), all (default one)"),
        click.option("--overlap", type=click.Choice(OVERLAP, case_sensitive=False),
                     help="a firing while the previous still runs: skip (default), buffer-one, allow-all"),
        click.option("--grace", metavar="DURATION", help="a firing this late still runs on time (default 10s)"),
    ]):
        f = option(f)
    return f


def _fields(cron: Optional[str], every: Optional[str], timezone: Optional[str], input_: Optional[str],
            catchup: Optional[str], overlap: Optional[str], grace: Optional[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {"cron": cron, "every": every, "timezone": timezone, "catchup": catchup,
                           "overlap": overlap, "grace": grace}
    doc = {k: v for k, v in doc.items() if v is not None}
    if input_ is not None:
        doc["input"] = _input(input_)
    return doc


@schedules.command()
@click.argument("id")
@click.argument("target")
@_definition_options
@click.option("--key", help="the object key each firing invokes (or give TARGET as Object/key/handler)")
@click.option("--paused", is_flag=True, help="create it paused")
@json_option
@admin_options
def add(id: str, target: str, cron: Optional[str], every: Optional[str], timezone: Optional[str],
        input_: Optional[str], catchup: Optional[str], overlap: Optional[str], grace: Optional[str],
        key: Optional[str], paused: bool, as_json: bool) -> None:
    """create a schedule ID that invokes TARGET (Service/handler or Object/key/handler)

    \b
    stead schedules add nightly Reports/run --cron "0 3 * * *" --tz Europe/Paris
    stead schedules add sync Accounts/acme/sync --every 5m --overlap buffer-one
    """
    if (cron is None) == (every is None):
        raise CliError("give exactly one of --cron and --every")
    doc = {"id": id, **_target(target, key), **_fields(cron, every, timezone, input_, catchup, overlap, grace),
           "paused": paused}
    done = client().post("/schedules", {k: v for k, v in doc.items() if v is not None})
    _show_change(done, as_json, "created")


@schedules.command("list")
@json_option
@admin_options
def list_(as_json: bool) -> None:
    """the schedules, with their next fire times"""
    doc = client().get("/schedules")
    if as_json:
        print_json(doc)
        return
    t = table("ID", "TARGET", "WHEN", "NEXT", "STATE", "FIRED", "LAST INVOCATION")
    for s in doc["schedules"]:
        t.add_row(cell(s["id"]), cell(s["target"]), cell(_when(s)), cell(s.get("next_fire_at")),
                  cell(_state(s)), cell(str(s["fired"])), cell(s.get("last_invocation_id")))
    console().print(t)
    count = len(doc["schedules"])
    click.echo(f"{count} schedule{'s' if count != 1 else ''}")


@schedules.command()
@click.argument("id")
@json_option
@admin_options
def describe(id: str, as_json: bool) -> None:
    """one schedule: its definition, its next fire times, its last firing and counters"""
    doc = client().get(api_path("schedules", id))
    if as_json:
        print_json(doc)
        return
    show_schedule(doc)


@schedules.command()
@click.argument("id")
@_definition_options
@json_option
@admin_options
def update(id: str, cron: Optional[str], every: Optional[str], timezone: Optional[str], input_: Optional[str],
           catchup: Optional[str], overlap: Optional[str], grace: Optional[str], as_json: bool) -> None:
    """change a schedule (a new --cron or --every starts it again from now)"""
    doc = _fields(cron, every, timezone, input_, catchup, overlap, grace)
    if not doc:
        raise CliError("nothing to change: give --cron, --every, --timezone, --input, --catchup, --overlap or --grace")
    _show_change(client().call("PATCH", api_path("schedules", id), doc), as_json, "updated")


def _pause(paused: bool, help: str) -> click.Command:
    @click.command("pause" if paused else "resume", help=help)
    @click.argument("id")
    @json_option
    @admin_options
    def command(id: str, as_json: bool) -> None:
        doc = client().call("PATCH", api_path("schedules", id), {"paused": paused})
        _show_change(doc, as_json, "paused" if paused else "resumed")

    return command


schedules.add_command(_pause(True, "pause a schedule: nothing fires until it is resumed"))
schedules.add_command(_pause(False, "resume a paused schedule from now (what was due while paused is not run)"))


@schedules.command()
@click.argument("id")
@admin_options
def remove(id: str) -> None:
    """delete a schedule (a firing already started goes on)"""
    client().delete(api_path("schedules", id))
    click.echo(f"removed {id}")


def _show_change(doc: dict[str, Any], as_json: bool, what: str) -> None:
    if as_json:
        print_json(doc)
        return
    nxt = f", next at {doc['next_fire_at']}" if doc.get("next_fire_at") else ""
    click.echo(f"{doc['id']}: {what}{nxt}")


def _when(s: dict[str, Any]) -> str:
    if s.get("cron"):
        return f"cron {s['cron']} ({s.get('timezone') or 'UTC'})"
    return f"every {s['every']}"


def _state(s: dict[str, Any]) -> str:
    if s["paused"]:
        return "paused"
    if s.get("running_invocation_id"):
        return "running"
    return "active"


def show_schedule(s: dict[str, Any]) -> None:
    rows: list[tuple[str, Any]] = [
        ("schedule", s["id"]), ("target", s["target"]), ("when", _when(s)), ("state", _state(s)),
        ("origin", s["origin"]), ("input", s.get("input")),
        ("catch-up", s["catchup"]), ("overlap", s["overlap"]), ("grace", s["grace"]),
        ("last fired", s.get("last_fire_at")), ("last invocation", s.get("last_invocation_id")),
        ("fired", str(s["fired"])),
        ("missed", f"{s['missed']} skipped, {s['caught_up']} run late"),
        ("overlapped", str(s["overlapped"])),
    ]
    if s.get("buffered_fire_at"):
        rows.append(("buffered", s["buffered_fire_at"]))
    if s.get("failed") or s.get("last_error"):
        rows.append(("failed", f"{s['failed']}: {s.get('last_error') or ''}"))
    rows += [("created", s["created_at"]), ("updated", s["updated_at"])]
    out = console()
    out.print(fields(rows))
    if s.get("upcoming"):
        click.echo("next fire times:")
        for t in s["upcoming"]:
            click.echo(f"  {t}")
