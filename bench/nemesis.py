"""The nemesis soak (issue 11, part 1; not CI): tests/reliability/nemesis.py's run for as
long as asked, with the same invariants as the CI run (tests/reliability/test_nemesis.py).

A real `stead serve` under the mixed workload, while the nemesis kills it (-9, once or
twice in a row, or right after a pause), pauses it (SIGSTOP longer than the clients'
timeout) and slows its disk (the failpoint `commit.before_sync=sleep(ms)`), at random
moments from a seeded RNG, until --seconds
have passed (or --actions actions were taken); then the last restart, the quiet period
and the checks. Prints the seed first, then the figures and every violation; exits 1 if
the run broke an invariant, 2 if the harness itself failed.

    .venv/bin/python bench/nemesis.py --seconds 600             # a random seed, printed
    .venv/bin/python bench/nemesis.py --seconds 3600 --seed 7   # the one-hour soak
    .venv/bin/python bench/nemesis.py --actions 12 --seed 1005  # what CI runs
    .venv/bin/python bench/nemesis.py --seconds 120 --break no-barrier \\
        --failpoints 'commit.before_write=sleep(300)'          # a broken build, to see it caught

With --rss-every S, the server's VmRSS (/proc/PID/status) is sampled every S seconds
into rss.csv of the run directory (seconds since the start, pid, KiB; nothing while the
server is down), and summed up at the end: first, max, last, and the least-squares
slope over every sample (MiB/h; across restarts, where each new process starts afresh,
it shows growth that the data directory brings, such as recovery holding more); also
the slope over the samples of the longest-lived process. Each sample also scrapes the
server's memory pools from /metrics into memory.csv (RocksDB's memtables, table
readers, block cache and what is pinned in it; the state cache's bytes and keys; glibc's
heap in use, held free and mmapped), so a rising RSS can be told apart from bounded pools
filling: the summary adds the first, last and slope of "the rest" (RSS minus the pools
with a bound: memtables, block cache, state cache) over the longest-lived process. For one process's memory over
the whole soak, leave kills out: `--nemesis pause,slow`. The last line is
`RESULT nemesis seed=.. verdict=pass|fail ... rss_first_mib=.. rss_slope_mib_per_h=..`.

    .venv/bin/python bench/nemesis.py --seconds 3600 --rss-every 10         # the soak, with memory
    .venv/bin/python bench/nemesis.py --seconds 3600 --rss-every 10 --nemesis pause,slow

The same seed replays the same schedules (each client's ops, the nemesis' actions and
their durations); timing differs, so where a kill lands among the ops differs too. The
run directory (server logs, nemesis.log, ops.jsonl, the data directory) goes under
bench/out/ (gitignored) and is removed after a passing run unless --keep; a directory
given with --work-dir is always kept.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.reliability.nemesis import Config, NemesisRun


#: The gauges of the server's own memory pools that memory.csv records beside its RSS: what
#: RocksDB holds by kind, and the state cache, so a rising RSS can be told apart from
#: bounded pools filling up.
POOLS = (("stead_rocksdb_memory_bytes", "kind"), ("stead_state_cache_bytes", None),
         ("stead_state_cache_keys", None), ("stead_malloc_bytes", "kind"))


def scrape_pools(admin_url: str) -> dict[str, float]:
    """The pool gauges of one /metrics scrape, by column name; {} if the server does not
    answer within a second (paused or restarting)."""
    try:
        text = httpx.get(f"{admin_url}/metrics", timeout=1.0).text
    except httpx.HTTPError:
        return {}
    found: dict[str, float] = {}
    for line in text.splitlines():
        for name, label in POOLS:
            if not line.startswith(name + ("{" if label else " ")):
                continue
            if label:
                value = line.split(f'{label}="', 1)[1].split('"', 1)[0]
                found[f"{name.removeprefix('stead_').removesuffix('_bytes')}_{value}"] = float(line.rsplit(" ", 1)[1])
            else:
                found[name.removeprefix("stead_")] = float(line.rsplit(" ", 1)[1])
    return found


MIB = 1024 * 1024
#: The pools with a configured bound (memory.csv's columns): RocksDB's memtables (the
#: write buffer manager's 64 MiB) and block cache (32 MiB, what is pinned included), and
#: the state cache (--state-cache-size). RSS minus these, "the rest", is the process's own
#: memory, which a long run must keep flat while the pools fill towards their bounds.
BOUNDED = ("rocksdb_memory_memtables", "rocksdb_memory_block_cache", "state_cache_bytes")


class RssSampler(threading.Thread):
    """Every `every` s, the VmRSS of the run's server process of the moment, and (into
    memory.csv) its memory pools' gauges."""

    def __init__(self, run: NemesisRun, every: float, path: Path) -> None:
        super().__init__(daemon=True)
        self.run_, self.every, self.path = run, every, path
        self.samples: list[tuple[float, int, int]] = []  # (s since start, pid, KiB)
        # (s since start, pid, MiB of RSS beyond the bounded pools: see `summary`)
        self.rest: list[tuple[float, int, float]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        pools_path = self.path.with_name("memory.csv")
        columns: list[str] | None = None
        with open(self.path, "w") as out, open(pools_path, "w") as pools_out:
            out.write("seconds,pid,rss_kib\n")
            while not self._halt.wait(self.every):
                proc = self.run_.server.proc
                if proc is None or proc.poll() is not None:
                    continue  # down (killed, not restarted yet)
                try:
                    status = Path(f"/proc/{proc.pid}/status").read_text()
                except OSError:
                    continue
                rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)
                if rss is None or "\nState:\tZ" in status:
                    continue
                sample = (round(time.monotonic() - began, 2), proc.pid, rss)
                self.samples.append(sample)
                out.write(f"{sample[0]},{sample[1]},{sample[2]}\n")
                out.flush()
                pools = scrape_pools(self.run_.server.admin_url) if self.run_.server.admin_port else {}
                if pools:
                    if columns is None:
                        columns = sorted(pools)
                        pools_out.write(",".join(["seconds", "pid", "rss_kib", *columns]) + "\n")
                    row = [str(v) for v in sample] + [str(int(pools.get(c, -1))) for c in columns]
                    pooled = sum(pools.get(k, 0.0) for k in BOUNDED)
                    self.rest.append((sample[0], sample[1], sample[2] / 1024 - pooled / MIB))
                    pools_out.write(",".join(row) + "\n")
                    pools_out.flush()

    def stop(self) -> None:
        self._halt.set()
        self.join()

    def summary(self) -> dict[str, Any]:
        s = self.samples
        if not s:
            return {"rss_samples": 0}
        mib = [kib / 1024 for _, _, kib in s]
        by_pid: dict[int, list[tuple[float, float]]] = {}
        for t, pid, kib in s:
            by_pid.setdefault(pid, []).append((t, kib / 1024))
        longest = max(by_pid.values(), key=lambda xs: xs[-1][0] - xs[0][0])
        rest: dict[str, Any] = {}
        if self.rest:
            pid = max(by_pid, key=lambda p: by_pid[p][-1][0] - by_pid[p][0][0])
            mine = [(t, m) for t, p, m in self.rest if p == pid]
            rest = {"rest_first_mib": round(mine[0][1], 1), "rest_last_mib": round(mine[-1][1], 1),
                    "rest_slope_mib_per_h": _slope(mine)} if mine else {}
        return {**rest, "rss_samples": len(s), "rss_first_mib": round(mib[0], 1), "rss_max_mib": round(max(mib), 1),
                "rss_last_mib": round(mib[-1], 1),
                "rss_slope_mib_per_h": _slope([(t, m) for (t, _, _), m in zip(s, mib)]),
                "processes": len(by_pid), "longest_process_s": round(longest[-1][0] - longest[0][0], 1),
                "longest_process_slope_mib_per_h": _slope(longest),
                "series": [[t, pid, kib] for t, pid, kib in s]}


