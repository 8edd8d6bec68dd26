"""Wallets and transfers between them: calls between virtual objects, and the
plain Restate saga pattern (a list of compensations run in `except TerminalError`).

    stead serve examples.wallet:application
    curl -X POST localhost:8080/Wallet/alice/deposit -H 'content-type: application/json' -d 100
    curl -X POST localhost:8080/Transfers/transfer -H 'content-type: application/json' \
         -d '{"source": "alice", "target": "bob", "amount": 30}'
"""

from __future__ import annotations

from pydantic import BaseModel

from pysdk import Context, ObjectContext, ObjectSharedContext, Service, TerminalError, VirtualObject, app

MAX_BALANCE = 1_000_000

wallet = VirtualObject("Wallet")


@wallet.handler()
async def deposit(ctx: ObjectContext, amount: int) -> int:
    if amount <= 0:
        raise TerminalError(f"amount must be positive, got {amount}", 400)
    balance = (await ctx.get("balance") or 0) + amount
    if balance > MAX_BALANCE:
        raise TerminalError(f"wallet {ctx.key()} would exceed {MAX_BALANCE}", 409)
    ctx.set("balance", balance)
    return balance


@wallet.handler()
async def withdraw(ctx: ObjectContext, amount: int) -> int:
    balance = await ctx.get("balance") or 0
    if amount <= 0 or amount > balance:
        raise TerminalError(f"cannot withdraw {amount} from wallet {ctx.key()} holding {balance}", 409)
    ctx.set("balance", balance - amount)
    return balance - amount


@wallet.handler(kind="shared")
async def balance(ctx: ObjectSharedContext) -> int:
    return await ctx.get("balance") or 0


class Transfer(BaseModel):
    source: str
    target: str
    amount: int


transfers = Service("Transfers")


@transfers.handler()
async def transfer(ctx: Context, t: Transfer) -> dict[str, int]:
    """Withdraw from the source, deposit to the target; if the deposit is refused,
    put the money back (each call is journaled: a crash never repeats or loses one)."""
    compensations = []
    try:
        left = await ctx.object_call(withdraw, key=t.source, arg=t.amount)
        compensations.append(lambda: ctx.object_call(deposit, key=t.source, arg=t.amount))
        now = await ctx.object_call(deposit, key=t.target, arg=t.amount)
    except TerminalError:
        for compensate in reversed(compensations):
            await compensate()
        raise
    return {"source": left, "target": now}


application = app([wallet, transfers])
