"""Who waits for which invocation's result: the ingress caller of a call, and
any number of attachers (`/restate/invocation/{id}/attach`, idempotent
duplicates, workflow re-submissions).

A result is handed out only once the commit that completed the invocation is
durable. Between that commit being queued and being durable the result is in
`_finishing`, so an attacher arriving in that window neither misses it (the
table on disk does not show it yet) nor sees it early.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from runtime import _core
from runtime.commits import Commits

# (output, failure_code, failure_message): output is None on failure.
Result = tuple[Optional[bytes], int, Optional[str]]


class UnknownInvocation(LookupError):
    pass


class Results:
    def __init__(self, store: _core.Store, commits: Commits) -> None:
        self.store = store
        self.commits = commits
        self._waiters: dict[str, list[asyncio.Future[Result]]] = {}
        self._finishing: dict[str, tuple[int, Result]] = {}

    def expect(self, inv_id: str) -> asyncio.Future[Result]:
        """A future for the result of an invocation that is known to be unfinished."""
        fut: asyncio.Future[Result] = self.commits.loop.create_future()
        self._waiters.setdefault(inv_id, []).append(fut)
        return fut

    def forget(self, inv_id: str, fut: asyncio.Future[Result]) -> None:
        """Drop a waiter that no longer waits (its result came, or its request ended)."""
        futs = self._waiters.get(inv_id)
        if futs is not None:
            if fut in futs:
                futs.remove(fut)
            if not futs:
                del self._waiters[inv_id]

    def has_waiters(self, inv_id: str) -> bool:
        return inv_id in self._waiters

    async def finished(self, inv_id: str, seq: int, result: Result) -> None:
        """`inv_id` completed in commit `seq`: resolve its waiters once that is durable."""
        self._finishing[inv_id] = (seq, result)
        try:
            await self.commits.wait(seq)
        except BaseException as exc:
            for fut in self._waiters.pop(inv_id, ()):
                if not fut.done():
                    fut.set_exception(exc)
            raise
        finally:
            self._finishing.pop(inv_id, None)
        for fut in self._waiters.pop(inv_id, ()):
            if not fut.done():
                fut.set_result(result)

    def fail_all(self, exc: BaseException) -> None:
        for futs in self._waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_exception(exc)
        self._waiters.clear()

    async def _read_output(self, inv_id: str) -> Optional[Result]:
        """The result as RocksDB has it, once durable: a row can be written and readable
        before its group is synced, so the answer waits for every commit queued so far
        (free when they are durable; this is not the hot path)."""
        out = self.store.get_output(inv_id)
        if out is not None:
            await self.commits.wait(self.store.last_seq())
        return out

    async def _unknown(self, inv_id: str) -> UnknownInvocation:
        """No record on disk: once durable, for the same reason (a purge's delete can be
        written and readable before its group is synced)."""
        await self.commits.wait(self.store.last_seq())
        return UnknownInvocation(inv_id)

    async def output(self, inv_id: str) -> Optional[Result]:
        """The durable result if completed, None if still running; UnknownInvocation if no
        such invocation exists (or it was purged)."""
        if inv_id in self._finishing:
            return None  # completed but not durable yet: not ready
        out = await self._read_output(inv_id)
        if out is not None:
            return out
        if self.store.get_invocation(inv_id) is None:
            raise await self._unknown(inv_id)
        return None

    async def attach(self, inv_id: str) -> Result:
        """Wait for the result of `inv_id`, running or done."""
        finishing = self._finishing.get(inv_id)
        if finishing is not None:
            await self.commits.wait(finishing[0])
            return finishing[1]
        out = await self._read_output(inv_id)
        if out is not None:
            return out
        if self.store.get_invocation(inv_id) is None and inv_id not in self._waiters:
            raise await self._unknown(inv_id)
        fut = self.expect(inv_id)
        try:
            return await fut
        finally:
            self.forget(inv_id, fut)
