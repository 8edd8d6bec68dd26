"""`Saga`: compensations registered as steps succeed, run in reverse when the
handler fails for good (Stead's own helper; Restate documents the pattern).

    async with Saga(ctx) as saga:
        flight = await ctx.run_typed("book_flight", book_flight, RunOptions(), trip)
        saga.add("cancel_flight", cancel_flight, flight)
        car = await ctx.run_typed("book_car", book_car, RunOptions(), trip)
        saga.add("cancel_car", cancel_car, car)

When a `TerminalError` leaves the block (a terminal step failure, a failed
call, or a cancellation, which surfaces as `TerminalError("cancelled", 409)`
at an await point), the compensations run in reverse order, each as its own
durable step `ctx.run_typed(name, action, RunOptions(), *args, **kwargs)`,
then the error is raised again. Each compensation is journaled, so a crash
while compensating resumes on replay with the ones not yet done and never
runs a finished one again. Any other exception leaves without compensating:
it is retried, and the replay rebuilds the same list of compensations.

A compensation is retried until it succeeds (the default `RunOptions`), so
it should be idempotent. If one fails terminally anyway, the others still
run and the original error is raised, with that failure as its cause.
"""
from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Callable, Optional

from ._context import Context
from ._errors import TerminalError
from ._retry import RunOptions

__all__ = ["Saga"]

logger = logging.getLogger("pysdk")


class Saga:
    """Compensations of one handler, as an async context manager."""

    __slots__ = ("_ctx", "_compensations")

    def __init__(self, ctx: Context) -> None:
        if not isinstance(ctx, Context):
            raise TypeError(f"Saga(ctx) takes the handler's context, got {type(ctx).__name__}")
        self._ctx = ctx
        self._compensations: list[tuple[str, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    def add(self, name: str, action: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
        """Register `action(*args, **kwargs)` (sync or async) as the step `name`
        that undoes what just succeeded."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a compensation needs a step name (a non-empty str), got {name!r}")
        if not callable(action):
            raise TypeError(f"compensation {name!r}: {action!r} is not callable")
        self._compensations.append((name, action, args, kwargs))

    @property
    def pending(self) -> list[str]:
        """Names of the compensations registered and not yet run, in the order they would run."""
        return [c[0] for c in reversed(self._compensations)]

    async def compensate(self) -> None:
        """Run the registered compensations now, last first, each as a durable step."""
        ctx = self._ctx
        failure: Optional[TerminalError] = None
        while self._compensations:
            name, action, args, kwargs = self._compensations.pop()
            try:
                await ctx.run_typed(name, action, RunOptions(), *args, **kwargs)
            except TerminalError as exc:
                logger.error("compensation %r failed terminally: %s", name, exc.message)
                failure = failure or exc
        if failure is not None:
            raise failure

    async def __aenter__(self) -> "Saga":
        return self

    async def __aexit__(
        self, exc_type: Optional[type[BaseException]], exc: Optional[BaseException], tb: Optional[TracebackType],
    ) -> None:  # never suppresses: typed None so type checkers know the block's exceptions propagate
        if isinstance(exc, TerminalError):
            try:
                await self.compensate()
            except TerminalError as failed:
                raise exc from failed
