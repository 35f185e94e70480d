"""SLA clocks follow the ticket: start, pause with credit, stop, reopen, vendor, policy changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select

from cass.extensions import db
from cass.models import SlaClock, SlaEvent, SlaPolicy, SlaTarget, Ticket, User, Vendor
from cass.services import bulk, sla, tickets
from cass.services.tickets import NewTicket
from cass.tenancy import tenant_context

# The defaults (cass.sla_defaults): business hours Mon-Fri 08:00-18:00 UTC; P3 resolution 30
# business hours, P4 50; P1 runs 24/7. 2026-11-30 is a Monday.
MONDAY_9 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant in the week of Monday 30 November 2026 (day 0) and the one after."""
    return MONDAY_9.replace(hour=hour, minute=minute) + timedelta(days=day)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def new_ticket(priority: str = "P3", **kw) -> Ticket:
    data = {
        "title": "Screen dead",
        "category": "hardware",
        "priority": priority,
        "channel": "phone",
    }
    return tickets.create(user("agent@demo.test"), NewTicket(**(data | kw)))


def restart(ticket: Ticket, when: datetime) -> None:
    """Start the ticket's clocks again as if it had been created at `when`."""
    db.session.execute(delete(SlaClock).where(SlaClock.ticket_id == ticket.id))
    sla.on_created(ticket, when)
    db.session.flush()


def clock(ticket: Ticket, name: str) -> SlaClock:
    return db.session.scalar(
        select(SlaClock)
        .where(SlaClock.ticket_id == ticket.id, SlaClock.clock == name)
        .execution_options(populate_existing=True)
    )


def move(ticket: Ticket, status: str, when: datetime) -> None:
    """Set the status and move the clocks as the ticket service does, at a chosen time."""
    old, ticket.status = ticket.status, status
    sla.on_status(ticket, old, status, when)
    db.session.flush()


