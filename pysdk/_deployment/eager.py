"""`shielded(coro)`: `asyncio.shield` without its task in the common case.

Both peers of a Session write each message through a shield, so that an attempt
cancelled in the middle of a send cannot leave half a message on the stream
(runtime/sessions.py, session.py). `asyncio.shield(coro)` wraps `coro` in a task of
its own and waits for it, which costs a task and two turns of the event loop per
message, although almost every write completes without ever suspending (the message
fits in the flow-control window and nobody else is writing).

`shielded` first runs `coro` in the caller's task, as Python 3.12's eager tasks do.
If it completes without suspending, nothing could have interrupted it and no task
was needed. If it suspends (waiting for the window, or for another writer's lock),
the rest of it is handed to a task of its own, which the caller's cancellation does
not reach, exactly as with `asyncio.shield`.
"""
from __future__ import annotations

import asyncio
from typing import Any, Coroutine, Optional, TypeVar

__all__ = ["shielded"]

T = TypeVar("T")


async def shielded(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` to its end, whether or not the awaiting task is cancelled meanwhile
    (the caller then gets CancelledError, `coro` goes on); see the module docstring."""
    try:
        awaited = coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    rest = asyncio.get_running_loop().create_task(_finish(coro, awaited))
    return await asyncio.shield(rest)


async def _finish(coro: Coroutine[Any, Any, T], awaited: Optional[Any]) -> T:
    """Drive `coro` on from a suspension at `awaited`: what it yielded to its task, an
    asyncio future it waits for, or None for a bare yield (a turn of the loop)."""
    while True:
        throw: Optional[BaseException] = None
        try:
            if awaited is None:
                await asyncio.sleep(0)
            else:
                # The Task protocol: a future yielded with this flag set is one the
                # coroutine awaits; its task resumes the coroutine once the future is done
                # (the coroutine then reads its result, or its exception, itself).
                awaited._asyncio_future_blocking = False
                await asyncio.wait((awaited,))
        except asyncio.CancelledError as exc:
            # This task itself was cancelled (the loop is closing, say): `coro` is
            # cancelled where it waits, as a task of its own would be.
            if awaited is not None and not awaited.done():
                awaited.cancel()
            else:
                throw = exc
        try:
            awaited = coro.send(None) if throw is None else coro.throw(throw)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
