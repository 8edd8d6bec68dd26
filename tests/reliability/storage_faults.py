"""What the disk-full and corruption tests (issue 11, parts 4 and 5) do to a data
directory: mount a small filesystem of its own, find RocksDB's files in it, walk the
records of a write-ahead log, flip bytes.

RocksDB's WAL format (db/log_format.h): the file is a sequence of 32 KiB blocks; a
block holds physical records, each a 7-byte header (masked crc32c: 4 bytes, payload
length: 2 bytes little-endian, type: 1 byte) and its payload; a logical record (one
WriteBatch: one group commit of Stead's writer) is one FULL record or a FIRST, MIDDLE...,
LAST chain across blocks; fewer than 7 bytes left at a block's end are zero padding.
Recyclable records (types 5 to 8, and 11) carry 4 more header bytes (the log number).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.disk import DiskReader

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
_RECYCLABLE = {5: FULL, 6: FIRST, 7: MIDDLE, 8: LAST}


# ---- a filesystem of its own -----------------------------------------------------------


def mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` (like "8m") at `path`; None if done, else why it could not
    be (not root, or mounting is not permitted here: a container without CAP_SYS_ADMIN)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return f"mount -t tmpfs is not permitted here: {done.stderr.strip() or done.returncode}"
    return None


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, chunk: int = 64 * 1024) -> int:
    """Write zeros to the file `path` until its filesystem is full; the bytes written."""
    written = 0
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                written += f.write(b"\0" * chunk)
        except OSError:
            pass
        # The last pages: what a chunk did not fit.
        try:
            while True:
                written += f.write(b"\0" * 512)
        except OSError:
            pass
    return written


# ---- RocksDB's files ---------------------------------------------------------------------


def wal_files(data_dir: Path) -> list[Path]:
    """The write-ahead logs, oldest first (their numbers grow)."""
    return sorted(data_dir.glob("*.log"), key=lambda p: int(p.stem))


def sst_files(data_dir: Path, kind: bytes) -> list[Path]:
    """The live table files holding rows of one table, by its keys' 2-byte kind prefix
    (core_rs/src/keys.rs: b"st" state, b"jn" journal, ...), as the MANIFEST has them."""
    with DiskReader(data_dir) as disk:
        files = disk.db.live_files()
    return [data_dir / f["name"].lstrip("/") for f in files if f["start_key"].startswith(kind)]


@dataclass(frozen=True)
class Record:
    """One logical WAL record: where its first header starts, and where its payload bytes
    lie in the file (a chain's payload spans several physical records)."""
    start: int
    end: int  # after its last physical record
    payload: list[tuple[int, int]]  # (offset, length) of each fragment's payload


def wal_records(path: Path) -> list[Record]:
    """The complete logical records of a WAL file, in order; stops at the first thing that
    is not one (preallocated zeros, a torn tail)."""
    return list(_records(path.read_bytes()))


def _records(data: bytes) -> Iterator[Record]:
    pos = 0
    chain: list[tuple[int, int]] = []
    chain_start = 0
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # the block's trailer
            pos += left
            continue
        length = int.from_bytes(data[pos + 4:pos + 6], "little")
        kind = data[pos + 6]
        header = 7
        if kind in _RECYCLABLE or kind == 11:
            header = 11
        if kind == 0 and length == 0:
            return  # zeros: preallocated, never written
        if pos + header + length > len(data):
            return  # torn
        payload = (pos + header, length)
        kind = _RECYCLABLE.get(kind, kind)
        if kind == FULL:
            yield Record(pos, pos + header + length, [payload])
        elif kind == FIRST:
            chain, chain_start = [payload], pos
        elif kind == MIDDLE:
            chain.append(payload)
        elif kind == LAST:
            chain.append(payload)
            yield Record(chain_start, pos + header + length, chain)
            chain = []
        # Other types (compression, timestamp sizes, predecessor info) carry no rows.
        pos += header + length


def flip_byte(path: Path, offset: int) -> None:
    """Invert every bit of one byte of a file, in place."""
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        assert byte, f"{path} has no byte at {offset}"
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
