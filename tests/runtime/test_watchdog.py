"""The timeouts each handler gets (runtime/watchdog.py `limits_for`): the app's options
for in-process handlers, and Restate's defaults for handlers in a deployment."""

from __future__ import annotations

from datetime import timedelta

from pysdk import Context, Service, app
from pysdk._proto.stead.deployment import v1 as pb
from runtime.deployments import Catalog, RemoteService
from runtime.watchdog import NO_LIMITS, REMOTE_DEFAULTS, Limits, limits_for, tick_for

plain = Service("Plain")
timed = Service("Timed", inactivity_timeout=timedelta(seconds=2))


@plain.handler()
async def p(ctx: Context) -> None: ...


@timed.handler(abort_timeout=timedelta(seconds=3))
async def t(ctx: Context) -> None: ...


def _remote(options: pb.Options) -> Catalog:
    catalog = Catalog(app([plain, timed]))
    info = pb.ServiceInfo(name="Far", type="service", options=options,
                          handlers=[pb.HandlerInfo(name="h", kind="service")])
    catalog.set_remote({"Far": RemoteService("dp_1", info)})
    return catalog


def test_in_process_handlers_get_what_the_app_sets_and_nothing_else() -> None:
    a = app([plain, timed])
    assert limits_for(a, plain.handlers["p"]) == NO_LIMITS
    # An inactivity timeout is also the suspension threshold of the handler's waits.
    assert limits_for(a, timed.handlers["t"]) == Limits(2.0, 3.0, 2.0)


def test_remote_handlers_get_restates_defaults_but_suspend_after_the_servers_setting() -> None:
    catalog = _remote(pb.Options())
    limits = limits_for(catalog, catalog.lookup("Far", "h"))  # type: ignore[arg-type]
    assert limits == REMOTE_DEFAULTS == Limits(60.0, 60.0, None)
    assert tick_for(catalog) is not None  # swept, though the app set no timeout
    custom = _remote(pb.Options(inactivity_timeout_ms=1500, abort_timeout_ms=500))
    assert limits_for(custom, custom.lookup("Far", "h")) == Limits(1.5, 0.5, 1.5)  # type: ignore[arg-type]
    only_abort = _remote(pb.Options(abort_timeout_ms=5000))
    assert limits_for(only_abort, only_abort.lookup("Far", "h")) == Limits(60.0, 5.0, None)  # type: ignore[arg-type]
