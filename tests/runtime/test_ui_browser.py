"""The web UI (runtime/ui/, served at /ui on the admin port) in a real headless Chromium.

Playwright for Python drives Debian's chromium (scripts/setup.sh installs it): the
browser Playwright would download for itself cannot be fetched here, and Playwright
talks to any recent Chromium over CDP, so `executable_path` points at the system one.
Each test starts a real `stead serve`, makes invocations through the ingress, and checks
what the page shows against what the admin API answers. The schedules and limits pages
are tested in tests/runtime/test_ui_browser_views.py, with this module's fixtures.

With STEAD_UI_SCREENSHOTS=DIR the tests also save the screenshots of the README's "Web UI"
section there (`STEAD_UI_SCREENSHOTS=docs/ui pytest tests/runtime/test_ui_browser.py
tests/runtime/test_ui_browser_views.py`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.conftest import SteadServer, kill_all, wait_until

CHROMIUM = os.environ.get("STEAD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = os.environ.get("STEAD_UI_SCREENSHOTS")
TOKEN = "s3cret-admin-token"
WAIT_MS = 15_000  # for what the page shows after its next poll (every 1.5 s)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.fail("no Chromium found (looked for `chromium` on PATH and $STEAD_CHROMIUM): "
                    "scripts/setup.sh installs Debian's chromium; or `apt-get install -y chromium`")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 640})
    errors: list[str] = []
    pg = context.new_page()
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    # The browser logs each 4xx answer as "Failed to load resource": those are expected.
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error"
          and not msg.text.startswith("Failed to load resource") else None)
    pg.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    yield pg
    context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
def start(tmp_path: Path, effects_dir: Path) -> Iterator:
    servers: list[SteadServer] = []

    def make(*extra_args: str, target: str = "tests.apps.testapp:application") -> SteadServer:
        server = SteadServer(tmp_path / "data", effects_dir, target=target, extra_args=list(extra_args))
        servers.append(server)
        return server.start()

    yield make
    kill_all(servers)


def shot(page: Page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.mouse.move(0, 0)  # no hover effect on the last link clicked
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


def send_steps(server: SteadServer, effects_dir: Path, key: str, tag: str) -> str:
    """An invocation of Steps/{key}/run that waits at its gate after its two Run steps."""
    resp = server.post(f"/Steps/{key}/run/send", tag)
    assert resp.status_code == 202, resp.text
    inv = resp.json()["invocationId"]
    wait_until(lambda: f"at {tag}.gate" in (effects_dir / "gates").read_text().splitlines()
               if (effects_dir / "gates").exists() else False, what=f"{tag} at its gate")
    return inv


def api_invocation(server: SteadServer, inv: str) -> dict:
    resp = server.admin("GET", f"/invocations/{inv}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_assets_are_served(start) -> None:  # type: ignore[no-untyped-def]
    server = start()
    for path, kind in [("/ui", "text/html"), ("/ui/", "text/html"), ("/ui/index.html", "text/html"),
                       ("/ui/app.js", "text/javascript"), ("/ui/views_ops.js", "text/javascript"),
                       ("/ui/style.css", "text/css")]:
        resp = server.admin("GET", path)
        assert resp.status_code == 200, (path, resp.text)
        assert resp.headers["content-type"].startswith(kind), path
    for path in ["/ui/nope.js", "/ui/..%2Fadmin_ui.py", "/ui/%2e%2e", "/ui/ui/app.js", "/ui/__init__.py"]:
        resp = server.admin("GET", path)
        assert resp.status_code == 404, (path, resp.text)
        assert "message" in resp.json()
    assert server.admin("POST", "/ui/app.js").status_code == 405


def test_invocation_list_journal_and_kill(start, effects_dir: Path, page: Page) -> None:  # type: ignore[no-untyped-def]
    server = start()
    inv = send_steps(server, effects_dir, "k", "kill-me")
    # A few finished ones around it: a call tree, a failure, an object's update.
    outer = server.post("/Gatekeeper/outer", "ada", headers={"idempotency-key": "ui-outer"})
    assert outer.status_code == 200, outer.text
    assert server.post("/Flaky/terminal", "out of stock").status_code == 422
    assert server.post("/Cart/c1/slow_add", "apple").status_code == 200

    page.goto(f"{server.admin_url}/ui#/invocations")
    row = page.locator(f'tr[data-id="{inv}"]')
    expect(row).to_contain_text("Steps/k/run")
    expect(row.locator(".status")).to_have_text("running")
    expect(page.locator("tr[data-id]")).to_have_count(len(server.admin("GET", "/invocations").json()["invocations"]))
    shot(page, "invocations")

    # The status filter is the API's: only the running one is left.
    page.get_by_label("Status").select_option("running")
    expect(page.locator("tr[data-id]")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"#/invocations\?status=running$"))
    page.get_by_label("Status").select_option("")
    page.get_by_label("Service").select_option("Steps")
    page.get_by_label("Key").fill("other")
    expect(page.locator("#invocations")).to_have_text("No invocation matches these filters.")
    page.get_by_label("Key").fill("k")
    expect(page).to_have_url(re.compile(r"#/invocations\?service=Steps&key=k$"))
    expect(page.locator("tr[data-id]")).to_have_count(1)

    row.get_by_role("link", name=inv).click()
    expect(page.locator("h1 .status")).to_have_text("running")
    runs = page.locator('#journal [data-kind="Run"]')
    expect(runs).to_have_count(2)
    expect(runs.nth(0)).to_contain_text("one")
    expect(runs.nth(1)).to_contain_text("two")
    shot(page, "invocation")

    # Pause, then resume: the page shows each status and offers the other button.
    page.locator("#actions").get_by_role("button", name="Pause").click()
    expect(page.locator("#actions .flash")).to_have_text("pause: paused")
    expect(page.locator("h1 .status")).to_have_text("paused")
    assert api_invocation(server, inv)["status"] == "paused"
    page.locator("#actions").get_by_role("button", name="Resume").click()
    expect(page.locator("#actions .flash")).to_have_text("resume: running")
    expect(page.locator("h1 .status")).to_have_text("running")
    expect(page.locator("#actions").get_by_role("button", name="Pause")).to_be_visible()
    wait_until(lambda: api_invocation(server, inv)["status"] == "running", what="resumed")

    # A second tab on the same invocation whose reads fail from now on, so its Cancel
    # button stays after the kill: pressing it shows the API's refusal.
    stale = page.context.new_page()
    stale.goto(page.url)
    expect(stale.locator("#actions").get_by_role("button", name="Cancel")).to_be_visible()

    def no_reads(route: Route) -> None:
        route.abort() if route.request.method == "GET" else route.continue_()

    stale.route("**/invocations/*", no_reads)

    kill = page.locator("#actions").get_by_role("button", name="Kill")
    kill.click()
    page.locator("#actions").get_by_role("button", name="Confirm kill").click()
    expect(page.locator("#actions .flash")).to_have_text("kill: killed")
    expect(page.locator("h1 .status")).to_have_text("completed")
    answer = api_invocation(server, inv)
    assert answer["status"] == "completed"
    assert answer["completion_result"] == "failure"
    expect(page.locator(".timeline .failure").last).to_contain_text(str(answer["failure"]["code"]))
    expect(page.locator("#actions").get_by_role("button", name="Purge")).to_be_visible()

    stale.locator("#actions").get_by_role("button", name="Cancel").click()
    stale.locator("#actions").get_by_role("button", name="Confirm cancel").click()
    expect(stale.locator("#actions .flash")).to_have_text(
        re.compile(rf"cancel refused: invocation {inv} is already completed \(HTTP 409\)"))
    stale.close()

    # Back in the list, the same row is completed now; purged, it is gone.
    page.get_by_role("link", name="Invocations", exact=True).click()
    expect(page.locator(f'tr[data-id="{inv}"] .status')).to_have_text("completed")
    page.locator(f'tr[data-id="{inv}"]').get_by_role("link", name=inv).click()
    page.locator("#actions").get_by_role("button", name="Purge").click()
    page.locator("#actions").get_by_role("button", name="Confirm purge").click()
    expect(page.locator("#actions .flash")).to_have_text("purge: purged")
    expect(page.locator("#view")).to_contain_text("No such invocation")
    assert server.admin("GET", f"/invocations/{inv}").status_code == 404

    # A call's entry links to the callee's invocation.
    outer_id = next(i["id"] for i in server.admin("GET", "/invocations?service=Gatekeeper&handler=outer")
                    .json()["invocations"])
    page.goto(f"{server.admin_url}/ui#/invocations/{outer_id}")
    calls = page.locator('#journal [data-kind="Call"]')
    expect(calls).to_have_count(2)
    expect(calls.nth(0)).to_contain_text("Hidden/secret")
    callee = next(e["invoked_id"] for e in api_invocation(server, outer_id)["journal"] if e["kind"] == "Call")
    expect(page.locator("h1 .status")).to_have_text("completed")
    shot(page, "invocation-calls")
    calls.nth(0).get_by_role("link", name="Hidden/secret").click()
    expect(page.locator(".inv-id")).to_have_text(callee)
    expect(page.locator(".summary")).to_contain_text(outer_id)  # invoked by


def test_services_and_state(start, page: Page) -> None:  # type: ignore[no-untyped-def]
    server = start()
    assert server.post("/Cart/c9/slow_add", "apple").json() == 1
    assert server.post("/Cart/c9/slow_add", "pear").json() == 2

    page.goto(f"{server.admin_url}/ui/")
    cart = page.locator('[data-service="Cart"]')
    expect(cart).to_contain_text("VirtualObject")
    api_cart = server.admin("GET", "/services/Cart").json()
    handlers = cart.locator("tr[data-handler]")
    expect(handlers).to_have_count(len(api_cart["handlers"]))
    for handler in api_cart["handlers"]:
        expect(cart.locator(f'tr[data-handler="{handler["name"]}"]')).to_contain_text(handler["ty"])
    shot(page, "services")

    page.get_by_role("link", name="State", exact=True).first.click()
    page.get_by_label("Service").select_option("Cart")
    page.get_by_label("Key").fill("c9")
    page.get_by_role("button", name="Show").click()
    items = page.locator('#state tr[data-name="items"]')
    expect(items).to_contain_text('["apple","pear"]')
    version = server.admin("GET", "/services/Cart/state/c9").json()["version"]
    expect(page.locator("#state-version")).to_have_text(version)
    shot(page, "state")

    # Live: another add shows up without a reload, with the new version.
    assert server.post("/Cart/c9/slow_add", "fig").json() == 3
    expect(items).to_contain_text('["apple","pear","fig"]')
    expect(page.locator("#state-version")).to_have_text(server.admin("GET", "/services/Cart/state/c9").json()["version"])


def test_token_is_asked_once_and_kept(start, effects_dir: Path, page: Page) -> None:  # type: ignore[no-untyped-def]
    server = start("--admin-token", TOKEN)
    first = send_steps(server, effects_dir, "t1", "first")
    second = send_steps(server, effects_dir, "t2", "second")
    token_form = page.locator("#token-form")

    page.goto(f"{server.admin_url}/ui#/invocations/{first}")
    expect(token_form).to_be_hidden()  # reading needs no token
    page.locator("#actions").get_by_role("button", name="Kill").click()
    page.locator("#actions").get_by_role("button", name="Confirm kill").click()
    expect(token_form).to_be_visible()
    page.locator("#token-input").fill("wrong")
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#token-label")).to_contain_text("refused")
    assert api_invocation(server, first)["status"] == "running"  # the refused kill changed nothing
    page.locator("#token-input").fill(TOKEN)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("h1 .status")).to_have_text("completed")
    assert api_invocation(server, first)["status"] == "completed"

    # Kept for the session: the next action does not ask again. A cancel is cooperative:
    # the handler sees it at its next durable step, once its gate opens.
    page.goto(f"{server.admin_url}/ui#/invocations/{second}")
    page.locator("#actions").get_by_role("button", name="Cancel").click()
    page.locator("#actions").get_by_role("button", name="Confirm cancel").click()
    expect(page.locator("#actions .flash")).to_have_text("cancel: cancelling")
    expect(token_form).to_be_hidden()
    (effects_dir / "second.gate").touch()
    expect(page.locator("h1 .status")).to_have_text("completed")
    assert api_invocation(server, second)["completion_result"] == "failure"

    # Without the token (a new session), a refusal the user does not answer is shown.
    page.evaluate("sessionStorage.clear()")
    page.locator("#actions").get_by_role("button", name="Purge").click()
    page.locator("#actions").get_by_role("button", name="Confirm purge").click()
    expect(token_form).to_be_visible()
    page.locator("#token-cancel").click()
    expect(page.locator("#actions .flash")).to_contain_text("purge refused")
    assert server.admin("GET", f"/invocations/{second}").status_code == 200
