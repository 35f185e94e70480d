"""SLA clocks: start, pause, resume, stop and recompute them as tickets change, in the same
transaction as the change.

Each clock stores its due and warning instants, computed here in business time, so the sweep
(cass.services.sla_sweep) needs nothing but set-based SQL against `now()`. Paused time is kept
as business seconds earned (`paused_seconds`): a policy or priority change recomputes the due
time from the start, the new target and that credit, so no paused time is ever lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from cass.business_time import TWENTY_FOUR_SEVEN, Calendar
from cass.extensions import db
from cass.models import (
    BusinessCalendar,
    CalendarHoliday,
    Charger,
    SlaClock,
    SlaEvent,
    SlaPolicy,
    SlaTarget,
    Ticket,
)

STOPPED = ("met", "cancelled")
# A clock of a ticket in these statuses has nothing left to measure.
_ENDED = ("cancelled", "closed")

# Calendars by (id, version): a calendar's version is bumped by every change to it.
_CALENDARS: dict[tuple[int, int], Calendar] = {}


def _now() -> datetime:
    return datetime.now(UTC)


def build_calendar(row: BusinessCalendar, holidays: Iterable[date]) -> Calendar:
    """Return the arithmetic calendar of a stored calendar and its holidays."""
    return Calendar(
        timezone=row.timezone,
        hours=tuple(tuple((int(a), int(b)) for a, b in day) for day in row.hours),
        holidays=frozenset(holidays),
        always_open=row.always_open,
    )


def calendar(calendar_id: int | None) -> Calendar:
    """Return calendar `calendar_id` (24/7 for None), cached until the calendar changes."""
    if calendar_id is None:
        return TWENTY_FOUR_SEVEN
    row = db.session.get(BusinessCalendar, calendar_id)
    if row is None:
        return TWENTY_FOUR_SEVEN
    key = (row.id, row.version)
    cached = _CALENDARS.get(key)
    if cached is None:
        days = db.session.scalars(
            select(CalendarHoliday.day).where(CalendarHoliday.calendar_id == row.id)
        )
        if len(_CALENDARS) > 1000:
            _CALENDARS.clear()
        cached = _CALENDARS[key] = build_calendar(row, days)
    return cached


def ticket_calendar_id(ticket: Ticket) -> int | None:
    """Return the calendar a ticket's clocks use by default: its site's, else the tenant's."""
    return db.session.execute(
        text(
            "SELECT id FROM business_calendar WHERE tenant_id = :t"
            " AND (site_id = :site OR (is_default AND site_id IS NULL))"
            " ORDER BY site_id IS NULL LIMIT 1"
        ),
        {"t": ticket.tenant_id, "site": ticket.site_id},
    ).scalar()


def policy_for(ticket: Ticket) -> SlaPolicy | None:
    """Return the active policy that matches the ticket most specifically."""
    model = None
    if ticket.charger_id:
        model = db.session.scalar(select(Charger.model).where(Charger.id == ticket.charger_id))
    specificity = (
        SlaPolicy.site_id.isnot(None).cast(db.Integer)
        + SlaPolicy.category.isnot(None).cast(db.Integer)
        + SlaPolicy.charger_model.isnot(None).cast(db.Integer)
    )
    return db.session.scalars(
        select(SlaPolicy)
        .where(
            SlaPolicy.tenant_id == ticket.tenant_id,
            SlaPolicy.active,
            SlaPolicy.priority == ticket.priority,
            (SlaPolicy.site_id.is_(None)) | (SlaPolicy.site_id == ticket.site_id),
            (SlaPolicy.category.is_(None)) | (SlaPolicy.category == ticket.category),
            (SlaPolicy.charger_model.is_(None)) | (SlaPolicy.charger_model == model),
        )
        .order_by(specificity.desc(), SlaPolicy.id)
        .limit(1)
    ).first()


@dataclass
class _Plan:
    """The clocks a ticket should have under its policy, and the ticket's default calendar."""

    targets: dict[str, SlaTarget]
    default_calendar_id: int | None

    def calendar_id(self, clock: str) -> int | None:
        target = self.targets.get(clock)
        if target is not None and target.calendar_id is not None:
            return target.calendar_id
        return self.default_calendar_id


