"""`stead replay` (recorded journals against the current code: a deploy gate) and
`stead invocations export` (one journal as a `stead.journal/1` file), over runtime/replay.py.

Exit statuses of `stead replay`, for CI: 0 every invocation replays, 1 at least one
does not (a mismatch, or the handler would fail), 2 what was given cannot be read
(a missing data directory, a malformed journal file, an app that does not import, an
admin API that does not answer).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Optional

import click

from runtime.cli_admin import URL_ENV, CliError, admin_options, client, print_json


class InputError(CliError):
    """`stead: <why>` and exit 2: the input is unusable (nothing was replayed)."""

    exit_code = 2


def _admin_given() -> bool:
    return "stead.admin_url" in click.get_current_context().meta or bool(os.environ.get(URL_ENV))


@click.command("replay", short_help="replay recorded journals against the current code (a deploy gate)")
@click.argument("target")
@click.option("--data-dir", metavar="DIR", help="a server's data directory (stopped, or read beside a running one)")
@click.option("--journal", "files", metavar="FILE", multiple=True,
              help="an exported journal (stead invocations export), or a directory of them; repeatable")
@click.option("--service", help="only invocations of this service")
@click.option("--invocation", "ids", metavar="ID", multiple=True, help="only this invocation (repeatable)")
@click.option("--completed/--in-flight-only", default=True, show_default=True,
              help="also replay completed invocations (kept for the retention period), or only unfinished ones")
@click.option("--timeout", type=click.FloatRange(min=0.001), default=10.0, show_default=True,
              help="seconds one invocation's replay may take (a handler awaiting something outside its journal)")
@click.option("-v", "--verbose", is_flag=True, help="list every invocation replayed, not only those that fail")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@admin_options
def replay_command(target: str, data_dir: Optional[str], files: tuple[str, ...], service: Optional[str],
                   ids: tuple[str, ...], completed: bool, timeout: float, verbose: bool, as_json: bool) -> None:
    """replay recorded journals against the current code, running no step, sleep or call

    TARGET is MODULE:ATTRIBUTE of the new version of the app. The journals of a data
    directory (--data-dir), of a running server (--admin-url) or exported to files
    (--journal) are replayed: in flight, suspended and completed ones. Each invocation
    whose code no longer matches its journal is reported with the entry index, the
    recorded command and the new one. Exit status: 0 all match, 1 some do not, 2 the
    input cannot be read.
    """
    from runtime import replay
    from runtime.server import load_app

    explicit_admin = "stead.admin_url" in click.get_current_context().meta
    if sum([data_dir is not None, bool(files), explicit_admin]) > 1:
        raise InputError("give one source: --data-dir, --journal or --admin-url")
    use_admin = data_dir is None and not files
    if use_admin and not _admin_given():
        raise InputError("give the journals to replay: --data-dir DIR, --journal FILE or --admin-url URL")
    try:
        app = load_app(target)
    except Exception as exc:  # noqa: BLE001 - whatever the module raises at import
        raise InputError(f"cannot load {target}: {type(exc).__name__}: {exc}") from None
    try:
        journals = list(replay.journals(data_dir, client() if use_admin else None, files,
                                        service=service, ids=ids))
    except replay.ReplayInputError as exc:
        raise InputError(str(exc)) from None
    except CliError as exc:  # the admin API does not answer, or refuses
        raise InputError(exc.format_message()) from None
    report = asyncio.run(replay.replay_all(app, journals, timeout=timeout, completed=completed))
    if as_json:
        print_json(report.to_json())
    else:
        for line in report.lines(verbose):
            click.echo(line)
    sys.stdout.flush()
    click.get_current_context().exit(1 if report.failed else 0)


@click.command("export", short_help="one invocation's journal as a stead.journal/1 file")
@click.argument("id")
@click.option("--data-dir", metavar="DIR", help="read it from a data directory instead of the admin API")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="write it there, not to stdout")
@admin_options
def export_command(id: str, data_dir: Optional[str], output: Optional[str]) -> None:
    """one invocation's journal in the stead.journal/1 format (docs/journal-format.md)

    For golden histories: `pysdk.testing.replay(app, FILE)` in a unit test, or
    `stead replay TARGET --journal FILE`.
    """
    from runtime import replay
    from runtime.cli_admin import api_path

    try:
        if data_dir is not None:
            [journal] = replay.from_data_dir(data_dir, ids=[id])
        else:
            journal = replay.journal_from_admin(client().get(api_path("invocations", id)))
    except replay.ReplayInputError as exc:
        raise CliError(str(exc)) from None
    text = json.dumps(journal.to_document(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
