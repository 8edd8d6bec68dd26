"""What every `stead` command over the admin API shares: the client, its
`--admin-url`/`--admin-token` options, its errors, and the output helpers.

Errors are `CliError`s: click shows them as `stead: <message>` on stderr and exits 1,
never with a traceback. Nothing answering at the admin URL and an error answer of the
API are the two an operator meets; both say what to do next.

Output is for people by default (rich tables; cells are `Text`, so a value holding
`[...]` is shown as is, never read as markup) and for scripts with `--json`: the API's
JSON document, unchanged.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import click

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

DEFAULT_ADMIN = "http://127.0.0.1:9070"
URL_ENV = "STEAD_ADMIN_URL"
TOKEN_ENV = "STEAD_ADMIN_TOKEN"
TIMEOUT_S = 30.0

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A failed command: `stead: <message>` on stderr, exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"stead: {self.format_message()}", file=file or sys.stderr)


class AdminUnreachable(CliError):
    def __init__(self, url: str, reason: object) -> None:
        # "does not answer" first: scripts of the deployments commands match that prefix.
        super().__init__(f"the admin API at {url} does not answer ({reason}): is `stead serve` running "
                         f"there? (--admin-url or {URL_ENV})")


class AdminError(CliError):
    """The admin API answered with an error status; `doc` is its body."""

    def __init__(self, status: int, doc: Any) -> None:
        self.status, self.doc = status, doc
        message = doc.get("message") if isinstance(doc, dict) else None
        text = str(message or doc or "no message").strip()
        hint = f"; give the server's token with --admin-token or {TOKEN_ENV}" if status == 401 else ""
        super().__init__(f"{text} (HTTP {status}){hint}")


def api_path(*parts: str) -> str:
    """A URL path from raw segments (a key may hold `/`, `?` or spaces)."""
    return "".join("/" + quote(p, safe="") for p in parts)


class AdminClient:
    def __init__(self, url: str, token: str = "", timeout: float = TIMEOUT_S) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"the admin URL {url!r} is not a URL like {DEFAULT_ADMIN} (--admin-url or {URL_ENV})")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout

    def call(self, method: str, route: str, body: Any = None, query: Optional[dict[str, Any]] = None) -> Any:
        """The JSON answer of a 2xx; `AdminError` for any other status."""
        params = {k: v for k, v in (query or {}).items() if v is not None and v != [] and v != ()}
        url = self.url + route + (f"?{urlencode(params, doseq=True)}" if params else "")
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except urllib.error.URLError as exc:
            raise AdminUnreachable(self.url, _reason(exc.reason)) from None
        except (TimeoutError, socket.timeout):
            raise AdminUnreachable(self.url, f"no answer within {self.timeout:g}s") from None
        except (ConnectionError, http.client.HTTPException) as exc:
            raise AdminUnreachable(self.url, _reason(exc)) from None
        try:
            doc = json.loads(raw) if raw else None
        except ValueError:  # not JSON: an error page, or not Stead's admin API at all
            text = raw.decode("utf-8", "replace")
            if not 200 <= status < 300:
                raise AdminError(status, text) from None
            raise CliError(f"the admin API at {self.url} answered {method} {route} with something that is not "
                           f"JSON: {text[:200]!r}") from None
        if not 200 <= status < 300:
            raise AdminError(status, doc)
        return doc

    def get(self, route: str, query: Optional[dict[str, Any]] = None) -> Any:
        return self.call("GET", route, query=query)

    def post(self, route: str, body: Any) -> Any:
        return self.call("POST", route, body)

    def patch(self, route: str) -> Any:
        return self.call("PATCH", route)

    def delete(self, route: str, query: Optional[dict[str, Any]] = None) -> Any:
        return self.call("DELETE", route, query=query)


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out"
    if isinstance(reason, socket.gaierror):
        return f"unknown host: {reason.strerror}"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason) or type(reason).__name__


# ---- options


def _remember(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> None:
    # ctx.meta is shared by a command and its groups: the innermost option given wins,
    # so `stead deployments --admin-url A list --admin-url B` talks to B.
    if value is not None:
        ctx.meta[f"stead.{param.name}"] = value


def admin_options(f: F) -> F:
    """`--admin-url` and `--admin-token`, on a group (for all its commands) or a command."""
    f = click.option("--admin-token", metavar="TOKEN", expose_value=False, callback=_remember,
                     help=f"bearer token of a server run with --admin-token (default: env {TOKEN_ENV})")(f)
    f = click.option("--admin-url", metavar="URL", expose_value=False, callback=_remember,
                     help=f"the runtime's admin API (default {DEFAULT_ADMIN}, or env {URL_ENV})")(f)
    return f


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True,
                        help="print the admin API's JSON answer, for scripts")(f)


def client() -> AdminClient:
    """The client of the current command, from its options, then the environment."""
    meta = click.get_current_context().meta
    url = meta.get("stead.admin_url") or os.environ.get(URL_ENV) or DEFAULT_ADMIN
    token = meta["stead.admin_token"] if "stead.admin_token" in meta else os.environ.get(TOKEN_ENV, "")
    return AdminClient(url, token)


# ---- output


def console() -> "Console":
    """A console for stdout. Piped into a file or a program (no terminal, no COLUMNS) it is
    wide, so that ids and targets stay whole on their lines for grep."""
    from rich.console import Console

    wide = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(width=200 if wide else None, highlight=False, emoji=False, soft_wrap=False)


def print_json(doc: Any) -> None:
    click.echo(json.dumps(doc, indent=2, ensure_ascii=False))


def compact(value: Any, limit: int = 200) -> str:
    """A JSON value on one line, cut at `limit` characters (whole with --json)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[:limit - 1] + "…"


def cell(value: Any) -> "Text":
    """A table cell: text as is, None as "-", anything else as compact JSON."""
    from rich.text import Text

    if value is None or value == "":
        return Text("-", style="dim")
    return Text(value if isinstance(value, str) else compact(value))


def table(*columns: str, title: Optional[str] = None) -> Any:
    from rich import box
    from rich.table import Table

    return Table(*columns, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title=title,
                 title_justify="left")


def fields(rows: list[tuple[str, Any]]) -> Any:
    """A two-column grid of name and value (the head of a `describe`)."""
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for name, value in rows:
        grid.add_row(name, cell(value))
    return grid
