"""Durable timers over real HTTP: ctx.sleep, delayed sends, and a sleep across kill -9."""

from __future__ import annotations

import time

from tests.conftest import wait_for_lines


def test_sleep_wakes_after_its_duration(flow) -> None:
    t0 = time.time()
    resp = flow.post("/Timers/nap", 300)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["woke"] >= out["due"] - 0.005
    assert time.time() - t0 >= 0.3
    # Generous bound: the timer fires within 50 ms on an idle server; CI machines are noisy.
    assert out["woke"] - out["due"] < 1.0


def test_sleeps_run_concurrently(flow) -> None:
    ids = [flow.post("/Timers/nap/send", 500).json()["invocationId"] for _ in range(20)]
    t0 = time.time()
    outs = [flow.get(f"/restate/invocation/{i}/attach").json() for i in ids]
    assert time.time() - t0 < 5.0  # twenty 0.5 s sleeps do not run one after another
    assert all(o["woke"] >= o["due"] - 0.005 for o in outs)


def test_delayed_send_runs_after_the_delay(flow, effects_dir) -> None:
    t0 = time.time()
    resp = flow.post("/Timers/stamp/send?delay=400ms", "later")
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["status"] == "Accepted" and body["invocationId"].startswith("inv_")
    lines = wait_for_lines(effects_dir / "stamps", 1)
    tag, ran = lines[0].split()
    assert tag == "later"
    assert 0.4 <= float(ran) - t0 < 2.0
    assert flow.get(f"/restate/invocation/{body['invocationId']}/output").json() == float(ran)


def test_sleep_survives_kill_and_wakes_once(make_server, effects_dir) -> None:
    from tests.conftest import FLOW_APP

    server = make_server(target=FLOW_APP).start()
    inv = server.post("/Timers/nap/send", 2000).json()["invocationId"]
    time.sleep(0.5)  # the sleep is journaled and its timer stored
    server.kill()
    server.restart()
    resp = server.get(f"/restate/invocation/{inv}/attach")
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["woke"] >= out["due"] - 0.005
    assert out["woke"] - out["due"] < 2.0
    assert wait_for_lines(effects_dir / "woke", 1) == [inv]
    time.sleep(0.3)
    assert (effects_dir / "woke").read_text().splitlines() == [inv]  # once
