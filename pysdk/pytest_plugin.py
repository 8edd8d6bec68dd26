"""pytest plugin: the test harness as a fixture (registered as `stead` in the `pytest11`
entry points, so installing Stead is enough; `-p no:stead` turns it off).

    import pytest
    from pysdk import app
    from my_app import counter, increment

    @pytest.mark.anyio
    async def test_increment(stead_harness):
        async with stead_harness(app([counter]), always_replay=True) as env:
            assert await env.client.object_call(increment, key="a", arg=1) == 1

`stead_harness` is `pysdk.create_test_harness` (same parameters, same environment).
Async tests run under anyio's pytest plugin (`@pytest.mark.anyio`; anyio is a dependency
of Stead), as Restate's own harness tests do. `pytest --stead-always-replay` runs every
harness the fixture starts with `always_replay=True`: the whole suite once more with each
invocation replayed after every durable point, to catch handlers that do not replay the same.

The harness is imported when the fixture is first used, so a test session that does not
use it does not load the runtime.
"""
from __future__ import annotations

from typing import Any, AsyncContextManager, Callable, Optional

import pytest

__all__ = ["stead_harness"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("stead", "Stead test harness")
    group.addoption("--stead-always-replay", action="store_true", default=False,
                    help="start every stead_harness with always_replay=True")


@pytest.fixture
def stead_harness(request: pytest.FixtureRequest) -> Callable[..., AsyncContextManager[Any]]:
    """`stead_harness(app, follow_logs=False, restate_image=None, always_replay=False,
    disable_retries=False, time_skipping=False)`: an async context manager yielding a
    HarnessEnvironment (`ingress_url`, `admin_api_url`, `client`, `get_state`, `advance`)
    of a Stead runtime serving `app`, stopped and deleted at its exit."""
    from .harness import create_test_harness

    replay_all = bool(request.config.getoption("stead_always_replay", default=False))

    def make(app: Any, follow_logs: bool = False, restate_image: Optional[str] = None,
             always_replay: bool = False, disable_retries: bool = False,
             time_skipping: bool = False) -> AsyncContextManager[Any]:
        return create_test_harness(app, follow_logs=follow_logs, restate_image=restate_image,
                                   always_replay=always_replay or replay_all, disable_retries=disable_retries,
                                   time_skipping=time_skipping)

    return make
