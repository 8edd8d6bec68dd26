"""`stead inspect DATA_DIR`: a data directory read offline (runtime/inspect.py), shown
like the admin API's answers (same tables, same --json shapes)."""

from __future__ import annotations

from typing import Optional

import click

from runtime.cli_admin import CliError, console, json_option, print_json


@click.command("inspect", short_help="read a data directory offline")
@click.argument("data_dir", type=click.Path(file_okay=False))
@click.option("--invocation", "inv_id", metavar="ID", help="one invocation: its record and journal")
@click.option("--service", help="with --key: the state of that object or workflow key")
@click.option("--key", help="with --service: the state of that key")
@click.option("--limit", type=click.IntRange(min=1), help="list at most this many invocations")
@json_option
def inspect_command(data_dir: str, inv_id: Optional[str], service: Optional[str], key: Optional[str],
                    limit: Optional[int], as_json: bool) -> None:
    """read a data directory offline: invocations, a journal, a key's state

    Works on the directory of a stopped or crashed server (and beside a running one:
    the directory is opened read-only). Without options: every invocation.
    """
    from runtime import inspect
    from runtime.cli_invocations import invocations_table, show_invocation
    from runtime.cli_state import show_state

    if (service is None) != (key is None):
        raise click.UsageError("--service and --key go together (the state of one key)")
    if inv_id is not None and service is not None:
        raise click.UsageError("--invocation or --service/--key, not both")
    try:
        if inv_id is not None:
            doc = inspect.read(data_dir, lambda d: d.invocation(inv_id))
            if doc is None:
                raise CliError(f"no invocation {inv_id} in {data_dir}")
            if as_json:
                print_json(doc)
            else:
                show_invocation(doc)
        elif service is not None and key is not None:
            state = inspect.read(data_dir, lambda d: d.state(service, key))
            if as_json:
                print_json(state)
            else:
                show_state(state)
        else:
            rows = inspect.read(data_dir, lambda d: d.invocations(limit))
            if as_json:
                print_json({"invocations": rows})
            else:
                console().print(invocations_table(rows))
                click.echo(f"{len(rows)} invocation{'s' if len(rows) != 1 else ''}")
    except inspect.InspectError as exc:
        raise CliError(str(exc)) from None
