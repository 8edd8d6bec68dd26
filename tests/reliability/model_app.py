"""A generic interpreter of generated programs, served by `stead serve` for
tests/reliability/test_model.py (issue 11, part 2: random programs against a model).

A program is JSON: `{"path": "...", "ops": [op, ...]}`. `path` names the program node
(the test finds the node of an invocation from its input); the ops run in order against
the context. The handler returns `{"trace": [...], "x": {step: nonce}}`: the trace holds
one item per op that yields a value (tests/reliability/model.py computes the same trace
from the same program), `x` the nonce each step's body drew, as the handler saw it.

Ops (`i` is the op's index in its program):

- `{"op": "get", "name"}`, `{"op": "keys"}`: the value (None if absent) or the sorted
  state names, appended to the trace. `set` (`name`, `value`), `clear` (`name`),
  `clear_all`: state changes. Objects only.
- `{"op": "step", "value", "fail": n}`: the step `s{i}`; its body fails retryably
  (RuntimeError) `n` times, counted in the effects file so that a crash does not reset
  the count, then returns `value` (traced). `"mode": "terminal"` (`message`, `code`): the
  body raises TerminalError, which ends the invocation. `"mode": "exhaust"` (`attempts`,
  `message`): the body always fails retryably; after `attempts` attempts the step fails
  terminally with the SDK's message.
- `{"op": "sleep", "ms"}`: a durable timer.
- `{"op": "call", "target": "obj"|"svc", "key", "prog", "catch"}`: calls the interpreter
  on another key (or the service) with the program `prog`; traces `{"ret": trace}`, or a
  callee's terminal failure as `{"error": [code, message]}` when `catch`, else fails with it.
- `{"op": "send", ...}`: the same one-way (after `delay` ms if given); nothing traced.
- `{"op": "awakeable", "value" | "reject", "publish": "direct"|"step", "catch"}`: an
  awakeable whose id is published in the effects file `model-awakeables` (directly, or
  from the step `p{i}`) with what the test must do with it (resolve with `value`, or
  reject with the message `reject`); traces the value, or the rejection like a call's.
- `{"op": "fail", "times": n}`: the handler itself (not a step) raises a retryable error
  the first `n` times it gets here: the invocation is retried and replays its journal.
- `{"op": "terminal", "message", "code"}`: the handler raises TerminalError.

Every execution of a step body appends `{"step", "x", "outcome"}` to the fsynced effects
file `model/{invocation id}.jsonl` before it returns or raises, `x` being a nonce drawn by
that execution and carried by its result (`{"v": value, "x": nonce}`) or by its failure
message (`... #nonce`): the test checks that the execution whose result the journal holds
is the last one that ran (a journaled step never runs again). A handler failure (`fail`)
appends `{"fail": i}` there.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from pysdk import (
    Context,
    InvocationRetryPolicy,
    ObjectContext,
    ObjectSharedContext,
    RunOptions,
    Service,
    TerminalError,
    VirtualObject,
    app,
)

# Quick retries: a generated program retries often, and the test waits for all of it.
RETRY = InvocationRetryPolicy(initial_interval=timedelta(milliseconds=10), max_interval=timedelta(milliseconds=50))
STEP_RETRY: dict[str, Any] = {"initial_retry_interval": timedelta(milliseconds=5),
                              "max_retry_interval": timedelta(milliseconds=20)}

obj = VirtualObject("ModelObj", invocation_retry_policy=RETRY)
svc = Service("ModelSvc", invocation_retry_policy=RETRY)


def effects_dir() -> Path:
    path = os.environ.get("STEAD_TEST_EFFECTS")
    if not path:
        raise RuntimeError("STEAD_TEST_EFFECTS is not set: the model app writes effects only "
                           "to the directory the test gives it")
    return Path(path)


def append(path: Path, record: dict[str, Any]) -> None:
    """One JSON line, fsynced before returning: it survives a SIGKILL right after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    # A line torn by a kill in the middle of a write is not a record.
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def log_of(inv: str) -> Path:
    return effects_dir() / "model" / f"{inv}.jsonl"


def step_body(inv: str, name: str, op: dict[str, Any]) -> dict[str, Any]:
    nonce = uuid.uuid4().hex
    mode = op.get("mode", "ok")
    log = log_of(inv)
    if mode == "terminal":
        append(log, {"step": name, "x": nonce, "outcome": "terminal"})
        raise TerminalError(f"{op['message']} #{nonce}", op["code"])
    if mode == "exhaust":
        append(log, {"step": name, "x": nonce, "outcome": "fail"})
        raise RuntimeError(f"{op['message']} #{nonce}")
    failed = sum(1 for r in records(log) if r.get("step") == name and r["outcome"] == "fail")
    if failed < op.get("fail", 0):
        append(log, {"step": name, "x": nonce, "outcome": "fail"})
        raise RuntimeError(f"transient #{nonce}")
    append(log, {"step": name, "x": nonce, "outcome": "ok"})
    return {"v": op.get("value"), "x": nonce}


