"""The checks of tests/reliability/test_model.py: what one example's invocations, journals,
effects and states must be, given what tests/reliability/model.py computes.

- each invocation's outcome (output or terminal failure, through the admin API, and for
  the roots through the ingress's attach) and the final state of every key (through the
  admin API and as a handler reads it) equal the model's;
- an invocation exists for each program node the model reached, and for no other; a
  root sent again with its idempotency key is the same invocation;
- no journaled step ran again: for every step, the execution whose result (or failure)
  the journal holds is the last one the effects file recorded, every step that ran is
  journaled, and the handler saw the journaled result;
- a step that failed retryably `n` times before succeeding ran its body `n` times
  failing, not fewer (a crash does not reset the count) and not more.

Step bodies draw a nonce per execution (model_app.py); `strip_nonces` removes them from
what the model cannot know.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from tests.reliability.model import Model, Outcome, nodes
from tests.reliability.model_app import records
from tests.reliability.model_programs import Roots

if TYPE_CHECKING:
    from tests.reliability.model_harness import Harness

NONCE = re.compile(r" #([0-9a-f]{32})")


def strip_nonces(value: Any) -> Any:
    """What the model can know of an observed value: the nonces step bodies draw removed."""
    if isinstance(value, str):
        return NONCE.sub("", value)
    if isinstance(value, list):
        return [strip_nonces(v) for v in value]
    if isinstance(value, dict):
        return {k: strip_nonces(v) for k, v in value.items()}
    return value


def journaled_nonce(entry: dict[str, Any]) -> str | None:
    """The nonce of the execution whose result (or terminal failure) a Run entry holds."""
    if isinstance(entry["value"], dict) and "x" in entry["value"]:
        return entry["value"]["x"]
    if entry["failure"] is not None:
        found = NONCE.search(entry["failure"]["message"])
        return found.group(1) if found else None
    return None


def check(h: Harness, placed: Roots, model: Model, described: dict[str, dict[str, Any]]) -> None:
    by_path: dict[str, dict[str, Any]] = {}
    for desc in described.values():
        path = desc["input"]["path"]
        assert path not in by_path, f"two invocations of the program node {path}"
        by_path[path] = desc
    assert sorted(by_path) == sorted(model.outcomes), "the invocations are not those of the nodes the model reached"

    programs_by_path = {prog["path"]: (prog, key) for root, key in placed for prog, key in nodes(root, key)}
    for path, expected in model.outcomes.items():
        desc = by_path[path]
        prog, key = programs_by_path[path]
        where = f"{path} ({desc['id']}, {desc['target']})"
        observed = Outcome(output=None if desc["output"] is None else {"trace": strip_nonces(desc["output"]["trace"])},
                           failure=None if desc["failure"] is None else
                           (desc["failure"]["code"], strip_nonces(desc["failure"]["message"])))
        assert observed == expected, f"{where}: observed {observed}, the model says {expected}"
        check_steps(h, prog, desc, where)

    for root, key in placed:  # the ingress tells a root's outcome as the admin API does
        desc = by_path[root["path"]]
        again = h.resend(root, key)
        assert again == desc["id"], f"{root['path']}: sent again with its idempotency key, it became {again}"
        status, body = h.attach(desc["id"])
        if desc["failure"] is None:
            assert (status, body) == (200, desc["output"]), f"{root['path']}: attach gave {status} {body}"
        else:
            assert status >= 400 and body == desc["failure"], f"{root['path']}: attach gave {status} {body}"

    for root, key in placed:
        for prog, k in nodes(root, key):
            if k is not None:
                state = model.states.get(k, {})
                observed_state = h.state(k)
                assert observed_state == state, f"state of {k}: observed {observed_state}, the model says {state}"
                seen = h.peek(k)
                assert seen == state, f"state of {k} as a handler reads it: {seen}, the model says {state}"


def check_steps(h: Harness, prog: dict[str, Any], desc: dict[str, Any], where: str) -> None:
    """Effects against the journal: no journaled step ran again."""
    runs = {e["name"]: e for e in desc["journal"] if e["kind"] == "Run"}
    executions: dict[str, list[dict[str, Any]]] = {}
    handler_failures: dict[int, int] = {}
    for record in records(h.server.effects_dir / "model" / f"{desc['id']}.jsonl"):
        if "step" in record:
            executions.setdefault(record["step"], []).append(record)
        else:
            handler_failures[record["fail"]] = handler_failures.get(record["fail"], 0) + 1
    assert sorted(executions) == sorted(runs), \
        f"{where}: steps that ran {sorted(executions)}, steps journaled {sorted(runs)}"
    seen = desc["output"]["x"] if desc["output"] is not None else {}
    for name, entry in runs.items():
        nonce = journaled_nonce(entry)
        ran = executions[name]
        assert nonce is not None, f"{where}: step {name} journaled without the nonce of a run: {entry}"
        assert nonce in [r["x"] for r in ran], f"{where}: step {name} journaled a result no execution produced"
        assert ran[-1]["x"] == nonce, (
            f"{where}: step {name} ran again after its result was journaled: executions "
            f"{[(r['x'], r['outcome']) for r in ran]}, journaled {nonce}")
        if name in seen:
            assert seen[name] == nonce, f"{where}: the handler saw {seen[name]} from step {name}, journaled {nonce}"
        op = prog["ops"][int(name[1:])]
        failed = sum(1 for r in ran if r["outcome"] == "fail")
        if name.startswith("s") and op.get("mode", "ok") == "ok":
            assert failed == op["fail"], f"{where}: step {name} failed {failed} times, should fail {op['fail']} times"
        if name.startswith("s") and op.get("mode") == "exhaust":
            assert failed >= op["attempts"], f"{where}: step {name} gave up after {failed} failures"
    for i, count in handler_failures.items():
        assert count <= prog["ops"][i]["times"], f"{where}: op {i} failed the handler {count} times"

