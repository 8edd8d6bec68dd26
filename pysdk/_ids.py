"""Identifiers the SDK derives deterministically, so that replay reproduces them.

* A callee's invocation id is derived from the caller's id and the index of
  the CALL/SEND entry: the same on every replay, without a round trip.
* An awakeable id names (invocation id, entry index) in an opaque, URL-safe
  string with Restate's `sign_1` prefix; the ingress decodes it to find the
  entry to complete.
"""
from __future__ import annotations

import base64
import hashlib

AWAKEABLE_PREFIX = "sign_1"


def child_invocation_id(parent_id: str, index: int) -> str:
    """`inv_` + 32 hex digits, a function of (parent id, entry index)."""
    return "inv_" + hashlib.sha256(f"{parent_id}/{index}".encode()).hexdigest()[:32]


def awakeable_id(invocation_id: str, index: int) -> str:
    raw = f"{invocation_id}/{index}".encode()
    return AWAKEABLE_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_awakeable_id(awakeable: str) -> tuple[str, int]:
    """(invocation id, entry index); ValueError if `awakeable` is not one of ours."""
    if not isinstance(awakeable, str) or not awakeable.startswith(AWAKEABLE_PREFIX):
        raise ValueError(f"not an awakeable id: {awakeable!r}")
    body = awakeable[len(AWAKEABLE_PREFIX):]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode()
        inv_id, _, index = raw.rpartition("/")
        i = int(index)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not an awakeable id: {awakeable!r}") from exc
    if not inv_id.startswith("inv_") or i < 0 or i >= 2**32:
        raise ValueError(f"not an awakeable id: {awakeable!r}")
    return inv_id, i
