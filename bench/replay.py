"""Replay speed of `stead replay` (runtime/replay.py): recorded journals replayed per second.

A fresh `stead serve bench.replay:application` (this module's app; --durability wal, only
to record faster) on a new data directory under bench/out/ records --invocations (2,000)
calls of `Orders/{k}/order`, each on its own key, each journaling five entries (GetState,
three steps, SetState), sent over 32 concurrent connections. Then:

    admin      the journals read through the running server's admin API (`GET /invocations`
               pages, then one `GET /invocations/{id}` each), as `stead replay --admin-url` does
    read       SIGTERM, then the journals read from the data directory (rocksdict), as
               `stead replay --data-dir` does
    replay     those journals replayed against the app in this process (no step runs):
               the replay-only machine, one after another on one event loop
    cli        `stead replay bench.replay:application --data-dir DIR` as a process of its
               own, wall time (Python start-up and imports included)

    python bench/replay.py                    # RESULT replay journals=2000 ... replay_per_s=...
    python bench/replay.py --invocations 200 --keep-data
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pysdk import ObjectContext, VirtualObject, app  # noqa: E402

orders = VirtualObject("Orders")


@orders.handler()
async def order(ctx: ObjectContext, amount: int) -> str:
    total = await ctx.get("total") or 0
    await ctx.run("reserve", lambda: f"reserved {amount}")
    receipt = await ctx.run("charge", lambda: f"charged {amount}")
    await ctx.run("ship", lambda: "shipped")
    ctx.set("total", total + amount)
    return str(receipt)


application = app([orders])

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
TARGET = "bench.replay:application"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ready = data_dir.parent / "replay-ready.json"
        self.admin_port = free_port()
        env = dict(os.environ, PYTHONPATH=str(REPO), STEAD_READY_FILE=str(self.ready))
        self.log = open(data_dir.parent / "replay-server.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "serve", TARGET, "--data-dir", str(data_dir), "--port", "0",
             "--admin-port", str(self.admin_port), "--durability", "wal"],
            cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"stead serve exited with {self.proc.returncode}")
            try:
                self.port = int(json.loads(self.ready.read_text())["port"])
                break
            except (FileNotFoundError, ValueError, KeyError):
                if time.monotonic() > deadline:
                    raise TimeoutError("stead serve did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        self.log.close()


async def record(port: int, count: int, conns: int = 32) -> None:
    import httpx

    todo = iter(range(count))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                 limits=httpx.Limits(max_connections=conns)) as client:
        async def worker() -> None:
            for i in todo:
                resp = await client.post(f"/Orders/k{i}/order", content=b"5",
                                         headers={"content-type": "application/json"})
                assert resp.status_code == 200, resp.text

        await asyncio.gather(*(worker() for _ in range(conns)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--invocations", type=int, default=2000)
    parser.add_argument("--keep-data", action="store_true")
    args = parser.parse_args()

    from runtime import replay
    from runtime.cli_admin import AdminClient

    load_before = os.getloadavg()
    run_dir = OUT / f"{time.strftime('%Y%m%d-%H%M%S')}-replay"
    run_dir.mkdir(parents=True)
    data_dir = run_dir / "data"
    server = Server(data_dir)
    try:
        started = time.perf_counter()
        asyncio.run(record(server.port, args.invocations))
        record_s = time.perf_counter() - started

        started = time.perf_counter()
        via_admin = replay.from_admin(AdminClient(f"http://127.0.0.1:{server.admin_port}"))
        admin_s = time.perf_counter() - started
    finally:
        server.stop()
    assert len(via_admin) == args.invocations, len(via_admin)

    started = time.perf_counter()
    journals = replay.from_data_dir(str(data_dir))
    read_s = time.perf_counter() - started
    entries = sum(len(j.entries) for j in journals)
    assert len(journals) == args.invocations and entries == 5 * args.invocations, (len(journals), entries)

    started = time.perf_counter()
    report = asyncio.run(replay.replay_all(application, journals))
    replay_s = time.perf_counter() - started
    assert (report.replayed, report.count("mismatch"), report.count("error")) == (args.invocations, 0, 0)

    started = time.perf_counter()
    cli = subprocess.run([sys.executable, "-m", "runtime.cli", "replay", TARGET, "--data-dir", str(data_dir)],
                         cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    cli_s = time.perf_counter() - started
    assert cli.returncode == 0 and cli.stdout.strip() == f"replayed {args.invocations}, mismatched 0", cli

    n = args.invocations
    load = " ".join(f"{x:.2f}" for x in load_before)
    print(f"RESULT replay journals={n} entries={entries} replay_per_s={n / replay_s:.0f} "
          f"read_per_s={n / read_s:.0f} read_and_replay_per_s={n / (read_s + replay_s):.0f} "
          f"admin_read_per_s={n / admin_s:.0f} cli_s={cli_s:.2f} record_s={record_s:.1f} "
          f"load=[{load}] cpus={os.cpu_count()}")
    if not args.keep_data:
        shutil.rmtree(run_dir)


if __name__ == "__main__":
    main()
