"""Scale and recovery figures (issue 11, part 6; not CI).

Each measurement runs a real `stead serve bench.flowapp:application` (bench/flowapp.py:
`Sleeper/nap(ms)` does a durable step, then a durable sleep; `Counter/{k}/add(n)` and
`Counter/{k}/total` keep one state entry per object key) on a fresh data directory under
bench/out/, with the ingress on a port the kernel picks and the admin API on a free one,
and reads the process's memory from /proc/PID/status (VmRSS: resident now; VmHWM: the
most it has been resident). "Start → ready" is the time from spawning the process to its
`stead ready: ... recovered N invocations` line on stderr (imports, opening RocksDB,
recovery, binding), read as the line arrives.

    recovery   N (10,000) naps sent with /send, each in flight at the kill: its step
               journaled, its sleep pending (`nemesis`-style check through SQL before the
               kill). `kill -9`; the downtime lasts until every nap's wake-up time has
               passed, so that at restart every one of them is due at once. Then: start →
               ready (with `recovered N`), and start → every nap completed (the admin API
               lists no unfinished invocation; polled every 50 ms). Target: all resumed
               within 5 s. Run once per --suspend-after value: `1h` (the naps are running
               coroutines at the kill: recovery resumes them all by replay before ready) and
               `0.1s` (they are suspended at the kill: recovery only rebuilds their timers,
               which fire at once after ready).
    keys       N (1,000,000) `Counter/k{i}/add(1)`, each key once, over 32 keep-alive
               connections; RSS after writing; SIGTERM, restart (start → ready); RSS after
               startup, and after touching M (100,000: the state cache's key bound) random
               keys with the shared `Counter/k{i}/total` (each must answer 1). Target: RSS ≤
               200 MiB with the keys stored. Every add is also a completed invocation that
               retention (24 h) keeps on disk.
    suspended  N (100,000) naps of an hour with --suspend-after 0.1s, all suspended (none
               left in another unfinished status); RSS; SIGTERM, restart; start → ready,
               RSS after startup and 2 s later; then SQL counts them (after the RSS figures:
               a query loads Arrow tables into the server).
    soak       bench/nemesis.py for --seconds (3600) with the server's RSS sampled every
               --rss-every (10) s: the checker's verdict and the RSS series (first, max,
               last, least-squares slope). Other arguments go to bench/nemesis.py as they are
               (e.g. `--nemesis pause,slow` for one long-lived server process: no kills).

Each prints `RESULT scale_<name> key=value ...` lines (with the load average at the start
and end of the measurement) and writes them with the details to
bench/out/<timestamp>-scale/results.json; the data directories are removed afterwards
unless --keep-data. `--quick` runs each at a small scale, to check the script (seconds to
a minute each). Exit status: 1 if a measurement failed or a check did not hold; the
targets are reported (`met=yes|no`), not enforced.

    .venv/bin/python bench/scale.py recovery                  # 10,000 in flight, both thresholds
    .venv/bin/python bench/scale.py keys --count 1000000 --touch 100000
    .venv/bin/python bench/scale.py suspended
    .venv/bin/python bench/scale.py soak --seconds 3600 --rss-every 10
    .venv/bin/python bench/scale.py all --quick               # every one, small
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# bench/ is sys.path[0] when this file runs as a script: reuse the harnesses' helpers.
from flows import Connection, RssSampler, each, proc_cpu_s, proc_status, run_async
from run import OUT, REPO, free_port, load_average, request

APP = "bench.flowapp:application"
UNFINISHED = "pending,scheduled,running,suspended,backing-off,paused,ready"
READY = re.compile(rb"stead ready: ingress http://[^:]+:(\d+),.* recovered (\d+) invocations")
POLL_S = 0.05
MIB = 1024.0

# name -> (full, quick) scale
SCALES = {
    "recovery": {"count": (10_000, 1_000), "nap_ms": (15_000, 5_000)},
    "keys": {"count": (1_000_000, 20_000), "touch": (100_000, 5_000)},
    "suspended": {"count": (100_000, 5_000)},
    "soak": {"seconds": (3600.0, 60.0), "rss_every": (10.0, 2.0)},
}
RECOVERY_TARGET_S = 5.0
KEYS_TARGET_MIB = 200.0


class Failed(RuntimeError):
    """A measurement could not be made, or what it set up did not hold."""


# ---------------------------------------------------------------- the server process

class Serve:
    """One `stead serve` process after another on the same data directory.

    The ingress binds port 0 and the ready line says which port it got; the admin API
    binds a free port (retried on another if it was taken meanwhile). Output goes to a
    log file through a thread that notes when the ready line arrives."""

    def __init__(self, data_dir: Path, log_path: Path, args: list[str]) -> None:
        self.data_dir, self.log_path, self.args = data_dir, log_path, args
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = self.admin_port = 0
        self.recovered = -1
        self.ready_s = 0.0  # start → ready line, of the last start
        self.started_at = 0.0  # time.monotonic() at the last spawn
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 600.0) -> float:
        """Spawn, wait for the ready line; the seconds from spawn to it."""
        for _ in range(5):
            self.admin_port = free_port()
            cmd = [sys.executable, "-m", "runtime.cli", "serve", APP, "--data-dir", str(self.data_dir),
                   "--port", "0", "--admin-port", str(self.admin_port), *self.args]
            ready = threading.Event()
            with open(self.log_path, "ab") as log:
                log.write(f"\n[scale] $ {' '.join(cmd)}\n".encode())
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self._reader = threading.Thread(target=self._read, args=(self.proc, ready), daemon=True)
            self._reader.start()
            deadline = self.started_at + timeout
            while not ready.wait(0.01):
                if self.proc.poll() is not None:
                    self._reader.join(5)
                    tail = self.log_path.read_text(errors="replace")[-3000:]
                    if "Address already in use" in tail:
                        break  # the admin port was taken meanwhile: another one
                    raise Failed(f"stead serve exited with {self.proc.returncode} before ready:\n{tail}")
                if time.monotonic() > deadline:
                    self.kill()
                    raise Failed(f"stead serve not ready after {timeout:.0f} s")
            else:
                return self.ready_s
        raise Failed("stead serve lost its admin port to another process 5 times")

    def _read(self, proc: subprocess.Popen[bytes], ready: threading.Event) -> None:
        assert proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for line in proc.stdout:
                if not ready.is_set():
                    m = READY.search(line)
                    if m:
                        self.ready_s = time.monotonic() - self.started_at
                        self.port, self.recovered = int(m.group(1)), int(m.group(2))
                        ready.set()
                log.write(line)
                log.flush()

    def kill(self) -> None:
        """SIGKILL: nothing of the shutdown runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
        self._join()

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM: the graceful shutdown (SIGKILL if it takes longer than `timeout`)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._join()
        return self.proc.returncode

    def _join(self) -> None:
        if self._reader is not None:
            self._reader.join(10)

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM now, in MiB."""
        status = proc_status(self.pid)
        return {"rss_mib": status["VmRSS"] / MIB, "hwm_mib": status["VmHWM"] / MIB}

    # -- the admin API

    def admin(self, method: str, path: str, body: dict | None = None) -> Any:
        status, out = request(method, self.admin_port, path, None if body is None else json.dumps(body).encode())
        if status != 200:
            raise Failed(f"admin {method} {path}: HTTP {status} {out[:300]!r}")
        return json.loads(out)

    def sql(self, query: str) -> list[dict]:
        return self.admin("POST", "/query", {"query": query})["rows"]

    def any_unfinished(self, service: str, statuses: str = UNFINISHED) -> bool:
        return bool(self.admin("GET", f"/invocations?service={service}&status={statuses}&limit=1")["invocations"])

    def statuses(self, service: str) -> dict[str, int]:
        rows = self.sql(f"SELECT status, count(*) AS n FROM sys_invocation "
                        f"WHERE target_service_name = '{service}' GROUP BY status")
        return {r["status"]: r["n"] for r in rows}


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = POLL_S) -> float:
    """Poll `cond` until it holds; the seconds it took."""
    began = time.monotonic()
    while not cond():
        if time.monotonic() - began > timeout:
            raise Failed(f"{what}: not after {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - began


# ---------------------------------------------------------------- clients

async def send_all(port: int, paths: list[str], body: bytes, conns: int, expect: int,
                   check: Callable[[bytes], bool] | None = None,
                   say: Callable[[str], None] | None = None) -> dict:
    """POST each path once over `conns` keep-alive connections; counts and errors. With
    `say`, a progress line every 10 % (of 50,000 requests or more)."""
    errors: dict[str, int] = {}
    ok = [0]
    first: list[str] = []
    tenth = max(1, len(paths) // 10)
    if len(paths) < 50_000:
        say = None  # quick enough to need no progress

    def error(key: str, detail: Any) -> None:
        errors[key] = errors.get(key, 0) + 1
        if not first:
            first.append(f"{key}: {str(detail)[:300]}")

    async def one(conn: Connection, path: str) -> None:
        status, out = await conn.request("POST", path, body)
        if status != expect:
            error(f"HTTP_{status}", out)
        elif check is not None and not check(out):
            error("unexpected_answer", out)
        else:
            ok[0] += 1
            if say is not None and ok[0] % tenth == 0:
                say(f"  {ok[0]} of {len(paths)} in {time.monotonic() - began:.0f} s")

    began = time.monotonic()
    await each(paths, conns, port, one, lambda item, exc: error(type(exc).__name__, exc))
    took = time.monotonic() - began
    return {"ok": ok[0], "errors": errors, "first_error": first[0] if first else "", "seconds": took,
            "rps": len(paths) / took if took else 0.0}


# ---------------------------------------------------------------- measurements

class Context:
    def __init__(self, args: argparse.Namespace, run_dir: Path, stamp: str) -> None:
        self.args, self.run_dir, self.stamp = args, run_dir, stamp

    def scale(self, name: str, key: str):
        explicit = getattr(self.args, key, None)
        if explicit is not None:
            return explicit
        full, quick = SCALES[name][key]
        return quick if self.args.quick else full

    def server(self, name: str, extra: list[str]) -> Serve:
        data_dir = OUT / f"data-{self.stamp}-{name}"
        shutil.rmtree(data_dir, ignore_errors=True)
        args = ["--durability", self.args.durability, *extra]
        return Serve(data_dir, self.run_dir / f"server-{name}.log", args)

    def cleanup(self, srv: Serve) -> None:
        if srv.proc is not None and srv.proc.poll() is None:
            srv.kill()
        if not self.args.keep_data:
            shutil.rmtree(srv.data_dir, ignore_errors=True)


def du_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MIB / MIB


def recovery(ctx: Context, threshold: str, say: Callable[[str], None]) -> dict:
    count, nap_ms = ctx.scale("recovery", "count"), ctx.scale("recovery", "nap_ms")
    srv = ctx.server(f"recovery-{threshold}", ["--suspend-after", threshold])
    r: dict[str, Any] = {"count": count, "nap_ms": nap_ms, "suspend_after": threshold}
    try:
        r["ready_empty_s"] = srv.start()
        r["rss_empty_mib"] = srv.memory()["rss_mib"]
        sent = run_async(send_all(srv.port, ["/Sleeper/nap/send"] * count, str(nap_ms).encode(),
                                  ctx.args.connections, 202))
        r["submit_s"], r["submit_rps"] = sent["seconds"], sent["rps"]
        if sent["ok"] != count:
            raise Failed(f"{sent['ok']} of {count} naps accepted; {sent['errors']} {sent['first_error']}")
        say(f"  {count} naps accepted in {sent['seconds']:.1f} s ({sent['rps']:.0f}/s)")

        # In flight: every nap has journaled its step and its sleep, none has completed.
        sleeps: dict[str, Any] = {}

        def journaled() -> bool:
            sleeps.update(srv.sql("SELECT count(*) AS n, max(sleep_wakeup_at) AS last FROM sys_journal "
                                  "WHERE entry_type = 'Sleep'")[0])
            return sleeps["n"] >= count

        wait_for(journaled, 120, f"{count} sleeps journaled", interval=0.5)
        before = srv.statuses("Sleeper")
        r["status_at_kill"] = before
        if before.get("completed"):
            raise Failed(f"{before['completed']} naps completed before the kill: raise --nap-ms above {nap_ms}")
        r["rss_at_kill_mib"] = srv.memory()["rss_mib"]
        srv.kill()
        # Down until every wake-up time has passed: at restart, all are due.
        last_wake = dt.datetime.fromisoformat(sleeps["last"]).timestamp()
        down = max(0.0, last_wake + 0.2 - time.time())
        say(f"  killed with {before}; down {down:.1f} s until the last wake-up time")
        time.sleep(down)

        srv.start()
        r["ready_s"], r["recovered"] = srv.ready_s, srv.recovered
        cpu0 = proc_cpu_s(srv.pid)
        sampler = RssSampler(srv.pid)
        sampler.start()
        try:
            wait_for(lambda: not srv.any_unfinished("Sleeper"), 600, "every nap completed")
        finally:
            sampler.stop()
        r["done_s"] = time.monotonic() - srv.started_at  # spawn → the poll that found none left
        r["done_after_ready_s"] = r["done_s"] - r["ready_s"]
        r["server_cpu_s"] = proc_cpu_s(srv.pid) - cpu0
        mem = srv.memory()
        r["rss_done_mib"], r["hwm_mib"] = mem["rss_mib"], mem["hwm_mib"]
        r["rss_peak_mib"] = sampler.peak_kib / MIB
        after = srv.statuses("Sleeper")
        r["status_after"] = after
        if after.get("completed") != count or sum(after.values()) != count:
            raise Failed(f"after recovery: {after}, expected {count} completed")
        r["met"] = "yes" if r["done_s"] <= RECOVERY_TARGET_S else "no"
        srv.stop()
        return r
    finally:
        ctx.cleanup(srv)


def keys(ctx: Context, say: Callable[[str], None]) -> dict:
    count, touch = ctx.scale("keys", "count"), ctx.scale("keys", "touch")
    srv = ctx.server("keys", [])
    r: dict[str, Any] = {"count": count, "touch": touch}
    try:
        r["ready_empty_s"] = srv.start()
        r["rss_empty_mib"] = srv.memory()["rss_mib"]
        sampler = RssSampler(srv.pid)
        sampler.start()
        try:
            wrote = run_async(send_all(srv.port, [f"/Counter/k{i}/add" for i in range(count)], b"1",
                                       ctx.args.connections, 200, check=lambda out: out == b"1", say=say))
        finally:
            sampler.stop()
        r["write_s"], r["write_rps"] = wrote["seconds"], wrote["rps"]
        if wrote["ok"] != count:
            raise Failed(f"{wrote['ok']} of {count} adds answered 1; {wrote['errors']} {wrote['first_error']}")
        say(f"  {count} keys written in {wrote['seconds']:.1f} s ({wrote['rps']:.0f}/s)")
        mem = srv.memory()
        r["rss_written_mib"], r["rss_write_peak_mib"], r["hwm_write_mib"] = (
            mem["rss_mib"], sampler.peak_kib / MIB, mem["hwm_mib"])
        srv.stop()
        r["data_dir_mib"] = du_mib(srv.data_dir)

        r["ready_s"] = srv.start()
        r["rss_started_mib"] = srv.memory()["rss_mib"]
        sample = random.Random(count).sample(range(count), min(touch, count))
        touched = run_async(send_all(srv.port, [f"/Counter/k{i}/total" for i in sample], b"",
                                     ctx.args.connections, 200, check=lambda out: out == b"1"))
        r["touch_s"], r["touch_rps"] = touched["seconds"], touched["rps"]
        if touched["ok"] != len(sample):
            raise Failed(f"{touched['ok']} of {len(sample)} keys read back 1; "
                         f"{touched['errors']} {touched['first_error']}")
        mem = srv.memory()
        r["rss_touched_mib"], r["hwm_mib"] = mem["rss_mib"], mem["hwm_mib"]
        r["met"] = "yes" if max(r["rss_started_mib"], r["rss_touched_mib"]) <= KEYS_TARGET_MIB else "no"
        srv.stop()
        return r
    finally:
        ctx.cleanup(srv)


def suspended(ctx: Context, say: Callable[[str], None]) -> dict:
    count = ctx.scale("suspended", "count")
    nap_ms = 3_600_000
    srv = ctx.server("suspended", ["--suspend-after", "0.1s"])
    r: dict[str, Any] = {"count": count, "nap_ms": nap_ms}
    try:
        r["ready_empty_s"] = srv.start()
        r["rss_empty_mib"] = srv.memory()["rss_mib"]
        sent = run_async(send_all(srv.port, ["/Sleeper/nap/send"] * count, str(nap_ms).encode(),
                                  ctx.args.connections, 202, say=say))
        r["submit_s"], r["submit_rps"] = sent["seconds"], sent["rps"]
        if sent["ok"] != count:
            raise Failed(f"{sent['ok']} of {count} naps accepted; {sent['errors']} {sent['first_error']}")
        say(f"  {count} naps accepted in {sent['seconds']:.1f} s ({sent['rps']:.0f}/s)")
        # Accepted, and none in another unfinished status (nor completed: an hour's nap): suspended.
        r["settle_s"] = wait_for(lambda: not srv.any_unfinished("Sleeper", "pending,scheduled,running,backing-off,"
                                                                            "paused,ready"),
                                 600, "every nap suspended", interval=0.5)
        mem = srv.memory()
        r["rss_suspended_mib"], r["hwm_before_mib"] = mem["rss_mib"], mem["hwm_mib"]
        srv.stop()
        r["data_dir_mib"] = du_mib(srv.data_dir)

        r["ready_s"] = srv.start()
        r["recovered"] = srv.recovered
        r["rss_started_mib"] = srv.memory()["rss_mib"]
        time.sleep(2.0)
        mem = srv.memory()
        r["rss_started_2s_mib"], r["hwm_mib"] = mem["rss_mib"], mem["hwm_mib"]
        after = srv.statuses("Sleeper")  # after the figures: the query's tables live in the server
        r["status_after"] = after
        if after.get("suspended") != count:
            raise Failed(f"after the restart: {after}, expected {count} suspended")
        srv.stop()
        return r
    finally:
        ctx.cleanup(srv)


def soak(ctx: Context, say: Callable[[str], None]) -> dict:
    import nemesis

    seconds, every = ctx.scale("soak", "seconds"), ctx.scale("soak", "rss_every")
    out = ctx.run_dir / "soak.json"
    argv = ["--seconds", str(seconds), "--rss-every", str(every), "--json", str(out),
            "--durability", ctx.args.durability, *ctx.args.nemesis_args]
    say(f"  bench/nemesis.py {' '.join(argv)}")
    status = nemesis.main(argv)
    if not out.exists():
        raise Failed(f"bench/nemesis.py exited with {status} without a report (the harness failed)")
    report = json.loads(out.read_text())
    rss = report.get("rss", {})
    r = {"seconds": seconds, "rss_every": every, "seed": report["seed"],
         "verdict": "pass" if status == 0 else "fail", "violations": len(report["violations"]),
         "restarts": report["figures"].get("restarts"), "ops": report["figures"].get("ops"),
         **{k: v for k, v in rss.items() if k != "series"}}
    if status != 0:
        raise Failed(f"the nemesis run failed (status {status}): {r}")
    return r


# ---------------------------------------------------------------- output

def result_line(name: str, r: dict) -> str:
    pairs = []
    for k, v in r.items():
        if isinstance(v, (dict, list)):
            v = ",".join(f"{a}:{b}" for a, b in v.items()) if isinstance(v, dict) else len(v)
        pairs.append(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}")
    return f"RESULT scale_{name} " + " ".join(pairs)


PARTS = ("recovery", "keys", "suspended", "soak")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("what", choices=(*PARTS, "all"), help="the measurement (all: every one, in this order)")
    p.add_argument("--quick", action="store_true", help="small scale, to check the script")
    p.add_argument("--count", type=int, help="invocations (recovery, suspended) or keys (keys)")
    p.add_argument("--nap-ms", type=int, help="recovery: each nap's sleep; must outlast the submission")
    p.add_argument("--thresholds", default="1h,0.1s", help="recovery: the --suspend-after values (default 1h,0.1s)")
    p.add_argument("--touch", type=int, help="keys: how many random keys to read after the restart")
    p.add_argument("--seconds", type=float, help="soak: the nemesis run's duration (default 3600)")
    p.add_argument("--rss-every", type=float, help="soak: seconds between RSS samples (default 10)")
    p.add_argument("--connections", type=int, default=32, help="the client's keep-alive connections (default 32)")
    p.add_argument("--durability", choices=("sync", "wal"), default="sync")
    p.add_argument("--keep-data", action="store_true", help="keep the data directories in bench/out/")
    args, rest = p.parse_known_args(argv)
    if rest and args.what not in ("soak", "all"):
        p.error(f"unrecognized arguments: {' '.join(rest)}")
    args.nemesis_args = rest  # soak: passed to bench/nemesis.py
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%S")
    run_dir = OUT / f"{stamp}-scale"
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(args, run_dir, stamp)
    say = lambda line: print(line, flush=True)
    jobs: list[tuple[str, Callable[[], dict]]] = []
    for part in PARTS if args.what == "all" else (args.what,):
        if part == "recovery":
            for th in (t.strip() for t in args.thresholds.split(",") if t.strip()):
                jobs.append((f"recovery_suspend_{th}", lambda th=th: recovery(ctx, th, say)))
        else:
            jobs.append((part, {"keys": lambda: keys(ctx, say), "suspended": lambda: suspended(ctx, say),
                                "soak": lambda: soak(ctx, say)}[part]))
    results: dict[str, dict] = {}
    failed = False
    for name, job in jobs:
        load = load_average().replace(" ", "/")
        say(f"{name}{' (quick)' if args.quick else ''}, load average {load}...")
        try:
            r = job()
        except (TimeoutError, Failed, OSError, ValueError, KeyError) as exc:
            r, failed = {"error": str(exc)}, True
            say(f"  failed: {exc}")
        r["load_start"], r["load_end"] = load, load_average().replace(" ", "/")
        results[name] = r
        if "error" not in r:
            say(result_line(name, r))
    (run_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    say(f"details in {run_dir.relative_to(REPO)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
