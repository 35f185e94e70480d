"""Real Chromium: an engineer makes a calendar feed, a calendar app (urllib here) reads it, and
once revoked its URL answers 404 (issue 8, point 4)."""

from __future__ import annotations

import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from playwright.sync_api import Page, expect
from sqlalchemy import select

from cass.extensions import db
from cass.models import Ticket, User
from cass.services import visits
from cass.tenancy import tenant_context
from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def fetch(url: str) -> tuple[int, bytes]:
    """GET `url` as a calendar app would: no cookies, no browser."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the test's server)
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, b""


def test_engineer_makes_reads_and_revokes_a_feed(page: Page, console, live_server, app, demo):
    start = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(days=1)
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        visit = visits.book(
            ticket,
            db.session.get(User, demo["manager@demo.test"]),
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            engineer_id=demo["engineer@demo.test"],
            override=True,
        )
        db.session.commit()
        uid = f"visit-{visit.id}@cass"
    page.on("dialog", lambda dialog: dialog.accept())  # the hx-confirm before revoking
    sign_in(page, live_server, "engineer@demo.test")
    page.goto(f"{live_server}/account/calendar")
    expect(page.get_by_role("heading", level=1)).to_have_text("Calendar feed")
    panel = page.locator("#calendar-feed")
    expect(panel).to_contain_text("You have no calendar feed")

    page.get_by_role("button", name="Make a feed address").click()
    field = page.get_by_label("Calendar address")
    expect(field).to_be_visible()
    url = field.input_value()
    assert url.startswith(f"{live_server}/calendar/") and url.endswith(".ics")
    status, body = fetch(url)
    assert status == 200
    events = Calendar.from_ical(body).walk("VEVENT")
    assert [str(e["UID"]) for e in events] == [uid]
    assert events[0]["DTSTART"].dt == start

    page.get_by_role("button", name="Revoke feed").click()
    expect(panel).to_contain_text("You have no calendar feed")
    expect(page.get_by_label("Calendar address")).to_have_count(0)
    assert fetch(url)[0] == 404
    # The page, loaded afresh, no longer offers the address either.
    page.reload()
    expect(panel).to_contain_text("You have no calendar feed")
    assert console.errors == []
