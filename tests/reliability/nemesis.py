"""The nemesis harness: a real `stead serve` under a mixed workload while a nemesis
kills, pauses and slows it, then the invariants of nemesis_checker.py over what happened.

One run (`run_nemesis(config, work_dir)`):

1. starts `stead serve tests.reliability.nemesis_app:application` on free ports
   (tests/conftest.py's SteadServer) with a short --suspend-after, so that sleeps and
   waits suspend and resume by replay;
2. starts `clients` threads; each draws its ops from its own RNG (seeded from the run's
   seed and its index) and sends them one after another, retrying an idempotent request
   with the same idempotency key after a timeout, a dropped connection or a 5xx, and
   never retrying a non-idempotent one once it may have been sent (nemesis_workload.py);
3. meanwhile the nemesis, from its own RNG, waits a random time and acts, `actions`
   times (or until `seconds` passed, for the soak): `kill` (SIGKILL, a short downtime,
   restart on the same data directory), `kill2` (a kill, and another one within half a
   second of the restart, while the recovered invocations resume), `pause` (SIGSTOP for
   longer than the clients' timeout, then SIGCONT), `pause-kill` (a pause, then a kill
   within 0.3 s of the SIGCONT, amid the burst of first tries and retries with the same
   idempotency keys that the pause piled up), `slow` (the failpoint
   `commit.before_sync=sleep(ms)` through the admin API: every group commit's fsync takes
   that much longer, until `slow` again turns it off or a restart clears it; see
   `slow_disk_available`);
4. then the clients stop taking new ops, the server is killed and restarted once more
   (the last restart), the clients finish what they had begun, the harness resolves
   every awakeable and approves every workflow left waiting, and waits (the quiet
   period) until the admin API lists no unfinished invocation;
5. asks the ingress for the outputs the checks need, kills the server, reads its data
   directory with rocksdict (tests/disk.py), and checks the history.

The seed decides the sequence of ops of every client and the sequence of nemesis actions
(kinds, waits, durations); the same seed replays the same schedules, but not the same
timing: where a kill lands among the ops, and so the history, differs from run to run.
Every failure message names the seed (`STEAD_NEMESIS_SEED=... pytest tests/reliability`
or `bench/nemesis.py --seed ...` replays it). The run directory keeps the server logs,
`nemesis.log` and `ops.jsonl` (what each client was answered).
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import httpx

from tests.conftest import SteadServer
from tests.disk import DiskReader, EntryKind, Status
from tests.reliability import nemesis_app
from tests.reliability.nemesis_checker import OK, REFUSED, UNKNOWN, History, Invocation, Op, check, parse_log
from tests.reliability.nemesis_workload import MIX, Client, LogTail

APP = "tests.reliability.nemesis_app:application"
SLOW_POINT = "commit.before_sync"
UNFINISHED = "pending,scheduled,running,suspended,backing-off,paused,ready"


@dataclass
class Config:
    seed: int
    actions: Optional[int] = 8  # nemesis actions, then the run ends (CI); None: until `seconds`
    seconds: Optional[float] = None  # the soak: act until this much time has passed
    clients: int = 4
    client_timeout: float = 2.0  # s; a pause lasts 1.3 to 2x this
    gap: tuple[float, float] = (1.0, 4.0)  # s between nemesis actions
    nemesis: tuple[str, ...] = ("kill", "kill2", "pause", "pause-kill", "slow")
    mix: dict[str, int] = field(default_factory=lambda: dict(MIX))
    counters: int = 3  # counter keys at a time (nemesis_workload.EPOCH)
    accounts: int = 4  # accounts at a time
    suspend_after: str = "0.5s"
    durability: str = "sync"
    drain_timeout: float = 45.0  # s for the clients to finish their last ops after the last restart
    quiet_timeout: float = 60.0  # s for every accepted invocation to complete after that
    breaks: str = ""  # STEAD_NEMESIS_BREAK of the server (nemesis_app.py): a deliberately broken build
    failpoints: str = ""  # STEAD_FAILPOINTS of the server, set at every start

    def describe(self) -> str:
        size = f"{self.actions} nemesis actions" if self.actions is not None else f"{self.seconds}s"
        extra = f", broken build {self.breaks!r}" if self.breaks else ""
        return (f"seed={self.seed} ({size}, {self.clients} clients, nemesis {'/'.join(self.nemesis)}, "
                f"durability {self.durability}{extra})")


@dataclass
class Report:
    config: Config
    violations: list[str]
    figures: dict[str, Any]
    run_dir: Path

    def summary(self) -> str:
        lines = [f"nemesis run {self.config.describe()}", f"run directory: {self.run_dir}"]
        lines += [f"  {k}: {v}" for k, v in self.figures.items()]
        if self.violations:
            lines.append(f"{len(self.violations)} violation(s):")
            lines += [f"  {v}" for v in self.violations[:40]]
            if len(self.violations) > 40:
                lines.append(f"  ... and {len(self.violations) - 40} more")
        else:
            lines.append("no violation")
        return "\n".join(lines)


class HarnessError(Exception):
    """The harness itself could not go on (not a finding about the server)."""


# ---- the nemesis' schedule: what the seed decides ----------------------------------------------


@dataclass(frozen=True)
class Action:
    wait: float  # s before acting
    kind: str  # kill | kill2 | pause | pause-kill | slow
    # kill: downtime (s); kill2: the time between the restart and the second kill (s);
    # pause, pause-kill: the pause (s); slow: the fsync's extra ms (0: back to normal)
    amount: float
    then: float = 0.0  # pause-kill: the time between the SIGCONT and the kill (s)


def nemesis_schedule(config: Config) -> Iterator[Action]:
    """The nemesis' actions, endless; the same seed gives the same sequence."""
    rng = random.Random(f"{config.seed}/nemesis")
    slow = False
    while True:
        kind = rng.choice(config.nemesis)
        wait = rng.uniform(*config.gap)
        if kind in ("kill", "kill2"):
            yield Action(wait, kind, rng.uniform(0.0, 0.5))
            slow = False  # a new process starts without the failpoint
        elif kind == "pause":
            yield Action(wait, kind, rng.uniform(1.3, 2.0) * config.client_timeout)
        elif kind == "pause-kill":
            yield Action(wait, kind, rng.uniform(1.3, 2.0) * config.client_timeout, rng.uniform(0.0, 0.3))
            slow = False
        else:
            yield Action(wait, kind, 0.0 if slow else float(rng.choice((20, 50, 100, 200))))
            slow = not slow


