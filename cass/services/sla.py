"""SLA clocks: start, pause, resume, stop and recompute them as tickets change, in the same
transaction as the change.

Each clock stores its due and warning instants, computed here in business time, so the sweep
(cass.services.sla_sweep) needs nothing but set-based SQL against `now()`. Paused time is kept
as business seconds earned (`paused_seconds`): a policy or priority change recomputes the due
time from the start, the new target and that credit, so no paused time is ever lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, wraps
from typing import Any, TypeVar

from sqlalchemy import bindparam, select, text, true
from sqlalchemy.orm import aliased

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

F = TypeVar("F", bound=Callable[..., Any])
STOPPED = ("met", "cancelled")
# A clock of a ticket in these statuses has nothing left to measure.
_ENDED = ("cancelled", "closed")

# Calendars by (id, version): a calendar's version is bumped by every change to it.
_CALENDARS: dict[tuple[int, int], Calendar] = {}


def _now() -> datetime:
    return datetime.now(UTC)


def _quiet(function: F) -> F:
    """Run a clock change without autoflush: its reads need none of the pending writes."""

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with db.session.no_autoflush:
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def build_calendar(row: BusinessCalendar, holidays: Iterable[date]) -> Calendar:
    """Return the arithmetic calendar of a stored calendar and its holidays."""
    return Calendar(
        timezone=row.timezone,
        hours=tuple(tuple((int(a), int(b)) for a, b in day) for day in row.hours),
        holidays=frozenset(holidays),
        always_open=row.always_open,
    )


def calendar(calendar_id: int | None, version: int | None = None) -> Calendar:
    """Return calendar `calendar_id` (24/7 for None), cached until the calendar changes.

    Given the version the caller read with its clocks, a cached calendar costs no query.
    """
    if calendar_id is None:
        return TWENTY_FOUR_SEVEN
    if version is not None and (cached := _CALENDARS.get((calendar_id, version))) is not None:
        return cached
    row = db.session.execute(
        select(
            BusinessCalendar.id,
            BusinessCalendar.version,
            BusinessCalendar.timezone,
            BusinessCalendar.hours,
            BusinessCalendar.always_open,
        ).where(BusinessCalendar.id == calendar_id)
    ).first()
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
        cached = _CALENDARS[key] = build_calendar(row, days)  # type: ignore[arg-type]
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
        .order_by(_specificity().desc(), SlaPolicy.id)
        .limit(1)
    ).first()


@dataclass
class _Plan:
    """The clocks a ticket should have under its policy, its default calendar, and the
    version of every calendar involved (so cached calendars need no query)."""

    targets: dict[str, SlaTarget]
    default_calendar_id: int | None
    versions: dict[int, int]

    def calendar_id(self, clock: str) -> int | None:
        target = self.targets.get(clock)
        if target is not None and target.calendar_id is not None:
            return target.calendar_id
        return self.default_calendar_id


def _specificity() -> Any:
    return (
        SlaPolicy.site_id.isnot(None).cast(db.Integer)
        + SlaPolicy.category.isnot(None).cast(db.Integer)
        + SlaPolicy.charger_model.isnot(None).cast(db.Integer)
    )


@cache
def _plan_statement() -> Any:
    """Build, once, the statement reading a ticket's policy targets and their calendars."""
    model = select(Charger.model).where(Charger.id == bindparam("charger")).scalar_subquery()
    policy = (
        select(SlaPolicy.id)
        .where(
            SlaPolicy.tenant_id == bindparam("tenant"),
            SlaPolicy.active,
            SlaPolicy.priority == bindparam("priority"),
            (SlaPolicy.site_id.is_(None)) | (SlaPolicy.site_id == bindparam("site")),
            (SlaPolicy.category.is_(None)) | (SlaPolicy.category == bindparam("category")),
            (SlaPolicy.charger_model.is_(None)) | (SlaPolicy.charger_model == model),
        )
        .order_by(_specificity().desc(), SlaPolicy.id)
        .limit(1)
        .scalar_subquery()
    )
    default = (
        select(BusinessCalendar.id, BusinessCalendar.version)
        .where(
            BusinessCalendar.tenant_id == bindparam("tenant"),
            (BusinessCalendar.site_id == bindparam("site"))
            | (BusinessCalendar.is_default & BusinessCalendar.site_id.is_(None)),
        )
        .order_by(BusinessCalendar.site_id.is_(None))
        .limit(1)
        .subquery()
    )
    own = aliased(BusinessCalendar)
    return (
        select(SlaTarget, own.version, default.c.id, default.c.version)
        .outerjoin(own, own.id == SlaTarget.calendar_id)
        .outerjoin(default, true())
        .where(SlaTarget.policy_id == policy)
    )


