"""`stead replay`: recorded journals replayed against the current code, before a deploy.

Where the journals come from (each as a `pysdk.testing.Journal`):

* a data directory (`--data-dir`), read read-only with rocksdict as `stead inspect` reads it
  (runtime/inspect.py: its key layout and protobuf decoding), values byte for byte;
* a running server's admin API (`--admin-url`): `GET /invocations` pages, then
  `GET /invocations/{id}` per invocation, whose journal (entries with kind, name, value,
  failure and completion) is turned back into entries: a value shown as JSON is written
  back as the compact JSON Stead's serde writes, `{"base64"}` as its bytes, a sleep's
  wake-up time and a call's callee id as the bytes the entry held. The API shows no value
  and a JSON `null` alike: where an entry always has a value it is `null`, else none
  (a GetState of a state holding `null` comes back as no value: the same to a handler
  with the default serde);
* exported files (`--journal`, the `stead.journal/1` format of docs/journal-format.md).

Each journal is replayed by `pysdk.testing.replay_journal` (a replay-only Machine: no
step body, sleep or call runs), one after another on one event loop; the `Report`
counts them and renders them for people or as JSON.
"""

from __future__ import annotations

import base64
import calendar
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import pydantic_core

from pysdk._app import App
from pysdk._entries import AWAITABLE, CALL, SEND, SLEEP, Completion, Entry
from runtime import inspect
from runtime.replay_format import KINDS, Journal, JournalFormatError
from runtime.replay_machine import ReplayResult, replay_journal

# Entry kinds that always hold a value unless they record a failure: the admin API's `null`
# there is the JSON `null` (Run, SetState, GetStateKeys, CompleteAwakeable, CompletePromise,
# Combinator).
_VALUED = {2, 5, 6, 11, 14, 16}
# Entry kinds whose name the core always keeps (core_rs/src/entry.rs `has_name`): an empty
# name of these is "", of the others None.
_NAMED = {1, 2, 3, 6, 8, 9, 11, 12, 13, 14, 17, 18}
_KIND_NUMBERS = {name: number for number, name in KINDS.items()}


class ReplayInputError(Exception):
    """What `stead replay` was given cannot be read: a missing or foreign data directory,
    a malformed journal file, an admin API that does not answer (exit status 2)."""


# ---- a data directory (rocksdict) ----------------------------------------------------------


def _entry(e: dict[str, Any]) -> Entry:
    kind, code = e.get("kind", 0), e.get("failure_code", 0)
    name = e.get("name")
    if name is None and kind in _NAMED:
        name = ""
    message = e.get("failure_message")
    if message is None and code:
        message = ""
    return (kind, name, e.get("value"), code, message)


def _journal_of(data: inspect.DataDir, inv_id: str, raw: bytes) -> Journal:
    r = inspect._message(raw, inspect._RECORD)
    kind, key = r.get("kind", 0), r.get("key", "")
    status = inspect.STATUSES.get(r.get("status", 0), "unknown")
    code = r.get("failure_code", 0)
    completed = status == "completed"
    completions: dict[int, Completion] = {}
    prefix = b"jc" + inspect._lp(inv_id)
    for k, v in data._scan("journal", prefix):
        c = _entry(inspect._message(v, inspect._ENTRY))
        completions[inspect._journal_index(k, prefix)] = (c[2], c[3], c[4])
    prefix = b"jn" + inspect._lp(inv_id)
    entries = [_entry(inspect._message(v, inspect._ENTRY)) for _, v in data._scan("journal", prefix)]
    return Journal(
        id=r.get("id") or inv_id, service=r.get("service", ""), handler=r.get("handler", ""),
        key=key if kind or key else None, status=status, input=r.get("input", b""),
        headers=[(h[0], h[1]) for h in r.get("headers", [])], entries=entries, completions=completions,
        idempotency_key=r.get("idempotency_key") or None, cancel_requested=bool(r.get("cancel_requested")),
        output=r.get("output") if completed and not code else None,
        failure=(code, r.get("failure_message", "")) if completed and code else None,
    )


def from_data_dir(path: str, *, service: Optional[str] = None, ids: Iterable[str] = ()) -> list[Journal]:
    """The journals of a data directory (a stopped server's, or beside a running one)."""
    wanted = list(ids)

    def read(data: inspect.DataDir) -> list[Optional[Journal]]:
        if not wanted:
            return [_journal_of(data, k[2:].decode("utf-8", "replace"), v) for k, v in data._scan("invocations", b"iv")]
        records = data.db.get_column_family("invocations")
        raws = [(inv_id, records.get(b"iv" + inv_id.encode())) for inv_id in wanted]
        return [_journal_of(data, inv_id, raw) if raw is not None else None for inv_id, raw in raws]

    if not os.path.isdir(path):
        raise ReplayInputError(f"no data directory at {path}")
    try:
        found = inspect.read(path, read)
    except inspect.InspectError as exc:
        raise ReplayInputError(str(exc)) from None
    missing = [inv_id for inv_id, j in zip(wanted, found) if j is None]
    if missing:
        raise ReplayInputError(f"no invocation {', '.join(missing)} in {path}")
    return [j for j in found if j is not None and (service is None or j.service == service)]


# ---- a running server (admin API) ------------------------------------------------------------


def _bytes(value: Any, valued: bool = False) -> Optional[bytes]:
    """A value as the admin API shows it, back to bytes (see the module docstring); `valued`:
    there is always a value there, so `null` is JSON's."""
    if value is None:
        return b"null" if valued else None
    if isinstance(value, dict) and set(value) == {"base64"}:
        return base64.b64decode(value["base64"])
    return pydantic_core.to_json(value)


