"""The generator of tests/reliability/test_model.py: random handler programs and crash plans.

A program is a list of ops (state get/set/clear/clear_all/keys on an object key, steps
that succeed, fail retryably a few times, fail terminally or exhaust their attempts,
sleeps, awakeables resolved or rejected from outside, retryable handler failures,
terminal errors, and calls and sends, also delayed, to other generated programs on other
keys or on the service, MAX_DEPTH deep). ROOTS draws up to three root programs (two may
share a key, so one queues behind the other), INITIAL the state of the root keys before,
CRASHES a crash plan: a failpoint of the commit writer at the N-th commit group, a
SIGKILL after a delay, and after a first crash possibly a failpoint set from the next
start. `place` gives every node its path and keys; tests/reliability/model.py computes
what a placed program must give, tests/reliability/model_app.py runs it.

`statistics` tells hypothesis what an example covered (`pytest
--hypothesis-show-statistics`); `note` and `event` are hypothesis's, harmless outside a
hypothesis test.
"""

from __future__ import annotations

from typing import Any

from hypothesis import event as hypothesis_event
from hypothesis import note as hypothesis_note
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from tests.reliability.model import nodes

# The commit writer's failpoints a crash plan may fire (model_harness.py arms them).
POINTS = ("commit.before_write", "commit.write_error", "commit.before_sync", "commit.before_publish")

# ---- programs ---------------------------------------------------------------------------

NAMES = st.sampled_from(("a", "b", "c"))
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 1000), st.text("xyé", max_size=3),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.sampled_from("pq"), st.integers(0, 9), max_size=2),
)
MESSAGES = st.lists(st.text("abé", min_size=1, max_size=3), min_size=1, max_size=2).map(" ".join)
CODES = st.sampled_from((400, 409, 422, 500))
MAX_DEPTH = 2


def _op(kind: str, /, **fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"op": st.just(kind), **fields})


def ops(depth: int, keyed: bool) -> st.SearchStrategy[dict[str, Any]]:
    """One op of a program at call depth `depth`, on an object key (`keyed`) or the service."""
    choices = [
        _op("step", value=VALUES, fail=st.integers(0, 2)),
        _op("step", value=VALUES, fail=st.just(0)),
        _op("step", mode=st.just("terminal"), message=MESSAGES, code=CODES),
        _op("step", mode=st.just("exhaust"), attempts=st.integers(1, 2), message=MESSAGES),
        _op("sleep", ms=st.integers(1, 40)),
        _op("awakeable", value=VALUES, publish=st.sampled_from(("direct", "step"))),
        _op("awakeable", reject=MESSAGES, publish=st.sampled_from(("direct", "step")), catch=st.booleans()),
        _op("fail", times=st.integers(1, 2)),
        _op("terminal", message=MESSAGES, code=CODES),
    ]
    if keyed:
        choices += [
            _op("get", name=NAMES), _op("get", name=NAMES), _op("keys"),
            _op("set", name=NAMES, value=VALUES), _op("set", name=NAMES, value=VALUES),
            _op("clear", name=NAMES), _op("clear_all"),
        ]
    if depth < MAX_DEPTH:
        for kind in ("call", "send"):
            catch = st.booleans() if kind == "call" else st.just(False)
            choices.append(_op(kind, target=st.just("obj"), slot=st.integers(0, 1), catch=catch,
                               prog=programs(depth + 1, True)))
            choices.append(_op(kind, target=st.just("svc"), slot=st.just(0), catch=catch,
                               prog=programs(depth + 1, False)))
        # A delayed send, to a key of its own (nothing orders it against other invocations).
        choices.append(_op("send", target=st.just("obj"), slot=st.just("d"), delay=st.integers(1, 60),
                           prog=programs(depth + 1, True)))
    return st.one_of(*choices)


def programs(depth: int, keyed: bool) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"ops": st.lists(ops(depth, keyed), max_size=7 if depth == 0 else 3)})


