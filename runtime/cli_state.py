"""`stead state get|set|clear|edit`: the state of one object or workflow key over the
admin API.

The API replaces a key's whole state (POST /services/{service}/state, Restate's body:
values as lists of byte ints), so `set`, `clear NAME` and `edit` read the state
first and send it back changed, with the version they read: a handler or another
operator that wrote the key in between makes the API answer 409, and nothing is
overwritten. The values `get` shows are JSON (the bytes of a value that is not JSON as
{"base64": ...}); they are sent back as the bytes of their compact JSON, or decoded
from base64.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import tempfile
from typing import Any, NoReturn

import click

from runtime.cli_admin import (
    AdminError, CliError, admin_options, api_path, cell, client, console, json_option, print_json, table)


@click.group()
@admin_options
def state() -> None:
    """read and change the state of an object or workflow key"""


@state.command()
@click.argument("service")
@click.argument("key")
@json_option
@admin_options
def get(service: str, key: str, as_json: bool) -> None:
    """the state of SERVICE's KEY: each name and its value"""
    doc = _read(service, key)
    if as_json:
        print_json(doc)
        return
    show_state(doc)


@state.command("set")
@click.argument("service")
@click.argument("key")
@click.argument("name")
@click.argument("value", metavar="JSON")
@json_option
@admin_options
def set_(service: str, key: str, name: str, value: str, as_json: bool) -> None:
    """set one NAME of SERVICE's KEY to a JSON value

    e.g. stead state set Cart k1 items '["apple", "pear"]'; a string needs its quotes: '"text"'.
    """
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not JSON ({exc}); a string needs its quotes: '\"{value}\"'",
                                 param_hint="JSON") from None
    doc = _read(service, key)
    new = dict(doc["state"], **{name: parsed})
    _done(_write(service, key, doc["version"], new), f"set {name} of {service}/{key}", as_json)


@state.command()
@click.argument("service")
@click.argument("key")
@click.argument("name", required=False)
@json_option
@admin_options
def clear(service: str, key: str, name: str | None, as_json: bool) -> None:
    """clear NAME of SERVICE's KEY, or all of its state"""
    doc = _read(service, key)
    if name is None:
        new: dict[str, Any] = {}
    elif name not in doc["state"]:
        raise CliError(f"{service}/{key} has no state named {name!r} (it has: "
                       f"{', '.join(map(repr, doc['state'])) or 'none'})")
    else:
        new = {k: v for k, v in doc["state"].items() if k != name}
    what = f"cleared {name} of {service}/{key}" if name else f"cleared the state of {service}/{key}"
    _done(_write(service, key, doc["version"], new), what, as_json)


@state.command()
@click.argument("service")
@click.argument("key")
@admin_options
def edit(service: str, key: str) -> None:
    """edit the state of SERVICE's KEY as JSON in $EDITOR

    Written back only if nobody changed the key since it was read.
    """
    doc = _read(service, key)
    before = json.dumps(doc["state"], indent=2, ensure_ascii=False) + "\n"
    try:
        after = click.edit(before, extension=".json", require_save=True)
    except click.ClickException as exc:
        raise CliError(f"{exc.format_message()} (set EDITOR to your editor)") from None
    if after is None or after == before:
        click.echo(f"no change: nothing written to {service}/{key}")
        return
    try:
        new = json.loads(after)
    except ValueError as exc:
        _keep(after, f"the edited state is not JSON ({exc}); nothing was written")
    if not isinstance(new, dict):
        _keep(after, f"the edited state must be a JSON object of names and values, not a "
                     f"{type(new).__name__}; nothing was written")
    if new == doc["state"]:
        click.echo(f"no change: nothing written to {service}/{key}")
        return
    try:
        _write(service, key, doc["version"], new)
    except AdminError as exc:
        if exc.status == 409:
            _keep(after, f"{exc.format_message()}\nrun `stead state edit {service} {key}` again")
        raise
    click.echo(f"wrote the state of {service}/{key}")


def show_state(doc: dict[str, Any]) -> None:
    where = f"{doc['service']}/{doc['object_key']}"
    if not doc["state"]:
        click.echo(f"no state for {where}")
        return
    click.echo(where + (f" (version {doc['version']})" if doc.get("version") else ""))
    t = table("NAME", "VALUE")
    for name, value in doc["state"].items():
        t.add_row(cell(name), cell(json.dumps(value, ensure_ascii=False)))
    console().print(t)


def _read(service: str, key: str) -> dict[str, Any]:
    return client().get(api_path("services", service, "state", key))  # type: ignore[no-any-return]


def _write(service: str, key: str, version: Any, new_state: dict[str, Any]) -> Any:
    body: dict[str, Any] = {"object_key": key, "new_state": {name: list(_bytes(v)) for name, v in new_state.items()}}
    if version is not None:
        body["version"] = version
    try:
        return client().post(api_path("services", service, "state"), body)
    except AdminError as exc:
        if exc.status != 409:  # 409: changed since it was read, or held by a running handler
            raise
        raise AdminError(409, {"message": f"{_message(exc)}; nothing was written"}) from None


def _bytes(value: Any) -> bytes:
    if isinstance(value, dict) and set(value) == {"base64"} and isinstance(value["base64"], str):
        try:
            return base64.b64decode(value["base64"], validate=True)
        except binascii.Error:
            pass
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _message(exc: AdminError) -> str:
    return str(exc.doc.get("message") if isinstance(exc.doc, dict) else exc.doc).strip()


def _done(doc: Any, what: str, as_json: bool) -> None:
    if as_json:
        print_json(doc)
    else:
        click.echo(what)


def _keep(text: str, why: str) -> NoReturn:
    """Fail without losing what the operator typed: the edit is kept in a file."""
    fd, kept = tempfile.mkstemp(prefix="stead-state-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    raise CliError(f"{why}\nyour edit is kept in {kept}")
