"""Virtual objects and services over real HTTP against a real `stead serve`."""

from __future__ import annotations

import concurrent.futures as cf

import httpx

from tests.conftest import ROOT, read_lines, wait_until
from tests.disk import CFS


def test_cart_counts_and_state_survives_restart(make_server) -> None:
    server = make_server().start()
    assert server.post("/Cart/alice/add", "apple").json() == 1
    assert server.post("/Cart/alice/add", "pear").json() == 2
    assert server.post("/Cart/bob/add", "fig").json() == 1
    assert server.stop() in (0, -15)
    server.restart()
    assert server.post("/Cart/alice/add", "plum").json() == 3
    assert server.post("/Cart/alice/items").json() == ["apple", "pear", "plum"]
    assert server.post("/Cart/bob/count").json() == 1


def test_response_carries_invocation_id(server) -> None:
    resp = server.post("/Cart/carol/add", "apple")
    assert resp.status_code == 200 and resp.json() == 1
    inv = resp.headers["x-restate-id"]
    assert inv.startswith("inv_")
    # The id names this invocation: its kept output is the answer.
    assert server.get(f"/restate/invocation/{inv}/output").json() == 1


def test_concurrent_adds_on_one_key_are_serialized(server) -> None:
    n = 32
    with cf.ThreadPoolExecutor(n) as pool:
        results = list(pool.map(lambda i: server.post("/Cart/hot/slow_add", f"item-{i}").json(), range(n)))
    # Each exclusive add saw every earlier one: the counts are exactly 1..n.
    assert sorted(results) == list(range(1, n + 1))
    items = server.post("/Cart/hot/items").json()
    assert sorted(items) == sorted(f"item-{i}" for i in range(n))


def test_shared_handlers_overlap_while_exclusive_ones_proceed(server, effects_dir) -> None:
    server.post("/Cart/shared/add", "apple")
    meet = effects_dir / "meet-shared"
    with cf.ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(server.post, "/Cart/shared/meet", tag) for tag in ("a", "b")]
        # Each shared handler records entering, then waits at a gate that opens only
        # once both entered: if shared handlers on one key were serialized, the second
        # would never enter.
        wait_until(lambda: {"enter a", "enter b"} <= set(read_lines(meet)), what="both shared handlers inside")
        # Exclusive adds on the key complete while both shared handlers are held.
        assert server.post("/Cart/shared/add", "pear").json() == 2
        assert server.post("/Cart/shared/add", "plum").json() == 3
        assert not any(f.done() for f in calls)
        (effects_dir / "meet-shared.gate").touch()
        # Their state was loaded when they started (Restate's eager state): before the adds.
        assert [f.result().json() for f in calls] == [1, 1]
    assert server.post("/Cart/shared/items").json() == ["apple", "pear", "plum"]
    lines = read_lines(meet)
    first_leave = min(i for i, line in enumerate(lines) if line.startswith("leave"))
    assert {"enter a", "enter b"} <= set(lines[:first_leave]), lines
    assert sorted(line for line in lines if line.startswith("leave")) == ["leave a", "leave b"]


def _attempt_times(path) -> list[float]:  # type: ignore[no-untyped-def]
    return [float(line.split()[1]) for line in read_lines(path)]


def _assert_backoff(times: list[float], delays: list[float]) -> None:
    """Consecutive attempts are at least the policy's delay apart (5 ms for rounding to
    the timer's millisecond), and not absurdly more (a loaded machine may add seconds)."""
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(gaps) == len(delays), gaps
    for gap, delay in zip(gaps, delays):
        assert delay - 0.005 <= gap < delay + 3.0, (gaps, delays)


def test_step_is_retried_until_it_succeeds(server, effects_dir) -> None:
    resp = server.post("/Flaky/step_until", 3)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "ok after 4"
    # Four attempts, backing off 50, 100, 200 ms (RunOptions defaults) in between.
    times = _attempt_times(effects_dir / "flaky.log")
    assert len(times) == 4
    _assert_backoff(times, [0.05, 0.1, 0.2])


def test_handler_failure_is_retried_with_backoff(server, effects_dir) -> None:
    resp = server.post("/Flaky/handler_until", 2)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "ok after 3"
    # Three attempts of the whole invocation, backing off 50 then 100 ms (the runtime's
    # default policy, Restate's) between them, and no attempt after the success.
    times = _attempt_times(effects_dir / "handler.log")
    assert len(times) == 3
    _assert_backoff(times, [0.05, 0.1])
    inv = resp.headers["x-restate-id"]
    assert server.get(f"/restate/invocation/{inv}/output").json() == "ok after 3"


