"""CPU time per request, by server thread: the A/B measure for a change to a hot path.

On a 2-core machine W2's req/s is bimodal (wrk's two threads, the event loop and the
commit writer share two cores, and where the scheduler puts them moves req/s by 30 %
from one run to the next), so a 10 % regression hides in it. This pins the server to
one CPU and wrk to the other and reports, over a measured window after a warm-up, the
CPU seconds each server thread used divided by the requests served:

    bench/cpu                       # W2, 3 rounds
    bench/cpu --only W1,W2 --rounds 5
    bench/cpu --repo /tmp/before    # the same measure on another checkout (A/B)

Run two checkouts alternately and compare `python` (the event loop thread: ingress,
handlers, the core's calls) and `stead-commit` (the writer). Nothing is written to
RESULTS.md: quote the figures in the note of the change.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run as bench  # noqa: E402  (bench/run.py: Server, wrk, ports)

CLK_TCK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) per thread name of process `pid`."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue  # the thread ended
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def measure(repo: Path, wid: str, seconds: float, warmup: float, server_cpu: int, wrk_cpu: int) -> dict:
    script, threads, conns, _, _ = bench.WORKLOADS[wid]
    data_dir = Path(tempfile.mkdtemp(prefix="stead-cpu-"))
    port = bench.free_port()
    env_path = f"{repo}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    cmd = ["taskset", "-c", str(server_cpu), "env", f"PYTHONPATH={env_path}", sys.executable, "-m",
           "runtime.cli", "serve", bench.APP, "--data-dir", str(data_dir), "--port", str(port)]
    wrk = ["taskset", "-c", str(wrk_cpu), "wrk"]
    lua = (bench.REPO / bench.SHARED / script).resolve()
    try:
        with bench.Server(cmd, port, data_dir / "server.log", "/restate/health", cwd=repo) as srv:
            pid = srv.proc.pid  # taskset and env exec, so this is the server itself
            run_pinned(wrk, srv.url, lua, threads, conns, warmup)
            before = thread_cpu(pid)
            result = run_pinned(wrk, srv.url, lua, threads, conns, seconds)
            after = thread_cpu(pid)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    n = result["requests"]
    return {"rps": n / seconds, "us": {k: (after[k] - before.get(k, 0.0)) * 1e6 / n
                                       for k in after if after[k] - before.get(k, 0.0) > 0}}


def run_pinned(wrk: list[str], url: str, script: Path, threads: int, conns: int, seconds: float) -> dict:
    cmd = [*wrk, f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "-s", str(script), url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    results = bench.parse_results(proc.stdout)
    if proc.returncode != 0 or len(results) != 1:
        raise RuntimeError(f"wrk failed (rc={proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}")
    return next(iter(results.values()))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="W2", help="workloads, comma-separated (default W2)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per round")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--repo", type=Path, default=bench.REPO, help="checkout whose runtime is measured")
    args = p.parse_args()
    if (os.cpu_count() or 1) < 2:
        p.error("needs two CPUs: one for the server, one for wrk")
    for wid in args.only.split(","):
        rows = [measure(args.repo.resolve(), wid, args.duration, args.warmup, 1, 0) for _ in range(args.rounds)]
        for r in rows:
            print(f"{wid} rps={r['rps']:.0f} " + " ".join(f"{k}={v:.1f}us" for k, v in sorted(r["us"].items())))
        names = sorted({k for r in rows for k in r["us"]})
        print(f"{wid} median " + " ".join(
            f"{k}={statistics.median(r['us'].get(k, 0.0) for r in rows):.1f}us" for k in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