# A root: a program on object key R0 or R1 (two roots on one key run one after the other,
# in the order they were sent), or on the service.
ROOTS = st.lists(
    st.one_of(st.tuples(st.sampled_from(("R0", "R1")), programs(0, True)), st.tuples(st.just("svc"), programs(0, False))),
    min_size=1, max_size=3,
)
# A crash: a failpoint that fires at the N-th commit group after it is armed, or a
# SIGKILL N*10 ms after it is armed (at the start of the example, or at a restart).
KINDS = (*POINTS, "kill")


def _crash(kind: int, n: int) -> tuple[str, int]:
    # The kind is mixed with N: generation favours small draws, and a bare sampled_from
    # would make nearly every derandomized plan a crash at the first point.
    name = KINDS[(kind + n) % len(KINDS)]
    return (name, n * 10) if name == "kill" else (name, n)


CRASH = st.builds(_crash, st.integers(0, len(KINDS) - 1), st.integers(0, 8))
# A crash while recovering: a failpoint set from the start of the process, at the N-th
# commit group (recovery's own, then the resumed invocations'). Only after another crash.
START_CRASH = st.tuples(st.sampled_from(tuple(f"start:{p}" for p in POINTS)), st.integers(0, 8))
CRASHES = st.tuples(CRASH, st.lists(st.one_of(CRASH, START_CRASH), max_size=1)).map(lambda t: [t[0], *t[1]])
# The state of the root keys before the example (written through the admin API).
INITIAL = st.fixed_dictionaries({"R0": st.dictionaries(NAMES, VALUES, max_size=2),
                                 "R1": st.dictionaries(NAMES, VALUES, max_size=1)})

Roots = list[tuple[dict[str, Any], str | None]]


def place(prog: dict[str, Any], path: str) -> dict[str, Any]:
    """A generated program with its node paths and keys: every node gets the path of its
    call site and its callees keys of their own (`{path}.k{slot}`), so that each object key
    is enqueued to by one invocation only, in program order (see model.py)."""
    out = []
    for i, op in enumerate(prog["ops"]):
        op = dict(op)
        if op["op"] in ("call", "send"):
            slot = op.pop("slot")
            op["prog"] = place(op["prog"], f"{path}.{i}")
            if op["target"] == "obj":
                op["key"] = f"{path}.d{i}" if slot == "d" else f"{path}.k{slot}"
            if op["op"] == "send":
                op.pop("catch", None)
        out.append(op)
    return {"path": path, "ops": out}


def materialize(prefix: str, roots: list[tuple[str, dict[str, Any]]]) -> Roots:
    return [(place(prog, f"{prefix}r{j}"), None if target == "svc" else f"{prefix}{target}")
            for j, (target, prog) in enumerate(roots)]


# ---- reporting to hypothesis -------------------------------------------------------------


def note(text: str) -> None:
    """A note for hypothesis's report of a failing example (none outside a hypothesis test)."""
    try:
        hypothesis_note(text)
    except InvalidArgument:
        pass


def event(text: str) -> None:
    try:
        hypothesis_event(text)
    except InvalidArgument:
        pass


def statistics(placed: Roots, crashes: list[tuple[str, int]], log: list[str]) -> None:
    """What an example covered, for `pytest --hypothesis-show-statistics`."""
    for root, key in placed:
        for prog, k in nodes(root, key):
            for op in prog["ops"]:
                kind = op["op"] + ("/" + op["mode"] if "mode" in op else "") + ("/delayed" if "delay" in op else "")
                if op["op"] in ("call", "send"):
                    kind += "/" + op["target"]
                if op["op"] == "step" and op.get("fail"):
                    kind += "/retried"
                if op["op"] == "awakeable":
                    kind += "/" + ("rejected" if "reject" in op else "resolved") + "/" + op["publish"]
                event(f"op {kind}")
    event(f"crashes planned: {sorted({c[0] for c in crashes})}")
    fired = [e.split(" ", 1)[1] for e in log if "exited with" in e and "known bug" not in e]
    event(f"crashes that fired: {len(fired)}")
    for e in fired:
        event(f"server {e}")

