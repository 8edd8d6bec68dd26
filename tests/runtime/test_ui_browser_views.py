"""The web UI's schedules and limits pages (runtime/ui/views_ops.js) in a real headless
Chromium, with the fixtures of tests/runtime/test_ui_browser.py: each test starts a real
`stead serve` and checks what the page shows, and what its buttons do, against the admin
API. With STEAD_UI_SCREENSHOTS=DIR they save schedules.png and limits.png there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.conftest import SteadServer, read_lines, wait_until
from tests.runtime import test_ui_browser
from tests.runtime.test_ui_browser import shot


def schedule(server: SteadServer, schedule_id: str) -> dict[str, Any]:
    resp = server.admin("GET", f"/schedules/{schedule_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


# That module's fixtures, used here by name: a real server (`start`), a browser and its page.
browser, page, start = test_ui_browser.browser, test_ui_browser.page, test_ui_browser.start


def test_schedules_page_pause_resume_and_remove(start, page: Page) -> None:  # type: ignore[no-untyped-def]
    server = start(target="tests.apps.schedapp:application")
    for doc in [{"id": "nightly", "service": "Jobs", "handler": "record", "cron": "0 3 * * *",
                 "timezone": "Europe/Paris"},
                {"id": "tick", "service": "Jobs", "handler": "record", "every": "1s", "overlap": "ALLOW_ALL"}]:
        resp = server.admin("POST", "/schedules", json.dumps(doc).encode())
        assert resp.status_code == 201, resp.text
    wait_until(lambda: schedule(server, "tick")["last_invocation_id"], what="tick fired")

    page.goto(f"{server.admin_url}/ui#/schedules")
    nightly = page.locator('#schedules tr[data-id="nightly"]')
    expect(nightly).to_contain_text("Jobs/record")
    expect(nightly).to_contain_text("0 3 * * * Europe/Paris")
    expect(nightly.locator(".status")).to_have_text("active")
    next_fire = schedule(server, "nightly")["next_fire_at"]
    expect(nightly.locator(f'time[datetime="{next_fire}"]')).to_have_count(1)
    upcoming = schedule(server, "nightly")["upcoming"]
    nightly.locator("details.upcoming summary").click()
    expect(nightly.locator("details.upcoming li")).to_have_count(len(upcoming) - 1)
    expect(nightly.locator(f'details.upcoming time[datetime="{upcoming[-1]}"]')).to_be_visible()

    # The last firing links to its invocation in the invocation view.
    tick = page.locator('#schedules tr[data-id="tick"]')
    expect(tick).to_contain_text("every 1s")
    fired = tick.locator('a[href^="#/invocations/"]')
    expect(fired).to_have_count(1)
    inv = (fired.get_attribute("href") or "").removeprefix("#/invocations/")
    assert server.admin("GET", f"/invocations/{inv}").json()["target"] == "Jobs/record"
    shot(page, "schedules")

    # Pause, then resume: the API says so, and the page shows each state (an open list of
    # upcoming fire times is a redraw of its own cell only).
    nightly.get_by_role("button", name="Pause").click()
    expect(page.locator("#actions .flash")).to_have_text("pause nightly: paused")
    assert schedule(server, "nightly")["paused"] is True
    expect(nightly.locator(".status")).to_have_text("paused")
    expect(nightly.locator("time")).to_have_count(0)  # no next fire time, and never fired
    nightly.get_by_role("button", name="Resume").click()
    expect(page.locator("#actions .flash")).to_have_text("resume nightly: active")
    assert schedule(server, "nightly")["paused"] is False
    expect(nightly.locator(".status")).to_have_text("active")
    expect(nightly.locator(f'time[datetime="{schedule(server, "nightly")["next_fire_at"]}"]')).to_have_count(1)

    # Remove asks for a second click, then the row is gone, and so is the schedule.
    tick.get_by_role("button", name="Remove").click()
    tick.get_by_role("button", name="Confirm remove").click()
    expect(page.locator("#actions .flash")).to_have_text("remove tick: removed")
    expect(tick).to_have_count(0)
    assert server.admin("GET", "/schedules/tick").status_code == 404
    expect(page.locator("#schedules tr[data-id]")).to_have_count(1)


def test_limits_page_shows_running_and_queued(  # type: ignore[no-untyped-def]
        start, effects_dir: Path, page: Page) -> None:
    server = start(target="tests.apps.limitapp:application")
    held = []
    for name in ["g0", "g1", "g2"]:
        resp = server.post("/Limited/hold/send", name)
        assert resp.status_code == 202, resp.text
        held.append(resp.json()["invocationId"])
    # Tenants/job: one at a time per limit key: "a" runs one and queues one, "b" runs one.
    for name, key in [("gate-a0", "a"), ("gate-a1", "a"), ("gate-b0", "b")]:
        resp = server.post("/Tenants/job/send", name, headers={"x-restate-limit-key": key})
        assert resp.status_code == 202, resp.text
    wait_until(lambda: len(read_lines(effects_dir / "hold")) >= 2 and len(read_lines(effects_dir / "job")) >= 2,
               what="two holds and two jobs running")

    page.goto(f"{server.admin_url}/ui")
    page.get_by_role("link", name="Limits", exact=True).click()
    hold = page.locator('#limits tr[data-handler="Limited/hold"]')
    expect(hold).to_contain_text("Limited (all its handlers): at most 2 at once")
    expect(hold.locator(".running")).to_have_text("2")
    expect(hold.locator(".queued")).to_have_text("1")
    job = page.locator('#limits tr[data-handler="Tenants/job"]')
    expect(job).to_contain_text("job: at most 3 at once, 1 at once per limit key")
    expect(job.locator(".running")).to_have_text("2")
    expect(job.locator(".queued")).to_have_text("1")
    key_a = page.locator('#limits tr[data-limit-key="a"]')
    expect(key_a.locator(".running")).to_have_text("1")
    expect(key_a.locator(".queued")).to_have_text("1")
    expect(page.locator('#limits tr[data-limit-key="b"] .queued')).to_have_text("0")
    expect(page.locator('#limits tr[data-handler="Rated/tick"]')).to_contain_text("5 starts per 1s")
    api = {(i["service"], i["handler"]) for i in server.admin("GET", "/limits").json()["limits"]}
    expect(page.locator("#limits tr[data-handler]")).to_have_count(len(api))
    shot(page, "limits")

    # The queued count lists the queued invocations ("ready"); released, they all run.
    hold.locator(".queued").get_by_role("link", name="1").click()
    expect(page).to_have_url(re.compile(r"#/invocations\?service=Limited&handler=hold&status=ready$"))
    expect(page.locator("tr[data-id]")).to_have_count(1)
    expect(page.locator(f'tr[data-id="{held[2]}"] .status')).to_have_text("ready")
    for name in ["g0", "g1", "g2"]:
        (effects_dir / name).touch()
    page.get_by_role("link", name="Limits", exact=True).click()
    expect(hold.locator(".queued")).to_have_text("0")
    expect(hold.locator(".running")).to_have_text("0")
