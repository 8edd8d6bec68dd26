"""runtime/remote.py on a Session: a close while Start waits for its barrier sends no Start.

The conversation runs in the attempt's own task, so a close (a kill, a pause) no longer
cancels a task of its own while Start waits for the commits it carries to be durable:
the barrier itself must drop Start once the attempt is closed, or the deployment would
start a handler, and run its first step's body, for an invocation already killed.

The invoker and the attempt are stand-ins here (what RemoteMachine reads of them), and
the SubStream records what is sent; the store is not involved. The end-to-end behaviour
of remote attempts is tested against real processes in test_deployments_*_e2e.py.
"""
from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, Optional

import pytest

from pysdk._proto.stead.deployment import v1 as pb
from runtime import _core
from runtime.backend import Killed
from runtime.remote import RemoteMachine


class RecordingSub:
    """A SubStream's surface: what is sent is recorded; `deliver` feeds the receive."""

    def __init__(self) -> None:
        self.session = self
        self.sent: list[pb.RuntimeMessage] = []
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.left = False

    async def opened(self) -> None:
        return None

    async def send_message(self, msg: pb.RuntimeMessage) -> None:
        self.sent.append(msg)

    async def recv_message(self) -> Optional[pb.DeploymentMessage]:
        item = await self.inbox.get()
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def deliver(self, item: Any) -> None:
        self.inbox.put_nowait(item)

    def leave(self) -> None:
        self.left = True


def _machine(sub: RecordingSub, barrier: asyncio.Event) -> RemoteMachine:
    async def wait(seq: int) -> None:
        await barrier.wait()  # the commits Start carries are not durable yet

    invoker = SimpleNamespace(remote_channels=SimpleNamespace(session_sub=lambda dep: sub),
                              commits=SimpleNamespace(wait=wait), always_replay=False,
                              directory=SimpleNamespace(bytes=lambda: b""))
    attempt = SimpleNamespace(observed=7, resumed_remotely=lambda: None, waiting_remotely=lambda: None)
    dep = SimpleNamespace(id="dep_1", uri="http://127.0.0.1:1", protocol_version=2)
    inv = _core.Invocation("inv_1remote", "Cart", "add", "k", _core.KIND_EXCLUSIVE, b'"x"', [], 0)
    return RemoteMachine(invoker, attempt, dep, inv, {"items": b"[]"}, [], None)  # type: ignore[arg-type]


def test_a_close_during_starts_barrier_sends_no_start() -> None:
    async def main() -> None:
        sub, barrier = RecordingSub(), asyncio.Event()
        machine = _machine(sub, barrier)
        running = asyncio.get_running_loop().create_task(machine.run())
        for _ in range(5):
            await asyncio.sleep(0)  # the attempt waits at Start's barrier
        assert not running.done() and sub.sent == []
        machine.close(Killed)  # the invocation is killed meanwhile
        barrier.set()
        with pytest.raises(Killed):
            await asyncio.wait_for(running, 5)
        assert [m for m in sub.sent if m.start is not None] == []
        assert sub.left

    asyncio.run(main())


def test_without_a_close_start_leaves_once_durable() -> None:
    """The same stand-ins without the close: Start goes once the barrier opens (so the
    test above fails for the reason it says, not for a stand-in that sends nothing)."""
    async def main() -> None:
        sub, barrier = RecordingSub(), asyncio.Event()
        machine = _machine(sub, barrier)
        running = asyncio.get_running_loop().create_task(machine.run())
        for _ in range(5):
            await asyncio.sleep(0)
        assert sub.sent == []
        barrier.set()
        for _ in range(5):
            await asyncio.sleep(0)
        starts = [m.start for m in sub.sent if m.start is not None]
        assert len(starts) == 1 and starts[0].invocation_id == "inv_1remote"
        sub.deliver(pb.DeploymentMessage(end=pb.End(output=b"1")))
        assert await asyncio.wait_for(running, 5) == b"1"

    asyncio.run(main())
