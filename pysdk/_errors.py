"""Exceptions of the SDK, in one place so the runtime and the handlers agree on them.

Two families:

* Exceptions user code sees and may raise, with Restate's names and
  constructors: `TerminalError` (fails the invocation without retry) and
  `RetryableError` (a failure to retry, optionally after a delay it chooses),
  plus the ones the runtime turns into answers: `InputError` (a 4xx: the body
  does not fit the handler) and `NonDeterminismError` (the handler no longer
  matches its journal).
* Internal control flow (`ReplayRequested`, `Suspended`, `AttemptClosed`)
  derives from `SdkInternalBaseException`, a `BaseException` (Restate's name
  and design), so that an `except Exception:` in a handler cannot swallow it;
  the runtime catches it around the handler. `is_internal_exception` tells
  such an exception apart in a bare `except:`.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Optional


class TerminalError(Exception):
    """Fails the invocation with `status_code` and `message`; never retried.

    `metadata` is free-form string pairs describing the failure (Restate's
    field; Stead does not store it yet). Raised inside `ctx.run`, the error is
    recorded in the journal as the step's outcome and raised again,
    identically, on every replay.
    """

    def __init__(self, message: str, status_code: int = 500, metadata: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.metadata = metadata

    def __repr__(self) -> str:
        extra = "" if self.metadata is None else f", metadata={self.metadata!r}"
        return f"TerminalError({self.message!r}, status_code={self.status_code}{extra})"


class RetryableError(Exception):
    """A failure to retry, like any exception that is not a `TerminalError`,
    but when `retry_after` is given the next attempt comes after that delay
    instead of the retry policy's backoff. Raised by a handler, the invocation
    is retried; raised inside `ctx.run`, the step is. The attempt limits of the
    policy still apply."""

    def __init__(self, message: str, status_code: int = 500, retry_after: Optional[timedelta] = None) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.retry_after = retry_after

    def __repr__(self) -> str:
        extra = "" if self.retry_after is None else f", retry_after={self.retry_after!r}"
        return f"RetryableError({self.message!r}, status_code={self.status_code}{extra})"


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


_DO_NOT_CATCH = (
    "\nThis is Stead's internal control flow: let it propagate. A bare `except:` or "
    "`except BaseException:` in a handler must re-raise it (see `is_internal_exception`); "
    "to handle failures, catch `TerminalError` (or `Exception`)."
)


class SdkInternalBaseException(BaseException):
    """Base of the SDK's internal signals, which must unwind the handler untouched
    (Restate's name). Not an `Exception`: `except Exception` does not catch it."""

    _default_message = "internal control flow of the SDK"

    def __init__(self, message: str = "") -> None:
        super().__init__((message or self._default_message) + _DO_NOT_CATCH)


def is_internal_exception(e: BaseException) -> bool:
    """Whether `e` is internal control flow of the SDK, which handler code must re-raise."""
    return isinstance(e, SdkInternalBaseException)


class ReplayRequested(SdkInternalBaseException):
    """`always_replay` mode: the machine made something durable and now wants
    the handler restarted from scratch against the journal reloaded from disk."""

    _default_message = "replay requested: the handler restarts against its journal"


class Suspended(SdkInternalBaseException):
    """The invocation waits for something external (a timer, a call result,
    an awakeable, a promise); `Backend.wait` raises it when the runtime drops
    the coroutine, which is resumed later by replay."""

    _default_message = "the invocation is suspended: it resumes by replay once what it awaits completes"


class AttemptClosed(SdkInternalBaseException):
    """This attempt of the invocation is over and may write nothing more: the
    store refused one of its operations (the attempt was suspended, killed or
    asked to replay, or the invocation is no longer running), or storage failed
    under it. The runtime drops the coroutine; whatever was durable before
    decides what a later attempt (or recovery) does."""

    _default_message = "this attempt of the invocation is closed: nothing more it does is stored"
