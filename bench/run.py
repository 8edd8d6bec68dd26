"""Stead benchmark harness: floors, then workloads W1..W5 (../shared/bench/WORKLOADS.md).

One command (`bench/run`, which activates .venv and runs this file):

1. Floors, to put the figures in context:
   - HTTP floor: bench/hello_asgi.py on the same uvicorn/httptools/uvloop stack as the
     ingress, measured with the W1 shape (wrk -t1 -c1, 5 s warm-up, then 20 s).
   - fsync floor: 4 KiB write + fsync (overwrite in place) and 4 KiB append + fdatasync
     (what a WAL does), ~2000 iterations each, in bench/out/, where the data dirs live.
   - gRPC floors (bench/grpc_floor.py): W1R's exchange and W4R's conversation on the
     grpclib stack against a peer that answers at once; with W1 and W4 of the same run
     they give W1R's and W4R's stack floors (what crossing the stack alone adds).
2. Each workload against a FRESH `stead serve` (new data dir under bench/out/, health
   polled, SIGTERM afterwards), with the exact wrk shape and the shared Lua script.
   W3 then checks Cart/hot/count against wrk's ok2xx; W5 checks that no response was 2xx.
3. Prepends a section to bench/RESULTS.md (unless --no-write); raw output goes to
   bench/out/<timestamp>/ (gitignored).

    bench/run                                 # everything, durability sync
    bench/run --only floors --duration 3 --no-write
    bench/run --only W1,W3 --durability wal
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
OUT = BENCH / "out"
SHARED = Path("../shared/bench")  # relative to REPO (wrk runs with cwd=REPO); not copied
RESULTS_MD = BENCH / "RESULTS.md"
APP = "examples.cart:application"
EMPTY_APP = "bench.empty:application"  # the runtime of the remote workloads serves no handler itself
LIMITED_APP = "bench.limited_cart:application"  # W2L: W2 with the cart under a concurrency limit
W3_IN_FLIGHT = 32  # W3's connection count: how far count may exceed ok2xx

# id -> (lua script, threads, connections, seconds, warm-up seconds), from WORKLOADS.md
WORKLOADS = {
    "W1": ("w1_cart_latency.lua", 1, 1, 20, 5),
    "W2": ("w2_cart_throughput.lua", 2, 64, 20, 0),
    "W3": ("w3_hot_key.lua", 2, 32, 20, 0),
    "W4": ("w4_steps.lua", 1, 1, 20, 0),
    "W5": ("w5_saga.lua", 1, 1, 10, 0),
    # W1 and W4 with the handlers in a deployment process (gRPC), the runtime serving none.
    "W1R": ("w1_cart_latency.lua", 1, 1, 20, 5),
    "W4R": ("w4_steps.lua", 1, 1, 20, 0),
    # W2 with Cart's handlers under a concurrency limit of 8 (bench/limited_cart.py).
    "W2L": ("w2_cart_throughput.lua", 2, 64, 20, 0),
}
REMOTE = {"W1R", "W4R"}
# id -> (text, check(result) -> bool)
TARGETS = {
    "W1": ("p50 ≤ 0.40 ms, p99 ≤ 1 ms", lambda r: r["p50_ms"] <= 0.40 and r["p99_ms"] <= 1.0),
    "W2": ("≥ 6,000 req/s", lambda r: r["rps"] >= 6000),
    "W3": ("≥ 4,000 req/s", lambda r: r["rps"] >= 4000),
    "W4": ("p50 ≤ 1.2 ms", lambda r: r["p50_ms"] <= 1.2),
    "W5": ("p50 ≤ 1.8 ms", lambda r: r["p50_ms"] <= 1.8),
    # W1R's other target (≤ 2× W1 of the same run) is checked in `render`.
    "W1R": ("p50 ≤ 1.0 ms and ≤ 2× W1", lambda r: r["p50_ms"] <= 1.0),
    "W4R": ("p50 ≤ 2.0 ms", lambda r: r["p50_ms"] <= 2.0),
}
RESTATE_REF = {  # Restate 1.7 measured on this machine class (another day: context, not a ratio)
    "W1": "p50 3.0 ms / p99 5.0 ms", "W2": "~800 req/s", "W3": "~280 req/s",
    "W4": "p50 7 ms", "W5": "p50 10 ms", "W1R": "p50 3.0 ms", "W4R": "p50 7 ms",
}


# ---------------------------------------------------------------- wrk and its output

def parse_results(text: str) -> dict[str, dict]:
    """`RESULT name k=v ...` lines -> {name: {k: number-or-str}}; SAMPLE lines under 'sample'."""
    out: dict[str, dict] = {}
    for line in text.splitlines():
        if line.startswith("RESULT "):
            _, name, *pairs = line.split()
            fields: dict = {"line": line}
            for pair in pairs:
                key, _, value = pair.partition("=")
                try:
                    fields[key] = int(value) if re.fullmatch(r"-?\d+", value) else float(value)
                except ValueError:
                    fields[key] = value  # e.g. sock_err=0/0/0/0
            out.setdefault(name, {}).update(fields)
        elif line.startswith("SAMPLE "):
            _, name, rest = line.split(" ", 2)
            out.setdefault(name, {})["sample"] = rest
    return out


def run_wrk(url: str, script: Path, threads: int, conns: int, seconds: float, log) -> dict:
    """Run wrk once (cwd=REPO, so the shared script stays referenced by a relative path)."""
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "-s", str(script), url]
    log(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 60)
    log(proc.stdout + proc.stderr)
    results = parse_results(proc.stdout)
    if proc.returncode != 0 or len(results) != 1:
        raise RuntimeError(f"wrk failed (rc={proc.returncode}): {proc.stderr.strip() or proc.stdout[-500:]}")
    return next(iter(results.values()))


# ---------------------------------------------------------------- servers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 30 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Server:
    """A server subprocess: started, polled for health, stopped with SIGTERM."""

    def __init__(self, cmd: list[str], port: int, logfile: Path, health: str, cwd: Path = REPO) -> None:
        self.cmd, self.port, self.logfile, self.health, self.cwd = cmd, port, logfile, health, cwd
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        self._log = open(self.logfile, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT)
        self.wait_healthy()
        return self

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} before it was healthy:\n"
                                   + self.logfile.read_text()[-2000:])
            try:
                if request("GET", self.port, self.health, None)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)  # poll interval, not a guess at start-up time
        raise RuntimeError(f"server not healthy after {timeout:.0f} s")

    def __exit__(self, *exc) -> None:
        terminate(self.proc)
        self._log.write(f"\n[bench] server exit status {self.proc.returncode}\n")
        self._log.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Deployment:
    """A `stead deployment serve` subprocess: started, waited for until its port accepts
    connections, stopped with SIGTERM."""

    def __init__(self, cmd: list[str], port: int, logfile: Path) -> None:
        self.cmd, self.port, self.logfile = cmd, port, logfile

    def __enter__(self) -> "Deployment":
        self._log = open(self.logfile, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"deployment exited with {self.proc.returncode}:\n"
                                   + self.logfile.read_text()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("deployment not listening after 60 s")

    def __exit__(self, *exc) -> None:
        terminate(self.proc)
        self._log.close()


def request(method: str, port: int, path: str, body: bytes | None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# ---------------------------------------------------------------- floors

def fsync_floor(directory: Path, iterations: int) -> dict[str, dict]:
    """Latency of a 4 KiB write + fsync (in place) and a 4 KiB append + fdatasync, in ms."""
    block = os.urandom(4096)
    results = {}
    for name, append, sync in (("write+fsync", False, os.fsync), ("append+fdatasync", True, os.fdatasync)):
        path = directory / f"fsync-floor-{os.getpid()}.tmp"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, block)
            os.fsync(fd)
            samples = []
            for _ in range(iterations):
                t0 = time.perf_counter_ns()
                if append:
                    os.write(fd, block)
                else:
                    os.pwrite(fd, block, 0)
                sync(fd)
                samples.append((time.perf_counter_ns() - t0) / 1e6)
        finally:
            os.close(fd)
            path.unlink()
        samples.sort()
        results[name] = {
            "p50_ms": statistics.median(samples), "p90_ms": samples[int(len(samples) * 0.90) - 1],
            "p99_ms": samples[int(len(samples) * 0.99) - 1],
            "mean_ms": statistics.fmean(samples), "max_ms": samples[-1], "iterations": iterations,
        }
    return results


def http_floor(args, run_dir: Path, log) -> dict:
    script, threads, conns, _, _ = WORKLOADS["W1"]
    port = free_port()
    cmd = [sys.executable, "bench/hello_asgi.py", "--port", str(port)]
    with Server(cmd, port, run_dir / "server-floor_http.log", "/") as srv:
        if args.warmup:
            log(f"-- HTTP floor warm-up ({args.warmup:g} s, discarded)")
            run_wrk(srv.url, Path("bench/floor_http.lua"), threads, conns, args.warmup, log)
        return run_wrk(srv.url, Path("bench/floor_http.lua"), threads, conns,
                       args.duration or WORKLOADS["W1"][3], log)


def grpc_floors(iterations: int, log) -> dict[str, dict]:
    """bench/grpc_floor.py's RESULT lines (its SHAPES): grpc_floor, grpc_session_floor,
    grpc_steps_floor, and the last two without HTTP/2 (raw_session_floor, raw_steps_floor)."""
    cmd = [sys.executable, "bench/grpc_floor.py", "--iterations", str(iterations)]
    log(f"$ {' '.join(cmd)}")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    log(proc.stdout + proc.stderr)
    results = parse_results(proc.stdout)
    missing = {name for _, *names in STACK_FLOORS.values() for name in names} - results.keys()
    if proc.returncode != 0 or missing:
        raise RuntimeError(f"grpc_floor failed (rc={proc.returncode}, missing {sorted(missing)}): "
                           f"{proc.stderr.strip()[-500:]}")
    return results


# Each remote workload, the in-process workload it adds a deployment to, and the floors of
# the messages it needs (bench/grpc_floor.py): on gRPC, and on plain TCP without HTTP/2.
STACK_FLOORS = {"W1R": ("W1", "grpc_session_floor", "raw_session_floor"),
                "W4R": ("W4", "grpc_steps_floor", "raw_steps_floor")}


class StackFloor(NamedTuple):
    """A remote workload's p50 beside what its in-process twin and its messages cost."""
    workload: str
    p50: float
    base: str  # the in-process workload
    base_p50: float
    grpc: str  # its messages' floor on gRPC
    grpc_p50: float
    raw: str  # the same without HTTP/2
    raw_p50: float

    @property
    def floor(self) -> float:
        return self.base_p50 + self.grpc_p50