def test_a_new_ticket_starts_its_policy_clocks(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P2")
        clocks = {c.clock: c for c in sla.clocks_of(ticket)}
        assert set(clocks) == {"first_response", "on_site", "resolution"}
        assert {c.state for c in clocks.values()} == {"running"}
        office = sla.calendar(clocks["resolution"].calendar_id)
        started = clocks["resolution"].started_at
        assert clocks["resolution"].due_at == office.add(started, timedelta(minutes=600))
        # 80 % of the target warns.
        assert clocks["resolution"].warn_at == office.add(started, timedelta(minutes=480))
        events = db.session.scalars(select(SlaEvent.kind).where(SlaEvent.ticket_id == ticket.id))
        assert sorted(events) == ["started"] * 3


def test_p1_promises_run_around_the_clock(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P1")
        saturday_night = datetime(2026, 12, 5, 23, 50, tzinfo=UTC)
        restart(ticket, saturday_night)
        assert clock(ticket, "first_response").due_at == saturday_night + timedelta(minutes=15)
        assert clock(ticket, "resolution").due_at == saturday_night + timedelta(hours=4)


def test_business_hours_skip_nights_and_weekends(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P3")
        restart(ticket, at(4, 17))  # Friday 17:00 + 30 business hours
        # Friday 1 h, Monday 10, Tuesday 10, Wednesday 9 h: Wednesday 17:00.
        assert clock(ticket, "resolution").due_at == at(9, 17)


def test_on_hold_pauses_and_credits_the_business_time(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P3")
        restart(ticket, at(0, 9))
        assert clock(ticket, "resolution").due_at == at(3, 9)  # Thursday 09:00
        move(ticket, "assigned", at(0, 9, 30))
        assert clock(ticket, "first_response").state == "met"
        move(ticket, "on_hold", at(0, 10))
        held = clock(ticket, "resolution")
        assert (held.state, held.paused_since) == ("paused", at(0, 10))
        move(ticket, "in_progress", at(1, 10))
        resumed = clock(ticket, "resolution")
        # Monday 10-18 and Tuesday 8-10: ten business hours credited, due a day later.
        assert resumed.paused_seconds == 10 * 3600
        assert (resumed.state, resumed.due_at) == ("running", at(4, 9))
        kinds = db.session.scalars(
            select(SlaEvent.kind)
            .where(SlaEvent.ticket_id == ticket.id, SlaEvent.clock == "resolution")
            .order_by(SlaEvent.id)
        ).all()
        assert kinds[-2:] == ["paused", "resumed"]


def test_a_priority_change_while_paused_keeps_the_credit(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P3")
        restart(ticket, at(0, 9))
        move(ticket, "assigned", at(0, 9, 30))
        move(ticket, "on_hold", at(0, 10))
        move(ticket, "in_progress", at(1, 10))  # 10 h credited
        move(ticket, "on_hold", at(2, 8))
        ticket.priority = "P4"  # 50 business hours
        sla.recompute(ticket, at(2, 12), reason="priority")
        paused = clock(ticket, "resolution")
        assert (paused.state, paused.paused_seconds, paused.target_minutes) == (
            "paused",
            10 * 3600,
            3000,
        )
        # Monday 09:00 + 50 h + 10 h credit = Tuesday of the next week, 09:00.
        assert paused.due_at == at(8, 9)
        move(ticket, "in_progress", at(3, 8))  # Wednesday 8-18 credited too
        assert clock(ticket, "resolution").paused_seconds == 20 * 3600
        assert clock(ticket, "resolution").due_at == at(9, 9)


def test_resolving_stops_and_reopening_credits_the_gap(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P3")
        restart(ticket, at(0, 9))
        move(ticket, "assigned", at(0, 9, 5))
        move(ticket, "in_progress", at(0, 9, 10))
        move(ticket, "resolved", at(0, 12))
        done = clock(ticket, "resolution")
        assert (done.state, done.stopped_at) == ("met", at(0, 12))
        assert clock(ticket, "on_site") is None  # P3 has no on-site promise
        move(ticket, "reopened", at(1, 12))
        again = clock(ticket, "resolution")
        # Monday 12-18 and Tuesday 8-12 were not the desk's time: credited back.
        assert (again.state, again.stopped_at, again.paused_seconds) == ("running", None, 36000)
        assert again.due_at == at(4, 9)


def test_a_late_stop_is_a_breach(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P1")
        restart(ticket, at(0, 9))
        move(ticket, "assigned", at(0, 10))  # first response was due at 09:15
        late = clock(ticket, "first_response")
        assert (late.state, late.breached_at) == ("breached", at(0, 9, 15))


def test_cancelling_cancels_every_clock(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P2")
        move(ticket, "cancelled", datetime.now(UTC))
        assert {c.state for c in sla.clocks_of(ticket)} == {"cancelled"}


def test_the_vendor_clock_runs_from_assignment_to_the_vendors_resolution(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        manager = user("manager@demo.test")
        vendor = db.session.scalar(select(Vendor).where(Vendor.tenant_id == demo["demo"]))
        ticket = new_ticket("P3")
        tickets.transition(ticket, manager, "assign", None, {"vendor": vendor})
        first = clock(ticket, "vendor")
        assert first.state == "running"
        assert first.due_at == sla.calendar(first.calendar_id).add(
            first.started_at, timedelta(minutes=1800)
        )
        engineer = user("engineer@demo.test")
        tickets.assign(ticket, manager, None, engineer, None)
        assert clock(ticket, "vendor").state == "cancelled"
        tickets.assign(ticket, manager, None, None, vendor)
        assert clock(ticket, "vendor").state == "running"
        tickets.transition(ticket, manager, "start", None)
        tickets.transition(ticket, manager, "resolve", None, {"resolution_note": "Fixed"})
        assert clock(ticket, "vendor").state == "met"
        assert clock(ticket, "resolution").state == "met"


def test_a_persons_worklog_is_the_first_response(app, demo):
    from cass.services.worklogs import add_worklog

    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P3")
        add_worklog(ticket, user("agent@demo.test"), "Called the driver back")
        assert clock(ticket, "first_response").state == "met"
        assert clock(ticket, "resolution").state == "running"


def test_the_most_specific_policy_wins(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        policy = SlaPolicy(
            tenant_id=demo["demo"], name="Payment P3", priority="P3", category="payment"
        )
        db.session.add(policy)
        db.session.flush()
        db.session.add(
            SlaTarget(
                tenant_id=demo["demo"],
                policy_id=policy.id,
                clock="resolution",
                target_minutes=60,
                pause_statuses=["on_hold"],
            )
        )
        db.session.flush()
        payment = new_ticket("P3", category="payment")
        assert clock(payment, "resolution").target_minutes == 60
        assert clock(payment, "first_response") is None
        hardware = new_ticket("P3")
        assert clock(hardware, "resolution").target_minutes == 1800
        # Editing the category re-applies the policies: the generic one now.
        tickets.update_fields(payment, user("manager@demo.test"), None, {"category": "hardware"})
        assert clock(payment, "resolution").target_minutes == 1800
        assert clock(payment, "first_response").state == "running"


@pytest.mark.parametrize("transition", ["hold"])
def test_bulk_changes_move_the_clocks_too(app, demo, transition):
    with app.app_context(), tenant_context(demo["demo"]):
        manager = user("manager@demo.test")
        engineer = user("engineer@demo.test")
        made = [new_ticket("P3") for _ in range(3)]
        for ticket in made:
            tickets.transition(ticket, manager, "assign", None, {"user": engineer})
        ids = [t.id for t in made]
        result = bulk.bulk_transition(manager, ids, transition, {"hold_reason": "waiting_parts"})
        assert sorted(result.changed) == sorted(ids)
        assert {clock(t, "resolution").state for t in made} == {"paused"}
        bulk.bulk_transition(manager, ids, "resume", {})
        assert {clock(t, "resolution").state for t in made} == {"running"}
        bulk.bulk_priority(manager, ids, "P4")
        assert {clock(t, "resolution").target_minutes for t in made} == {3000}


def test_a_ticket_read_by_key_brings_its_clocks_in_the_same_round_trip(app, demo, monkeypatch):
    """by_key's select carries the clocks' select; the first read uses them, a later one reads
    again (and sees what the transaction wrote since)."""
    reads: list[dict] = []
    run = sla._run

    def counting(statement, params):
        if statement in (sla._TICKET_CLOCKS, sla._NUMBER_CLOCKS):
            reads.append(params)
        return run(statement, params)

    monkeypatch.setattr(sla, "_run", counting)
    with app.app_context(), tenant_context(demo["demo"]):
        agent = user("agent@demo.test")
        made = new_ticket("P3")
        restart(made, at(0, 9))
        key = tickets.format_key(tickets.tenant_prefix(), made.number)
        db.session.commit()

        ticket = tickets.by_key(agent, key)
        assert [c.clock for c in sla.clocks_of(ticket)] == ["first_response", "resolution"]
        assert reads == []  # they came with the ticket
        move(ticket, "on_hold", at(0, 10))  # reads them again: the prefetch is used once
        assert len(reads) == 1
        assert {c.clock: c.state for c in sla.clocks_of(ticket)}["resolution"] == "paused"
        db.session.commit()

        # A new transaction does not use what an earlier one prefetched.
        ticket = tickets.by_key(agent, key)
        db.session.rollback()
        assert {c.clock: c.state for c in sla.clocks_of(ticket)}["resolution"] == "paused"
        assert len(reads) == 3  # what the rolled-back transaction brought is not used


def test_a_new_tickets_policy_comes_in_its_inserts_round_trip(app, demo, monkeypatch):
    """tickets.create reads the SLA policy with the ticket's INSERT, not after it."""
    plans: list[dict] = []
    run = sla._run

    def counting(statement, params):
        if statement == sla._PLAN_SQL:
            plans.append(params)
        return run(statement, params)

    monkeypatch.setattr(sla, "_run", counting)
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket("P1")
        assert plans == []
        started = {c.clock for c in sla.clocks_of(ticket)}
        assert started == {"first_response", "on_site", "resolution"}
        # Another read of the same terms in the transaction reads again (the ride is used once).
        sla.recompute(ticket)
        assert len(plans) == 1
