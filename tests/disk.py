"""An independent reader of a data directory: rocksdict, not core_rs.

Tests use it to check what is really on disk (after a crash, with the server
gone), so the check does not go through the code under test. The key layout is
DESIGN.md's: a 2-byte kind prefix, then big-endian fields, strings prefixed by
their u32 length.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from rocksdict import AccessType, Options, Rdict

CFS = ["invocations", "journal", "state", "inbox", "timers", "idempotency", "promises", "meta"]


def lp(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">I", len(raw)) + raw


class DiskReader:
    def __init__(self, data_dir: Path) -> None:
        opts = Options(raw_mode=True)
        self.db = Rdict(str(data_dir), options=opts, access_type=AccessType.read_only(),
                        column_families={name: Options(raw_mode=True) for name in CFS})

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "DiskReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cf(self, name: str) -> Rdict:
        return self.db.get_column_family(name)

    def state(self, service: str, key: str) -> dict[str, object]:
        prefix = b"st" + lp(service) + lp(key)
        out: dict[str, object] = {}
        for k, v in self.cf("state").items(from_key=prefix):
            if not k.startswith(prefix):
                break
            out[k[len(prefix):].decode()] = json.loads(v)
        return out

    def invocation_records(self) -> list[bytes]:
        return [v for k, v in self.cf("invocations").items() if k.startswith(b"iv")]

    def schema_version(self) -> int:
        return struct.unpack(">I", self.cf("meta")[b"mt" + b"schema_version"])[0]
