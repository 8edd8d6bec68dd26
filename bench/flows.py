"""Benchmarks of durable control flow: timers and calls between objects.

One command (`bench/flows`, which activates .venv and runs this file), each run
against a FRESH `stead serve bench.flowapp:application` (new data dir under
bench/out/, health polled, SIGTERM afterwards), as bench/run.py does:

- timer: N invocations (10,000) of `Sleeper/nap(1000)` submitted with
  `POST /Sleeper/nap/send` by an asyncio client over a bounded number of
  keep-alive connections (32), as fast as it goes. The server's RSS
  (/proc/PID/status VmRSS) is read before submitting (baseline) and every 50 ms
  until every result is in (peak; VmHWM too). Then, once the last accepted invocation alone has finished
  (attached over one connection, so that collecting does not load the server
  while the others wake), every result is collected with
  `GET /restate/invocation/{id}/attach`. Each result is the handler's lateness
  (wake wall time − intended wake time), so it includes the queueing of many
  wake-ups on one event loop. Run once per suspension threshold: `5s` (the
  default: 1 s sleepers stay in memory as coroutines) and `0.1s` (they are
  dropped and resumed by replay).
- call: `Caller/{k}/call` (an exclusive handler that calls `Counter/{k}/add`)
  with W1's shape (wrk -t1 -c1, 5 s warm-up, then 20 s; bench/flow_call.lua,
  100 keys), and `Counter/{k}/add` directly with the same shape as its floor.
  Afterwards the Counter totals must match the calls wrk saw answered.
- floors: the fsync floor and the HTTP floor, from bench/run.py.

A section goes on top of bench/RESULTS.md (unless --no-write); raw output in
bench/out/<timestamp>/ (gitignored).

    bench/flows                             # floors, timer (both thresholds), call; sync
    bench/flows --only call --duration 3 --no-write
    bench/flows --only timer --timer-count 1000 --durability wal
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httptools

# bench/ is sys.path[0] when this file runs as a script: reuse the harness's helpers.
import run as harness
from run import OUT, REPO, RESULTS_MD, Server, fmt, free_port, parse_results, request

APP = "bench.flowapp:application"
CALL_SCRIPT = Path("bench/flow_call.lua")  # relative to REPO, where wrk runs
CALL_SHAPE = (1, 1, 20, 5)  # W1's: threads, connections, seconds, warm-up seconds
CALL_KEYS = 100
SAMPLE_INTERVAL_S = 0.05
LAST_TIMEOUT_S = 600.0  # the last nap's attach: the wake-up queue may be long
ALL_PARTS = ("floors", "timer", "call")


# ---------------------------------------------------------------- server process

def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = int(line.split()[1])
    return out


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RssSampler(threading.Thread):
    """Reads a process's VmRSS every SAMPLE_INTERVAL_S, in a thread so that a busy
    client event loop does not delay the samples."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.samples = pid, 0, 0
        self.series: list[tuple[float, int]] = []  # (s since start, KiB) every ~0.5 s, for results.json
        self._halt = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._halt.is_set():
            try:
                rss = proc_status(self.pid)["VmRSS"]
            except (OSError, KeyError):
                return  # the server is gone; the run reports that
            if self.samples % 10 == 0:
                self.series.append((round(time.monotonic() - t0, 2), rss))
            self.peak_kib, self.samples = max(self.peak_kib, rss), self.samples + 1
            self._halt.wait(SAMPLE_INTERVAL_S)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def start_server(name: str, args, run_dir: Path, stamp: str, extra: list[str]) -> tuple[Server, Path]:
    data_dir = OUT / f"data-{stamp}-{name}"
    port = free_port()
    cmd = [sys.executable, "-m", "runtime.cli", "serve", APP, "--data-dir", str(data_dir),
           "--port", str(port), "--admin-port", "0", "--durability", args.durability, *extra]
    return Server(cmd, port, run_dir / f"server-{name}.log", "/restate/health"), data_dir


def running_builds() -> list[str]:
    """cargo/rustc/maturin processes (by name: their command lines are not what matters)."""
    found = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:
            continue
        if name in ("cargo", "rustc", "maturin"):
            found.append(f"{name} ({comm.parent.name})")
    return found


def server_log_problems(path: Path) -> int:
    text = path.read_text(errors="replace") if path.exists() else ""
    return sum(1 for line in text.splitlines() if "Traceback" in line or " ERROR " in line)


# ---------------------------------------------------------------- timer workload

