"""Exceptions of the SDK, in one place so the runtime and the handlers agree on them.

Two families:

* Exceptions user code sees and may raise: `TerminalError` (fails the invocation
  without retry, Restate's semantics), plus the ones the runtime turns into
  answers: `InputError` (a 4xx: the body does not fit the handler) and
  `NonDeterminismError` (the handler no longer matches its journal).
* Internal control flow (`ReplayRequested`, `Suspended`) derives from
  `BaseException`, so that an `except Exception:` in a handler cannot swallow
  it; the runtime catches it around the handler (Restate's SDK does the same
  for suspension).
"""
from __future__ import annotations


class TerminalError(Exception):
    """Fails the invocation with `status_code` and `message`; never retried.

    Raised inside `ctx.run`, it is recorded in the journal as the step's
    outcome and raised again, identically, on every replay.
    """

    def __init__(self, message: str, status_code: int = 500) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code

    def __repr__(self) -> str:
        return f"TerminalError({self.message!r}, status_code={self.status_code})"


class InputError(Exception):
    """The request body cannot be turned into the handler's input (bad JSON,
    a value of the wrong shape, a missing body). The runtime answers 400."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NonDeterminismError(Exception):
    """On replay, the handler asked for a different journal entry than the one
    recorded at the same index: its code or its inputs changed in a way that
    makes the journal meaningless. Retrying cannot help; the runtime should
    surface it (Restate pauses or fails such invocations)."""


class _ControlFlow(BaseException):
    """Base of internal signals that must unwind the handler untouched."""


class ReplayRequested(_ControlFlow):
    """`always_replay` mode: the machine made something durable and now wants
    the handler restarted from scratch against the journal reloaded from disk."""


class Suspended(_ControlFlow):
    """The invocation waits for something external (a timer, a call result,
    an awakeable, a promise); `Backend.wait` raises it when the runtime drops
    the coroutine, which is resumed later by replay."""
