"""What `stead serve` says on stderr: the one ready line (its bound ports, its data
directory and durability, how many invocations recovery resumed), and log lines as
text or as JSON objects that carry the invocation (id, target, attempt) they are about."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.conftest import SteadServer, wait_for_lines, wait_until

READY = re.compile(r"stead ready: ingress http://127\.0\.0\.1:(\d+), admin http://127\.0\.0\.1:(\d+), "
                   r"data (\S+), durability (\w+), recovered (\d+) invocations")


def ready_lines(server: SteadServer) -> list[re.Match[str]]:
    return [m for m in map(READY.search, server.log().splitlines()) if m]


def test_ready_line_names_the_bound_ports_and_the_recovered_invocations(
        make_server, effects_dir: Path) -> None:  # type: ignore[no-untyped-def]
    server = make_server().start()
    first = wait_until(lambda: ready_lines(server), 10, "the ready line")
    assert len(first) == 1
    port, admin_port, data, durability, recovered = first[0].groups()
    assert (int(port), int(admin_port)) == (server.port, server.admin_port)
    assert (data, durability, recovered) == (str(server.data_dir), "sync", "0")

    # An invocation in flight (two steps journaled, waiting at a gate) when the process dies.
    resp = server.post("/Steps/s/run/send", "t")
    assert resp.status_code == 202, resp.text
    wait_for_lines(effects_dir / "gates", 1)
    server.kill()
    server.restart()
    lines = wait_until(lambda: len(ready_lines(server)) == 2 and ready_lines(server), 10, "a second ready line")
    port, admin_port, _, _, recovered = lines[1].groups()
    assert (int(port), int(admin_port)) == (server.port, server.admin_port)
    assert recovered == "1"
    (effects_dir / "t.gate").touch()
    wait_until(lambda: server.post("/Steps/s/result").json() == "abc", 20, "the recovered invocation's result")


def test_the_ready_line_is_printed_at_any_log_level(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(extra_args=["--log-level", "error"]).start()
    assert len(wait_until(lambda: ready_lines(server), 10, "the ready line")) == 1


def _json_lines(server: SteadServer) -> list[dict]:
    records = []
    for line in server.log().splitlines():
        assert line.startswith("{"), f"not a JSON log line: {line!r}"
        records.append(json.loads(line))
    return records


def test_json_lines_carry_the_invocation_of_a_failing_handlers_retries(
        make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(extra_args=["--log-format", "json", "--log-level", "info"]).start()
    resp = server.post("/Flaky/handler_until", 2)
    assert resp.status_code == 200, resp.text
    assert resp.json() == "ok after 3"
    inv_id = resp.headers["x-restate-id"]

    def retries() -> list[dict]:
        return [r for r in _json_lines(server) if "retrying" in r["message"] and r.get("inv") == inv_id]

    found = wait_until(lambda: len(retries()) == 2 and retries(), 10, "two retry records")
    assert [r["attempt"] for r in found] == [1, 2]
    for record in found:
        assert record["target"] == "Flaky/handler_until"
        assert record["logger"] == "stead.invoker"
        assert record["level"] == "INFO"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["ts"])
    records = _json_lines(server)  # every line, the server's own and uvicorn's, is one object
    assert all({"ts", "level", "logger", "message"} <= r.keys() for r in records)
    ready = [r for r in records if r["message"].startswith("stead ready:")]
    assert len(ready) == 1 and ready[0]["level"] == "WARNING" and ready[0]["recovered"] == 0
    assert "inv" not in ready[0]  # not about an invocation


def test_text_lines_end_with_the_invocation_fields(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(extra_args=["--log-level", "info"]).start()
    resp = server.post("/Flaky/handler_until", 1)
    assert resp.status_code == 200, resp.text
    inv_id = resp.headers["x-restate-id"]
    suffix = f" [inv={inv_id} target=Flaky/handler_until attempt=1]"
    line = wait_until(lambda: [ln for ln in server.log().splitlines() if "retrying" in ln and inv_id in ln],
                      10, "the retry line")[0]
    assert line.endswith(suffix), line
    assert " INFO stead.invoker: " in line
