"""Site visits (issue 8, points 1, 2 and 5): booking, no double booking (the database refuses it,
also between two transactions racing), working hours, rescheduling, check-in stopping the
on-site clock, and the people told through the notification outbox.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.models import Notification, SlaClock, Ticket, User, Vendor, Visit
from cass.services import tickets, visits
from cass.services.tickets import NewTicket
from cass.services.visits import VisitProblem
from cass.tenancy import tenant_context

# The demo tenant's default calendar: Mon-Fri 08:00-18:00 UTC. 2026-11-30 is a Monday.
MONDAY = datetime(2026, 11, 30, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def new_ticket(priority: str = "P2") -> Ticket:
    return tickets.create(
        user("agent@demo.test"),
        NewTicket(title="Cable cut", category="damage", priority=priority, channel="phone"),
    )


def booked(ticket: Ticket, start: datetime, hours: float = 2, **kw) -> Visit:
    kw.setdefault("engineer_id", user("engineer@demo.test").id)
    return visits.book(
        ticket,
        user("manager@demo.test"),
        starts_at=start,
        ends_at=start + timedelta(hours=hours),
        **kw,
    )


def test_a_visit_is_booked_and_the_engineer_told(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket()
        visit = booked(ticket, at(0, 9), notes=" Bring a ladder ")
        db.session.commit()
        assert (visit.status, visit.notes, visit.site_id) == ("scheduled", "Bring a ladder", None)
        told = db.session.scalars(
            select(Notification).where(Notification.kind == "visit_booked")
        ).all()
        assert {(n.user_id, n.channel) for n in told} == {
            (user("engineer@demo.test").id, "in_app"),
            (user("engineer@demo.test").id, "email"),
        }
        assert f"#{ticket.number}" in told[0].subject


def test_an_overlapping_visit_is_refused_with_the_next_free_slots(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket()
        booked(ticket, at(0, 9))  # 09:00-11:00
        booked(ticket, at(0, 13))  # 13:00-15:00
        with pytest.raises(VisitProblem) as refused:
            booked(ticket, at(0, 10), hours=1)
        assert "booked then" in refused.value.errors["starts_at"]
        # The first gaps of an hour from 10:00: 11:00, 15:00, then Tuesday 08:00.
        assert refused.value.slots == [at(0, 11), at(0, 15), at(1, 8)]
        # Nothing half-written: the session goes on, and back to back is fine.
        assert booked(ticket, at(0, 11)).ends_at == at(0, 13)
        assert db.session.query(Visit).count() == 3


def test_a_cancelled_visit_frees_its_time_and_a_vendor_is_not_an_engineer(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket()
        first = booked(ticket, at(0, 9))
        visits.set_status(first, user("manager@demo.test"), "cancelled")
        booked(ticket, at(0, 9))
        vendor = db.session.scalar(select(Vendor).where(Vendor.tenant_id == demo["demo"]))
        # A vendor's visits are theirs to plan: two at once are fine.
        booked(ticket, at(0, 9), engineer_id=None, vendor_id=vendor.id)
        booked(ticket, at(0, 9), engineer_id=None, vendor_id=vendor.id)
        cancelled = db.session.scalars(
            select(Notification.kind).where(Notification.kind == "visit_cancelled")
        ).all()
        assert cancelled


def test_outside_working_hours_needs_an_override(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket()
        with pytest.raises(VisitProblem) as refused:
            booked(ticket, at(5, 10))  # Saturday
        assert "working hours" in refused.value.errors["starts_at"]
        assert refused.value.slots[0] == at(7, 8)  # Monday 08:00
        with pytest.raises(VisitProblem):
            booked(ticket, at(0, 17))  # runs past 18:00
        visit = booked(ticket, at(5, 10), override=True)
        assert visit.outside_hours


@pytest.mark.parametrize(
    ("start", "hours", "field"),
    [(at(0, 9), 0, "ends_at"), (at(0, 9), -1, "ends_at"), (at(0, 0), 25, "ends_at")],
)
def test_bad_times_are_refused(app, demo, start, hours, field):
    with app.app_context(), tenant_context(demo["demo"]):
        with pytest.raises(VisitProblem) as refused:
            booked(new_ticket(), start, hours=hours, override=True)
        assert field in refused.value.errors
        assert db.session.query(Visit).count() == 0


def test_only_this_operators_engineers_and_vendors(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket()
        with pytest.raises(VisitProblem) as refused:
            booked(ticket, at(0, 9), engineer_id=demo["admin@acme.test"])
        assert "engineer_id" in refused.value.errors
        with pytest.raises(VisitProblem):
            booked(ticket, at(0, 9), engineer_id=user("agent@demo.test").id)  # not an engineer
        with pytest.raises(VisitProblem) as refused:
            booked(ticket, at(0, 9), engineer_id=None)
        assert "engineer_id" in refused.value.errors


def test_two_dispatchers_booking_at_once_exactly_one_wins(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket_id = new_ticket().id
        db.session.commit()
    ready = threading.Barrier(2)
    results: list[str] = []

    def dispatch(start: datetime) -> None:
        with app.app_context(), tenant_context(demo["demo"]):
            ticket = db.session.get(Ticket, ticket_id)
            ready.wait()
            try:
                booked(ticket, start)
                db.session.commit()
                results.append("booked")
            except VisitProblem as problem:
                results.append(f"refused {problem.slots[0].isoformat()}")

    threads = [threading.Thread(target=dispatch, args=(at(0, h),)) for h in (9, 10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results)[0] == "booked" and sorted(results)[1].startswith("refused")
    with app.app_context(), tenant_context(demo["demo"]):
        assert db.session.query(Visit).count() == 1


def test_rescheduling_moves_the_visit_or_leaves_it_as_it_was(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket, manager = new_ticket(), user("manager@demo.test")
        visit = booked(ticket, at(0, 9))
        other = booked(ticket, at(0, 13))
        with pytest.raises(VisitProblem):
            visits.reschedule(other, manager, starts_at=at(0, 10), ends_at=at(0, 12))
        db.session.refresh(other)
        assert (other.starts_at, other.ends_at) == (at(0, 13), at(0, 15))
        visits.reschedule(visit, manager, starts_at=at(1, 9), ends_at=at(1, 10))
        db.session.commit()
        assert (visit.starts_at, visit.ends_at) == (at(1, 9), at(1, 10))
        kinds = db.session.scalars(select(Notification.kind).distinct()).all()
        assert "visit_changed" in kinds


def test_check_in_stops_the_on_site_clock_and_check_out_ends_the_visit(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket, engineer = new_ticket("P2"), user("engineer@demo.test")
        visit = booked(ticket, at(0, 9))
        arrived = datetime.now(UTC)
        visits.check_in(visit, engineer, arrived)
        db.session.flush()
        clock = db.session.scalar(
            select(SlaClock).where(SlaClock.ticket_id == ticket.id, SlaClock.clock == "on_site")
        )
        assert (visit.status, visit.checked_in_at) == ("on_site", arrived)
        assert clock.stopped_at == arrived and clock.state in ("met", "breached")
        visits.check_out(visit, engineer, arrived + timedelta(hours=1))
        assert (visit.status, visit.checked_out_at) == ("done", arrived + timedelta(hours=1))
        with pytest.raises(VisitProblem):
            visits.set_status(visit, engineer, "en_route")
