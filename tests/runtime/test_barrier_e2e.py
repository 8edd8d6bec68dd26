"""The durability barrier, shown in a real `stead serve` whose writer is held by a
failpoint before it writes a group (as if the machine lost power before the fsync):
nothing external (a step's body, a response, a 202) happens on data that is not durable.

The writer is held with the `commit.before_write` failpoint (`pause`), configured
through the admin API's debug route. A step that ran ahead of the commit it read
would run within the same turn of the event loop as the probe line the handler
writes just before it, so the checks below wait for that probe and then look.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import httpx
import pytest

from tests.conftest import CORRECT_APP, FAILPOINTS_ENV, SteadServer, wait_for_lines

HOLD = "commit.before_write"


@pytest.fixture
def held(make_server):  # type: ignore[no-untyped-def]
    server: SteadServer = make_server(target=CORRECT_APP, env=FAILPOINTS_ENV).start()
    pool = ThreadPoolExecutor(4)
    yield server, pool
    if server.proc is not None and server.proc.poll() is None:
        server.kill()
    pool.shutdown(wait=True)


def _quiet(fut: Future) -> object:
    """The outcome of a request that may have died with the server."""
    try:
        return fut.result(timeout=30)
    except httpx.TransportError as exc:
        return exc


def test_a_step_waits_for_the_commit_whose_state_it_read(held, effects_dir) -> None:
    server, pool = held
    assert server.post("/Acct/k/deposit", 1).json() == 1
    server.failpoint(HOLD, "pause")
    deposit = pool.submit(server.post, "/Acct/k/deposit", 100, timeout=60)
    assert wait_for_lines(effects_dir / "reached-k", 2) == ["deposit", "deposit"]
    payout = pool.submit(server.post, "/Acct/k/payout", None, timeout=60)
    assert wait_for_lines(effects_dir / "reached-k", 3)[2:] == ["payout"]
    time.sleep(0.3)
    # The payout read 101 from a commit that is not written: its step must not have run,
    # and neither request may have been answered.
    assert not (effects_dir / "payout-k").exists()
    assert not deposit.done() and not payout.done()
    server.kill()  # the held group is lost, as in a power cut before its fsync
    assert isinstance(_quiet(deposit), httpx.TransportError)
    assert isinstance(_quiet(payout), httpx.TransportError)
    assert not (effects_dir / "payout-k").exists()
    server.restart()
    assert server.post("/Acct/k/deposit", 0).json() == 1  # the held deposit never happened


def test_a_step_runs_once_the_commit_is_durable(held, effects_dir) -> None:
    server, pool = held
    server.failpoint(HOLD, "pause")
    deposit = pool.submit(server.post, "/Acct/j/deposit", 7, timeout=60)
    assert wait_for_lines(effects_dir / "reached-j", 1) == ["deposit"]
    payout = pool.submit(server.post, "/Acct/j/payout", None, timeout=60)
    assert wait_for_lines(effects_dir / "reached-j", 2)[1:] == ["payout"]
    time.sleep(0.2)
    assert not (effects_dir / "payout-j").exists()
    server.failpoint(HOLD, None)
    assert deposit.result(timeout=30).json() == 7
    assert payout.result(timeout=30).json() == 7
    assert wait_for_lines(effects_dir / "payout-j", 1) == ["7"]


def test_a_shared_reader_waits_for_the_commit_it_read(held, effects_dir) -> None:
    server, pool = held
    server.failpoint(HOLD, "pause")
    deposit = pool.submit(server.post, "/Acct/s/deposit", 5, timeout=60)
    assert wait_for_lines(effects_dir / "reached-s", 1) == ["deposit"]
    report = pool.submit(server.post, "/Acct/s/report", None, timeout=60)
    assert wait_for_lines(effects_dir / "reached-s", 2)[1:] == ["report"]
    time.sleep(0.3)
    assert not (effects_dir / "report-s").exists()
    assert not deposit.done() and not report.done()
    server.failpoint(HOLD, None)
    assert deposit.result(timeout=30).json() == 5
    assert report.result(timeout=30).json() == 5
    assert wait_for_lines(effects_dir / "report-s", 1) == ["5"]


def test_previously_accepted_waits_for_the_first_admission(held) -> None:
    server, pool = held
    headers = {"idempotency-key": "once"}
    server.failpoint(HOLD, "pause")
    first = pool.submit(server.post, "/Acct/i/deposit/send", 3, headers=headers, timeout=60)
    time.sleep(0.2)
    with pytest.raises(httpx.ReadTimeout):  # the first admission is not durable: no answer yet
        server.post("/Acct/i/deposit/send", 3, headers=headers, timeout=1.0)
    assert not first.done()
    server.failpoint(HOLD, None)
    accepted = first.result(timeout=30).json()
    assert accepted["status"] == "Accepted"
    again = server.post("/Acct/i/deposit/send", 3, headers=headers).json()
    assert again == {"invocationId": accepted["invocationId"], "status": "PreviouslyAccepted"}


def test_a_peeked_promise_is_durable_before_a_step_uses_it(held, effects_dir) -> None:
    server, pool = held
    run = pool.submit(server.post, "/Signup/u/run", "u", timeout=60)
    time.sleep(0.2)  # the run waits on its promise (nothing to hold yet)
    server.failpoint(HOLD, "pause")
    approve = pool.submit(server.post, "/Signup/u/approve", "yes", timeout=60)
    time.sleep(0.3)
    peek = pool.submit(server.post, "/Signup/u/peek", None, timeout=60)
    time.sleep(0.3)
    # The approval is resolved in memory by a commit that is held: the peek saw it, so its
    # step must wait for that commit.
    assert not (effects_dir / "peeked-u").exists()
    assert not approve.done() and not peek.done()
    server.failpoint(HOLD, None)
    assert approve.result(timeout=30).status_code == 200
    assert run.result(timeout=30).json() == "yes"
    assert peek.result(timeout=30).json() == "yes"
    assert wait_for_lines(effects_dir / "peeked-u", 1) == ["yes"]


def test_a_step_of_a_new_idempotent_invocation_waits_for_its_admission(held, effects_dir) -> None:
    server, pool = held
    server.failpoint(HOLD, "pause")
    call = pool.submit(server.post, "/Acct/n/payout", None, headers={"idempotency-key": "p"}, timeout=60)
    assert wait_for_lines(effects_dir / "reached-n", 1) == ["payout"]
    time.sleep(0.3)
    # Its admission (record and idempotency row) is not written: it may never have existed.
    assert not (effects_dir / "payout-n").exists()
    server.kill()
    assert isinstance(_quiet(call), httpx.TransportError)
    server.restart()
    assert server.post("/Acct/n/payout", None, headers={"idempotency-key": "p"}).json() == 0
    assert wait_for_lines(effects_dir / "payout-n", 1) == ["0"], "the step ran once, after its admission"


def test_a_deployment_is_sent_nothing_that_depends_on_an_unwritten_commit(make_server, effects_dir) -> None:
    """The same barrier for a handler in a deployment: everything the runtime sends it
    (here the Start of the payout, carrying the state the held deposit wrote) waits for
    the commits it carries, so the remote handler does not even start."""
    server = make_server(target=CORRECT_APP, env=FAILPOINTS_ENV, placement="remote").start()
    with ThreadPoolExecutor(4) as pool:
        assert server.post("/Acct/r/deposit", 1).json() == 1
        server.failpoint(HOLD, "pause")
        deposit = pool.submit(server.post, "/Acct/r/deposit", 100, timeout=60)
        assert wait_for_lines(effects_dir / "reached-r", 2) == ["deposit", "deposit"]
        payout = pool.submit(server.post, "/Acct/r/payout", None, timeout=60)
        time.sleep(0.5)
        # The payout's Start would carry 101 from the held commit: it was not sent.
        assert (effects_dir / "reached-r").read_text().splitlines() == ["deposit", "deposit"]
        assert not (effects_dir / "payout-r").exists()
        assert not deposit.done() and not payout.done()
        server.kill()  # the held group is lost
        assert isinstance(_quiet(deposit), httpx.TransportError)
        assert isinstance(_quiet(payout), httpx.TransportError)
    server.restart()
    assert server.post("/Acct/r/deposit", 0).json() == 1  # the held deposit never happened
    assert not (effects_dir / "payout-r").exists()
