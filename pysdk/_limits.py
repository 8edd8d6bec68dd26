"""Concurrency and rate limits, declared with a service or a handler.

    Service("Mailer", concurrency=10)                      # at most 10 running at once
    @mailer.handler(concurrency_per_limit_key=1,           # one at a time per caller's limit key
                    rate_limit=RateLimit(5, per=timedelta(seconds=1)))

The runtime enforces them (runtime/queues.py): an invocation over a limit waits in
a durable queue, in arrival order, fair across limit keys. The limit key is given
by the caller, as in Restate 1.7: the `x-restate-limit-key` header or the
`limit-key` query parameter of the ingress, the client's and the context's
`limit_key=` argument. It groups invocations for `concurrency_per_limit_key`; it is
not part of the target's identity.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Optional

LIMIT_KEY_HEADER = "x-restate-limit-key"

# Restate's limit key: one or two levels of [a-zA-Z0-9_.-], each 1 to 36 characters.
_LEVEL = r"[A-Za-z0-9_.\-]{1,36}"
_LIMIT_KEY = re.compile(rf"^{_LEVEL}(?:/{_LEVEL})?$")


@dataclass(frozen=True)
class RateLimit:
    """At most `starts` new invocations started per `per` (a token bucket: a burst of
    `starts`, then one every `per / starts`). Resumptions and retries are not starts."""

    starts: int
    per: timedelta

    def __post_init__(self) -> None:
        if isinstance(self.starts, bool) or not isinstance(self.starts, int) or self.starts < 1:
            raise ValueError(f"RateLimit: starts must be an integer >= 1, got {self.starts!r}")
        if not isinstance(self.per, timedelta) or self.per <= timedelta(0):
            raise ValueError(f"RateLimit: per must be a positive timedelta, got {self.per!r}")

    @property
    def period_ms(self) -> int:
        return max(1, int(self.per.total_seconds() * 1000))


@dataclass(frozen=True)
class LimitOptions:
    """The limits one service or one handler declares (None: no limit of that kind)."""

    concurrency: Optional[int] = None
    concurrency_per_limit_key: Optional[int] = None
    rate_limit: Optional[RateLimit] = None

    @property
    def empty(self) -> bool:
        return self.concurrency is None and self.concurrency_per_limit_key is None and self.rate_limit is None


def limit_options(owner: str, concurrency: Any, concurrency_per_limit_key: Any, rate_limit: Any) -> LimitOptions:
    """Checked limits; ValueError naming `owner` and the argument when one is not valid."""
    for name, value in (("concurrency", concurrency), ("concurrency_per_limit_key", concurrency_per_limit_key)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{owner}: {name} must be an integer >= 1 (or None for no limit), got {value!r}")
    if rate_limit is not None and not isinstance(rate_limit, RateLimit):
        raise ValueError(f"{owner}: rate_limit must be a pysdk.RateLimit, got {rate_limit!r}")
    return LimitOptions(concurrency, concurrency_per_limit_key, rate_limit)


def check_limit_key(text: str) -> str:
    """`text` if it is a valid limit key, else ValueError saying what one looks like."""
    if not isinstance(text, str) or not _LIMIT_KEY.match(text):
        raise ValueError(f"invalid limit key {text!r}: one or two levels separated by '/', each of 1 to 36 "
                         "characters among [a-zA-Z0-9_.-]")
    return text


def with_limit_key(headers: Optional[dict[str, str]], limit_key: Optional[str]) -> Optional[dict[str, str]]:
    """The headers of a call or send made with `limit_key`."""
    if limit_key is None:
        return headers
    out = dict(headers or {})
    out[LIMIT_KEY_HEADER] = check_limit_key(limit_key)
    return out