def _slope(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, MiB) points, in MiB per hour."""
    if len(points) < 2:
        return None
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mm = sum(m for _, m in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    if var == 0:
        return None
    return round(sum((t - mt) * (m - mm) for t, m in points) / var * 3600, 2)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=600.0, help="act for this long (default 600)")
    p.add_argument("--actions", type=int, default=None, help="take this many nemesis actions instead")
    p.add_argument("--seed", type=int, default=None, help="the run's seed (default: a random one, printed)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--client-timeout", type=float, default=2.0, help="s; pauses last 1.3 to 2x this")
    p.add_argument("--gap", default="1,4", help="min,max seconds between nemesis actions (default 1,4)")
    p.add_argument("--nemesis", default="kill,kill2,pause,pause-kill,slow", help="the actions to draw from")
    p.add_argument("--durability", choices=("sync", "wal"), default="sync")
    p.add_argument("--suspend-after", default="0.5s")
    p.add_argument("--break", dest="breaks", default="", help="STEAD_NEMESIS_BREAK: a deliberately broken build")
    p.add_argument("--failpoints", default="", help="STEAD_FAILPOINTS of the server at every start")
    p.add_argument("--work-dir", type=Path, default=None, help="the run directory (kept); default: bench/out/nemesis-*")
    p.add_argument("--keep", action="store_true", help="keep the default run directory even if the run passed")
    p.add_argument("--json", type=Path, default=None, help="also write the figures and violations here")
    p.add_argument("--rss-every", type=float, default=None,
                   help="sample the server's VmRSS every this many seconds (rss.csv, summary, RESULT line)")
    args = p.parse_args(argv)

    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**9)
    print(f"nemesis seed {seed}", flush=True)
    low, high = (float(x) for x in args.gap.split(","))
    config = Config(seed=seed, actions=args.actions, seconds=None if args.actions is not None else args.seconds,
                    clients=args.clients, client_timeout=args.client_timeout, gap=(low, high),
                    nemesis=tuple(n.strip() for n in args.nemesis.split(",") if n.strip()),
                    durability=args.durability, suspend_after=args.suspend_after, breaks=args.breaks,
                    failpoints=args.failpoints, quiet_timeout=120.0, drain_timeout=120.0)
    work_dir = args.work_dir or REPO / "bench" / "out" / f"nemesis-{time.strftime('%Y%m%d-%H%M%S')}-{seed}"
    work_dir.mkdir(parents=True, exist_ok=True)
    load_start = _load()
    sampler: RssSampler | None = None
    try:
        run = NemesisRun(config, work_dir, log=lambda line: print(line, flush=True))
        if args.rss_every:
            sampler = RssSampler(run, args.rss_every, work_dir / "rss.csv")
            sampler.start()
        try:
            report = run.execute()
        except Exception as exc:  # as run_nemesis does: the error names the run
            exc.add_note(f"nemesis run {config.describe()}, run directory {work_dir}")
            raise
        finally:
            if sampler is not None:
                sampler.stop()
    except Exception as exc:  # noqa: BLE001 - the harness failed: say so with the seed, keep the directory
        print(f"the harness failed (seed {seed}, kept {work_dir}): {exc!r}", file=sys.stderr)
        for note in getattr(exc, "__notes__", []):
            print(f"  {note}", file=sys.stderr)
        return 2
    print(report.summary(), flush=True)
    rss = sampler.summary() if sampler is not None else {}
    verdict = "fail" if report.violations else "pass"
    figures = {"seed": seed, "verdict": verdict, "violations": len(report.violations),
               "elapsed_s": report.figures["elapsed_s"], "restarts": report.figures["restarts"],
               "ops": report.figures["ops"], "acknowledged": report.figures["acknowledged"],
               **{k: v for k, v in rss.items() if k != "series"}, "load_start": load_start, "load_end": _load()}
    print("RESULT nemesis " + " ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"seed": seed, "figures": report.figures, "rss": rss,
                                         "violations": report.violations}, indent=2) + "\n")
    if report.violations:
        print(f"FAILED: seed {seed}; run directory kept: {work_dir}")
        return 1
    if not args.keep and args.work_dir is None:
        shutil.rmtree(work_dir, ignore_errors=True)
    print(f"passed: seed {seed}")
    return 0


def _load() -> str:
    return "/".join(Path("/proc/loadavg").read_text().split()[:3])


if __name__ == "__main__":
    sys.exit(main())
