"""ctx.attach_invocation: journaled as ATTACH_INVOCATION when called, completed
with the target's result (decoded with the serde / type hint) or its
TerminalError, replayed from the recorded completion."""
from __future__ import annotations

import pydantic
import pytest

from .fakes import FakeBackend, drive, run
from pysdk import Context, RestateDurableFuture, Service, TerminalError, gather
from pysdk._entries import ATTACH_INVOCATION, SEND
from pysdk._errors import NonDeterminismError, Suspended
from pysdk._ids import child_invocation_id
from pysdk.serde import JsonSerde


class Receipt(pydantic.BaseModel):
    order: str
    total: float


def test_attach_is_journaled_suspends_and_replays_the_targets_result() -> None:
    svc = Service("S")

    @svc.handler()
    async def h(ctx: Context, target: str) -> float:
        fut = ctx.attach_invocation(target, type_hint=Receipt)
        assert isinstance(fut, RestateDurableFuture)
        receipt = await fut
        assert isinstance(receipt, Receipt)
        return receipt.total

    b = FakeBackend()
    with pytest.raises(Suspended):
        run(drive(svc.handlers["h"], b'"inv_target"', b))
    assert b.journal == [(ATTACH_INVOCATION, "inv_target", None, 0, None)]
    assert b.waits == [[0]], "durable before the machine waits on it"

    b.deliver(0, b'{"order":"o-1","total":9.5}')  # the target completed
    assert run(drive(svc.handlers["h"], b'"inv_target"', b)) == b"9.5"
    assert len(b.journal) == 1


def test_the_targets_terminal_error_reaches_the_attacher(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    backend.script = [(0, (None, 404, "invocation inv_x not found"))]

    async def body() -> None:
        await ctx.attach_invocation("inv_x")

    with pytest.raises(TerminalError) as info:
        run(body())
    assert (info.value.status_code, info.value.message) == (404, "invocation inv_x not found")


def test_attach_to_a_sent_invocation_with_a_custom_serde(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    sent = child_invocation_id("inv_1", 0)
    backend.script = [(1, (b'{"a": 1}', 0, None))]

    async def body() -> object:
        handle = ctx.generic_send("Other", "work", b"{}")
        return await ctx.attach_invocation(await handle.invocation_id(), serde=JsonSerde())

    assert run(body()) == {"a": 1}
    assert backend.journal[0][:2] == (SEND, "Other/work")
    assert backend.journal[1] == (ATTACH_INVOCATION, sent, None, 0, None)


def test_attaches_combine_like_other_durable_futures(backend: FakeBackend) -> None:
    ctx = Context(backend.machine(kind="service"))
    backend.script = [[(1, (b"2", 0, None)), (0, (b"1", 0, None))]]

    async def body() -> list[int]:
        done = await gather(ctx.attach_invocation("inv_a", type_hint=int),
                            ctx.attach_invocation("inv_b", type_hint=int))
        return [await f for f in done]

    assert run(body()) == [1, 2]


def test_attaching_to_another_invocation_on_replay_is_non_determinism() -> None:
    b = FakeBackend(journal=[(ATTACH_INVOCATION, "inv_a", None, 0, None)])
    with pytest.raises(NonDeterminismError, match=r"ATTACH_INVOCATION\('inv_a'\).*ATTACH_INVOCATION\('inv_b'\)"):
        Context(b.machine()).attach_invocation("inv_b")


@pytest.mark.parametrize("bad, error", [(None, ValueError), ("", ValueError), (42, TypeError)])
def test_an_invalid_id_journals_nothing(backend: FakeBackend, bad: object, error: type[Exception]) -> None:
    m = backend.machine(kind="service")
    with pytest.raises(error):
        Context(m).attach_invocation(bad)  # type: ignore[arg-type]
    assert m.take_pending() == [] and m.journal_index == 0
