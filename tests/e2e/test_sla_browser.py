"""Real Chromium: an admin previews and changes SLA promises and a calendar (issue 6, point 6);
an engineer sees a breach in the at-risk view and on the bell after a sweep (points 4-6)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select, text

from cass.extensions import db
from cass.models import SlaClock, Ticket, User
from cass.services import notifications, tickets
from cass.services.sla_sweep import sweep
from cass.services.tickets import NewTicket
from cass.tenancy import system_context, tenant_context
from tests.e2e.conftest import settled, sign_in

pytestmark = pytest.mark.e2e


def test_admin_previews_and_changes_promises(page: Page, console, live_server, app, demo):
    sign_in(page, live_server, "admin@demo.test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="SLA").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("SLA promises")
    settled(page, "#sla-preview")  # a boosted page: its form sends nothing until swapped in
    preview = page.locator("#sla-preview")
    page.get_by_label("Priority").select_option("P1")
    # htmx swaps the preview in place: the P1 promises run 24/7.
    expect(preview).to_contain_text("P1 standard")
    expect(preview.locator('[data-clock="first_response"]')).to_contain_text("15 min on 24/7")
    page.get_by_label("Priority").select_option("P3")
    expect(preview.locator('[data-clock="resolution"]')).to_contain_text("30 h on Business hours")

    # A holiday on the default calendar.
    page.get_by_role("link", name="Business hours").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Calendar Business hours")
    settled(page)
    page.get_by_label("Date").fill("2026-12-24")
    page.get_by_label("Name").fill("Christmas Eve")
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#holidays")).to_contain_text("Christmas Eve")

    # The P3 policy's resolution target, from 30 to 20 business hours.
    page.get_by_role("link", name="← SLA promises").click()
    page.get_by_role("link", name="P3 standard").click()
    # The boosted page focuses its autofocus field (the name) once htmx has swapped it in;
    # typing before that could land in the name (CI once saved "1200P3 standard").
    settled(page, "#resolution_minutes")
    expect(page.get_by_label("Name")).to_be_focused()
    page.locator("#resolution_minutes").fill("1200")
    page.get_by_role("button", name="Save policy").click()
    expect(page.locator(".flash-success")).to_contain_text("Policy P3 standard saved")
    expect(page.locator("#sla-policies")).to_contain_text("20 h")
    assert console.errors == []


def breached_ticket(app, demo) -> str:
    """A P2 ticket of the demo engineer whose resolution clock is overdue, swept; its key."""
    with app.app_context(), tenant_context(demo["demo"]):
        agent = db.session.scalar(select(User).where(User.email == "agent@demo.test"))
        manager = db.session.scalar(select(User).where(User.email == "manager@demo.test"))
        engineer = db.session.scalar(select(User).where(User.email == "engineer@demo.test"))
        ticket = tickets.create(
            agent,
            NewTicket(title="Browser breach", category="hardware", priority="P2", channel="phone"),
        )
        tickets.transition(ticket, manager, "assign", None, {"user": engineer})
        ticket_id, number = ticket.id, ticket.number
    with app.app_context(), system_context():
        db.session.execute(
            text(
                "UPDATE sla_clock SET warn_at = now() - interval '2 hours',"
                " due_at = now() - interval '30 minutes'"
                " WHERE ticket_id = :t AND clock = 'resolution'"
            ),
            {"t": ticket_id},
        )
        db.session.commit()
        sweep(run_rules=False)
        assert (
            db.session.scalar(
                select(SlaClock.state).where(
                    SlaClock.ticket_id == ticket_id, SlaClock.clock == "resolution"
                )
            )
            == "breached"
        )
        assert db.session.get(Ticket, ticket_id)
    return f"DEMO-{number}"


def test_an_engineer_sees_a_breach_at_risk_and_on_the_bell(
    page: Page, console, live_server, app, demo
):
    key = breached_ticket(app, demo)
    sign_in(page, live_server, "engineer@demo.test")
    bell = page.locator("#bell")
    expect(bell.locator(".count")).to_have_text("1")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="At risk").click()
    row = page.locator(f'tr[data-key="{key}"]')
    expect(row).to_contain_text("Resolution")
    # Late, by business time (none may have passed on a Saturday night).
    expect(row.locator(".sla-badge.sla-breached")).to_contain_text("late")
    bell.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Notifications")
    expect(page.locator("#inbox")).to_contain_text(f"{key}: resolution SLA breached")
    page.get_by_role("button", name="Mark all 1 read").click()
    expect(page.locator("#bell .count")).to_have_count(0)

    # Back on a live page, new news rings the bell at once (SSE), not at the next poll.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="At risk").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("At risk")
    page.wait_for_timeout(500)  # the live stream connects
    with app.app_context(), tenant_context(demo["demo"]):
        engineer = db.session.scalar(select(User).where(User.email == "engineer@demo.test"))
        notifications.queue(engineer.id, "test", "Fresh news", channels=("in_app",))
        db.session.commit()
    expect(page.locator("#bell .count")).to_have_text("1", timeout=5_000)

    # The ticket list shows the breach too, as the board does.
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Tickets", exact=True).click()
    row = page.locator("#tickets tr[data-list-row]").filter(has_text=key)
    expect(row.locator(".sla-badge.sla-breached")).to_contain_text("Resolution: late")
    assert console.errors == []
