"""runtime/allocator.py: `stead serve`'s glibc malloc settings (a fixed mmap threshold, two
arenas), applied unless the environment already sets them. In a subprocess of its own, so
that the test process's allocator is not changed."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = "import json; from runtime import allocator; print(json.dumps(allocator.tune()))"

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")


def _tune(**env: str) -> dict[str, int]:
    base = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_")}
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env={**base, "PYTHONPATH": str(ROOT), **env},
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_the_settings_are_applied() -> None:
    assert _tune() == {"MALLOC_MMAP_THRESHOLD_": 512 * 1024, "MALLOC_ARENA_MAX": 2}


def test_an_operators_own_settings_are_left_alone() -> None:
    assert _tune(MALLOC_ARENA_MAX="4") == {"MALLOC_MMAP_THRESHOLD_": 512 * 1024}
    assert _tune(MALLOC_ARENA_MAX="4", MALLOC_MMAP_THRESHOLD_="131072") == {}
