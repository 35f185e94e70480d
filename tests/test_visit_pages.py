"""Visit pages (issue 8, points 3 and 6): booking on the ticket, the dispatcher's week with
moves, the engineer's day with its steps; each with and without htmx; what bad input gets;
vendors see only their visits.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.models import SlaClock, Ticket, User, Visit
from cass.services import visits
from cass.tenancy import tenant_context
from tests.conftest import as_user, page_token
from tests.ocpp_support import execute

HX = {"HX-Request": "true"}


def span(start: str, end: str) -> str:
    """Return a visit's times as pages write them (with an en dash)."""
    return f"{start}\u2013{end}"


# A Monday in the demo tenant's working hours (Mon-Fri 08:00-18:00 UTC).
MONDAY = "2027-01-04"


def book(app, demo, hour: int, *, engineer: str | None = "engineer@demo.test", vendor=None) -> int:
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        start = datetime(2027, 1, 4, hour, tzinfo=UTC)
        visit = visits.book(
            ticket,
            db.session.get(User, demo["manager@demo.test"]),
            starts_at=start,
            ends_at=start.replace(hour=hour + 1),
            engineer_id=demo[engineer] if engineer else None,
            vendor_id=demo[f"vendor:{vendor}"] if vendor else None,
        )
        db.session.commit()
        return visit.id


def visit_form(demo, start: str = f"{MONDAY}T10:00", **extra: str) -> dict[str, str]:
    return {
        "assignee": f"user:{demo['engineer@demo.test']}",
        "starts_at": start,
        "minutes": "60",
        **extra,
    }


@pytest.fixture
def manager(app, demo):
    return as_user(app, "manager@demo.test")


def test_the_ticket_shows_its_visits_and_dispatchers_the_form(app, demo, manager):
    book(app, demo, 14)
    page = manager.get("/tickets/DEMO-1").get_data(as_text=True)
    assert 'id="visits"' in page and span("14:00", "15:00") in page and 'id="visit-form"' in page
    agent = as_user(app, "agent@demo.test").get("/tickets/DEMO-1").get_data(as_text=True)
    assert span("14:00", "15:00") in agent and 'id="visit-form"' not in agent


@pytest.mark.parametrize("htmx", [False, True])
def test_a_manager_books_a_visit(app, demo, manager, htmx):
    token = page_token(manager, "/tickets/DEMO-1")
    response = manager.post(
        "/tickets/DEMO-1/visits",
        data={"csrf_token": token, **visit_form(demo, notes="Gate code 1234")},
        headers=HX if htmx else {},
    )
    if htmx:
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert 'id="visits"' in body
        assert span("10:00", "11:00") in body and "Gate code 1234" in body and "<html" not in body
    else:
        assert response.status_code == 303
        assert response.headers["Location"].endswith("/tickets/DEMO-1")
    with app.app_context(), tenant_context(demo["demo"]):
        assert db.session.query(Visit).count() == 1


