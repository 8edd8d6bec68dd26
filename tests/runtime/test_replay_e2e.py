"""`stead replay` and `stead invocations export` on journals a real `stead serve` recorded
(tests/apps/replay_v1.py): completed checkouts, one suspended in a sleep before its
charge, one suspended on an awakeable after it. The unchanged code replays them all
(exit 0) and runs no step; version 2 (tests/apps/replay_v2.py, "charge" renamed
"charge-card") is caught at the entry of the charge in every journal that reached it
(exit 1), while the one still asleep before its charge replays. The same reports come
from the running server's admin API and from its stopped data directory; exported
journals replay the same way; garbage input is exit 2.

The server records once for the module; the replays run `stead` in this process
(`runtime.cli.main`), with the effects directory of the steps empty: a step body that
ran would write there.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from runtime.cli import main
from tests.conftest import SteadServer, kill_all, wait_until

V1 = "tests.apps.replay_v1:application"
V2 = "tests.apps.replay_v2:application"


def stead(*args: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `stead ARGS...` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def report(*args: str, code: int) -> dict[str, Any]:
    status, out, err = stead("replay", *args, "--json")
    assert status == code, (out, err)
    doc: dict[str, Any] = json.loads(out)
    return doc


@dataclass
class Recorded:
    data_dir: Path
    ids: dict[str, str]
    admin: dict[str, dict[str, Any]]  # the reports through the admin API, by app version
    exports: dict[str, str]  # exports through the admin API, by name


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    root = tmp_path_factory.mktemp("replay")
    (root / "effects").mkdir()
    server = SteadServer(root / "data", root / "effects", target=V1, extra_args=["--suspend-after", "100ms"])
    try:
        server.start()
        ids = {}
        for key, amount in (("o1", 5), ("o2", 6), ("o3", 7)):
            assert server.post(f"/Orders/{key}/checkout", amount).json() == f"charged {amount}"
        assert server.post("/Orders/s1/checkout_later", 10).json() == "charged 1"  # its sleep completed
        ids["asleep"] = server.post("/Orders/s2/checkout_later/send", 3_600_000).json()["invocationId"]
        ids["approval"] = server.post("/Orders/a1/checkout_approved/send", 7).json()["invocationId"]

        def status(inv_id: str) -> str:
            return str(server.admin("GET", f"/invocations/{inv_id}").json()["status"])

        wait_until(lambda: status(ids["asleep"]) == status(ids["approval"]) == "suspended", what="suspensions")
        listed = server.admin("GET", "/invocations?service=Orders&handler=checkout").json()["invocations"]
        ids.update({inv["target_service_key"]: inv["id"] for inv in listed})
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("STEAD_TEST_EFFECTS", str(root / "replay-effects"))
            admin = {version: report(target, "--admin-url", server.admin_url, code=code)
                     for version, target, code in (("v1", V1, 0), ("v2", V2, 1))}
        exports = {}
        for name in ("o1", "approval"):
            code, out, err = stead("invocations", "export", ids[name], "--admin-url", server.admin_url)
            assert code == 0, err
            exports[name] = out
        assert server.stop() == -signal.SIGTERM  # graceful: it re-raises the signal when done
        yield Recorded(root / "data", ids, admin, exports)
    finally:
        kill_all([server])


@pytest.fixture(autouse=True)
def no_step_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The steps' effects go to a directory of the test's: a replay writes none there."""
    monkeypatch.setenv("STEAD_TEST_EFFECTS", str(tmp_path / "replay-effects"))
    monkeypatch.delenv("STEAD_ADMIN_URL", raising=False)
    yield
    assert not (tmp_path / "replay-effects").exists(), "a step body ran during a replay"


def by_target(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["target"]: r for r in doc["invocations"]}


def test_unchanged_code_replays_every_journal(recorded: Recorded) -> None:
    doc = report(V1, "--data-dir", str(recorded.data_dir), code=0)
    assert (doc["replayed"], doc["mismatched"], doc["errors"], doc["skipped"]) == (6, 0, 0, 0)
    results = by_target(doc)
    assert {r["result"] for r in results.values()} == {"ok"}
    assert results["Orders/o1/checkout"]["status"] == "completed"
    assert results["Orders/o1/checkout"]["replayed"] == results["Orders/o1/checkout"]["entries"] == 3
    # In flight: replayed to the end of their journals, where they wait.
    asleep, approval = results["Orders/s2/checkout_later"], results["Orders/a1/checkout_approved"]
    assert asleep["status"] == approval["status"] == "suspended"
    assert asleep["next"] == {"kind": "Await", "name": "entry 1 (Sleep)"}
    assert approval["next"] == {"kind": "Await", "name": "entry 1 (Awakeable)"}
    assert approval["replayed"] == 3  # Run charge, Awakeable, SetState approval

    code, out, _ = stead("replay", V1, "--data-dir", str(recorded.data_dir))
    assert code == 0 and out.splitlines() == ["replayed 6, mismatched 0"]


