"""Firing lateness of cron schedules: when a firing's handler starts, minus its fire time.

A `stead serve` of this module's app (durability sync unless --durability says otherwise),
--schedules schedules created through the admin API, each `every="1s"` on Jobs/record,
which appends "<fire ms> <start ms>" to a file (BENCH_SCHEDULES_OUT). After --seconds
(30) the schedules are paused and the server stopped; the lateness of every firing of
the measured window gives p50/p99/max, and the fire times are checked: each second once
per schedule (none missed, none twice).

    python bench/schedules.py                  # RESULT schedules_lateness schedules=1 p50_ms=... p99_ms=...
    python bench/schedules.py --schedules 100  # 100 every-second schedules at once

What a firing waits for: the timer loop's wake-up at the fire time, the tick (one journaled
step, then the commit that sends the firing: two group commits, each an fsync in sync
mode), then the firing's own start.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from pysdk import Context, Service, app

jobs = Service("Jobs")


@jobs.handler()
async def record(ctx: Context) -> None:
    started = time.time() * 1000
    fire = ctx.request().headers["x-stead-schedule-time"]
    with open(os.environ["BENCH_SCHEDULES_OUT"], "a") as f:
        f.write(f"{ctx.request().headers['x-stead-schedule']} {fire} {started:.3f}\n")


application = app([jobs])


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from datetime import datetime

    from run import REPO, Server, free_port, request  # bench/run.py

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--schedules", type=int, default=1)
    parser.add_argument("--durability", choices=["sync", "wal"], default="sync")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="stead-bench-schedules-"))
    out = work / "firings.txt"
    port, admin = free_port(), free_port()
    cmd = [sys.executable, "-m", "runtime.cli", "serve", "bench.schedules:application", "--data-dir",
           str(work / "data"), "--port", str(port), "--admin-port", str(admin), "--durability", args.durability]
    os.environ["BENCH_SCHEDULES_OUT"] = str(out)
    try:
        with Server(cmd, port, work / "server.log", "/restate/health", cwd=REPO):  # stopped with SIGTERM
            for i in range(args.schedules):
                body = json.dumps({"id": f"s{i}", "service": "Jobs", "handler": "record", "every": "1s",
                                   "overlap": "ALLOW_ALL"}).encode()
                status, answer = request("POST", admin, "/schedules", body)
                assert status == 201, answer
            began = time.time() * 1000
            time.sleep(args.seconds + 1.5)
            ended = time.time() * 1000
            for i in range(args.schedules):
                request("PATCH", admin, f"/schedules/s{i}", b'{"paused": true}')
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        rows = [line.split() for line in out.read_text().splitlines()]
        firings = [(sid, int(datetime.fromisoformat(fire).timestamp() * 1000), float(at)) for sid, fire, at in rows]
        # The measured window: fire times after the last schedule was created, before the end.
        window = [(sid, fire, at) for sid, fire, at in firings if began + 1000 <= fire <= ended - 1000]
        lateness = [at - fire for _, fire, at in window]
        per_second = Counter((sid, fire) for sid, fire, _ in window)
        expected = {(f"s{i}", t) for i in range(args.schedules)
                    for t in range(int(began // 1000 + 2) * 1000, int(ended - 1000) + 1, 1000)}
        missed = len(expected - set(per_second))
        doubled = sum(1 for n in per_second.values() if n > 1)
        print(f"RESULT schedules_lateness schedules={args.schedules} firings={len(window)} "
              f"p50_ms={statistics.median(lateness):.1f} p99_ms={pct(lateness, 0.99):.1f} "
              f"max_ms={max(lateness):.1f} missed={missed} doubled={doubled} durability={args.durability} "
              f"load=[{load}] cpus={os.cpu_count()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