def _plan(ticket: Ticket) -> _Plan:
    policy = policy_for(ticket)
    targets: dict[str, SlaTarget] = {}
    if policy is not None:
        targets = {
            t.clock: t
            for t in db.session.scalars(select(SlaTarget).where(SlaTarget.policy_id == policy.id))
        }
    return _Plan(targets, ticket_calendar_id(ticket) if targets else None)


def _clocks(ticket: Ticket) -> dict[str, SlaClock]:
    return {
        c.clock: c
        for c in db.session.scalars(select(SlaClock).where(SlaClock.ticket_id == ticket.id))
    }


def event_row(clock: SlaClock, kind: str, at: datetime, **detail: Any) -> SlaEvent:
    """Return an event of the clock (not yet added to the session)."""
    return SlaEvent(
        tenant_id=clock.tenant_id,
        ticket_id=clock.ticket_id,
        clock=clock.clock,
        kind=kind,
        at=at,
        detail=detail,
    )


def _event(clock: SlaClock, kind: str, at: datetime, **detail: Any) -> None:
    db.session.add(event_row(clock, kind, at, **detail))


def reschedule(clock: SlaClock, now: datetime) -> None:
    """Recompute a clock's warning, due and next-escalation instants (e.g. after a level fired)."""
    _schedule(clock, now)


def _targets_of(clock: SlaClock) -> SlaTarget | None:
    return db.session.get(SlaTarget, clock.target_id) if clock.target_id else None


def _schedule(clock: SlaClock, now: datetime, fresh: bool = False) -> None:
    """Compute warn, due and next-escalation instants; `fresh` re-judges past warnings/breaches."""
    cal = calendar(clock.calendar_id)
    target = _targets_of(clock)
    credit = timedelta(seconds=clock.paused_seconds)
    budget = timedelta(minutes=clock.target_minutes)
    warn_percent = target.warn_percent if target else 80
    clock.due_at = cal.add(clock.started_at, budget + credit)
    clock.warn_at = cal.add(clock.started_at, budget * warn_percent / 100 + credit)
    levels = sorted((target.escalations if target else []), key=lambda e: e.get("percent", 100))
    if clock.escalation_level < len(levels):
        share = levels[clock.escalation_level].get("percent", 100) / 100
        clock.next_escalation_at = cal.add(clock.started_at, budget * share + credit)
    else:
        clock.next_escalation_at = None
    if fresh:
        # A new target re-judges the clock: a breach or warning that no longer holds is lifted.
        if clock.due_at > now:
            clock.breached_at = None
        if clock.warn_at > now:
            clock.warned_at = None
    if clock.state not in ("paused", *STOPPED) and clock.stopped_at is None:
        clock.state = (
            "breached" if clock.breached_at else "warning" if clock.warned_at else "running"
        )
    clock.updated_at = now


def _start(
    ticket: Ticket, plan: _Plan, name: str, now: datetime, existing: SlaClock | None = None
) -> SlaClock | None:
    target = plan.targets.get(name)
    if target is None:
        return None
    clock = existing or SlaClock(tenant_id=ticket.tenant_id, ticket_id=ticket.id, clock=name)
    clock.target_id = target.id
    clock.calendar_id = plan.calendar_id(name)
    clock.target_minutes = target.target_minutes
    clock.started_at = now
    clock.paused_seconds = 0
    clock.paused_since = None
    clock.stopped_at = clock.warned_at = clock.breached_at = None
    clock.escalation_level = 0
    clock.state = "running"
    if existing is None:
        db.session.add(clock)
    _schedule(clock, now)
    _event(clock, "started", now, due_at=clock.due_at.isoformat() if clock.due_at else None)
    return clock


def _pause(clock: SlaClock, now: datetime, why: str) -> None:
    if clock.state == "paused" or clock.stopped_at is not None:
        return
    clock.state = "paused"
    clock.paused_since = now
    clock.next_escalation_at = None
    clock.updated_at = now
    _event(clock, "paused", now, status=why)


