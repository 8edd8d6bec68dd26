"""Invocation ids: `inv_` + 48-bit millisecond time + 80 random bits, in hex.

Time first, so the invocations table (keyed by id) is in creation order: the
recovery scan resumes the oldest first and the retention sweep finds expired
records at the front.
"""

from __future__ import annotations

import os
import time

from runtime.clock import now_ms  # noqa: F401 - the runtime's clock (runtime/clock.py), imported from here

_RANDOM_BYTES = 10
_BATCH = 4096  # ids per os.urandom call: one syscall per batch instead of one per id


class _RandomPool:
    """Hex of os.urandom bytes, drawn in batches (the ids stay as unpredictable as
    os.urandom: awakeable ids are derived from them)."""

    __slots__ = ("_hex", "_at")

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def take(self) -> str:
        at = self._at
        if at >= len(self._hex):
            self._hex = os.urandom(_RANDOM_BYTES * _BATCH).hex()
            at = 0
        end = at + 2 * _RANDOM_BYTES
        self._at = end
        return self._hex[at:end]


_pool = _RandomPool()
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=lambda: _pool.__init__())


def new_invocation_id() -> str:
    return f"inv_{time.time_ns() // 1_000_000:012x}{_pool.take()}"




# Restate's resource ids ("dp_1" + a 128-bit value in base62, digits then lower then upper
# case, zero-padded to 22): deployment ids in this form are read by Restate's own tools.
_BASE62 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def resource_id(prefix: str, value: int) -> str:
    digits = []
    while value:
        value, rem = divmod(value, 62)
        digits.append(_BASE62[rem])
    return f"{prefix}_1{''.join(reversed(digits)).rjust(22, '0')}"


def new_deployment_id() -> str:
    return resource_id("dp", int.from_bytes(os.urandom(16), "big"))