def test_terminal_error_stops_retries(server, effects_dir) -> None:
    resp = server.post("/Flaky/terminal", "out of stock")
    assert resp.status_code == 422
    assert resp.json() == {"code": 422, "message": "out of stock"}
    resp = server.post("/Flaky/terminal_step")
    assert resp.status_code == 402
    assert resp.json()["message"] == "card declined"
    # The response comes after completion: no retry can still be pending.
    assert (effects_dir / "terminal.log").read_text().count("attempt") == 1
    assert (effects_dir / "terminal_step.log").read_text().count("attempt") == 1


def test_steps_and_saga_of_the_checkout_example(server) -> None:
    assert server.post("/Checkout/pay", "o1").json() == "r-o1c-o1s-o1"
    resp = server.post("/Checkout/saga", "o2")
    assert resp.status_code == 409
    assert "cannot ship o2" in resp.json()["message"]


def test_pydantic_models_in_and_out(server) -> None:
    resp = server.post("/Shop/buy", {"sku": "tea", "quantity": 4})
    assert resp.json() == {"sku": "tea", "total": 12}
    resp = server.post("/Shop/buy", {"sku": "tea"})
    assert resp.status_code == 400
    assert "quantity" in resp.json()["message"]


def test_handler_without_input_accepts_an_empty_body(server) -> None:
    assert httpx.post(f"{server.url}/Shop/ping").json() == "pong"
    assert httpx.post(f"{server.url}/Shop/ping", headers={"content-type": "application/json"}).json() == "pong"


def test_bad_requests_get_json_errors_and_change_nothing(server) -> None:
    server.post("/Cart/bad/add", "apple")
    cases = [
        (httpx.post(f"{server.url}/Nope/add", content=b'"x"'), 404, "Nope"),
        (httpx.post(f"{server.url}/Cart/bad/nope", content=b'"x"'), 404, "nope"),
        (httpx.post(f"{server.url}/Cart/add", content=b'"x"'), 400, "virtual object"),
        (httpx.post(f"{server.url}/Cart/bad/add", content=b'{"oops',
                    headers={"content-type": "application/json"}), 400, "invalid input"),
        (httpx.post(f"{server.url}/Cart/bad/add", content=b"[1, 2]",
                    headers={"content-type": "application/json"}), 400, "invalid input"),
        (httpx.post(f"{server.url}/Cart/bad/add", content=b"", headers={"content-type": "application/json"}),
         400, "invalid input"),
        (httpx.put(f"{server.url}/Cart/bad/add", content=b'"x"'), 405, "POST"),
        (httpx.post(f"{server.url}/Cart/bad/add", content=b"apple", headers={"content-type": "text/plain"}),
         415, "content-type"),
    ]
    for resp, status, fragment in cases:
        assert resp.status_code == status, (resp.request.url, resp.text)
        body = resp.json()
        assert body["code"] == status and fragment in body["message"], body
    assert server.post("/Cart/bad/items").json() == ["apple"]


def test_oversized_body_is_rejected(make_server) -> None:
    server = make_server(extra_args=["--max-body", "1KiB"]).start()
    resp = server.post("/Cart/big/add", "x" * 2000)
    assert resp.status_code == 413
    assert "limit" in resp.json()["message"]
    assert server.post("/Cart/big/count").json() == 0
    assert server.post("/Cart/big/add", "small").json() == 1


def test_data_dir_of_another_schema_version_is_refused(make_server) -> None:
    import subprocess

    from rocksdict import Options, Rdict

    server = make_server().start()
    server.post("/Cart/v/add", "x")
    server.stop()
    db = Rdict(str(server.data_dir), options=Options(raw_mode=True),
               column_families={n: Options(raw_mode=True) for n in CFS})
    db.get_column_family("meta")[b"mtschema_version"] = (999).to_bytes(4, "big")
    db.close()
    proc = subprocess.run(server.command(), capture_output=True, text=True, timeout=60, cwd=str(ROOT))
    assert proc.returncode == 2, proc.stderr
    assert "schema version" in proc.stderr and "999" in proc.stderr, proc.stderr
