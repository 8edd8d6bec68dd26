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


def tune() -> dict[str, int]:
    """Apply the settings not already set by the environment; returns those applied."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return {}
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):  # glibc only
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
