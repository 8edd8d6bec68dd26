"""Retention: completed invocations, idempotency keys and workflow runs (with their
state and promises) are kept for the retention period, then purged."""

from __future__ import annotations

from tests.conftest import FLOW_APP, wait_for_lines, wait_until


def _until_gone(server, path: str, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    wait_until(lambda: server.get(path).status_code == 404, timeout, f"{path} purged")


def test_completed_work_is_purged_after_the_retention(make_server, effects_dir) -> None:
    server = make_server(target=FLOW_APP, extra_args=["--retention", "1s"]).start()
    key = {"idempotency-key": "once"}
    first = server.post("/Counter/r/add", 1, headers=key)
    inv = first.headers["x-restate-id"]
    assert server.post("/Counter/r/add", 1, headers=key).json() == 1  # deduplicated while retained
    server.post("/Signup/ret/click", "a")
    assert server.post("/Signup/ret/run", "ret@example.com").json() == "verified ret@example.com with a"
    assert server.post("/Signup/ret/status").json() == "verified"

    _until_gone(server, f"/restate/invocation/{inv}/output")
    _until_gone(server, "/restate/workflow/Signup/ret/output")
    # The idempotency key is free again: a new invocation runs.
    assert server.post("/Counter/r/add", 1, headers=key).json() == 2
    # The workflow key can run again, from fresh state and promises.
    assert server.post("/Signup/ret/status").content == b""
    assert server.post("/Signup/ret/peek").content == b""
    server.post("/Signup/ret/run/send", "again@example.com")
    assert wait_for_lines(effects_dir / "emails", 2)[1] == "ret again@example.com"
    # Object state is not subject to retention.
    assert server.post("/Counter/r/total").json() == 2