def _resume(clock: SlaClock, now: datetime, since: datetime | None = None) -> None:
    """Credit the business time since the pause (or the stop) and count again."""
    since = since or clock.paused_since
    if since is not None:
        earned = calendar(clock.calendar_id).between(since, now)
        clock.paused_seconds += int(earned.total_seconds())
    clock.paused_since = None
    clock.stopped_at = None
    clock.state = "running"
    _schedule(clock, now)
    _event(
        clock,
        "resumed",
        now,
        credited_seconds=clock.paused_seconds,
        due_at=clock.due_at.isoformat() if clock.due_at else None,
    )


def _stop(clock: SlaClock, now: datetime, cancel: bool = False) -> None:
    if clock.stopped_at is not None or clock.state in STOPPED:
        return
    if clock.state == "paused" and not cancel:
        _resume(clock, now)
    clock.stopped_at = now
    clock.next_escalation_at = None
    clock.paused_since = None
    if cancel:
        clock.state = "cancelled"
    elif clock.breached_at or (clock.due_at is not None and now > clock.due_at):
        clock.state = "breached"
        clock.breached_at = clock.breached_at or clock.due_at
    else:
        clock.state = "met"
    clock.updated_at = now
    _event(clock, clock.state if clock.state != "breached" else "stopped_late", now)


def _pauses(clock: SlaClock, status: str) -> bool:
    target = _targets_of(clock)
    statuses = target.pause_statuses if target else ["on_hold"]
    return status in statuses


def on_created(ticket: Ticket, now: datetime | None = None) -> None:
    """Start the clocks of a new ticket's policy."""
    now = now or ticket.created_at or _now()
    plan = _plan(ticket)
    for name in ("first_response", "resolution", "on_site"):
        _start(ticket, plan, name, now)
    if ticket.assignee_vendor_id:
        _start(ticket, plan, "vendor", now)


def on_status(ticket: Ticket, old: str, new: str, now: datetime | None = None) -> None:
    """Move the ticket's clocks for a status change (already applied to the ticket)."""
    now = now or _now()
    clocks = _clocks(ticket)
    if not clocks:
        return
    for name, clock in clocks.items():
        if new in _ENDED:
            if clock.stopped_at is None:
                _stop(clock, now, cancel=True)
            continue
        if name == "first_response" and old == "new":
            _stop(clock, now)
            continue
        if new == "resolved" and name in ("resolution", "vendor", "on_site"):
            # On-site arrival is moot once the ticket is solved without a visit.
            _stop(clock, now, cancel=name == "on_site" and clock.stopped_at is None)
            continue
        if old == "resolved" and new == "reopened" and name == "resolution":
            # The time between resolving and reopening is not the desk's: credit it back.
            if clock.stopped_at is not None and clock.state != "cancelled":
                since = clock.stopped_at
                clock.state = "breached" if clock.breached_at else "running"
                _resume(clock, now, since)
            continue
        if clock.stopped_at is not None:
            continue
        was_paused, pauses = clock.state == "paused", _pauses(clock, new)
        if pauses and not was_paused:
            _pause(clock, now, new)
        elif was_paused and not pauses:
            _resume(clock, now)


def on_first_answer(ticket: Ticket, now: datetime | None = None) -> None:
    """Stop the first-response clock: someone answered the ticket."""
    clock = _clocks(ticket).get("first_response")
    if clock is not None:
        _stop(clock, now or _now())


def on_assignment(ticket: Ticket, old_vendor_id: int | None, now: datetime | None = None) -> None:
    """Start, restart or cancel the vendor clock when the assigned vendor changes."""
    if old_vendor_id == ticket.assignee_vendor_id:
        return
    now = now or _now()
    clock = _clocks(ticket).get("vendor")
    if ticket.assignee_vendor_id is None:
        if clock is not None:
            _stop(clock, now, cancel=True)
        return
    _start(ticket, _plan(ticket), "vendor", now, existing=clock)