# ---------------------------------------------------------------- workloads

def run_workload(wid: str, args, run_dir: Path, stamp: str, log) -> dict:
    script, threads, conns, seconds, warmup = WORKLOADS[wid]
    data_dir = OUT / f"data-{stamp}-{wid}"
    port, admin_port = free_port(), free_port()
    remote = wid in REMOTE
    app = EMPTY_APP if remote else LIMITED_APP if wid == "W2L" else APP
    cmd = [sys.executable, "-m", "runtime.cli", "serve", app, *args.serve_args,
           "--data-dir", str(data_dir),
           "--port", str(port), "--admin-port", str(admin_port), "--durability", args.durability]
    log(f"== {wid}: {' '.join(cmd)}")
    try:
        with contextlib.ExitStack() as stack:
            if remote:
                dep_port = free_port()
                dep_cmd = [sys.executable, "-m", "runtime.cli", "deployment", "serve", APP, "--port", str(dep_port)]
                log(f"== {wid} deployment: {' '.join(dep_cmd)}")
                stack.enter_context(Deployment(dep_cmd, dep_port, run_dir / f"deployment-{wid}.log"))
            srv = stack.enter_context(Server(cmd, port, run_dir / f"server-{wid}.log", "/restate/health"))
            if remote:
                status, body = request("POST", admin_port, "/deployments",
                                       json.dumps({"uri": f"http://127.0.0.1:{dep_port}"}).encode())
                if status != 201:
                    raise RuntimeError(f"registering the deployment failed: {status} {body[:300]!r}")
            if warmup and args.warmup:
                log(f"-- {wid} warm-up ({args.warmup:g} s, discarded)")
                run_wrk(srv.url, SHARED / script, threads, conns, args.warmup, log)
            result = run_wrk(srv.url, SHARED / script, threads, conns, args.duration or seconds, log)
            if wid == "W3":
                status, body = request("POST", port, "/Cart/hot/count", b"")
                count = json.loads(body) if status == 200 else None
                result["check"] = check_w3(count, result, status, body)
            if wid == "W5":
                ok = result["ok2xx"] == 0 and result["non2xx"] == result["requests"] and result["requests"] > 0
                result["check"] = ("every response non-2xx: " + ("yes" if ok else "NO")
                                   + f" ({result.get('status_4xx')} 4xx, {result.get('status_5xx')} 5xx,"
                                   f" {result['ok2xx']} 2xx)")
                result["check_ok"] = ok
            elif result["non2xx"] or result["sock_err"] != "0/0/0/0":
                result["check"] = (f"errors: {result['non2xx']} non-2xx, socket errors "
                                   f"connect/read/write/timeout {result['sock_err']}")
                result["check_ok"] = False
    finally:
        if not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    return result