# ---- the run ---------------------------------------------------------------------------------


def slow_disk_available() -> bool:
    """The slow disk is the core's failpoint `commit.before_sync=sleep(ms)`: each group
    commit is written, then waits that long before its WAL fsync, as on a device whose
    fsync is slow (reads are not slowed). It needs an extension built with the
    `failpoints` feature (scripts/setup.sh builds it so); without one, `slow` actions
    are skipped. A slower real device (a dm-delay target, a throttled cgroup) would need
    root and kernel modules that CI machines do not all have."""
    from runtime import _core
    return bool(_core.failpoints_enabled())


class NemesisRun:
    """One run: the server, the clients, the nemesis, and what they leave behind."""

    def __init__(self, config: Config, work_dir: Path, log: Callable[[str], None] = print) -> None:
        self.config = config
        self.work_dir = work_dir
        self.say = log
        self.effects_dir = work_dir / "effects"
        self.effects_dir.mkdir(parents=True, exist_ok=True)
        env = {"STEAD_DEBUG_FAILPOINTS": "1"}
        if config.breaks:
            env["STEAD_NEMESIS_BREAK"] = config.breaks
        if config.failpoints:
            env["STEAD_FAILPOINTS"] = config.failpoints
        self.server = SteadServer(work_dir / "data", self.effects_dir, target=APP, env=env,
                                  extra_args=["--suspend-after", config.suspend_after,
                                              "--durability", config.durability])
        self.tail = LogTail(self.effects_dir / nemesis_app.LOG)
        self.stop_new = threading.Event()  # no new ops
        self.give_up = threading.Event()  # stop retrying the ops begun
        self.anomalies: list[str] = []
        self._lock = threading.Lock()
        self.done: Counter[str] = Counter()  # nemesis actions done
        self.restarts = 0
        self.recovery_s: list[float] = []
        self.resolved: set[str] = set()
        self.approved: set[str] = set()
        self.rss_mib: list[float] = []  # the server's resident memory before each action
        self.clients: list[Client] = []

    def anomaly(self, message: str) -> None:
        with self._lock:
            self.anomalies.append(message)

    # -- the harness's own requests on behalf of an op (a client's, or the finisher's)

    def resolve(self, client: Client, op: Op) -> None:
        aid = self.tail.awakeables[op.id]
        client.request(op, "POST", f"/restate/awakeables/{aid}/resolve", f"v-{op.id}", ok=(200, 202), count=False)
        self.resolved.add(op.id)

    def approve(self, client: Client, op: Op) -> None:
        client.request(op, "POST", f"/Approval/{op.id}/approve", f"ok-{op.id}", ok=(200,), refused=(409,),
                       count=False)
        self.approved.add(op.id)

    # -- the nemesis

    def kill_and_restart(self, downtime: float) -> None:
        self.server.kill()
        self.restarts += 1
        self.tail.append("restart", str(self.restarts))  # no server runs: the log's order holds
        time.sleep(downtime)
        began = time.monotonic()
        self.server.restart()
        self.recovery_s.append(time.monotonic() - began)

    def act(self, action: Action) -> None:
        proc = self.server.proc
        assert proc is not None
        if action.kind == "kill":
            self.kill_and_restart(action.amount)
        elif action.kind == "kill2":
            self.kill_and_restart(0.0)
            time.sleep(action.amount)  # the recovered invocations are resuming
            self.kill_and_restart(0.0)
        elif action.kind in ("pause", "pause-kill"):
            proc.send_signal(signal.SIGSTOP)
            try:
                time.sleep(action.amount)
            finally:
                proc.send_signal(signal.SIGCONT)
            if action.kind == "pause-kill":
                # Within the burst of requests (first tries and their retries, with the
                # same idempotency keys) that the pause piled up.
                time.sleep(action.then)
                self.kill_and_restart(0.0)
        elif action.kind == "slow":
            if not slow_disk_available():
                return
            if action.amount:
                self.server.failpoint(SLOW_POINT, f"sleep({int(action.amount)})")
            else:
                self.server.failpoint(SLOW_POINT, None)
        self.done[action.kind] += 1

    def nemesis(self) -> None:
        began = time.monotonic()
        for n, action in enumerate(nemesis_schedule(self.config)):
            if self.config.actions is not None and n >= self.config.actions:
                return
            if self.config.seconds is not None and time.monotonic() - began >= self.config.seconds:
                return
            time.sleep(action.wait)
            self.check_clients()
            self.sample_rss()
            self.act(action)

    def sample_rss(self) -> None:
        proc = self.server.proc
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text() if proc is not None else ""
        except OSError:
            return
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                self.rss_mib.append(int(line.split()[1]) / 1024)

    def check_clients(self) -> None:
        for c in self.clients:
            if c.error is not None:
                raise HarnessError(f"client {c.index} failed: {c.error!r}") from c.error

    # -- the end: drain, finish, quiet period

    def unfinished(self) -> list[str]:
        resp = self.server.admin("GET", f"/invocations?status={UNFINISHED}&limit=1000")
        if resp.status_code != 200:
            raise HarnessError(f"GET /invocations answered {resp.status_code}: {resp.text}")
        return [f"{i['id']} {i['target']} {i['status']}" for i in resp.json()["invocations"]]

    def finish(self, ops: list[Op]) -> None:
        """Complete what the clients left waiting: resolve every published awakeable, approve
        every workflow that may have started (the values are the ones the clients use)."""
        helper = Client(self, -1)
        self.tail.poll()
        for op in ops:
            if op.kind == "awakeable" and op.id in self.tail.awakeables and op.id not in self.resolved:
                self.resolve(helper, op)
            elif op.kind == "workflow" and op.id not in self.approved:
                self.approve(helper, op)
        helper.http.close()

    def quiet(self) -> list[str]:
        """Wait until the admin API lists no unfinished invocation; what it still lists
        when `quiet_timeout` passes."""
        deadline = time.monotonic() + self.config.quiet_timeout
        while True:
            left = self.unfinished()
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.2)

    def outputs(self, ops: list[Op]) -> None:
        """What the ingress answers now for the ops that can be asked again."""
        paths = {"add": lambda op: f"/restate/invocation/NCounter/{op.args['key']}/add/{op.id}/output",
                 "awakeable": lambda op: f"/restate/invocation/Waiter/wait/{op.id}/output",
                 "workflow": lambda op: f"/restate/workflow/Approval/{op.id}/output"}
        with httpx.Client(base_url=self.server.url, timeout=30.0) as http:
            for op in ops:
                if op.kind not in paths or (op.kind == "add" and op.outcome != OK):
                    continue
                resp = http.get(paths[op.kind](op))
                if resp.status_code == 200:
                    op.output = resp.json()
                elif resp.status_code != 404:
                    self.anomaly(f"{op.kind} {op.id}: its output answered {resp.status_code} {resp.text[:200]}")

    # -- all of it

    def execute(self) -> Report:
        config = self.config
        self.say(f"nemesis run {config.describe()} in {self.work_dir}")
        phases: dict[str, float] = {}
        clock = [time.monotonic()]

        def phase(name: str) -> None:
            now = time.monotonic()
            phases[name] = round(now - clock[0], 1)
            clock[0] = now

        self.server.start()
        self.clients = [Client(self, i) for i in range(config.clients)]
        for c in self.clients:
            c.start()
        try:
            self.nemesis()
            phase("nemesis")
            self.stop_new.set()
            self.kill_and_restart(0.0)  # the last restart
            drain_deadline = time.monotonic() + config.drain_timeout
            for c in self.clients:
                c.join(max(0.0, drain_deadline - time.monotonic()))
            self.give_up.set()
            for c in self.clients:
                c.join(10)
            self.check_clients()
            self.give_up.clear()  # the finisher's requests retry again
            ops = [op for c in self.clients for op in c.ops]
            self.finish(ops)
            phase("drain")
            unfinished = self.quiet()
            phase("quiet")
            self.outputs(ops)
        finally:
            self.stop_new.set()
            self.give_up.set()
            if self.server.proc is not None and self.server.proc.poll() is None:
                self.server.proc.send_signal(signal.SIGCONT)
                self.server.kill()
        history = self.read(ops, unfinished)
        violations = check(history)
        violations += [f"[answers] seed={config.seed}: {a}" for a in self.anomalies]
        self.save(ops)
        phase("check")
        return Report(config, violations, self.figures(history, ops, phases), self.work_dir)

    def read(self, ops: list[Op], unfinished: list[str]) -> History:
        """The history: the clients' ops, the handlers' log, and the data directory."""
        log = parse_log(self.tail.path.read_text() if self.tail.path.exists() else "")
        journal: dict[str, list[tuple[str, Optional[str]]]] = {}
        invocations: dict[str, Invocation] = {}
        state: dict[tuple[str, str], dict[str, Any]] = {}
        accounts = sorted({op.args[side] for op in ops if op.kind == "transfer" for side in ("src", "dst")})
        with DiskReader(self.server.data_dir) as disk:
            for inv_id, inv in disk.invocations().items():
                invocations[inv_id] = Invocation(inv_id, inv.service, inv.handler, inv.key,
                                                 inv.status == Status.COMPLETED)
                journal[inv_id] = [(e.name, _nonce(e.value)) for e in disk.journal(inv_id) if e.kind == EntryKind.RUN]
            keys = {("NCounter", op.args["key"]) for op in ops if op.kind.startswith("add")}
            keys |= {("Account", a) for a in accounts}
            keys |= {("ChainNode", op.id) for op in ops if op.kind == "chain"}
            keys |= {("Approval", op.id) for op in ops if op.kind == "workflow"}
            for service, key in keys:
                state[(service, key)] = disk.state(service, key)
            inboxes = disk.inboxes()
        return History(seed=self.config.seed, ops=ops, log=log, journal=journal, invocations=invocations,
                       state=state, accounts=accounts,
                       initial_balance=nemesis_app.INITIAL_BALANCE, unfinished=unfinished, inboxes=inboxes)

    def save(self, ops: list[Op]) -> None:
        with open(self.work_dir / "ops.jsonl", "w") as f:
            for op in ops:
                f.write(json.dumps(asdict(op)) + "\n")

    def figures(self, h: History, ops: list[Op], phases: dict[str, float]) -> dict[str, Any]:
        outcomes = Counter(f"{op.kind}:{op.outcome}" for op in ops)
        runs = Counter((line.fields[0], line.fields[1]) for line in h.log if line.kind == "run")
        journaled = sum(1 for entries in h.journal.values() for _, nonce in entries if nonce is not None)
        return {
            "elapsed_s": round(sum(phases.values()), 1),
            "phases_s": phases,
            "nemesis": dict(self.done),
            "restarts": self.restarts,
            "restart_s_max": round(max(self.recovery_s, default=0.0), 2),
            "ops": len(ops),
            "acknowledged": sum(1 for op in ops if op.outcome in (OK, REFUSED)),
            "unanswered": sum(1 for op in ops if op.outcome == UNKNOWN),
            "attempts": sum(op.attempts for op in ops),
            "attached": sum(1 for op in ops if op.attached is not None),
            "outcomes": dict(sorted(outcomes.items())),
            "invocations": len(h.invocations),
            "step_executions": sum(runs.values()),
            "steps_journaled": journaled,
            "step_reexecutions": sum(n - 1 for n in runs.values() if n > 1),  # legitimate before the journal
            "replays_seen": sum(1 for line in h.log if line.kind == "seen") - journaled,
            "server_rss_mib": (f"first {self.rss_mib[0]:.0f}, max {max(self.rss_mib):.0f}, "
                               f"last {self.rss_mib[-1]:.0f}" if self.rss_mib else "not sampled"),
        }


def _nonce(value: Optional[bytes]) -> Optional[str]:
    if value is None:
        return None
    decoded = json.loads(value)
    return decoded.get("nonce") if isinstance(decoded, dict) else None


def run_nemesis(config: Config, work_dir: Path, log: Callable[[str], None] = print) -> Report:
    """One run; an error of the harness itself carries the seed too."""
    try:
        return NemesisRun(config, work_dir, log).execute()
    except Exception as exc:
        exc.add_note(f"nemesis run {config.describe()}, run directory {work_dir}")
        raise