def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a sorted list."""
    return sorted_values[max(0, math.ceil(q / 100 * len(sorted_values)) - 1)]


def peak_waiting(accepted: list[float], ends: list[float]) -> int:
    """Most invocations between acceptance and wake-up at once (client clock)."""
    events = sorted([(t, 1) for t in accepted] + [(t, -1) for t in ends])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, responses parsed by
    httptools (the parser uvicorn uses; it handles the server's chunked bodies).

    Not httpx: on this 2-CPU machine httpx's AsyncClient sends ~1,100 requests/s at
    best and ~400/s over 32 connections (its pool costs grow with them), so 10,000
    submissions would take 10-25 s against 1 s sleeps and few would ever wait at
    once. This client does ~30,000/s against a trivial server: the server is the
    bottleneck, as it should be.
    """

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport  # set by connection_made, before open() returns
        self.waiter: asyncio.Future | None = None
        self.body: list[bytes] = []

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        _, conn = await asyncio.get_running_loop().create_connection(cls, host, port)
        return conn

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP response: {exc}"))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.parser.get_status_code(), b"".join(self.body)))
        self.body = []

    def connection_lost(self, exc) -> None:
        self._fail(ConnectionError(f"connection lost: {exc}"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def request(self, method: str, path: str, body: bytes = b"", timeout: float = 60.0) -> tuple[int, bytes]:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        return await asyncio.wait_for(self.waiter, timeout)

    def close(self) -> None:
        self.transport.close()


async def each(items, conns: int, port: int, work, on_error) -> None:
    """Run `await work(conn, item)` for every item over `conns` connections. A request
    that fails or times out goes to `on_error(item, exc)`; its connection is replaced,
    since a late response on it would answer the next request."""
    todo = iter(items)  # one shared iterator: each item goes to one connection

    async def worker() -> None:
        conn = await Connection.open("127.0.0.1", port)
        try:
            for item in todo:
                try:
                    await work(conn, item)
                except (OSError, asyncio.TimeoutError) as exc:
                    on_error(item, exc)
                    conn.close()
                    conn = await Connection.open("127.0.0.1", port)
        finally:
            conn.close()

    await asyncio.gather(*(worker() for _ in range(conns)))


async def drive_timers(port: int, count: int, ms: int, conns: int, log) -> dict:
    """Submit `count` naps, wait for the last one alone, then collect every result."""
    body = json.dumps(ms).encode()
    ids: list[str | None] = [None] * count
    accepted = [0.0] * count
    lateness: dict[int, float] = {}
    errors: dict[str, int] = {}

    def error(key: str, detail: bytes | str = "") -> None:
        errors[key] = errors.get(key, 0) + 1
        if errors[key] == 1:
            log(f"first {key}: {detail[:300]!r}")

    async def submit(conn: Connection, i: int) -> None:
        status, out = await conn.request("POST", "/Sleeper/nap/send", body)
        if status == 202:
            ids[i], accepted[i] = json.loads(out)["invocationId"], time.time()
        else:
            error(f"send HTTP {status}", out)

    def failed(what: str):
        return lambda i, exc: error(f"{what} {type(exc).__name__}", str(exc))

    async def collect(conn: Connection, i: int, timeout: float = 60.0) -> None:
        status, out = await conn.request("GET", f"/restate/invocation/{ids[i]}/attach", timeout=timeout)
        if status == 200:
            lateness[i] = float(json.loads(out))
        else:
            error(f"attach HTTP {status}", out)

    t0 = time.time()
    await each(range(count), conns, port, submit, failed("send"))
    t_submitted = time.time()
    log(f"submitted {sum(1 for i in ids if i)} of {count} in {t_submitted - t0:.2f} s")
    sent = [i for i in range(count) if ids[i]]
    if sent:  # the last one alone; by then (nearly) every other one is done too
        await each([max(sent, key=lambda i: accepted[i])], 1, port,
                   lambda conn, i: collect(conn, i, LAST_TIMEOUT_S), failed("attach-last"))
    t_last = time.time()
    await each(sent, conns, port, collect, failed("attach"))
    t_collected = time.time()
    done = sorted(lateness)
    late = sorted(lateness.values())
    out = {
        "count": count, "submitted": len(sent), "completed": len(done),
        "submit_s": t_submitted - t0, "submit_rps": len(sent) / (t_submitted - t0),
        "last_done_s": t_last - t0, "collect_s": t_collected - t_last, "errors": errors,
        "peak_waiting": peak_waiting([accepted[i] for i in done],
                                     [accepted[i] + (ms + lateness[i]) / 1000 for i in done]),
    }
    # Per invocation in submission order, for results.json: (accepted s after start, lateness ms).
    out["by_submission"] = [(round(accepted[i] - t0, 4), round(lateness[i], 2)) for i in done]
    if late:
        out.update({"late_p50_ms": statistics.median(late), "late_p90_ms": percentile(late, 90),
                    "late_p99_ms": percentile(late, 99), "late_max_ms": late[-1], "late_min_ms": late[0]})
    return out


def run_timer(threshold: str, args, run_dir: Path, stamp: str, log) -> dict:
    name = f"timer-suspend-{threshold}"
    srv, data_dir = start_server(name, args, run_dir, stamp, ["--suspend-after", threshold])
    log(f"== {name}: {' '.join(srv.cmd)}")
    try:
        with srv:
            assert srv.proc is not None
            pid = srv.proc.pid
            # One nap first, so the baseline is of a server that has run the code path.
            status, body = request("POST", srv.port, "/Sleeper/nap", b"10")
            if status != 200:
                raise RuntimeError(f"warm-up nap failed: HTTP {status} {body[:200]!r}")
            baseline = proc_status(pid)["VmRSS"]
            cpu0 = proc_cpu_s(pid)
            sampler = RssSampler(pid)
            sampler.start()
            try:
                result = run_async(drive_timers(srv.port, args.timer_count, args.timer_ms, args.connections, log))
            finally:
                sampler.stop()
            result.update({"threshold": threshold, "rss_base_mib": baseline / 1024,
                           "rss_peak_mib": sampler.peak_kib / 1024, "rss_samples": sampler.samples,
                           "rss_series_kib": sampler.series,
                           "rss_end_mib": proc_status(pid)["VmRSS"] / 1024,
                           "hwm_mib": proc_status(pid)["VmHWM"] / 1024, "server_cpu_s": proc_cpu_s(pid) - cpu0})
    finally:
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    result["log_problems"] = server_log_problems(srv.logfile)
    result["ok"] = (result["completed"] == args.timer_count and not result["errors"]
                    and not result["log_problems"])
    result["line"] = timer_line(result)
    log(result["line"])
    return result


def run_async(coro):
    import uvloop  # the client is CPU-bound too: give it the loop the server runs on

    return uvloop.run(coro)


def timer_line(r: dict) -> str:
    keys = ("count", "submitted", "completed", "submit_s", "submit_rps", "last_done_s", "peak_waiting",
            "late_p50_ms", "late_p90_ms", "late_p99_ms", "late_max_ms", "rss_base_mib", "rss_peak_mib",
            "hwm_mib", "server_cpu_s")
    pairs = [f"{k}={r[k]:.3f}" if isinstance(r.get(k), float) else f"{k}={r.get(k, '-')}" for k in keys]
    errors = ",".join(f"{k.replace(' ', '_')}:{v}" for k, v in r["errors"].items()) or "none"
    return f"RESULT timer_suspend_{r['threshold']} " + " ".join(pairs) + f" errors={errors}"


# ---------------------------------------------------------------- call workload

def wrk(url: str, mode: str, seconds: float, log) -> dict:
    threads, conns, _, _ = CALL_SHAPE
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "-s", str(CALL_SCRIPT), url, "--", mode]
    log(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 60)
    log(proc.stdout + proc.stderr)
    results = parse_results(proc.stdout)
    if proc.returncode != 0 or len(results) != 1:
        raise RuntimeError(f"wrk failed (rc={proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}")
    return next(iter(results.values()))


def run_call(mode: str, args, run_dir: Path, stamp: str, log) -> dict:
    """`direct` or `call` against a fresh server; then the Counter totals must equal
    the adds wrk saw answered, plus at most one in flight per wrk run."""
    srv, data_dir = start_server(f"call-{mode}", args, run_dir, stamp, [])
    log(f"== call {mode}: {' '.join(srv.cmd)}")
    try:
        with srv:
            answered = 0
            if args.warmup:
                log(f"-- {mode} warm-up ({args.warmup:g} s, discarded)")
                answered += wrk(srv.url, mode, args.warmup, log)["ok2xx"]
            result = wrk(srv.url, mode, args.duration or CALL_SHAPE[2], log)
            answered += result["ok2xx"]
            total = 0
            for k in range(CALL_KEYS):
                status, body = request("POST", srv.port, f"/Counter/k{k}/total", b"")
                if status != 200:
                    raise RuntimeError(f"Counter/k{k}/total: HTTP {status} {body[:200]!r}")
                total += json.loads(body)
    finally:
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    runs = 2 if args.warmup else 1
    excess = total - answered
    result["check_ok"] = (0 <= excess <= runs and not result["non2xx"] and result["sock_err"] == "0/0/0/0"
                          and not server_log_problems(srv.logfile))
    result["check"] = (f"Counter totals={total} answered={answered} (warm-up included) excess={excess} "
                       f"within [0, {runs}], no errors: {'yes' if result['check_ok'] else 'NO'}")
    return result


# ---------------------------------------------------------------- report

def render(stamp: str, args, info: dict, floors: dict, timers: dict, calls: dict) -> str:
    lines = [f"## {stamp} UTC — durable control flow (`bench/flows`), durability `{args.durability}`"
             + (f" (duration override {args.duration:g} s)" if args.duration else ""), ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines.append("- durability `sync`: the WAL is fsynced per group commit before a response is sent"
                 if args.durability == "sync" else "- durability `wal`: the WAL is written but not fsynced")
    if timers:
        lines += ["", f"Timers: {args.timer_count} × `POST /Sleeper/nap/send` with {args.timer_ms} ms, "
                      f"{args.connections} keep-alive connections; lateness = wake wall time − intended "
                      "wake time, measured in the handler (includes queueing of the wake-ups on the "
                      "server's one event loop and the `due` step's commit); RSS of the server process "
                      f"sampled every {SAMPLE_INTERVAL_S * 1000:.0f} ms; peak waiting is estimated from "
                      "the client's accept times plus sleep plus lateness.", "",
                  "| suspend after | completed | submit s | submits/s | last done s | peak waiting "
                  "| lateness p50 ms | p90 ms | p99 ms | max ms | RSS baseline MiB | RSS peak MiB "
                  "| VmHWM MiB | server CPU-s |", "|" + "---|" * 14]
        for th, r in timers.items():
            if "error" in r:
                lines.append(f"| {th} | failed: {first_line(r['error'])} |" + " |" * 12)
                continue
            lines.append(f"| {th} | {r['completed']} / {r['count']} | {fmt(r['submit_s'], 2)} "
                         f"| {fmt(r['submit_rps'], 0)} | {fmt(r['last_done_s'], 2)} | {r['peak_waiting']} "
                         f"| {fmt(r.get('late_p50_ms'), 1)} | {fmt(r.get('late_p90_ms'), 1)} "
                         f"| {fmt(r.get('late_p99_ms'), 1)} | {fmt(r.get('late_max_ms'), 1)} "
                         f"| {fmt(r['rss_base_mib'], 1)} | {fmt(r['rss_peak_mib'], 1)} "
                         f"| {fmt(r['hwm_mib'], 1)} | {fmt(r['server_cpu_s'], 1)} |")
    rows = ([("HTTP floor (hello_asgi)", floors["http"])] if "http" in floors else []) + \
           [(label, calls[m]) for m, label in (("direct", "Counter/{k}/add (direct)"),
                                               ("call", "Caller/{k}/call → Counter/{k}/add")) if m in calls]
    if rows:
        shape = f"W1's shape (wrk -t1 -c1, {args.warmup:g} s warm-up, then {args.duration or CALL_SHAPE[2]:g} s)"
        lines += ["", f"Calls: {shape}, {CALL_KEYS} keys, a fresh server each; the HTTP floor likewise."
                      if calls else f"HTTP floor: {shape}.", "",
                  "| run | p50 ms | p90 ms | p99 ms | p99.9 ms | req/s | requests | non2xx |", "|" + "---|" * 8]
        for name, r in rows:
            if "error" in r:
                lines.append(f"| {name} | failed: {first_line(r['error'])} |" + " |" * 6)
                continue
            lines.append(f"| {name} | {fmt(r['p50_ms'])} | {fmt(r['p90_ms'])} | {fmt(r['p99_ms'])} "
                         f"| {fmt(r['p99.9_ms'])} | {fmt(r['rps'], 0)} | {r['requests']} | {r['non2xx']} |")
        d, c = calls.get("direct", {}), calls.get("call", {})
        if "p50_ms" in d and "p50_ms" in c:
            lines += ["", f"call / direct: p50 ×{c['p50_ms'] / d['p50_ms']:.2f}, p99 ×{c['p99_ms'] / d['p99_ms']:.2f}"]
    if "fsync" in floors:
        lines += harness.fsync_table(floors["fsync"])
    checks = [f"- timer {th}: completed {r['completed']}/{r['count']}, errors "
              f"{r['errors'] or 'none'}, server log errors {r['log_problems']}: {'yes' if r['ok'] else 'NO'}"
              for th, r in timers.items() if "ok" in r]
    checks += [f"- call {m}: {r['check']}" for m, r in calls.items() if "check" in r]
    if checks:
        lines += ["", "Checks:", *checks]
    raw = [r["line"] for r in [floors.get("http"), *calls.values(), *timers.values()] if r and "line" in r]
    lines += ["", "```", *raw, "```", "", ""]
    return "\n".join(lines)


def first_line(text: str) -> str:
    msg = [m.strip() for m in text.splitlines() if m.strip()]
    return (msg[0] + (f" … {msg[-1]}" if len(msg) > 1 else ""))[:200].replace("|", "/")


# ---------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Durable control-flow benchmarks (timers, calls).")
    p.add_argument("--only", default=",".join(ALL_PARTS), help="comma list of: floors, timer, call (default: all)")
    p.add_argument("--durability", choices=["sync", "wal"], default="sync")
    p.add_argument("--thresholds", default="5s,0.1s",
                   help="--suspend-after values of the timer runs (default 5s,0.1s)")
    p.add_argument("--timer-count", type=int, default=10_000)
    p.add_argument("--timer-ms", type=int, default=1000, help="each nap's sleep (default 1000)")
    p.add_argument("--connections", type=int, default=32, help="the timer client's connections (default 32)")
    p.add_argument("--duration", type=float, help="override the measured wrk durations, seconds (smoke runs)")
    p.add_argument("--warmup", type=float, help="wrk warm-up seconds (default 5, or min(5, --duration))")
    p.add_argument("--fsync-iterations", type=int, default=2000)
    p.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    p.add_argument("--keep-data", action="store_true", help="keep the data dirs in bench/out/")
    args = p.parse_args(argv)
    args.only = {s.strip().lower() for s in args.only.split(",") if s.strip()}
    if args.only - set(ALL_PARTS):
        p.error(f"unknown --only entries: {', '.join(sorted(args.only - set(ALL_PARTS)))}")
    args.thresholds = [t.strip() for t in args.thresholds.split(",") if t.strip()]
    if args.warmup is None:
        args.warmup = min(5.0, args.duration) if args.duration else 5.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    file_stamp = stamp.replace(" ", "T").replace(":", "") + "-flows"
    run_dir = OUT / file_stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    raw = open(run_dir / "raw.txt", "w")

    def log(text: str) -> None:
        raw.write(text.rstrip("\n") + "\n")
        raw.flush()

    builds = ", ".join(running_builds())
    if builds:
        print(f"warning: builds running, figures will be distorted: {builds}", flush=True)
    load_at_start, cpu_start = harness.load_average(), harness.cpu_snapshot()
    floors: dict = {}
    timers: dict[str, dict] = {}
    calls: dict[str, dict] = {}
    failed = False
    if "floors" in args.only:
        print(f"fsync floor in {OUT} ({args.fsync_iterations} iterations)...", flush=True)
        floors["fsync"] = harness.fsync_floor(OUT, args.fsync_iterations)
        for name, f in floors["fsync"].items():
            print(f"  {name}: p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms", flush=True)
        log(json.dumps({"fsync_floor": floors["fsync"]}, indent=2))
        print("HTTP floor (hello_asgi, W1 shape)...", flush=True)
        try:
            floors["http"] = harness.http_floor(args, run_dir, log)
            print("  " + floors["http"]["line"], flush=True)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            floors["http"], failed = {"error": str(exc)}, True
            print(f"  failed: {exc}", flush=True)
    jobs = [("timer", th, run_timer, timers) for th in args.thresholds] + \
           [("call", mode, run_call, calls) for mode in ("direct", "call")]
    for part, variant, fn, into in jobs:
        if part not in args.only:
            continue
        print(f"{part} {variant} ({args.durability})...", flush=True)
        try:
            into[variant] = fn(variant, args, run_dir, file_stamp, log)
            print("  " + into[variant]["line"], flush=True)
            ok = into[variant].get("ok", into[variant].get("check_ok", True))
            if "check" in into[variant]:
                print("  " + into[variant]["check"], flush=True)
            failed |= not ok
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError, asyncio.TimeoutError) as exc:
            into[variant], failed = {"error": str(exc)}, True
            print(f"  failed: {exc}", flush=True)
            log(f"{part} {variant} failed: {exc}")

    info = harness.machine_info(OUT, load_at_start, cpu_start)
    info["builds running at start (cargo/rustc/maturin)"] = builds or "none"
    section = render(stamp, args, info, floors, timers, calls)
    (run_dir / "results.md").write_text(section)
    (run_dir / "results.json").write_text(json.dumps({"floors": floors, "timers": timers, "calls": calls},
                                                     indent=2))
    raw.close()
    if not args.no_write:
        harness.prepend_results(section)
        print(f"wrote {RESULTS_MD.relative_to(REPO)}")
    print(f"raw output in {run_dir.relative_to(REPO)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