def publish(inv: str, name: str | None, awakeable_id: str, op: dict[str, Any]) -> dict[str, Any]:
    """Tell the test an awakeable's id and what to complete it with; from a step body
    (`name` given: an execution of a step like any other) or straight from the handler."""
    record: dict[str, Any] = {"id": awakeable_id, "inv": inv}
    if "reject" in op:
        record["reject"] = op["reject"]
    else:
        record["value"] = op.get("value")
    append(effects_dir() / "model-awakeables", record)
    if name is None:
        return {}
    nonce = uuid.uuid4().hex
    append(log_of(inv), {"step": name, "x": nonce, "outcome": "ok"})
    return {"v": None, "x": nonce}


def fail_handler(inv: str, i: int, times: int) -> None:
    log = log_of(inv)
    if sum(1 for r in records(log) if r.get("fail") == i) < times:
        append(log, {"fail": i})
        raise RuntimeError(f"handler fails at op {i}")


async def interpret(ctx: Context, prog: dict[str, Any]) -> dict[str, Any]:
    inv = ctx.request().id
    trace: list[Any] = []
    nonces: dict[str, str] = {}
    for i, op in enumerate(prog["ops"]):
        kind = op["op"]
        if kind == "get":
            trace.append(await ctx.get(op["name"]))  # type: ignore[attr-defined]
        elif kind == "keys":
            trace.append(await ctx.state_keys())  # type: ignore[attr-defined]
        elif kind == "set":
            ctx.set(op["name"], op["value"])  # type: ignore[attr-defined]
        elif kind == "clear":
            ctx.clear(op["name"])  # type: ignore[attr-defined]
        elif kind == "clear_all":
            ctx.clear_all()  # type: ignore[attr-defined]
        elif kind == "step":
            name = f"s{i}"
            attempts = op.get("attempts") if op.get("mode") == "exhaust" else None
            options: RunOptions[Any] = RunOptions(max_attempts=attempts, **STEP_RETRY)  # type: ignore[arg-type]
            result = await ctx.run_typed(name, step_body, options, inv, name, op)
            trace.append(result["v"])
            nonces[name] = result["x"]
        elif kind == "sleep":
            await ctx.sleep(timedelta(milliseconds=op["ms"]))
        elif kind in ("call", "send"):
            delay = timedelta(milliseconds=op["delay"]) if "delay" in op else None
            if op["target"] == "obj":
                if kind == "send":
                    ctx.object_send(run_obj, key=op["key"], arg=op["prog"], send_delay=delay)
                    continue
                future = ctx.object_call(run_obj, key=op["key"], arg=op["prog"])
            else:
                if kind == "send":
                    ctx.service_send(run_svc, arg=op["prog"])
                    continue
                future = ctx.service_call(run_svc, arg=op["prog"])
            try:
                trace.append({"ret": (await future)["trace"]})
            except TerminalError as exc:
                if not op.get("catch"):
                    raise
                trace.append({"error": [exc.status_code, exc.message]})
        elif kind == "awakeable":
            awakeable_id, done = ctx.awakeable()
            if op.get("publish") == "step":
                name = f"p{i}"
                result = await ctx.run_typed(name, publish, RunOptions(**STEP_RETRY),  # type: ignore[call-overload]
                                             inv, name, awakeable_id, op)
                nonces[name] = result["x"]
            else:
                publish(inv, None, awakeable_id, op)
            try:
                trace.append(await done)
            except TerminalError as exc:
                if not op.get("catch"):
                    raise
                trace.append({"error": [exc.status_code, exc.message]})
        elif kind == "fail":
            fail_handler(inv, i, op["times"])
        elif kind == "terminal":
            raise TerminalError(op["message"], op["code"])
        else:
            raise TerminalError(f"unknown op {kind!r}", 400)
    return {"trace": trace, "x": nonces}


@obj.handler("run")
async def run_obj(ctx: ObjectContext, prog: dict) -> dict:
    return await interpret(ctx, prog)


@obj.handler("peek", kind="shared")
async def peek(ctx: ObjectSharedContext) -> dict:
    """The key's whole state, as a handler sees it."""
    return {name: await ctx.get(name) for name in await ctx.state_keys()}


@svc.handler("run")
async def run_svc(ctx: Context, prog: dict) -> dict:
    return await interpret(ctx, prog)


application = app([obj, svc])
