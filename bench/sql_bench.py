"""How long `POST /query` takes over a large invocations table: fill a data directory with
100,000 completed invocations through the real store (`_core.Store`, the commit path the
runtime uses: admit, one durable step, complete), then time
`SELECT count(*) FROM sys_invocation WHERE ...` through the SQL engine (runtime/sql.py):
the scan of RocksDB, the Arrow table, DuckDB, as one query costs end to end minus HTTP.

    python bench/sql_bench.py                       # 100,000 invocations in a temporary dir
    python bench/sql_bench.py --count 20000 --runs 5 --data-dir /tmp/sqlbench

The data directory is filled with durability `wal` (filling is not what is measured) and
kept if --data-dir is given (a second run on it skips the filling).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime import _core, sql, sql_tables  # noqa: E402
from runtime.ids import new_invocation_id, now_ms  # noqa: E402

QUERY = ("SELECT count(*) FROM sys_invocation "
         "WHERE status = 'completed' AND target_service_name = 'Cart' AND completion_result = 'success'")
BATCH = 1000


def fill(store: _core.Store, count: int) -> None:
    """`count` completed Cart/add invocations on 1000 keys, each with a journaled step (so it is
    persisted before it completes, as a handler with a durable point is); every tenth failed."""
    seq = 0
    for n in range(count):
        inv = _core.Invocation(new_invocation_id(), "Cart", "add", f"k{n % 1000}", _core.KIND_EXCLUSIVE,
                               b'"apple"', [("content-type", "application/json")], now_ms())
        run_now, _ = store.admit(inv)
        assert run_now, "each key's previous invocation completes before the next is admitted"
        store.progress(inv, [(_core.ENTRY_RUN, "price", b"3", 0, None)])
        if n % 10 == 9:
            seq, _ = store.complete(inv, [], None, 409, "out of stock")
        else:
            seq, _ = store.complete(inv, [], b"1", 0, None)
        if n % BATCH == BATCH - 1:
            store.wait_durable(seq)
    store.wait_durable(seq)


def timed(label: str, fn, runs: int) -> tuple[object, list[float]]:  # type: ignore[no-untyped-def]
    times, value = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn()
        times.append((time.perf_counter() - t0) * 1000)
    print(f"{label:<34} median {statistics.median(times):8.1f} ms   min {min(times):8.1f} ms   "
          f"(runs: {', '.join(f'{t:.0f}' for t in times)})")
    return value, times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--data-dir", type=Path)
    args = ap.parse_args()
    tmp = None
    if args.data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="stead-sqlbench-")
        args.data_dir = Path(tmp.name)
    store = _core.Store(os.fspath(args.data_dir), "wal")
    store.recover()
    have = len(store.scan_invocations("", 0))
    if have < args.count:
        t0 = time.perf_counter()
        fill(store, args.count - have)
        print(f"filled {args.count - have} invocations in {time.perf_counter() - t0:.1f} s ({args.data_dir})")
    snap = sql.Snapshot()
    print(f"{args.count} completed invocations; query: {QUERY}")
    rows, _ = timed("scan_invocations (RocksDB)", lambda: store.scan_invocations("", 0), args.runs)
    timed("rows -> Arrow sys_invocation", lambda: sql_tables.invocations(rows, snap), args.runs)  # type: ignore[arg-type]

    async def one() -> object:
        engine = sql.Engine(store)  # per run: asyncio.run makes a new loop each time
        return (await engine.query(QUERY, snap)).column(0)[0].as_py()

    answer, times = timed("POST /query engine, end to end", lambda: asyncio.run(one()), args.runs)
    expected = args.count - args.count // 10
    print(f"count = {answer} (expected {expected})")
    print(f"RESULT sql_count_100k_ms median={statistics.median(times):.1f} min={min(times):.1f} n={args.count}")
    store.close()
    if tmp is not None:
        tmp.cleanup()
    if answer != expected:
        sys.exit(f"wrong count: {answer} != {expected}")


if __name__ == "__main__":
    main()