def _plan(ticket: Ticket) -> _Plan:
    """Read the matching policy's targets and the calendars they use, in one statement."""
    rows = db.session.execute(
        _plan_statement(),
        {
            "tenant": ticket.tenant_id,
            "priority": ticket.priority,
            "site": ticket.site_id,
            "category": ticket.category,
            "charger": ticket.charger_id,
        },
    ).all()
    versions: dict[int, int] = {}
    targets: dict[str, SlaTarget] = {}
    default_id = None
    for target, own_version, default_id, default_version in rows:
        targets[target.clock] = target
        if target.calendar_id is not None:
            versions[target.calendar_id] = own_version
        if default_id is not None:
            versions[default_id] = default_version
    return _Plan(targets, default_id, versions)


@cache
def _clocks_statement() -> Any:
    """Build, once, the statement reading a ticket's clocks, targets and calendar versions."""
    return (
        select(SlaClock, SlaTarget, BusinessCalendar.version)
        .outerjoin(SlaTarget, SlaTarget.id == SlaClock.target_id)
        .outerjoin(BusinessCalendar, BusinessCalendar.id == SlaClock.calendar_id)
        .where(SlaClock.ticket_id == bindparam("ticket"))
    )


def _clocks(ticket: Ticket) -> dict[str, SlaClock]:
    """Read the ticket's clocks with their targets and calendar versions, in one statement."""
    rows = db.session.execute(_clocks_statement(), {"ticket": ticket.id}).all()
    for clock, target, version in rows:
        _remember(clock, target, version)
    return {clock.clock: clock for clock, _, _ in rows}


def _remember(clock: SlaClock, target: SlaTarget | None, version: int | None) -> None:
    # Plain attributes beside the mapped ones: what _schedule() needs, already read.
    clock.__dict__["_sla_terms"] = (target, version)


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
    terms = clock.__dict__.get("_sla_terms")
    if terms is not None and (terms[0] is None or terms[0].id == clock.target_id):
        return terms[0]
    return db.session.get(SlaTarget, clock.target_id) if clock.target_id else None


def _version_of(clock: SlaClock) -> int | None:
    terms = clock.__dict__.get("_sla_terms")
    return terms[1] if terms is not None else None


def _schedule(clock: SlaClock, now: datetime, fresh: bool = False) -> None:
    """Compute warn, due and next-escalation instants; `fresh` re-judges past warnings/breaches."""
    cal = calendar(clock.calendar_id, _version_of(clock))
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
    _remember(clock, target, plan.versions.get(clock.calendar_id or 0))
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
        earned = calendar(clock.calendar_id, _version_of(clock)).between(since, now)
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


@_quiet
def on_created(ticket: Ticket, now: datetime | None = None) -> None:
    """Start the clocks of a new ticket's policy."""
    now = now or ticket.created_at or _now()
    plan = _plan(ticket)
    for name in ("first_response", "resolution", "on_site"):
        _start(ticket, plan, name, now)
    if ticket.assignee_vendor_id:
        _start(ticket, plan, "vendor", now)


@_quiet
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


@_quiet
def on_first_answer(ticket: Ticket, now: datetime | None = None) -> None:
    """Stop the first-response clock: someone answered the ticket."""
    clock = _clocks(ticket).get("first_response")
    if clock is not None:
        _stop(clock, now or _now())


@_quiet
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


@_quiet
def stop_clock(ticket: Ticket, name: str, now: datetime | None = None) -> None:
    """Stop one clock of the ticket (e.g. on-site arrival at an engineer's check-in)."""
    clock = _clocks(ticket).get(name)
    if clock is not None:
        _stop(clock, now or _now())


@_quiet
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
        _remember(clock, target, plan.versions.get(clock.calendar_id or 0))
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


def remaining(
    clock: SlaClock, now: datetime | None = None, version: int | None = None
) -> timedelta | None:
    """Return the business time left until due (negative once late); None when stopped."""
    if clock.stopped_at is not None or clock.due_at is None:
        return None
    now = now or _now()
    cal = calendar(clock.calendar_id, version or _version_of(clock))
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
        select(SlaClock, Ticket, BusinessCalendar.version)
        .join(Ticket, Ticket.id == SlaClock.ticket_id)
        .outerjoin(BusinessCalendar, BusinessCalendar.id == SlaClock.calendar_id)
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
    return [AtRisk(c, t, remaining(c, now, v)) for c, t, v in db.session.execute(query).all()]


@dataclass(frozen=True)
class Badge:
    """How one clock of a ticket reads on its page: name, state and business time left."""

    clock: str
    label: str
    state: str
    due_at: datetime | None
    left: timedelta | None


def badges(ticket: Ticket, now: datetime | None = None) -> list[Badge]:
    """Return the ticket's clocks as badges, in display order (one statement)."""
    from cass.models import CLOCKS

    now = now or _now()
    return [
        Badge(c.clock, CLOCKS[c.clock], c.state, c.due_at, remaining(c, now))
        for c in clocks_of(ticket)
    ]