def check_w3(count, result: dict, status: int, body: bytes) -> str:
    if not isinstance(count, int):
        result["check_ok"] = False
        return f"count request failed: HTTP {status} {body[:200]!r}"
    excess = count - result["ok2xx"]
    result["check_ok"] = 0 <= excess <= W3_IN_FLIGHT
    result["count"] = count
    return (f"count={count} ok2xx={result['ok2xx']} count-ok2xx={excess} "
            f"within [0, {W3_IN_FLIGHT}]: {'yes' if result['check_ok'] else 'NO'}")


# ---------------------------------------------------------------- report

def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_snapshot() -> tuple[float, float, float]:
    """(wall s, machine busy CPU-s, CPU-s of this process and its waited-for children)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait
    ours = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
               for f in ("ru_utime", "ru_stime"))
    return time.monotonic(), busy, ours


def other_cpu(start: tuple[float, float, float]) -> str:
    """CPU used by processes other than the harness, wrk and the servers: a busy machine
    (a build, another benchmark) shows here, while the load average also counts our own load."""
    end = cpu_snapshot()
    wall, other = end[0] - start[0], (end[1] - start[1]) - (end[2] - start[2])
    return f"{max(other, 0.0) / wall:.2f} of {os.cpu_count()} CPUs on average ({max(other, 0.0):.0f} CPU-s in {wall:.0f} s)"


def machine_info(directory: Path, load_at_start: str, cpu_start) -> dict[str, str]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "?")
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    disk = " ".join(sh("findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS", "-T", str(directory)).split())
    source = disk.split()[0] if disk else ""
    rotational = Path(f"/sys/block/{Path(source).name}/queue/rotational")
    if rotational.exists():  # virtio disks often claim 1 whatever backs them
        disk += f" (sysfs rotational={rotational.read_text().strip()})"
    commit = sh("git", "rev-parse", "--short", "HEAD")
    dirty = sh("git", "status", "--porcelain", "--untracked-files=no")
    return {
        "cpu": f"{cpu}, nproc {sh('nproc') or os.cpu_count()}",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "disk": f"{directory}: {disk or '?'}",
        "commit": commit + (" (working tree has uncommitted changes)" if dirty else ""),
        "load average at start": f"{load_at_start} (1/5/15 min)",
        "other processes during the run": other_cpu(cpu_start),
        "python": platform.python_version(),
        "wrk": (sh("wrk", "-v").split(" [") or ["?"])[0],
    }


def fmt(value, digits=3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "–"


def render(stamp: str, args, info: dict, floors: dict, results: dict) -> str:
    lines = [f"## {stamp} UTC — durability `{args.durability}`"
             + (f" (duration override {args.duration:g} s)" if args.duration else "")
             + (" — tracing on (`--otlp-endpoint` to bench/otlp_sink.py)" if args.tracing else ""), ""]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    if args.durability == "sync":
        lines.append("- durability `sync`: the WAL is fsynced per group commit before a response is sent")
    else:
        lines.append("- durability `wal`: the WAL is written but not fsynced")
    lines += ["", "| run | p50 ms | p90 ms | p99 ms | p99.9 ms | req/s | requests | non2xx "
                  "| target | met | Restate 1.7 (reference) |", "|" + "---|" * 11]
    rows = ([("HTTP floor", floors["http"], None)] if "http" in floors else []) + \
           [(wid, results[wid], wid) for wid in WORKLOADS if wid in results]
    for name, r, wid in rows:
        target, check = TARGETS.get(wid, ("", None))
        if "error" in r:
            msg = [m.strip() for m in r["error"].splitlines() if m.strip()]
            why = msg[0] + (f" … {msg[-1]}" if len(msg) > 1 else "")
            lines.append(f"| {name} | failed: {why[:200].replace('|', '/')} |" + " |" * 9)
            continue
        ok = check(r) if check else None
        if wid == "W1R" and ok is not None:
            w1 = results.get("W1", {}).get("p50_ms")
            ok = ok and w1 is not None and r["p50_ms"] <= 2 * w1
        met = ("yes" if ok else "**no**") if check else ""
        lines.append(f"| {name} | {fmt(r['p50_ms'])} | {fmt(r['p90_ms'])} | {fmt(r['p99_ms'])} "
                     f"| {fmt(r['p99.9_ms'])} | {fmt(r['rps'], 0)} | {r['requests']} | {r['non2xx']} "
                     f"| {target} | {met} | {RESTATE_REF.get(wid, '')} |")
    if "fsync" in floors:
        lines += fsync_table(floors["fsync"])
    if "grpc" in floors:
        lines += ["", "| exchange floors (bench/grpc_floor.py) | p50 ms | p90 ms | p99 ms | iterations |",
                  "|---|---|---|---|---|"]
        for name, f in floors["grpc"].items():
            lines.append(f"| {name} | {fmt(f['p50_ms'])} | {fmt(f['p90_ms'])} | {fmt(f['p99_ms'])} "
                         f"| {f['iterations']} |")
        stack = stack_floors(floors["grpc"], results)
        if stack:
            lines += ["", "| remote workload | p50 ms | stack floor ms (in-process p50 + gRPC floor p50) "
                          "| above the floor ms | the same floor without HTTP/2 ms |", "|---|---|---|---|---|"]
            lines += [f"| {f.workload} | {fmt(f.p50)} | {fmt(f.floor)} ({f.base} {fmt(f.base_p50)} + {f.grpc} "
                      f"{fmt(f.grpc_p50)}) | {fmt(f.p50 - f.floor)} | {fmt(f.base_p50 + f.raw_p50)} ({f.base} + "
                      f"{f.raw} {fmt(f.raw_p50)}) |" for f in stack]
    checks = [f"- {wid}: {results[wid]['check']}" for wid in results if "check" in results[wid]]
    if "sample" in results.get("W5", {}):
        checks.append(f"- W5 sample: {results['W5']['sample']}")
    if checks:
        lines += ["", "Checks:", *checks]
    raw = [r["line"] for r in ([floors.get("http"), *floors.get("grpc", {}).values()] + list(results.values()))
           if r and "line" in r]
    if "sample" in results.get("W5", {}):
        raw.append(f"SAMPLE w5_saga {results['W5']['sample']}")
    lines += ["", "```", *raw, "```", "", ""]
    return "\n".join(lines)


def fsync_table(fsync: dict[str, dict]) -> list[str]:
    """The fsync floors as a table, after a blank line (bench/flows.py reports them too)."""
    lines = ["", "| fsync floor (4 KiB) | p50 ms | p90 ms | p99 ms | mean ms | max ms | iterations |",
             "|---|---|---|---|---|---|---|"]
    for name, f in fsync.items():
        lines.append(f"| {name} | {fmt(f['p50_ms'])} | {fmt(f['p90_ms'])} | {fmt(f['p99_ms'])} "
                     f"| {fmt(f['mean_ms'])} | {fmt(f['max_ms'])} | {f['iterations']} |")
    return lines


def stack_floors(grpc: dict, results: dict) -> list[StackFloor]:
    """Each remote workload measured with its in-process twin, beside its floors."""
    out = []
    for wid, (base, name, raw_name) in STACK_FLOORS.items():
        r, b, g, raw = (results.get(wid, {}), results.get(base, {}), grpc.get(name, {}),
                        grpc.get(raw_name, {}))
        if all("p50_ms" in x for x in (r, b, g, raw)):
            out.append(StackFloor(wid, r["p50_ms"], base, b["p50_ms"], name, g["p50_ms"], raw_name, raw["p50_ms"]))
    return out


def prepend_results(section: str) -> None:
    header = ("# Benchmark results\n\nNewest first. Produced by `bench/run` (see bench/README.md); "
              "workloads in ../shared/bench/WORKLOADS.md.\n\n")
    old = RESULTS_MD.read_text() if RESULTS_MD.exists() else header
    cut = old.find("\n## ")
    head, tail = (old[:cut + 1], old[cut + 1:]) if cut >= 0 else (old.rstrip("\n") + "\n\n", "")
    RESULTS_MD.write_text(head + section + tail)


# ---------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description="Stead benchmark harness (floors, W1..W5).")
    p.add_argument("--only", default="floors," + ",".join(WORKLOADS),
                   help="comma list of: floors, W1..W5, W1R, W4R, W2L (default: all)")
    p.add_argument("--duration", type=float, help="override every measured duration, seconds (smoke runs)")
    p.add_argument("--warmup", type=float, help="warm-up seconds for W1 and the HTTP floor "
                                                "(default 5, or min(5, --duration))")
    p.add_argument("--durability", choices=["sync", "wal"], default="sync")
    p.add_argument("--fsync-iterations", type=int, default=2000)
    p.add_argument("--grpc-iterations", type=int, default=2000)
    p.add_argument("--no-write", action="store_true", help="do not touch bench/RESULTS.md")
    p.add_argument("--keep-data", action="store_true", help="keep the data dirs in bench/out/")
    p.add_argument("--tracing", action="store_true",
                   help="serve with --otlp-endpoint to a local sink (bench/otlp_sink.py): the cost of tracing")
    args = p.parse_args(argv)
    args.only = {s.strip().upper() for s in args.only.split(",") if s.strip()}
    unknown = args.only - {"FLOORS", *WORKLOADS}
    if unknown:
        p.error(f"unknown --only entries: {', '.join(sorted(unknown))}")
    if args.warmup is None:
        args.warmup = min(5.0, args.duration) if args.duration else 5.0
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    file_stamp = stamp.replace(" ", "T").replace(":", "")
    run_dir = OUT / file_stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    raw = open(run_dir / "raw.txt", "w")

    def log(text: str) -> None:
        raw.write(text.rstrip("\n") + "\n")
        raw.flush()

    load_at_start, cpu_start = load_average(), cpu_snapshot()
    args.serve_args = []
    sink = None
    if args.tracing:  # spans exported to a local sink that accepts everything
        sink_port = free_port()
        sink = subprocess.Popen([sys.executable, str(REPO / "bench/otlp_sink.py"), "--port", str(sink_port)])
        args.serve_args = ["--otlp-endpoint", f"http://127.0.0.1:{sink_port}"]
    floors: dict = {}
    results: dict[str, dict] = {}
    failed = False
    if "FLOORS" in args.only:
        print(f"fsync floor in {OUT} ({args.fsync_iterations} iterations)...", flush=True)
        floors["fsync"] = fsync_floor(OUT, args.fsync_iterations)
        for name, f in floors["fsync"].items():
            print(f"  {name}: p50 {f['p50_ms']:.3f} ms, p99 {f['p99_ms']:.3f} ms", flush=True)
        log(json.dumps({"fsync_floor": floors["fsync"]}, indent=2))
        print("HTTP floor (hello_asgi, W1 shape)...", flush=True)
        try:
            floors["http"] = http_floor(args, run_dir, log)
            print("  " + floors["http"]["line"], flush=True)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            floors["http"], failed = {"error": str(exc)}, True
            print(f"  failed: {exc}", flush=True)
        print(f"gRPC floors (bench/grpc_floor.py, {args.grpc_iterations} iterations)...", flush=True)
        try:
            floors["grpc"] = grpc_floors(args.grpc_iterations, log)
            for f in floors["grpc"].values():
                print("  " + f["line"], flush=True)
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            failed = True
            print(f"  failed: {exc}", flush=True)
    for wid in WORKLOADS:
        if wid not in args.only:
            continue
        print(f"{wid} ({args.durability})...", flush=True)
        try:
            results[wid] = run_workload(wid, args, run_dir, file_stamp, log)
            print("  " + results[wid]["line"], flush=True)
            if "check" in results[wid]:
                print("  " + results[wid]["check"], flush=True)
                failed |= not results[wid]["check_ok"]
        except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as exc:
            results[wid], failed = {"error": str(exc)}, True
            print(f"  failed: {exc}", flush=True)
            log(f"{wid} failed: {exc}")

    if sink is not None:
        terminate(sink)
    section = render(stamp, args, machine_info(OUT, load_at_start, cpu_start), floors, results)
    (run_dir / "results.md").write_text(section)
    (run_dir / "results.json").write_text(json.dumps({"floors": floors, "workloads": results}, indent=2))
    raw.close()
    if not args.no_write:
        prepend_results(section)
        print(f"wrote {RESULTS_MD.relative_to(REPO)}")
    print(f"raw output in {run_dir.relative_to(REPO)}/")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
