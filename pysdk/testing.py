"""Golden histories: replay a recorded journal against the current code, without
running anything for real (Temporal's `Replayer`, for Stead's journals).

    import pysdk.testing
    from my_app import application

    def test_checkout_still_replays() -> None:
        pysdk.testing.replay(application, "tests/journals/checkout.json")

A journal is exported from a runtime with `stead invocations export ID`, in the
`stead.journal/1` format (docs/journal-format.md; `Journal` reads and writes it).
`replay` runs the invocation's handler against it on a pysdk `Machine` that only
replays (runtime/replay_machine.py): every command the handler issues must match the recorded entry at its
index, recorded steps return their recorded results, recorded completions resolve
sleeps, calls and awakeables; no step body, sleep or call runs for real.

Where the journal ends, the replay ends successfully: an invocation that was in flight
(running, suspended, backing off, paused) would go on live from there. A journal of an
invocation that completed successfully is its whole history: the handler must return
exactly there. (One that failed may have been killed or given up mid-way, so its end
is not checked.) A handler that issues another command than the recorded one, returns
before the end of the journal, or ends it with another outcome raises
`ReplayMismatchError` (a `NonDeterminismError`) naming the entry index, the recorded
command and the new one. `stead replay` (runtime/replay.py) runs the same replay over
every invocation of a data directory or a running server.

The format and the replay live beside `stead replay`, in the runtime package, but are
plain Python over pysdk (no runtime extension, no server): this module is their public face.
"""
from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Mapping, Optional, Union

from runtime.replay_format import FORMAT, Journal, JournalFormatError, decode_value, encode_value
from runtime.replay_machine import (DEFAULT_TIMEOUT_S, Command, ReplayMismatchError, ReplayResult,
                                    replay_journal)

from ._app import App

__all__ = ["FORMAT", "Command", "Journal", "JournalFormatError", "ReplayMismatchError", "ReplayResult",
           "decode_value", "encode_value", "replay", "replay_async", "replay_journal"]


# ---- the public entry points ------------------------------------------------------------------------


JournalSource = Union[str, "os.PathLike[str]", Mapping[str, Any], Journal]


def _journal(source: JournalSource) -> Journal:
    if isinstance(source, Journal):
        return source
    if isinstance(source, Mapping):
        return Journal.from_document(dict(source))
    return Journal.load(source)


async def replay_async(app: App, journal: JournalSource, *,
                       timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> ReplayResult:
    """`replay` for async tests."""
    result = await replay_journal(app, _journal(journal), timeout=timeout)
    if result.error is not None:
        raise result.error
    if result.result == "mismatch":
        raise ReplayMismatchError(result)
    if result.result != "ok":
        raise AssertionError(f"replay of {result.describe()}")
    return result


def replay(app: App, journal: JournalSource, *, timeout: Optional[float] = DEFAULT_TIMEOUT_S) -> ReplayResult:
    """Replay an exported journal (a `stead.journal/1` file, its parsed document, or a
    `Journal`) against `app`: return its `ReplayResult` when the handler still matches it,
    raise `ReplayMismatchError` (entry index, recorded and new command) when it does not,
    and what the handler raised when it fails otherwise. No step body, sleep or call runs.
    Callable from a test with or without a running event loop."""
    doc = _journal(journal)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(replay_async(app, doc, timeout=timeout))
    # Inside a running loop (an async test): replay on a loop of its own, in a thread.
    outcome: list[Any] = []

    def main() -> None:
        try:
            outcome.append(asyncio.run(replay_async(app, doc, timeout=timeout)))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=main, name="stead-replay")
    thread.start()
    thread.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    result: ReplayResult = outcome[0]
    return result

