"""Handlers of the nemesis runs (tests/reliability/nemesis.py): a mixed workload whose
handlers record what really happened, so that the checker (nemesis_checker.py) can hold
the run to Stead's promise whatever the nemesis did to the process.

Everything goes to one effects file, `nemesis.log` under STEAD_TEST_EFFECTS, one line per
event, appended with a single write(2) on an O_APPEND descriptor and fsynced before the
handler goes on. The file's order is the real order of events: one server process writes
it at a time (the harness kills and waits before it restarts, and appends its own
`restart` marker in between). Lines, space-separated:

    run INV STEP NONCE      a step body executed (each execution draws a fresh nonce, which
                            is also the step's result, so the journal tells which execution's
                            result was recorded)
    seen INV STEP NONCE     the handler got the step's result back from `ctx.run` (durable
                            by then: README, "a step's result is visible only once durable")
    enter SCOPE INV         an exclusive handler of object key SCOPE starts its critical part
    leave SCOPE INV         ... and leaves it (in a `finally`, so a suspension leaves too)
    awk OP AWAKEABLE_ID     the awakeable of op OP was published (inside the step `publish`)
    saga OP INV LEGS FAIL   a saga handler started (its body; again on every replay)
    restart N               written by the harness while no server runs

The workload (see nemesis.py for what the clients send):

- `NCounter/{k}/add {"op", "n"}`: adds n to `total` and appends [op, n] to `applied`.
- `Account/{k}/withdraw|deposit {"op", "amount"}` and `Bank/transfer {"op", "src", "dst",
  "amount"}`: money moves by two calls; an account starts with INITIAL_BALANCE; every
  movement is appended to the account's `ledger` as [op, delta]; a withdraw beyond the
  balance is refused (409) and changes nothing.
- `Chains/start {"op", "hops", "delay_ms", "sleep_ms"}`: a step, a durable sleep, then a
  call to `ChainNode/{op}/hop`, which appends its index to `visits` and sends itself the
  next hop after `delay_ms`, until `hops`.
- `Waiter/wait {"op"}`: an awakeable resolved from outside, its id published in a step.
- `Approval/{op}/run {"op"}` (a workflow): a step, waits for the promise `approval`
  (resolved by the shared handler `approve`), another step.
- `Trips/book {"op", "legs", "fail_at"}`: a saga; leg `fail_at` is refused after it is
  booked, and the compensations `undo{i}` run last first.

Deliberately broken builds, for the tests that show the checker catches a broken server
(test_nemesis_broken.py): STEAD_NEMESIS_BREAK, a comma-separated list of

- `no-barrier`: the durability barrier is skipped (`Commits.wait` returns at once), so
  answers and step bodies no longer wait for their commits to be durable;
- `rerun-steps`: a replayed step runs its body again (its recorded result is still returned);
- `saga-forward`: compensations run in registration order instead of last first;
- `shared-exclusive`: exclusive handlers are admitted as shared ones (no per-key queue).

They patch the runtime and the SDK inside the server process at import; nothing else does.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Optional

from pysdk import (Context, ObjectContext, ObjectSharedContext, RunOptions, Saga, Service, TerminalError,
                   VirtualObject, Workflow, WorkflowContext, WorkflowSharedContext, app)

LOG = "nemesis.log"
INITIAL_BALANCE = 100


def log_path() -> Path:
    path = os.environ.get("STEAD_TEST_EFFECTS")
    if not path:
        raise RuntimeError("STEAD_TEST_EFFECTS is not set: the nemesis app writes its history only "
                           "to the directory the harness gives it")
    return Path(path) / LOG


def record(*fields: str) -> None:
    """Append one line to the history: one write(2) with O_APPEND (never torn or
    interleaved with another line), then fsync (a kill -9 right after keeps it)."""
    line = (" ".join(fields) + "\n").encode()
    fd = os.open(log_path(), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _execute(inv: str, name: str, also: Optional[tuple[str, ...]] = None) -> dict[str, str]:
    nonce = secrets.token_hex(6)
    record("run", inv, name, nonce)
    if also is not None:
        record(*also)
    return {"nonce": nonce}


async def step(ctx: Context, name: str, also: Optional[tuple[str, ...]] = None) -> str:
    """A durable step whose every execution is recorded (`run`), as is the result the
    handler got back (`seen`). `also`: one more line the body records."""
    inv = ctx.request().id
    out = await ctx.run_typed(name, _execute, RunOptions(), inv, name, also)
    record("seen", inv, name, out["nonce"])
    return out["nonce"]


@asynccontextmanager
async def exclusive(ctx: ObjectContext, service: str) -> AsyncIterator[None]:
    """The critical part of an exclusive handler of `service`, recorded as an interval.
    It yields to the event loop inside, so that anything else runnable would interleave."""
    scope, inv = f"{service}/{ctx.key()}", ctx.request().id
    record("enter", scope, inv)
    try:
        await asyncio.sleep(0.002)
        yield
        await asyncio.sleep(0.002)
    finally:
        record("leave", scope, inv)


# ---- counters ------------------------------------------------------------------------------

counter = VirtualObject("NCounter")


@counter.handler()
async def add(ctx: ObjectContext, req: dict[str, Any]) -> int:
    async with exclusive(ctx, "NCounter"):
        total = await ctx.get("total") or 0
        applied = await ctx.get("applied") or []
        await step(ctx, "add")
        total += req["n"]
        applied.append([req["op"], req["n"]])
        ctx.set("total", total)
        ctx.set("applied", applied)
    return total


# ---- accounts and transfers ------------------------------------------------------------------

account = VirtualObject("Account")


async def _move(ctx: ObjectContext, op: str, delta: int) -> int:
    async with exclusive(ctx, "Account"):
        balance = await ctx.get("balance")
        balance = INITIAL_BALANCE if balance is None else balance
        if balance + delta < 0:
            raise TerminalError(f"insufficient funds: {ctx.key()} holds {balance}, {op} takes {-delta}", 409)
        ledger = await ctx.get("ledger") or []
        ledger.append([op, delta])
        ctx.set("balance", balance + delta)
        ctx.set("ledger", ledger)
    return balance + delta


@account.handler()
async def withdraw(ctx: ObjectContext, req: dict[str, Any]) -> int:
    return await _move(ctx, req["op"], -req["amount"])


@account.handler()
async def deposit(ctx: ObjectContext, req: dict[str, Any]) -> int:
    return await _move(ctx, req["op"], req["amount"])


@account.handler(kind="shared")
async def balance(ctx: ObjectSharedContext) -> int:
    value = await ctx.get("balance")
    return INITIAL_BALANCE if value is None else value


bank = Service("Bank")


@bank.handler()
async def transfer(ctx: Context, req: dict[str, Any]) -> dict[str, int]:
    move = {"op": req["op"], "amount": req["amount"]}
    left = await ctx.object_call(withdraw, key=req["src"], arg=move)
    now = await ctx.object_call(deposit, key=req["dst"], arg=move)
    return {"src": left, "dst": now}


# ---- chains of calls and delayed sends, with sleeps -----------------------------------------

chain_node = VirtualObject("ChainNode")


@chain_node.handler()
async def hop(ctx: ObjectContext, req: dict[str, Any]) -> int:
    async with exclusive(ctx, "ChainNode"):
        visits = await ctx.get("visits") or []
        visits.append(req["i"])
        ctx.set("visits", visits)
    if req["i"] < req["hops"]:
        ctx.object_send(hop, key=ctx.key(), arg=dict(req, i=req["i"] + 1),
                        send_delay=timedelta(milliseconds=req["delay_ms"]))
    return int(req["i"])


chains = Service("Chains")


@chains.handler()
async def start(ctx: Context, req: dict[str, Any]) -> int:
    await step(ctx, "begin")
    await ctx.sleep(timedelta(milliseconds=req["sleep_ms"]))
    first = await ctx.object_call(hop, key=req["op"], arg={"i": 0, "hops": req["hops"], "delay_ms": req["delay_ms"]})
    await step(ctx, "end")
    return first


# ---- awakeables resolved from outside -------------------------------------------------------

waiter = Service("Waiter")


@waiter.handler()
async def wait(ctx: Context, req: dict[str, Any]) -> Any:
    aid, fut = ctx.awakeable()
    await step(ctx, "publish", also=("awk", req["op"], aid))
    value = await fut
    await step(ctx, "got")
    return value


# ---- workflows with promises ----------------------------------------------------------------

approval = Workflow("Approval")


@approval.main()
async def run(ctx: WorkflowContext, req: dict[str, Any]) -> str:
    await step(ctx, "prepare")
    ctx.set("status", "waiting")
    value = await ctx.promise("approval").value()
    await step(ctx, "finish")
    ctx.set("status", "done")
    return f"approved {value}"


@approval.handler()
async def approve(ctx: WorkflowSharedContext, value: str) -> str:
    await ctx.promise("approval").resolve(value)
    return "ok"


# ---- sagas ------------------------------------------------------------------------------------

trips = Service("Trips")


def _undo(inv: str, name: str) -> dict[str, str]:
    return _execute(inv, name)


@trips.handler()
async def book(ctx: Context, req: dict[str, Any]) -> str:
    inv = ctx.request().id
    record("saga", req["op"], inv, str(req["legs"]), str(req["fail_at"] or 0))
    async with Saga(ctx) as saga:
        for i in range(1, req["legs"] + 1):
            await step(ctx, f"book{i}")
            saga.add(f"undo{i}", _undo, inv, f"undo{i}")
            if req["fail_at"] == i:
                raise TerminalError(f"leg {i} refused", 409)
    return "booked"


application = app([counter, account, bank, chain_node, chains, waiter, approval, trips])


# ---- deliberately broken builds -------------------------------------------------------------


def _break(what: set[str]) -> None:
    if "no-barrier" in what:
        from runtime.commits import Commits

        async def wait(self: Commits, seq: int) -> None:  # noqa: ARG001 - broken on purpose
            if self._failure is not None:
                raise self._failure

        Commits.wait = wait  # type: ignore[method-assign]
    if "rerun-steps" in what:
        from pysdk._machine import Machine

        original = Machine.run

        async def rerun(self: Machine, name: str, action: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                        codec: Any, options: Any) -> Any:
            if self.journal_index < self._replay_len:
                result = action(*args, **kwargs)  # broken on purpose: a replayed step runs again
                if asyncio.iscoroutine(result):
                    await result
            return await original(self, name, action, args, kwargs, codec, options)

        Machine.run = rerun  # type: ignore[method-assign]
    if "saga-forward" in what:
        original_compensate = Saga.compensate

        async def forward(self: Saga) -> None:
            self._compensations.reverse()  # broken on purpose: first registered runs first
            await original_compensate(self)

        Saga.compensate = forward  # type: ignore[method-assign]
    if "shared-exclusive" in what:
        from runtime import _core, backend

        backend.KINDS["exclusive"] = _core.KIND_SHARED  # broken on purpose: no per-key queue


_break({w.strip() for w in os.environ.get("STEAD_NEMESIS_BREAK", "").split(",") if w.strip()})
