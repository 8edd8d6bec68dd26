"""The admin API over a large data directory, end to end over HTTP: a real `stead serve`
on a data directory holding `--count` completed invocations (filled through the real
store, see bench/sql_bench.py), and the time of

    GET  /invocations?limit=100                      the first page
    GET  /invocations?service=Cart&key=k7&limit=100  a filter that matches 1 in 1000
    GET  /invocations?status=running                 a filter that matches nothing: a full scan
    POST /query  SELECT count(*) FROM sys_invocation WHERE ...
    POST /query  SELECT id, status FROM sys_invocation ORDER BY created_at DESC LIMIT 20

as medians over --runs requests (RESULT lines, like bench/run's).

    python bench/admin_bench.py                    # 100,000 invocations in a temporary dir
    python bench/admin_bench.py --count 20000 --data-dir /tmp/adminbench
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import run as bench  # noqa: E402  (bench/run.py: Server, free_port)
from sql_bench import fill  # noqa: E402

from runtime import _core  # noqa: E402

EMPTY_APP = "bench.empty:application"
REQUESTS = [
    ("GET", "/invocations?limit=100", None),
    ("GET", "/invocations?service=Cart&key=k7&limit=100", None),
    ("GET", "/invocations?status=running", None),
    ("POST", "/query", {"query": "SELECT count(*) AS n FROM sys_invocation WHERE status = 'completed' "
                                 "AND target_service_name = 'Cart' AND completion_result = 'success'"}),
    ("POST", "/query", {"query": "SELECT id, status FROM sys_invocation ORDER BY created_at DESC LIMIT 20"}),
]


def call(port: int, method: str, path: str, body: object) -> tuple[int, bytes]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"content-type": "application/json", "accept": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return resp.status, resp.read()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args()
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="stead-adminbench-")
        args.data_dir = Path(tmp.name)
    store = _core.Store(os.fspath(args.data_dir), "wal")
    store.recover()
    have = len(store.scan_invocations("", 0))
    if have < args.count:
        fill(store, args.count - have)
    store.close()
    port, admin_port = bench.free_port(), bench.free_port()
    cmd = [sys.executable, "-m", "runtime.cli", "serve", EMPTY_APP, "--data-dir", str(args.data_dir),
           "--port", str(port), "--admin-port", str(admin_port)]
    with bench.Server(cmd, port, args.data_dir / "server.log", "/restate/health"):
        for method, path, body in REQUESTS:
            times = []
            size = 0
            for _ in range(args.runs):
                t0 = time.perf_counter()
                status, raw = call(admin_port, method, path, body)
                times.append((time.perf_counter() - t0) * 1000)
                assert status == 200, (status, raw[:300])
                size = len(raw)
            what = path if body is None else body["query"][:60]  # type: ignore[index]
            print(f"RESULT admin {method} {what!r} invocations={args.count} median_ms={statistics.median(times):.1f} "
                  f"min_ms={min(times):.1f} max_ms={max(times):.1f} bytes={size}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
