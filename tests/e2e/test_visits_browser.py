"""Real Chromium: a manager books a visit on a ticket (the panel updates in place), then moves
it on the dispatcher's week and the grid follows (issue 8, points 3 and 6)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from cass.extensions import db
from cass.models import User, Visit
from cass.tenancy import system_context
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def test_manager_books_and_reschedules_a_visit(page: Page, console, live_server, app, demo):
    with app.app_context(), system_context():
        engineer = db.session.get(User, demo["engineer@demo.test"]).name
    sign_in(page, live_server, "manager@demo.test")
    page.goto(f"{live_server}/tickets/DEMO-1")
    panel = page.locator("#visits")
    expect(panel).to_contain_text("No visits booked.")
    panel.get_by_label("Engineer or vendor").select_option(label=engineer)
    panel.get_by_label("Starts").fill("2027-01-04T10:00")
    panel.get_by_label("Length").select_option("60")
    panel.get_by_label("Notes").fill("Key at the kiosk")
    panel.get_by_role("button", name="Book visit").click()
    expect(panel.locator(".visit-list")).to_contain_text("Mon 04 Jan 10:00\u201311:00")
    expect(panel).to_contain_text("Key at the kiosk")

    # The same slot again: refused, with the next free one offered.
    panel.get_by_label("Engineer or vendor").select_option(label=engineer)
    panel.get_by_label("Starts").fill("2027-01-04T10:30")
    panel.get_by_role("button", name="Book visit").click()
    expect(panel).to_contain_text("is booked then")
    expect(panel.locator(".free-slots")).to_contain_text("Mon 04 Jan 11:00")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dispatch").click()
    page.goto(f"{live_server}/visits/week?start=2027-01-04")
    row = page.locator("tr", has_text=engineer)
    chip = row.locator(".visit-chip", has_text="10:00\u201311:00")
    expect(chip).to_be_visible()
    chip.locator("summary").click()
    chip.get_by_label("New start").fill("2027-01-05T14:00")
    chip.get_by_role("button", name="Move").click()
    moved = page.locator("tr", has_text=engineer).locator(
        ".visit-chip", has_text="14:00\u201315:00"
    )
    expect(moved).to_be_visible()
    with app.app_context(), system_context():
        visit = db.session.scalar(select(Visit))
        assert visit.starts_at.isoformat() == "2027-01-05T14:00:00+00:00"
    # Only the refused booking's 422 (the browser and htmx log it).
    assert [e for e in console.errors if not ("422" in e and "/visits" in e)] == []
