"""Combinators over durable futures, Restate's `restate.asyncio` functions:
`wait_completed`, `as_completed`, `gather` and `select`.

All of them rest on `wait_completed`, which is one await point of the
machine (`Machine.wait_any`): live, it journals COMBINATOR with the entries
it saw completed, in the order they completed; on replay it returns what
that entry says, so the same futures win even if the completions were
delivered in another order, or more of them had arrived by then.

Only durable futures of one invocation can be combined (asyncio tasks and
coroutines cannot: their outcome is not journaled). The done futures come
first in the order they completed (Restate returns them in argument order;
completion order is what `as_completed` and `select` promise).

Steps (`ctx.run`, `ctx.run_typed`, `ctx.time`) are durable futures too. Their
bodies run in this process, so a combinator runs the steps it is given first,
one after another in argument order, and counts them done before it waits for
anything else: deterministic on replay, with the results Restate's parallel
steps give (not their parallelism: the steps run sequentially).
"""
from __future__ import annotations

from typing import Any, AsyncIterator

from ._errors import TerminalError
from ._futures import RestateDurableFuture, RestateDurableRunFuture

__all__ = ["as_completed", "gather", "select", "wait_completed"]


def _check(futures: tuple[Any, ...]) -> None:
    machine = None
    for f in futures:
        if not isinstance(f, RestateDurableFuture):
            raise TerminalError(
                f"combinators take durable futures (ctx.run, ctx.sleep, calls, awakeables, promises); "
                f"got {type(f).__name__}"
            )
        if machine is None:
            machine = f._m
        elif f._m is not machine:
            raise TerminalError("all futures must be created by the same context")


async def wait_completed(
    *args: RestateDurableFuture[Any],
) -> tuple[list[RestateDurableFuture[Any]], list[RestateDurableFuture[Any]]]:
    """Wait until at least one future is completed; return (done, pending):
    done in the order they completed, pending in argument order."""
    if not args:
        return [], []
    _check(args)
    steps = [f for f in args if isinstance(f, RestateDurableRunFuture)]
    if steps:
        for f in steps:
            await f._settle()
        return list(steps), [f for f in args if not isinstance(f, RestateDurableRunFuture)]
    done_indices = await args[0]._m.wait_any([f._index for f in args])
    by_index: dict[int, RestateDurableFuture[Any]] = {}
    for f in args:
        by_index.setdefault(f._index, f)
    done = [by_index[i] for i in done_indices]
    finished = set(done_indices)
    pending = [f for f in args if f._index not in finished]
    return done, pending


async def as_completed(*futures: RestateDurableFuture[Any]) -> AsyncIterator[RestateDurableFuture[Any]]:
    """Yield the futures as they complete:

        async for f in as_completed(f1, f2, f3):
            print(await f)
    """
    remaining = list(futures)
    while remaining:
        done, remaining = await wait_completed(*remaining)
        for f in done:
            yield f


async def gather(*futures: RestateDurableFuture[Any]) -> list[RestateDurableFuture[Any]]:
    """Wait until all futures are completed; return them (in argument order),
    to be awaited for their results."""
    remaining = list(futures)
    while remaining:
        _, remaining = await wait_completed(*remaining)
    return list(futures)


async def select(**futures: RestateDurableFuture[Any]) -> list[Any]:
    """Wait for the first future to complete; return `[name, result]`:

        match await select(ok=ctx.promise("approved").value(), timeout=ctx.sleep(timedelta(days=1))):
            case ["ok", verdict]: ...
            case ["timeout", _]: ...

    A failed winner raises its `TerminalError`."""
    if not futures:
        raise ValueError("select() needs at least one future")
    names = {id(f): name for name, f in reversed(futures.items())}
    done, _ = await wait_completed(*futures.values())
    winner = done[0]
    return [names[id(winner)], await winner]
