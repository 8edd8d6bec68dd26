"""The pytest plugin (pysdk/pytest_plugin.py): its `stead_harness` fixture, used here as a
test of this suite would, and loaded as a plugin by a pytest run of its own, with its
--stead-always-replay option."""

import tomllib
from pathlib import Path

import pytest

from pysdk import ObjectContext, VirtualObject, app
from pysdk.pytest_plugin import stead_harness  # noqa: F401 - the fixture, until the entry point is installed

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]

counter = VirtualObject("counter")


@counter.handler()
async def increment(ctx: ObjectContext, value: int) -> int:
    n = (await ctx.get("n", type_hint=int) or 0) + value
    ctx.set("n", n)
    return n


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.parametrize("always_replay", [False, True], ids=["normal", "always_replay"])
async def test_stead_harness_fixture(stead_harness, always_replay: bool) -> None:
    async with stead_harness(app([counter]), always_replay=always_replay) as env:
        assert await env.client.object_call(increment, key="a", arg=2) == 2
        assert await env.client.object_call(increment, key="a", arg=3) == 5
        assert await env.get_state(counter, "a") == {"n": 5}


def test_entry_point_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"stead": "pysdk.pytest_plugin"}
    assert any(dep.startswith("httpx") for dep in project["dependencies"])


PLUGGED_TEST = '''
import pytest
from pysdk import ObjectContext, VirtualObject, app

seen = VirtualObject("seen")
replays = []

@seen.handler()
async def step(ctx: ObjectContext) -> int:
    first = await ctx.run_typed("first", lambda: 1)
    replays.append(first)  # once per run of the body: more than once when replayed
    return first + await ctx.run_typed("second", lambda: 1)

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.anyio
async def test_step(stead_harness, request):
    async with stead_harness(app([seen])) as env:
        assert await env.client.object_call(step, key="k", arg=None) == 2
    replayed = request.config.getoption("stead_always_replay")
    assert (len(replays) > 1) == replayed, replays
'''


@pytest.mark.parametrize("args", [[], ["--stead-always-replay"]], ids=["plain", "always_replay"])
def test_loaded_as_a_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    # Only the plugins named here: the run does not depend on what the environment installed.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.syspath_prepend(str(ROOT))
    pytester.makepyfile(test_plugged=PLUGGED_TEST)
    result = pytester.runpytest_inprocess("-p", "pysdk.pytest_plugin", "-p", "anyio", *args)
    result.assert_outcomes(passed=1)


def test_help_names_the_option(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.syspath_prepend(str(ROOT))
    result = pytester.runpytest_inprocess("-p", "pysdk.pytest_plugin", "--help")
    assert "--stead-always-replay" in result.stdout.str()
