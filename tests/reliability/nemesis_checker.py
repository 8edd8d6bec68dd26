"""The invariants of a nemesis run, checked over its recorded history.

A `History` is everything a run leaves behind, read independently of the code under
test: what the clients sent and what they were answered (`Op`), the handlers' own log of
what really happened (nemesis_app.py, `nemesis.log`), and what the data directory holds
once the server is gone (journals, invocation records and state, read with rocksdict
through tests/disk.py). `check(history)` returns one message per violation; each names
its invariant and the run's seed, so a failure says how to replay it.

The invariants (Stead's promise: nothing acknowledged is lost, nothing journaled runs
twice, whatever happens to the process):

- `acknowledged`: every acknowledged request's effect is there exactly once; a request
  that got no answer took effect at most once. Counters hold exactly the increments
  that were applied, each once, every acknowledged one among them, and an acknowledged
  answer (the new total) agrees with the order in which the increments were applied;
  an idempotent request asked again at the end answers what it answered the first time.
  A transfer moved its money out and in exactly once (acknowledged), never (refused),
  or once or never (no answer). A chain visited every hop once, in order. An awakeable
  or a workflow returned the value it was given (to the client that attached to it, and
  when asked at the end). A saga's answer matches its input.
- `steps`: no step whose result was journaled ran again: in the log, no execution of a
  step comes after the one whose result (its nonce) the journal holds; every result a
  handler was given back is the journaled one (a result once durable never changes or
  disappears); the journal holds no result that no execution produced.
- `sagas`: a saga that failed ran all its compensations, last first, each once (the
  executions whose results were journaled, in the order they happened); one that
  succeeded ran none.
- `exclusive`: no two invocations were inside the critical part of exclusive handlers of
  one object key at once (enter/leave intervals in log order; a restart closes them all).
- `money`: the balances add up to what the accounts started with, and each balance is
  what its ledger says.
- `complete`: every accepted invocation completed: the admin API listed none unfinished
  after the quiet period, every record on disk is completed, no inbox holds anything,
  and the invocation that acknowledged a request is on disk.

The harness adds `answers` (nemesis_workload.py): no well-formed request was answered
with a 500 or an undocumented 4xx.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

INVARIANTS = ("acknowledged", "steps", "sagas", "exclusive", "money", "complete")

# Outcomes of an op, as its client saw them.
OK = "ok"            # acknowledged: 200 (a result) or 202 (an acceptance)
REFUSED = "refused"  # acknowledged: a terminal 409 the op expects (insufficient funds, a refused leg)
UNKNOWN = "unknown"  # no answer: the request may or may not have taken effect

COUNTER_KINDS = ("add", "add_once", "add_send")


@dataclass
class Op:
    """One logical request of a client and what became of it."""
    id: str
    kind: str  # add | add_once | add_send | transfer | chain | awakeable | workflow | saga
    args: dict[str, Any]
    outcome: str = UNKNOWN
    result: Any = None  # the acknowledged answer's body (JSON)
    attempts: int = 0
    invocation_id: Optional[str] = None  # from x-restate-id or a 202 body, when answered
    # Filled at the end: the output the ingress gives for the op now (its idempotency key,
    # its workflow key), or None if the ingress knows no such invocation.
    output: Any = None
    attached: Any = None  # awakeable, workflow: what the client's attach returned, if it did


@dataclass
class Line:
    """One line of nemesis.log: its position in the file, and its fields."""
    at: int
    kind: str
    fields: tuple[str, ...]


@dataclass
class Invocation:
    id: str
    service: str
    handler: str
    key: str
    completed: bool


@dataclass
class History:
    seed: int
    ops: list[Op]
    log: list[Line]
    # Per invocation on disk: its RUN entries in journal order, (step name, nonce or None).
    journal: dict[str, list[tuple[str, Optional[str]]]]
    invocations: dict[str, Invocation]
    # (service, key) -> state on disk.
    state: dict[tuple[str, str], dict[str, Any]]
    accounts: list[str]
    initial_balance: int
    unfinished: list[str] = field(default_factory=list)  # from the admin API after the quiet period
    inboxes: dict[tuple[str, str], list[str]] = field(default_factory=dict)


def parse_log(text: str) -> list[Line]:
    out = []
    for at, raw in enumerate(text.splitlines()):
        parts = raw.split()
        if parts:
            out.append(Line(at, parts[0], tuple(parts[1:])))
    return out


class _Report:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.violations: list[str] = []

    def fail(self, invariant: str, message: str) -> None:
        assert invariant in INVARIANTS, invariant
        self.violations.append(f"[{invariant}] seed={self.seed}: {message}")


def check(h: History) -> list[str]:
    """Every violation of every invariant in `h` (empty: the run kept Stead's promise)."""
    r = _Report(h.seed)
    check_acknowledged(h, r)
    check_steps(h, r)
    check_sagas(h, r)
    check_exclusive(h, r)
    check_money(h, r)
    check_complete(h, r)
    return r.violations


# ---- acknowledged effects, exactly once -----------------------------------------------------


def check_acknowledged(h: History, r: _Report) -> None:
    ops = {op.id: op for op in h.ops}
    _check_counters(h, r, ops)
    _check_transfers(h, r, ops)
    for op in h.ops:
        if op.kind == "chain":
            _check_chain(h, r, op)
        elif op.kind == "awakeable":
            _check_output(h, r, op, f"v-{op.id}")
        elif op.kind == "workflow":
            _check_output(h, r, op, f"approved ok-{op.id}")
            status = h.state.get(("Approval", op.id), {}).get("status")
            if op.output is not None and status != "done":
                r.fail("acknowledged", f"workflow {op.id} returned but its state says status={status!r}")
        elif op.kind == "saga":
            expected = REFUSED if op.args["fail_at"] else OK
            if op.outcome in (OK, REFUSED) and op.outcome != expected:
                r.fail("acknowledged", f"saga {op.id} {op.args} was answered {op.outcome} {op.result!r}")


def _check_counters(h: History, r: _Report, ops: dict[str, Op]) -> None:
    keys = sorted({op.args["key"] for op in h.ops if op.kind in COUNTER_KINDS}
                  | {k for (s, k) in h.state if s == "NCounter"})
    for key in keys:
        st = h.state.get(("NCounter", key), {})
        applied: list[list[Any]] = st.get("applied", [])
        where = f"NCounter/{key}"
        seen = Counter(e[0] for e in applied)
        for op_id, n in seen.items():
            if n > 1:
                r.fail("acknowledged", f"op {op_id} took effect {n} times on {where}")
            op = ops.get(op_id)
            if op is None or op.kind not in COUNTER_KINDS or op.args["key"] != key:
                r.fail("acknowledged", f"{where} applied {op_id}, which no client sent there")
        total = sum(e[1] for e in applied)
        if st.get("total", 0) != total:
            r.fail("acknowledged", f"{where} total is {st.get('total', 0)}, its applied increments sum to {total}")
        prefix: dict[str, int] = {}
        running = 0
        for e in applied:
            running += e[1]
            prefix.setdefault(e[0], running)
        for op in h.ops:
            if op.kind not in COUNTER_KINDS or op.args["key"] != key:
                continue
            if op.outcome == OK and seen[op.id] == 0:
                r.fail("acknowledged", f"acknowledged {op.kind} {op.id} (answer {op.result!r}, "
                                       f"{op.attempts} attempt(s)) is missing from {where}: lost")
            if op.outcome == OK and op.kind != "add_send" and op.id in prefix and op.result != prefix[op.id]:
                r.fail("acknowledged", f"{op.kind} {op.id} was answered {op.result!r}, but where it was applied "
                                       f"the total became {prefix[op.id]}")
            if op.kind == "add" and op.outcome == OK and op.output is not None and op.output != op.result:
                r.fail("acknowledged", f"idempotent {op.id} answered {op.result!r}, asked again it answers "
                                       f"{op.output!r}")


def _check_transfers(h: History, r: _Report, ops: dict[str, Op]) -> None:
    ledgers = {a: h.state.get(("Account", a), {}).get("ledger", []) for a in h.accounts}
    for account, ledger in ledgers.items():
        for op_id, n in Counter(e[0] for e in ledger).items():
            op = ops.get(op_id)
            if op is None or op.kind != "transfer" or account not in (op.args["src"], op.args["dst"]):
                r.fail("acknowledged", f"Account/{account} moved money for {op_id}, which no client sent there")
            elif n > 1:
                r.fail("acknowledged", f"transfer {op_id} moved money {n} times on Account/{account}")
    moved = {a: Counter(e[0] for e in ledger) for a, ledger in ledgers.items()}
    for op in h.ops:
        if op.kind != "transfer":
            continue
        a = op.args
        out = moved.get(a["src"], Counter())[op.id]
        into = moved.get(a["dst"], Counter())[op.id]
        if op.outcome == OK and (out, into) != (1, 1):
            r.fail("acknowledged", f"acknowledged transfer {op.id} {a} moved money out {out} and in {into} times")
        elif op.outcome == REFUSED and (out, into) != (0, 0):
            r.fail("acknowledged", f"refused transfer {op.id} {a} moved money out {out} and in {into} times")
        elif op.outcome == UNKNOWN and (out, into) not in ((0, 0), (1, 1)):
            r.fail("acknowledged", f"unanswered transfer {op.id} {a} moved money out {out} and in {into} times")


def _check_chain(h: History, r: _Report, op: Op) -> None:
    visits = h.state.get(("ChainNode", op.id), {}).get("visits", [])
    full = list(range(op.args["hops"] + 1))
    if op.outcome == OK and visits != full:
        r.fail("acknowledged", f"acknowledged chain {op.id} visited {visits}, expected {full}")
    elif op.outcome == UNKNOWN and visits not in ([], full):
        r.fail("acknowledged", f"unanswered chain {op.id} visited {visits}: expected none or {full}")


def _check_output(h: History, r: _Report, op: Op, expected: str) -> None:
    if op.outcome == OK and op.output is None:
        r.fail("acknowledged", f"{op.kind} {op.id} was accepted ({op.result!r}) but the ingress knows no "
                               f"such invocation at the end: lost")
    elif op.output is not None and op.output != expected:
        r.fail("acknowledged", f"{op.kind} {op.id} returned {op.output!r}, expected {expected!r}")
    if op.attached is not None and op.attached != expected:
        r.fail("acknowledged", f"{op.kind} {op.id}: attached, the client got {op.attached!r}, expected {expected!r}")


# ---- journaled steps never run twice ----------------------------------------------------------


def _runs(h: History) -> dict[tuple[str, str], list[Line]]:
    out: dict[tuple[str, str], list[Line]] = defaultdict(list)
    for line in h.log:
        if line.kind == "run":
            out[(line.fields[0], line.fields[1])].append(line)
    return out


def check_steps(h: History, r: _Report) -> None:
    runs = _runs(h)
    journaled: dict[tuple[str, str], str] = {}
    for inv, entries in h.journal.items():
        for name, n in Counter(name for name, _ in entries).items():
            if n > 1:
                r.fail("steps", f"step {name} of {inv} is journaled {n} times")
        for name, nonce in entries:
            if nonce is None:
                continue
            journaled[(inv, name)] = nonce
            executions = runs.get((inv, name), [])
            nonces = [line.fields[2] for line in executions]
            if nonce not in nonces:
                r.fail("steps", f"the journal of {inv} holds result {nonce} of step {name}, which none of its "
                                f"executions {nonces} produced")
                continue
            after = nonces[nonces.index(nonce) + 1:]
            if after:
                lines = [line.at for line in executions]
                r.fail("steps", f"step {name} of {inv} ran again after its result {nonce} was journaled: "
                                f"executions {nonces} at log lines {lines}")
    for line in h.log:
        if line.kind != "seen":
            continue
        inv, name, nonce = line.fields
        recorded = journaled.get((inv, name))
        if recorded is None:
            r.fail("steps", f"{inv} was given step {name}'s result {nonce} (log line {line.at}), but no journal "
                            f"holds it: a durable result was lost")
        elif recorded != nonce:
            r.fail("steps", f"{inv} was given step {name}'s result {nonce} (log line {line.at}), the journal "
                            f"holds {recorded}: a durable result changed")


# ---- sagas compensate in reverse, once ----------------------------------------------------------


def _effective(steps: dict[str, list[Line]], journal: dict[str, Optional[str]], prefix: str) -> list[str]:
    """Names of one invocation's steps `prefix*` whose journaled execution ran, in the
    order those executions ran (an execution whose result was not journaled, cut short
    by a crash, does not count: the step ran again)."""
    done = [(line.at, name) for name, lines in steps.items() if name.startswith(prefix)
            for line in lines if journal.get(name) == line.fields[2]]
    return [name for _, name in sorted(done)]


def check_sagas(h: History, r: _Report) -> None:
    steps: dict[str, dict[str, list[Line]]] = defaultdict(dict)
    for (inv, name), lines in _runs(h).items():
        steps[inv][name] = lines
    sagas: dict[str, tuple[str, int, int]] = {}
    for line in h.log:
        if line.kind == "saga":
            saga_op, saga_inv, legs_text, fail_text = line.fields
            sagas[saga_inv] = (saga_op, int(legs_text), int(fail_text))
    by_op = {op.id: op for op in h.ops}
    started = {s[0] for s in sagas.values()}
    for op in h.ops:
        if op.kind == "saga" and op.outcome in (OK, REFUSED) and op.id not in started:
            r.fail("sagas", f"saga {op.id} was answered {op.outcome} but never ran")
    durable = Counter(op_id for inv, (op_id, _, _) in sagas.items() if inv in h.invocations)
    for op_id, n in durable.items():
        if n > 1:
            r.fail("sagas", f"saga {op_id} ran as {n} invocations (one idempotency key)")
    for inv, (op_id, legs, fail_at) in sagas.items():
        if inv not in h.invocations:
            # Killed before its admission was durable: gone, and the client's retry ran
            # another invocation. Only the one that answered must be there.
            answered = by_op.get(op_id)
            if answered is not None and answered.outcome != UNKNOWN and answered.invocation_id == inv:
                r.fail("sagas", f"saga {op_id} was answered by {inv}, which is not on disk")
            continue
        journal = dict(h.journal.get(inv, []))
        booked = _effective(steps[inv], journal, "book")
        undone = _effective(steps[inv], journal, "undo")
        want_booked = [f"book{i}" for i in range(1, (fail_at or legs) + 1)]
        want_undone = [f"undo{i}" for i in range(fail_at, 0, -1)] if fail_at else []
        if booked != want_booked:
            r.fail("sagas", f"saga {op_id} ({inv}, {legs} legs, fail at {fail_at}) booked {booked}, "
                            f"expected {want_booked}")
        if undone != want_undone:
            r.fail("sagas", f"saga {op_id} ({inv}, {legs} legs, fail at {fail_at}) compensated {undone}, "
                            f"expected {want_undone}")
        stray = [(name, line.at) for name, lines in steps[inv].items()
                 if name.startswith("undo") and name not in want_undone for line in lines]
        if stray:
            r.fail("sagas", f"saga {op_id} ({inv}) ran compensations it should not have: {stray}")


# ---- exclusive handlers of one key never overlap -------------------------------------------------


def check_exclusive(h: History, r: _Report) -> None:
    inside: dict[str, Counter[str]] = defaultdict(Counter)
    entered_at: dict[tuple[str, str], int] = {}
    for line in h.log:
        if line.kind == "restart":
            inside.clear()
        elif line.kind == "enter":
            scope, inv = line.fields
            others = [o for o, n in inside[scope].items() if n > 0 and o != inv]
            if others:
                detail = ", ".join(f"{o} (entered at line {entered_at[(scope, o)]})" for o in others)
                r.fail("exclusive", f"{inv} entered {scope} at log line {line.at} while {detail} was inside")
            inside[scope][inv] += 1
            entered_at[(scope, inv)] = line.at
        elif line.kind == "leave":
            scope, inv = line.fields
            if inside[scope][inv] > 0:
                inside[scope][inv] -= 1


# ---- money is conserved ---------------------------------------------------------------------------


def check_money(h: History, r: _Report) -> None:
    total = 0
    for a in h.accounts:
        st = h.state.get(("Account", a), {})
        balance = st.get("balance", h.initial_balance)
        ledger = st.get("ledger", [])
        if balance != h.initial_balance + sum(e[1] for e in ledger):
            r.fail("money", f"Account/{a} holds {balance}, its ledger says "
                            f"{h.initial_balance + sum(e[1] for e in ledger)}")
        if balance < 0:
            r.fail("money", f"Account/{a} holds {balance} < 0")
        total += balance
    want = h.initial_balance * len(h.accounts)
    if total != want:
        r.fail("money", f"the accounts hold {total} in all, they started with {want} "
                        f"({'created' if total > want else 'destroyed'}: {abs(total - want)})")


# ---- every accepted invocation completes ------------------------------------------------------------


def check_complete(h: History, r: _Report) -> None:
    if h.unfinished:
        r.fail("complete", f"{len(h.unfinished)} invocation(s) still unfinished after the quiet period: "
                           f"{h.unfinished[:10]}")
    stuck = [f"{i.id} {i.service}/{i.key}/{i.handler}" for i in h.invocations.values() if not i.completed]
    if stuck:
        r.fail("complete", f"{len(stuck)} invocation record(s) on disk are not completed: {stuck[:10]}")
    queued = {f"{s}/{k}": ids for (s, k), ids in h.inboxes.items() if ids}
    if queued:
        r.fail("complete", f"inboxes still hold invocations: {dict(list(queued.items())[:5])}")
    for op in h.ops:
        if op.outcome == OK and op.invocation_id and op.invocation_id not in h.invocations:
            r.fail("complete", f"{op.kind} {op.id} was acknowledged by {op.invocation_id}, which is not on disk")
