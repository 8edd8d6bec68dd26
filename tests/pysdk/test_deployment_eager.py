"""pysdk/_deployment/eager.py: `shielded` finishes a coroutine whatever happens to the
task awaiting it, as asyncio.shield does, and runs it without a task of its own when it
never suspends."""

from __future__ import annotations

import asyncio

import pytest

from pysdk._deployment.eager import shielded


def test_a_coroutine_that_never_suspends_runs_in_the_callers_task() -> None:
    async def body() -> None:
        caller = asyncio.current_task()
        seen = []

        async def write() -> int:
            seen.append(asyncio.current_task())
            lock = asyncio.Lock()
            async with lock:  # an uncontended lock does not suspend
                return 7

        tasks_before = len(asyncio.all_tasks())
        assert await shielded(write()) == 7
        assert seen == [caller]
        assert len(asyncio.all_tasks()) == tasks_before

    asyncio.run(body())


def test_its_exception_reaches_the_caller() -> None:
    async def body() -> None:
        async def fails_at_once() -> None:
            raise ValueError("at once")

        async def fails_later() -> None:
            await asyncio.sleep(0)
            raise ValueError("later")

        with pytest.raises(ValueError, match="at once"):
            await shielded(fails_at_once())
        with pytest.raises(ValueError, match="later"):
            await shielded(fails_later())

    asyncio.run(body())


def test_a_suspended_coroutine_finishes_although_its_caller_is_cancelled() -> None:
    """The case shield exists for: half a message must never be left on a stream."""
    async def body() -> None:
        window = asyncio.Event()
        steps: list[str] = []

        async def send_in_two_frames() -> str:
            steps.append("first frame")
            await window.wait()  # the flow-control window, say
            steps.append("second frame")
            await asyncio.sleep(0)  # a bare yield too
            steps.append("done")
            return "sent"

        caller = asyncio.get_running_loop().create_task(shielded(send_in_two_frames()))
        await asyncio.sleep(0.01)
        assert steps == ["first frame"]
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        window.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert steps == ["first frame", "second frame", "done"]

    asyncio.run(body())


def test_the_awaited_futures_result_and_exception_reach_the_coroutine() -> None:
    async def body() -> None:
        loop = asyncio.get_running_loop()
        ok: asyncio.Future[int] = loop.create_future()
        bad: asyncio.Future[int] = loop.create_future()

        async def reads() -> tuple[int, str]:
            value = await ok
            try:
                await bad
            except KeyError as exc:
                return value, str(exc)
            return value, ""

        loop.call_later(0.01, ok.set_result, 5)
        loop.call_later(0.02, bad.set_exception, KeyError("gone"))
        assert await shielded(reads()) == (5, "'gone'")

    asyncio.run(body())


def test_when_its_own_task_is_cancelled_the_coroutine_is_cancelled_where_it_waits() -> None:
    """Closing the loop cancels every task, the shielded one among them: the coroutine
    then meets CancelledError at its await, as it would in a task of its own."""
    async def body() -> None:
        never = asyncio.Event()
        seen: list[str] = []

        async def waits() -> None:
            try:
                await never.wait()
            except asyncio.CancelledError:
                seen.append("cancelled where it waited")
                raise

        caller = asyncio.get_running_loop().create_task(shielded(waits()))
        await asyncio.sleep(0.01)
        inner = [t for t in asyncio.all_tasks() if t is not caller and t is not asyncio.current_task()]
        assert len(inner) == 1
        inner[0].cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        assert seen == ["cancelled where it waited"]

    asyncio.run(body())