@pytest.mark.parametrize("htmx", [False, True])
def test_a_double_booking_gets_422_with_the_next_free_slots(app, demo, manager, htmx):
    book(app, demo, 10)
    token = page_token(manager, "/tickets/DEMO-1")
    response = manager.post(
        "/tickets/DEMO-1/visits",
        data={"csrf_token": token, **visit_form(demo, start=f"{MONDAY}T10:30")},
        headers=HX if htmx else {},
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "is booked then" in body and "Next free" in body
    assert 'value="2027-01-04T11:00"' in body  # the first free slot, one click to book
    assert ("<html" in body) is not htmx
    with app.app_context(), tenant_context(demo["demo"]):
        assert db.session.query(Visit).count() == 1


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"starts_at": ""}, "This field is required"),
        ({"starts_at": "next tuesday"}, "Not a valid datetime value"),
        ({"minutes": "7"}, "Not a valid choice"),
        ({"assignee": ""}, "Pick an engineer or a vendor"),
        ({"starts_at": "2027-01-09T10:00"}, "working hours"),  # a Saturday
    ],
)
def test_bad_bookings_get_422_naming_the_field(app, demo, manager, form, message):
    token = page_token(manager, "/tickets/DEMO-1")
    response = manager.post(
        "/tickets/DEMO-1/visits",
        data={"csrf_token": token, **visit_form(demo), **form},
        headers=HX,
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context(), tenant_context(demo["demo"]):
        assert db.session.query(Visit).count() == 0


@pytest.mark.parametrize("htmx", [False, True])
def test_the_week_shows_visits_and_moves_them(app, demo, manager, htmx):
    first, second = book(app, demo, 9), book(app, demo, 13)
    page = manager.get(f"/visits/week?start={MONDAY}", headers=HX if htmx else {})
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and ("<html" in body) is not htmx
    assert (
        "Mon 04 Jan" in body and span("09:00", "10:00") in body and span("13:00", "14:00") in body
    )
    token = page_token(manager, f"/visits/week?start={MONDAY}")
    taken = manager.post(
        f"/visits/{first}/move",
        data={"csrf_token": token, "starts_at": f"{MONDAY}T13:30", "week": MONDAY},
        headers=HX if htmx else {},
    )
    assert taken.status_code == 422 and "is booked then" in taken.get_data(as_text=True)
    moved = manager.post(
        f"/visits/{first}/move",
        data={"csrf_token": token, "starts_at": "2027-01-05T15:00", "week": MONDAY},
        headers=HX if htmx else {},
    )
    assert moved.status_code == (200 if htmx else 303)
    with app.app_context(), tenant_context(demo["demo"]):
        visit = db.session.get(Visit, first)
        assert (visit.starts_at, visit.ends_at) == (
            datetime(2027, 1, 5, 15, tzinfo=UTC),
            datetime(2027, 1, 5, 16, tzinfo=UTC),
        )
        assert db.session.get(Visit, second).starts_at.hour == 13


def test_a_move_without_a_time_gets_422(app, demo, manager):
    visit = book(app, demo, 9)
    token = page_token(manager, f"/visits/week?start={MONDAY}")
    response = manager.post(
        f"/visits/{visit}/move", data={"csrf_token": token, "starts_at": "soon"}, headers=HX
    )
    assert response.status_code == 422 and "Give the new start" in response.get_data(as_text=True)


@pytest.mark.parametrize("htmx", [False, True])
def test_the_engineer_works_through_the_day(app, demo, htmx, database_url):
    visit = book(app, demo, 9)
    execute(
        database_url,
        "UPDATE site SET lat = 52.37, lon = 4.89, address = 'Dam 1' WHERE id ="
        " (SELECT site_id FROM ticket WHERE number = 1 AND tenant_id = %s)",
        (demo["demo"],),
    )
    with app.app_context(), tenant_context(demo["demo"]):
        db.session.execute(
            Visit.__table__.update()
            .where(Visit.id == visit)
            .values(site_id=db.session.scalar(select(Ticket.site_id).where(Ticket.number == 1)))
        )
        db.session.commit()
    engineer = as_user(app, "engineer@demo.test")
    day = engineer.get(f"/visits/day?date={MONDAY}").get_data(as_text=True)
    assert span("09:00", "10:00") in day and "DEMO-1" in day and "Dam 1" in day
    assert "openstreetmap.org/directions?to=52.37" in day
    assert "Check in" in day and "Cancel" not in day  # engineers do not cancel
    token = page_token(engineer, f"/visits/day?date={MONDAY}")
    response = engineer.post(
        f"/visits/{visit}/status",
        data={"csrf_token": token, "status": "on_site"},
        headers=HX if htmx else {},
    )
    assert response.status_code == (200 if htmx else 303)
    if htmx:
        body = response.get_data(as_text=True)
        assert "On site" in body and "Check out" in body and "<html" not in body
    again = engineer.post(
        f"/visits/{visit}/status", data={"csrf_token": token, "status": "on_site"}, headers=HX
    )
    assert again.status_code == 422 and "not open" in again.get_data(as_text=True)
    with app.app_context(), tenant_context(demo["demo"]):
        stored = db.session.get(Visit, visit)
        assert stored.status == "on_site" and stored.checked_in_at is not None
        clock = db.session.scalar(
            select(SlaClock).where(
                SlaClock.ticket_id == stored.ticket_id, SlaClock.clock == "on_site"
            )
        )
        assert clock is None or clock.stopped_at is not None


def test_another_engineers_visit_is_not_theirs_to_work(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        other = db.session.scalar(
            select(User.email).where(User.tenant_id == demo["demo"], User.role == "admin")
        )
    visit = book(app, demo, 9, engineer=other)
    engineer = as_user(app, "engineer@demo.test")
    token = page_token(engineer, "/visits/day")
    response = engineer.post(
        f"/visits/{visit}/status", data={"csrf_token": token, "status": "en_route"}
    )
    assert response.status_code == 403


def test_vendors_see_only_their_visits(app, demo):
    theirs = book(app, demo, 9, engineer=None, vendor="Demo Field Services")
    others = book(app, demo, 11)
    vendor = as_user(app, "vendor@demo.test")
    day = vendor.get(f"/visits/day?date={MONDAY}").get_data(as_text=True)
    assert span("09:00", "10:00") in day and span("11:00", "12:00") not in day
    token = page_token(vendor, "/visits/day")
    assert (
        vendor.post(
            f"/visits/{others}/status", data={"csrf_token": token, "status": "en_route"}
        ).status_code
        == 404
    )
    assert (
        vendor.post(
            f"/visits/{theirs}/status", data={"csrf_token": token, "status": "en_route"}
        ).status_code
        == 303
    )
