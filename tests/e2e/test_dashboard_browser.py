"""The dashboard in real Chromium: a manager's home page draws its charts, and a ticket an agent
creates in another session, or a connector that faults, changes its figures without a reload.
No console error or CSP violation along the way."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from cass.live import EXTENSION_KEY, notify
from tests.ocpp_support import execute

pytestmark = pytest.mark.e2e

LIVE_SECONDS = 3.0  # the stream sends the first event of a quiet spell at once
SCREENSHOT = "/tmp/dashboard.png"


@pytest.fixture(autouse=True)
def stop_live_broker(app: Flask) -> Iterator[None]:
    """After each test, stop the app's live broker, so no stream outlives the test."""
    yield
    broker = app.extensions.get(EXTENSION_KEY)
    if broker is not None:
        broker.stop()


def tile(page: Page, ident: str) -> int:
    return int(page.locator(f"#{ident} strong").inner_text())


def busy_fleet(database_url: str) -> None:
    """Give the demo fleet a fortnight of faults and some chargers online, as a real one has."""
    now = datetime.now(UTC)
    execute(database_url, "UPDATE charger SET online = (id % 3 <> 0)")
    for day in range(14):
        for n in range((day * 7) % 5 + 1):
            execute(
                database_url,
                "INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind,"
                " status, error_code, handled_at) SELECT tenant_id, id, 1, %s, 'status',"
                " 'Faulted', 'GroundFailure', now() FROM charger WHERE ocpp_id = %s",
                (now - timedelta(days=day, hours=n), f"DEMO-CP-000{n + 1}"),
            )


def test_a_managers_dashboard_draws_its_charts_and_follows_changes_live(
    open_as, app, demo, database_url, live_server
):
    busy_fleet(database_url)
    manager = open_as("manager@demo.test")
    page = manager.page
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server}/")
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Good to see you"))
    for title in (
        "Open tickets by status",
        "Open tickets by priority",
        "Connector faults per day, last 14 days",
    ):
        chart = page.get_by_role("img", name=title)
        expect(chart).to_be_visible()
        expect(chart.locator("rect.bar").first).to_be_visible()
    expect(page.get_by_role("link", name=re.compile("SLA compliance"))).to_be_visible()
    expect(page.locator("[data-live-indicator]")).to_have_attribute("data-live-state", "live")
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.evaluate("() => { window.__sameDocument = true; }")
    opened = tile(page, "dash-open")
    p1 = page.locator("#dash-tickets .dash-links a", has_text="P1:")
    p1_before = int(p1.inner_text().split(": ")[1])

    # An agent, in a session of their own, opens a P1 ticket.
    agent = open_as("agent@demo.test")
    agent.page.goto(f"{live_server}/tickets/new?charger=DEMO-CP-0005")
    agent.page.get_by_label("Title").fill("Screen blank at bay 2")
    agent.page.get_by_label("Category").select_option(label="Hardware")
    agent.page.get_by_label("Priority").select_option("P1")
    agent.page.get_by_role("button", name="Create ticket").click()
    expect(agent.page).to_have_url(re.compile(r"/tickets/DEMO-\d+$"))
    deadline = time.monotonic() + LIVE_SECONDS
    expect(page.locator("#dash-open strong")).to_have_text(
        str(opened + 1), timeout=LIVE_SECONDS * 1000
    )
    expect(p1).to_have_text(f"P1: {p1_before + 1}")
    assert time.monotonic() <= deadline + 0.05

    # A connector faults (as the bridge records it): the fleet's figures follow.
    faulted = tile(page, "dash-faulted")
    execute(
        database_url,
        "UPDATE connector SET status = 'Faulted' WHERE connector_no = 1 AND charger_id ="
        " (SELECT id FROM charger WHERE ocpp_id = 'DEMO-CP-0007')",
    )
    with psycopg.connect(database_url) as conn:
        notify(conn, demo["demo"], "charger", "DEMO-CP-0007", status="Faulted")
    expect(page.locator("#dash-faulted strong")).to_have_text(
        str(faulted + 1), timeout=LIVE_SECONDS * 1000
    )

    assert page.evaluate("() => window.__sameDocument === true"), "the dashboard reloaded"
    assert manager.console.errors == [] and agent.console.errors == []


def test_the_dashboard_reads_without_javascript(browser, live_server, demo):
    """Figures, charts and links are plain HTML and SVG: nothing needs a script to show."""
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(f"{live_server}/login")
        page.get_by_label("Email").fill("agent@demo.test")
        page.get_by_label("Password", exact=True).fill("demo-password-123")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Good to see you"))
        expect(page.get_by_role("img", name="Open tickets by priority")).to_be_visible()
        expect(page.locator("#dash-open strong")).to_have_text(re.compile(r"^\d+$"))
        expect(page.get_by_role("heading", name="Find a charger")).to_be_visible()
    finally:
        context.close()