def _ms(rfc3339: str) -> int:
    dt = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    return calendar.timegm(dt.utctimetuple()) * 1000 + dt.microsecond // 1000


def journal_from_admin(doc: dict[str, Any]) -> Journal:
    """A `GET /invocations/{id}` answer (runtime/admin_invocations.py `describe`) as a Journal."""
    entries: list[Entry] = []
    completions: dict[int, Completion] = {}
    try:
        for item in doc["journal"]:
            kind = _KIND_NUMBERS[item["kind"]]
            if kind in (CALL, SEND):
                value = item["invoked_id"].encode() if item.get("invoked_id") else None
            elif kind == SLEEP:
                value = _ms(item["wakeup_at"]).to_bytes(8, "big") if item.get("wakeup_at") else None
            elif kind == 18:  # AttachInvocation: the name is the target
                value = None
            else:
                value = _bytes(item.get("value"), kind in _VALUED and not item.get("failure"))
            failure = item.get("failure") or {}
            entries.append((kind, item.get("name"), value, failure.get("code", 0),
                            failure.get("message") if failure else None))
            done = item.get("completion")
            if kind in AWAITABLE and done is not None:
                f = done.get("failure") or {}
                completions[item["index"]] = (_bytes(done.get("value"), not f), f.get("code", 0),
                                              f.get("message") if f else None)
        failure = doc.get("failure")
        status = doc["status"]
        return Journal(
            id=doc["id"], service=doc["target_service_name"], handler=doc["target_handler_name"],
            key=doc.get("target_service_key"), status=status, input=_bytes(doc.get("input")) or b"",
            headers=[(h[0], h[1]) for h in doc.get("headers", [])], entries=entries, completions=completions,
            idempotency_key=doc.get("idempotency_key"), cancel_requested=bool(doc.get("cancel_requested")),
            output=_bytes(doc.get("output"), True) if status == "completed" and not failure else None,
            failure=(failure["code"], failure.get("message", "")) if status == "completed" and failure else None,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ReplayInputError(f"the admin API's invocation {doc.get('id')!r} is not in the expected shape "
                               f"({type(exc).__name__}: {exc})") from None


def from_admin(client: Any, *, service: Optional[str] = None, ids: Iterable[str] = ()) -> list[Journal]:
    """The journals of a running server, through its admin API (`runtime.cli_admin.AdminClient`)."""
    from runtime.cli_admin import api_path

    wanted = list(ids)
    if not wanted:
        cursor = None
        while True:
            page = client.get("/invocations", {"service": service, "limit": 1000, "cursor": cursor})
            wanted += [inv["id"] for inv in page["invocations"]]
            cursor = page.get("next_cursor")
            if not cursor:
                break
    journals = [journal_from_admin(client.get(api_path("invocations", inv_id))) for inv_id in wanted]
    return [j for j in journals if service is None or j.service == service]


# ---- files -------------------------------------------------------------------------------------


def from_files(paths: Iterable[str]) -> list[Journal]:
    """Exported journals: files, or directories of `*.json` files."""
    out = []
    for given in paths:
        path = Path(given)
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        for file in files:
            try:
                out.append(Journal.load(file))
            except FileNotFoundError:
                raise ReplayInputError(f"no journal file {file}") from None
            except OSError as exc:
                raise ReplayInputError(f"cannot read {file}: {exc.strerror or exc}") from None
            except JournalFormatError as exc:
                raise ReplayInputError(str(exc)) from None
    return out


# ---- replaying -----------------------------------------------------------------------------------


@dataclass
class Report:
    results: list[ReplayResult] = field(default_factory=list)

    def count(self, *kinds: str) -> int:
        return sum(1 for r in self.results if r.result in kinds)

    @property
    def replayed(self) -> int:
        return self.count("ok", "mismatch", "error")

    @property
    def failed(self) -> bool:
        """Whether any invocation would fail with this code (the exit status 1)."""
        return self.count("mismatch", "error") > 0

    def summary(self) -> str:
        text = f"replayed {self.replayed}, mismatched {self.count('mismatch')}"
        for kind, label in (("error", "errors"), ("skipped", "skipped")):
            if self.count(kind):
                text += f", {label} {self.count(kind)}"
        return text

    def lines(self, verbose: bool = False) -> list[str]:
        shown = [r for r in self.results if verbose or r.result in ("mismatch", "error")]
        return [f"{r.result:<8} {r.describe()}" for r in shown] + [self.summary()]

    def to_json(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "mismatched": self.count("mismatch"), "errors": self.count("error"),
                "skipped": self.count("skipped"), "invocations": [r.to_json() for r in self.results]}


async def replay_all(app: App, journals: Iterable[Journal], *, timeout: Optional[float] = 10.0,
                     completed: bool = True) -> Report:
    """Replay each journal in turn (`completed=False`: only those of unfinished invocations)."""
    report = Report()
    for journal in journals:
        if completed or not journal.completed:
            report.results.append(await replay_journal(app, journal, timeout=timeout))
    return report


def journals(data_dir: Optional[str] = None, client: Any = None, files: Iterable[str] = (), *,
             service: Optional[str] = None, ids: Iterable[str] = ()) -> Iterator[Journal]:
    """The journals of whichever source is given (`files` are filtered like the others)."""
    ids = list(ids)
    if data_dir is not None:
        yield from from_data_dir(data_dir, service=service, ids=ids)
    elif client is not None:
        yield from from_admin(client, service=service, ids=ids)
    else:
        for j in from_files(files):
            if (service is None or j.service == service) and (not ids or j.id in ids):
                yield j