def test_a_renamed_step_is_caught_with_its_entry(recorded: Recorded) -> None:
    code, out, _ = stead("replay", V2, "--data-dir", str(recorded.data_dir))
    assert code == 1
    lines = out.splitlines()
    assert lines[-1] == "replayed 6, mismatched 5"
    rename = 'recorded Run "charge", now Run "charge-card"'
    for key in ("o1", "o2", "o3"):
        assert f"mismatch {recorded.ids[key]} Orders/{key}/checkout (completed): entry 1: {rename}" in lines
    assert (f"mismatch {recorded.ids['approval']} Orders/a1/checkout_approved (suspended): entry 0: {rename}"
            in lines)
    assert any(line.endswith(f"Orders/s1/checkout_later (completed): entry 2: {rename}") for line in lines)
    assert not any(recorded.ids["asleep"] in line for line in lines)  # still before its charge: fine

    results = by_target(report(V2, "--data-dir", str(recorded.data_dir), code=1))
    approval = results["Orders/a1/checkout_approved"]
    assert (approval["result"], approval["index"], approval["recorded"], approval["new"]) == (
        "mismatch", 0, {"kind": "Run", "name": "charge"}, {"kind": "Run", "name": "charge-card"})
    assert results["Orders/s2/checkout_later"]["result"] == "ok"


def test_filters(recorded: Recorded) -> None:
    data = ["--data-dir", str(recorded.data_dir)]
    one = report(V2, *data, "--invocation", recorded.ids["asleep"], code=0)
    assert [r["id"] for r in one["invocations"]] == [recorded.ids["asleep"]]
    assert report(V2, *data, "--service", "Nothing", code=0)["replayed"] == 0
    in_flight = report(V2, *data, "--in-flight-only", code=1)
    assert (in_flight["replayed"], in_flight["mismatched"]) == (2, 1)


def test_the_admin_api_gives_the_same_reports(recorded: Recorded) -> None:
    for version, target, code in (("v1", V1, 0), ("v2", V2, 1)):
        assert recorded.admin[version] == report(target, "--data-dir", str(recorded.data_dir), code=code)


def test_exported_journals_replay_as_files(recorded: Recorded, tmp_path: Path) -> None:
    golden = tmp_path / "golden"
    golden.mkdir()
    for name in ("o1", "approval"):
        path = golden / f"{name}.json"
        code, _, err = stead("invocations", "export", recorded.ids[name], "--data-dir", str(recorded.data_dir),
                             "-o", str(path))
        assert code == 0, err
        doc = json.loads(path.read_text())
        assert doc == json.loads(recorded.exports[name])  # the admin API's export is the same
        assert doc["format"] == "stead.journal/1" and doc["id"] == recorded.ids[name]
    checkout = json.loads((golden / "o1.json").read_text())
    assert checkout["target"] == "Orders/o1/checkout" and checkout["input"] == {"json": 5}
    assert checkout["output"] == {"json": "charged 5"} and checkout["failure"] is None
    assert [(e["kind"], e["name"], e["value"]) for e in checkout["entries"]] == [
        ("GetState", "total", None), ("Run", "charge", {"json": "charged 5"}), ("SetState", "total", {"json": 5})]

    ok = report(V1, "--journal", str(golden), code=0)
    assert (ok["replayed"], ok["mismatched"]) == (2, 0)
    caught = report(V2, "--journal", str(golden / "o1.json"), "--journal", str(golden / "approval.json"), code=1)
    assert [(r["index"], r["recorded"]["name"], r["new"]["name"]) for r in caught["invocations"]] == [
        (1, "charge", "charge-card"), (0, "charge", "charge-card")]


def test_garbage_input_is_exit_2(recorded: Recorded, tmp_path: Path) -> None:
    not_json = tmp_path / "broken.json"
    not_json.write_text('{"format": "stead.journal/1", "entries": [')
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"format": "stead.journal/1", "id": "inv_x", "service": "Orders",
                                 "handler": "checkout", "key": "k", "status": "running",
                                 "entries": [{"index": 0, "kind": "Teleport", "name": None}]}))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--data-dir", str(tmp_path / "missing")], "no data directory at"),
        (["--data-dir", str(empty)], "no Stead data directory at"),
        (["--journal", str(not_json)], "broken.json: not JSON"),
        (["--journal", str(wrong)], "entry 0: unknown kind 'Teleport'"),
        (["--journal", str(tmp_path / "nowhere.json")], "no journal file"),
        (["--data-dir", str(recorded.data_dir), "--invocation", "inv_nope"], "no invocation inv_nope"),
        (["--admin-url", "http://127.0.0.1:9"], "does not answer"),
        ([], "give the journals to replay"),
    ]
    for args, message in cases:
        code, out, err = stead("replay", V1, *args)
        assert (code, out) == (2, ""), (args, out, err)
        assert err.startswith("stead: ") and message in err, (args, err)
    code, _, err = stead("replay", "tests.apps.no_such_app:application", "--data-dir", str(recorded.data_dir))
    assert code == 2 and "cannot load tests.apps.no_such_app:application" in err
