"""Many attempts on one Session (protocol version 2, runtime/sessions.py), with real
processes: concurrent invocations whose messages are larger than HTTP/2's flow-control
windows share the deployment's one stream without mixing up or holding each other up,
and a deployment killed under them loses nothing: every one completes once it is back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.conftest import DeploymentProcess, kill_all, read_lines, register, wait_until

REMOTE_APP = "tests.apps.remoteapp:application"
LOCAL_APP = "tests.apps.remoteapp:local_app"

# Outputs from tiny to several times the 64 KiB initial window of a stream.
SIZES = [10, 70_000, 5, 300_000, 1_000, 150_000, 64 * 1024, 20] * 6


def test_concurrent_large_messages_share_one_session(make_server, tmp_path, effects_dir) -> None:  # type: ignore[no-untyped-def]
    server = make_server(target=LOCAL_APP).start()
    dep = DeploymentProcess(REMOTE_APP, tmp_path, effects_dir).start()
    try:
        register(server, dep)
        with ThreadPoolExecutor(max_workers=len(SIZES)) as pool:
            answers = list(pool.map(lambda n: server.post("/RSteps/blob", n, timeout=60), SIZES))
        for size, resp in zip(SIZES, answers):
            assert resp.status_code == 200, resp.text
            assert resp.json() == "x" * size
        # One step each, run once.
        assert sorted(int(line.split()[1]) for line in read_lines(effects_dir / "steps")) == sorted(SIZES)
    finally:
        kill_all([dep])


def test_a_deployment_killed_under_a_busy_session_loses_nothing(make_server, tmp_path, effects_dir) -> None:  # type: ignore[no-untyped-def]
    server = make_server(target=LOCAL_APP, extra_args=["--log-level", "info"]).start()
    dep = DeploymentProcess(REMOTE_APP, tmp_path, effects_dir).start()
    try:
        register(server, dep)
        # 16 invocations wait at their gate between two steps, all on the one session.
        tags = [f"t{i}" for i in range(16)]
        with ThreadPoolExecutor(max_workers=len(tags)) as pool:
            pending = [pool.submit(server.post, "/RSteps/two_steps", tag, timeout=90) for tag in tags]
            wait_until(lambda: len(read_lines(effects_dir / "gates")) >= 16, what="all 16 at their gate")
            dep.kill()
            for tag in tags:
                (effects_dir / f"two-{tag}").touch()
            dep.restart()  # on its port: the retries get through
            answers = [f.result() for f in pending]
        for tag, resp in zip(tags, answers):
            assert resp.status_code == 200, resp.text
        steps = read_lines(effects_dir / "steps")
        for tag in tags:  # step one ran once (replayed after the kill), step two once
            mine = [line.split()[2] for line in steps if line.split()[1] == tag]
            assert sorted(mine) == ["one", "two"], (tag, steps)
    finally:
        kill_all([dep])