def stop_clock(ticket: Ticket, name: str, now: datetime | None = None) -> None:
    """Stop one clock of the ticket (e.g. on-site arrival at an engineer's check-in)."""
    clock = _clocks(ticket).get(name)
    if clock is not None:
        _stop(clock, now or _now())


def recompute(ticket: Ticket, now: datetime | None = None, reason: str = "policy") -> None:
    """Re-apply the ticket's policy (after a priority, site or policy change), keeping credit."""
    now = now or _now()
    plan = _plan(ticket)
    clocks = _clocks(ticket)
    for name, clock in clocks.items():
        target = plan.targets.get(name)
        if target is None:
            if clock.stopped_at is None:
                _stop(clock, now, cancel=True)
            continue
        if clock.state == "cancelled":
            continue
        clock.target_id = target.id
        clock.target_minutes = target.target_minutes
        clock.calendar_id = plan.calendar_id(name)
        _schedule(clock, now, fresh=True)
        if clock.stopped_at is not None:
            late = clock.due_at is not None and clock.stopped_at > clock.due_at
            clock.state = "breached" if late else "met"
            clock.breached_at = clock.due_at if late else None
        _event(
            clock,
            "recomputed",
            now,
            reason=reason,
            due_at=clock.due_at.isoformat() if clock.due_at else None,
        )
    # A clock the old policy lacked starts as if it had run from the ticket's creation.
    if ticket.status not in _ENDED:
        for name in ("first_response", "resolution", "on_site"):
            if name in plan.targets and name not in clocks and _applies(ticket, name):
                started = _start(ticket, plan, name, ticket.created_at or now)
                if started is not None:
                    _schedule(started, now, fresh=True)


def _applies(ticket: Ticket, name: str) -> bool:
    if name == "first_response":
        return ticket.status == "new"
    return ticket.status != "resolved"


def clocks_of(ticket: Ticket) -> list[SlaClock]:
    """Return the ticket's clocks in display order."""
    order = ["first_response", "on_site", "vendor", "resolution"]
    return sorted(_clocks(ticket).values(), key=lambda c: order.index(c.clock))


def remaining(clock: SlaClock, now: datetime | None = None) -> timedelta | None:
    """Return the business time left until due (negative once late); None when stopped."""
    if clock.stopped_at is not None or clock.due_at is None:
        return None
    now = now or _now()
    cal = calendar(clock.calendar_id)
    if clock.state == "paused" and clock.paused_since is not None:
        return cal.between(clock.paused_since, clock.due_at)
    return cal.between(now, clock.due_at)


@dataclass(frozen=True)
class AtRisk:
    """One live clock near or past its due time, with its ticket."""

    clock: SlaClock
    ticket: Ticket
    remaining: timedelta | None


def at_risk(
    visible_tickets: Any,
    horizon: timedelta = timedelta(hours=4),
    after: tuple[datetime, int] | None = None,
    limit: int = 50,
    now: datetime | None = None,
) -> list[AtRisk]:
    """Return live clocks of visible tickets warned, breached or due within `horizon`, soonest
    first, after the keyset `after` (due_at, clock id)."""
    now = now or _now()
    tickets = visible_tickets.subquery()
    query = (
        select(SlaClock, Ticket)
        .join(Ticket, Ticket.id == SlaClock.ticket_id)
        .where(
            Ticket.id.in_(select(tickets.c.id)),
            SlaClock.tenant_id == Ticket.tenant_id,
            SlaClock.state.in_(("running", "warning", "breached")),
            SlaClock.stopped_at.is_(None),
            (SlaClock.due_at <= now + horizon) | SlaClock.state.in_(("warning", "breached")),
        )
        .order_by(SlaClock.due_at, SlaClock.id)
        .limit(limit)
    )
    if after is not None:
        query = query.where(
            (SlaClock.due_at > after[0])
            | ((SlaClock.due_at == after[0]) & (SlaClock.id > after[1]))
        )
    return [AtRisk(c, t, remaining(c, now)) for c, t in db.session.execute(query).all()]
