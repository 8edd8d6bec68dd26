"""Every invariant of the nemesis checker can fail: each test builds a small history
(what a run would have recorded), breaks it the way a broken server would, and sees the
checker name the broken invariant, with the seed. No server runs here; the same
invariants caught in real broken builds are in test_nemesis_broken.py."""

from __future__ import annotations

import copy
from typing import Any, Optional

import pytest

from tests.reliability.nemesis_checker import (OK, REFUSED, UNKNOWN, History, Invocation, Line, Op, check,
                                               parse_log)

SEED = 4242


class Recorder:
    """Builds a history as the app and the harness would record it: log lines, the
    journal on disk, the state, the clients' ops."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.journal: dict[str, list[tuple[str, Optional[str]]]] = {}
        self.invocations: dict[str, Invocation] = {}
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.ops: list[Op] = []
        self._nonces = 0

    def invocation(self, inv: str, service: str = "Svc", handler: str = "h", key: str = "") -> str:
        self.invocations[inv] = Invocation(inv, service, handler, key, True)
        self.journal.setdefault(inv, [])
        return inv

    def execute(self, inv: str, name: str) -> str:
        """A step body ran (not journaled yet)."""
        self._nonces += 1
        nonce = f"n{self._nonces:04d}"
        self.lines.append(f"run {inv} {name} {nonce}")
        return nonce

    def journal_step(self, inv: str, name: str, nonce: str, seen: bool = True) -> None:
        self.journal.setdefault(inv, []).append((name, nonce))
        if seen:
            self.lines.append(f"seen {inv} {name} {nonce}")

    def step(self, inv: str, name: str) -> str:
        nonce = self.execute(inv, name)
        self.journal_step(inv, name, nonce)
        return nonce

    def history(self, **overrides: Any) -> History:
        h = History(seed=SEED, ops=self.ops, log=parse_log("\n".join(self.lines)), journal=self.journal,
                    invocations=self.invocations, state=self.state, accounts=["a0", "a1"], initial_balance=100)
        for k, v in overrides.items():
            setattr(h, k, v)
        return h


def clean() -> Recorder:
    """A history that keeps every invariant: counter increments (one retried after a
    crash, one unanswered that took no effect), a transfer, a refused transfer, a chain,
    a saga that compensated, a step run again before its result was journaled."""
    r = Recorder()
    applied: list[list[Any]] = []
    total = 0
    for i, (outcome, n) in enumerate([(OK, 2), (OK, 3), (UNKNOWN, 4), (OK, 1)]):
        op = Op(f"add-{i}", "add", {"key": "c0", "n": n}, outcome=outcome, attempts=1)
        r.ops.append(op)
        if outcome == UNKNOWN:
            continue  # never reached the server
        inv = r.invocation(f"inv_add{i}", "NCounter", "add", "c0")
        r.lines.append(f"enter NCounter/c0 {inv}")
        if i == 1:  # ran, the server was killed before its result was durable, ran again
            r.execute(inv, "add")
            r.lines.append("restart 1")
            r.lines.append(f"enter NCounter/c0 {inv}")
        r.step(inv, "add")
        r.lines.append(f"leave NCounter/c0 {inv}")
        total += n
        applied.append([op.id, n])
        op.result = op.output = total
        op.invocation_id = inv
    r.state[("NCounter", "c0")] = {"total": total, "applied": applied}

    r.ops.append(Op("transfer-0", "transfer", {"src": "a0", "dst": "a1", "amount": 30}, outcome=OK))
    r.ops.append(Op("transfer-1", "transfer", {"src": "a1", "dst": "a0", "amount": 500}, outcome=REFUSED))
    for key, delta in (("a0", -30), ("a1", 30)):
        inv = r.invocation(f"inv_move_{key}", "Account", "withdraw" if delta < 0 else "deposit", key)
        r.lines += [f"enter Account/{key} {inv}", f"leave Account/{key} {inv}"]
        r.state[("Account", key)] = {"balance": 100 + delta, "ledger": [["transfer-0", delta]]}

    r.ops.append(Op("chain-0", "chain", {"hops": 2, "delay_ms": 0, "sleep_ms": 0}, outcome=OK))
    r.state[("ChainNode", "chain-0")] = {"visits": [0, 1, 2]}

    r.ops.append(Op("saga-0", "saga", {"legs": 3, "fail_at": 2}, outcome=REFUSED))
    inv = r.invocation("inv_saga0", "Trips", "book")
    r.lines.append(f"saga saga-0 {inv} 3 2")
    r.step(inv, "book1")
    r.step(inv, "book2")
    for name in ("undo2", "undo1"):
        r.journal_step(inv, name, r.execute(inv, name), seen=False)
    return r


def kinds(violations: list[str]) -> set[str]:
    return {v[1:v.index("]")] for v in violations}


def assert_caught(h: History, invariant: str, words: str) -> None:
    violations = check(h)
    assert invariant in kinds(violations), violations
    assert any(words in v for v in violations), violations
    assert all(f"seed={SEED}" in v for v in violations), violations


def test_a_clean_history_passes() -> None:
    assert check(clean().history()) == []


# ---- acknowledged effects -------------------------------------------------------------------


def test_a_lost_acknowledged_increment_is_caught() -> None:
    r = clean()
    st = r.state[("NCounter", "c0")]
    lost = st["applied"].pop()
    st["total"] -= lost[1]
    assert_caught(r.history(), "acknowledged", f"acknowledged add {lost[0]}")


def test_an_increment_applied_twice_is_caught() -> None:
    r = clean()
    st = r.state[("NCounter", "c0")]
    st["applied"].append(list(st["applied"][0]))
    st["total"] += st["applied"][0][1]
    assert_caught(r.history(), "acknowledged", "took effect 2 times")


def test_an_unanswered_increment_may_apply_but_only_once() -> None:
    r = clean()
    st = r.state[("NCounter", "c0")]
    st["applied"].append(["add-2", 4])
    st["total"] += 4
    assert check(r.history()) == []
    st["applied"].append(["add-2", 4])
    st["total"] += 4
    assert_caught(r.history(), "acknowledged", "add-2 took effect 2 times")


def test_an_answer_out_of_order_with_the_effects_is_caught() -> None:
    r = clean()
    r.ops[0].result = 99
    r.ops[0].output = 99
    assert_caught(r.history(), "acknowledged", "the total became 2")


def test_an_idempotent_request_that_answers_differently_is_caught() -> None:
    r = clean()
    r.ops[1].output = 12345
    assert_caught(r.history(), "acknowledged", "asked again it answers 12345")


def test_a_half_applied_transfer_is_caught() -> None:
    r = clean()
    r.state[("Account", "a1")] = {"balance": 100, "ledger": []}
    h = r.history()
    assert_caught(h, "acknowledged", "moved money out 1 and in 0 times")
    assert_caught(h, "money", "destroyed: 30")


def test_a_refused_transfer_that_moved_money_is_caught() -> None:
    r = clean()
    r.state[("Account", "a1")]["ledger"].append(["transfer-1", -500])
    assert_caught(r.history(), "acknowledged", "refused transfer transfer-1")


def test_an_acknowledged_chain_that_lost_a_hop_is_caught() -> None:
    r = clean()
    r.state[("ChainNode", "chain-0")] = {"visits": [0, 2]}
    assert_caught(r.history(), "acknowledged", "visited [0, 2], expected [0, 1, 2]")


def test_an_accepted_awakeable_or_workflow_that_vanished_is_caught() -> None:
    r = clean()
    r.ops.append(Op("awakeable-0", "awakeable", {}, outcome=OK, result={"status": "Accepted"}, output=None))
    assert_caught(r.history(), "acknowledged", "knows no such invocation")
    r.ops[-1].output = "v-someone-else"
    assert_caught(r.history(), "acknowledged", "expected 'v-awakeable-0'")
    r.ops[-1].output = "v-awakeable-0"
    r.ops[-1].attached = "v-someone-else"
    assert_caught(r.history(), "acknowledged", "attached, the client got 'v-someone-else'")


# ---- journaled steps never run twice ----------------------------------------------------------


def test_a_journaled_step_that_ran_again_is_caught() -> None:
    r = clean()
    r.execute("inv_add0", "add")  # after its result was journaled
    assert_caught(r.history(), "steps", "step add of inv_add0 ran again after its result")


def test_a_durable_result_that_changed_is_caught() -> None:
    r = clean()
    r.journal["inv_add3"] = [("add", r.execute("inv_add3", "add"))]  # re-run and re-journaled
    assert_caught(r.history(), "steps", "a durable result changed")


def test_a_durable_result_that_vanished_is_caught() -> None:
    r = clean()
    r.journal["inv_add3"] = []
    assert_caught(r.history(), "steps", "a durable result was lost")


def test_a_journal_result_no_execution_produced_is_caught() -> None:
    r = clean()
    r.journal["inv_saga0"][0] = ("book1", "forged")
    assert_caught(r.history(), "steps", "which none of its executions")


def test_a_step_journaled_twice_is_caught() -> None:
    r = clean()
    r.journal["inv_add0"].append(r.journal["inv_add0"][0])
    assert_caught(r.history(), "steps", "journaled 2 times")


# ---- sagas ------------------------------------------------------------------------------------


def test_compensations_out_of_order_are_caught() -> None:
    r = clean()
    # undo1 ran (and was journaled) before undo2.
    r.lines = [l for l in r.lines if " undo" not in l]
    r.journal["inv_saga0"] = r.journal["inv_saga0"][:2]
    for name in ("undo1", "undo2"):
        r.journal_step("inv_saga0", name, r.execute("inv_saga0", name), seen=False)
    assert_caught(r.history(), "sagas", "compensated ['undo1', 'undo2'], expected ['undo2', 'undo1']")


def test_a_missing_compensation_is_caught() -> None:
    r = clean()
    r.lines = [l for l in r.lines if "undo1" not in l]
    r.journal["inv_saga0"] = [e for e in r.journal["inv_saga0"] if e[0] != "undo1"]
    assert_caught(r.history(), "sagas", "compensated ['undo2'], expected ['undo2', 'undo1']")


def test_a_compensation_run_twice_is_caught() -> None:
    r = clean()
    r.execute("inv_saga0", "undo2")
    assert_caught(r.history(), "steps", "step undo2 of inv_saga0 ran again")


def test_a_compensation_of_a_saga_that_succeeded_is_caught() -> None:
    r = clean()
    r.ops.append(Op("saga-1", "saga", {"legs": 1, "fail_at": None}, outcome=OK))
    inv = r.invocation("inv_saga1", "Trips", "book")
    r.lines.append(f"saga saga-1 {inv} 1 0")
    r.step(inv, "book1")
    assert check(r.history()) == []
    r.execute(inv, "undo1")
    assert_caught(r.history(), "sagas", "ran compensations it should not have")


def test_a_saga_killed_before_it_was_durable_and_retried_passes() -> None:
    r = clean()
    r.lines.insert(r.lines.index("saga saga-0 inv_saga0 3 2"), "saga saga-0 inv_lost 3 2")
    r.ops[-1].invocation_id = "inv_saga0"
    assert check(r.history()) == []
    r.ops[-1].invocation_id = "inv_lost"
    assert_caught(r.history(), "sagas", "was answered by inv_lost, which is not on disk")


def test_a_saga_run_twice_under_one_idempotency_key_is_caught() -> None:
    r = clean()
    inv = r.invocation("inv_saga0b", "Trips", "book")
    r.lines.append(f"saga saga-0 {inv} 3 2")
    r.step(inv, "book1")
    r.step(inv, "book2")
    for name in ("undo2", "undo1"):
        r.journal_step(inv, name, r.execute(inv, name), seen=False)
    assert_caught(r.history(), "sagas", "saga saga-0 ran as 2 invocations")


def test_a_saga_answered_against_its_input_is_caught() -> None:
    r = clean()
    r.ops[-1].outcome = OK
    assert_caught(r.history(), "acknowledged", "saga saga-0")


# ---- exclusive handlers -----------------------------------------------------------------------


def test_overlapping_exclusive_handlers_are_caught() -> None:
    r = clean()
    r.lines += ["enter NCounter/c1 inv_x", "enter NCounter/c1 inv_y", "leave NCounter/c1 inv_y",
                "leave NCounter/c1 inv_x"]
    assert_caught(r.history(), "exclusive", "inv_y entered NCounter/c1")


def test_intervals_of_other_keys_or_across_a_restart_do_not_overlap() -> None:
    r = clean()
    r.lines += ["enter NCounter/c1 inv_x", "enter NCounter/c2 inv_y", "leave NCounter/c2 inv_y",
                "restart 2", "enter NCounter/c1 inv_z", "leave NCounter/c1 inv_z",
                "enter NCounter/c1 inv_w", "enter NCounter/c1 inv_w", "leave NCounter/c1 inv_w",
                "leave NCounter/c1 inv_w"]
    assert check(r.history()) == []


# ---- money ----------------------------------------------------------------------------------------


def test_money_created_is_caught() -> None:
    r = clean()
    r.state[("Account", "a1")]["balance"] += 7
    r.state[("Account", "a1")]["ledger"].append(["transfer-0", 7])
    h = r.history()
    assert_caught(h, "money", "created: 7")


def test_a_balance_that_disagrees_with_its_ledger_is_caught() -> None:
    r = clean()
    r.state[("Account", "a0")]["balance"] = 80
    assert_caught(r.history(), "money", "Account/a0 holds 80, its ledger says 70")


# ---- completion ---------------------------------------------------------------------------------


def test_an_unfinished_invocation_is_caught() -> None:
    r = clean()
    assert_caught(r.history(unfinished=["inv_q NCounter/c0/add suspended"]), "complete", "still unfinished")
    r.invocations["inv_add0"].completed = False
    assert_caught(r.history(), "complete", "not completed")


def test_an_acknowledged_invocation_missing_from_disk_is_caught() -> None:
    r = clean()
    del r.invocations["inv_add0"]
    assert_caught(r.history(), "complete", "which is not on disk")


def test_an_inbox_left_behind_is_caught() -> None:
    r = clean()
    assert_caught(r.history(inboxes={("NCounter", "c0"): ["inv_q"]}), "complete", "inboxes still hold")


@pytest.mark.parametrize("text,expected", [("run a b c\n\nseen a b c\n", 2), ("", 0)])
def test_the_log_parses_line_by_line(text: str, expected: int) -> None:
    lines = parse_log(text)
    assert len(lines) == expected
    assert all(isinstance(l, Line) for l in lines)


def test_every_check_leaves_its_input_alone() -> None:
    h = clean().history()
    before = copy.deepcopy(h)
    check(h)
    assert h == before
