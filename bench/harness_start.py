"""Start-up time of the test harness (pysdk/harness.py): from entering
`create_test_harness(app)` to the first answer of a handler called through its client,
over --runs harnesses started one after another in one process (each on a fresh
temporary data directory and fresh ports, stopped and deleted before the next).

The first start also pays the runtime's imports (reported on its own, `first_ms`, and
left out of the percentiles: a test session pays it once). Stopping is reported too:
uvicorn's graceful shutdown polls every 100 ms, so it costs a few tenths of a second.

    python bench/harness_start.py              # RESULT harness_start p50_ms=... p90_ms=...
    python bench/harness_start.py --runs 50 --always-replay
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pysdk import ObjectContext, VirtualObject, app, create_test_harness  # noqa: E402

counter = VirtualObject("counter")


@counter.handler()
async def increment(ctx: ObjectContext, value: int) -> int:
    n = (await ctx.get("n", type_hint=int) or 0) + value
    ctx.set("n", n)
    return n


APP = app([counter])


async def one(always_replay: bool) -> tuple[float, float]:
    """(ms to the first answer, ms to stop) of one harness."""
    started = time.perf_counter()
    async with create_test_harness(APP, always_replay=always_replay) as env:
        assert await env.client.object_call(increment, key="k", arg=1) == 1
        ready = time.perf_counter()
    return (ready - started) * 1000, (time.perf_counter() - ready) * 1000


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--always-replay", action="store_true")
    args = parser.parse_args()
    first, _ = await one(args.always_replay)
    starts, stops = [], []
    for _ in range(args.runs):
        start_ms, stop_ms = await one(args.always_replay)
        starts.append(start_ms)
        stops.append(stop_ms)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"RESULT harness_start p50_ms={statistics.median(starts):.1f} p90_ms={pct(starts, 0.9):.1f} "
          f"max_ms={max(starts):.1f} first_ms={first:.1f} stop_p50_ms={statistics.median(stops):.1f} "
          f"runs={args.runs} always_replay={args.always_replay} load=[{load}] cpus={os.cpu_count()}")


if __name__ == "__main__":
    asyncio.run(main())
