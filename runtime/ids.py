"""Invocation ids: `inv_` + 48-bit millisecond time + 80 random bits, in hex.

Time first, so the invocations table (keyed by id) is in creation order: the
recovery scan resumes the oldest first and the retention sweep finds expired
records at the front.
"""

from __future__ import annotations

import os
import time


def new_invocation_id() -> str:
    return f"inv_{time.time_ns() // 1_000_000:012x}{os.urandom(10).hex()}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000
