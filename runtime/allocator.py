"""glibc malloc settings for `stead serve`, applied at start (`tune`).

RocksDB allocates its memtables in 1 MiB blocks (its arena: min(1 MiB, write buffer / 8))
and frees them all when a memtable is flushed. glibc serves a block that large by mmap at
first, but the first time such a block is freed it raises its mmap threshold (and its trim
threshold) to the block's size: from then on memtable blocks come from the heap arenas,
and the memory of a flushed memtable stays in the process, fragmented by the small
allocations made between (blocks of the block cache, Python's large objects), instead of
going back to the system. In the 12-client nemesis soak (bench/RESULTS.md) no chunk was
mmapped any more after the first flush (mallinfo2's hblkhd = 0), the arenas grew from 187
to 247 MiB for 65-115 MiB in use, and the resident memory did not come down when a
flush freed 36 MiB of memtables (166 -> 167 MiB): it only rose, cycle after cycle.

A fixed mmap threshold turns glibc's adjustment off: every block of 512 KiB or more (the
memtables' blocks) is mmapped, and unmapped when freed. Fewer arenas (2, rather than 8
per core) keep the free memory of the writer's, RocksDB's and the worker threads in fewer
heaps, where the next allocation can reuse it. An operator's own MALLOC_MMAP_THRESHOLD_ or
MALLOC_ARENA_MAX (which glibc reads at process start) is left alone; on a libc other than
glibc nothing is changed.

`usage` reads glibc's own account of the heap (mallinfo2) for the metrics
(`stead_malloc_bytes`): what is in use, what glibc holds free inside its arenas, and what
is mmapped. Beside the resident size and the pools' gauges it tells memory that the
process uses from memory that the allocator keeps.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger("stead.server")

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD = 512 * 1024
ARENA_MAX = 2


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None


_LIBC = _glibc()


def usage() -> dict[str, int] | None:
    """glibc's heap, in bytes: `in_use` (allocated from the arenas or by mmap), `free_held`
    (free inside the arenas, not given back to the system) and `mmapped`; None on another
    libc or a glibc without mallinfo2 (before 2.33)."""
    if _LIBC is None or not hasattr(_LIBC, "mallinfo2"):
        return None
    mallinfo2 = _LIBC.mallinfo2
    mallinfo2.argtypes = []
    mallinfo2.restype = _Mallinfo2
    m = mallinfo2()
    return {"in_use": m.uordblks + m.hblkhd, "free_held": m.fordblks, "mmapped": m.hblkhd}


def tune() -> dict[str, int]:
    """Apply the settings not already set by the environment; returns those applied."""
    libc = _LIBC
    if libc is None or not hasattr(libc, "mallopt"):  # glibc only
        return {}
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied: dict[str, int] = {}
    for env, param, value in (("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                              ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENA_MAX)):
        if env in os.environ:
            continue
        if mallopt(param, value) == 1:
            applied[env] = value
        else:
            log.debug("mallopt(%d, %d) refused", param, value)
    return applied
