"""`stead sql "SELECT ..."`: the admin API's SQL introspection (POST /query, Restate's
shape), the rows as a table or, with --json, the API's answer."""

from __future__ import annotations

import click

from runtime.cli_admin import admin_options, cell, client, console, json_option, print_json, table


@click.command(short_help="run a SQL query over the runtime's tables")
@click.argument("query")
@json_option
@admin_options
def sql(query: str, as_json: bool) -> None:
    """run a SQL query over the runtime's invocations, journals and state

    e.g. stead sql "SELECT id, status FROM sys_invocation WHERE status = 'suspended'"
    """
    doc = client().post("/query", {"query": query})
    if as_json:
        print_json(doc)
        return
    rows = doc["rows"]
    if not rows:
        click.echo("no rows")
        return
    columns = list(dict.fromkeys(name for row in rows for name in row))  # first-seen order
    t = table(*columns)
    for row in rows:
        t.add_row(*(cell(row.get(name)) for name in columns))
    console().print(t)
    click.echo(f"{len(rows)} row{'s' if len(rows) != 1 else ''}")
