"""Site visits: book, reschedule, cancel, check in and out; free slots; the people told.

Double booking is the database's to refuse (exclusion constraint ex_visit_engineer_overlap, so
two dispatchers booking one engineer at once cannot both succeed); the loser gets the next free
slots. A visit outside the engineer's working hours (their calendar, else the tenant's default)
needs an explicit override. Checking in stops the ticket's on-site SLA clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from psycopg import errors as pg_errors
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cass.business_time import Calendar
from cass.extensions import db
from cass.models import BusinessCalendar, Ticket, User, Vendor
from cass.models.visits import VISIT_STATUSES, Visit
from cass.permissions import can
from cass.services import notifications, sla
from cass.services.audit import audit
from cass.tenancy import current_tenant_id

# The statuses a visit moves through by hand; on_site and done come with check-in and -out.
ENDED = frozenset({"done", "cancelled", "no_access"})
LONGEST = timedelta(hours=24)
SLOT_STEP = timedelta(minutes=15)
SEARCH_DAYS = 14


@dataclass
class VisitProblem(ValueError):
    """A visit that cannot be booked as asked: the field at fault, why, and free slots."""

    errors: dict[str, str]
    slots: list[datetime] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(f"{k}: {v}" for k, v in self.errors.items())


def _now() -> datetime:
    return datetime.now(UTC)


def book(
    ticket: Ticket,
    actor: User,
    *,
    starts_at: datetime,
    ends_at: datetime,
    engineer_id: int | None = None,
    vendor_id: int | None = None,
    notes: str = "",
    override: bool = False,
) -> Visit:
    """Book a visit for `ticket`; raise VisitProblem when it cannot be (nothing is written)."""
    engineer = _engineer(engineer_id)
    vendor = _vendor(vendor_id)
    if engineer is None and vendor is None:
        raise VisitProblem({"engineer_id": "Pick an engineer or a vendor."})
    _check_times(starts_at, ends_at, engineer, override)
    visit = Visit(
        tenant_id=current_tenant_id(),
        ticket_id=ticket.id,
        engineer_id=engineer.id if engineer else None,
        vendor_id=vendor.id if vendor else None,
        site_id=ticket.site_id,
        starts_at=starts_at,
        ends_at=ends_at,
        notes=notes.strip(),
        outside_hours=override,
        created_by_id=actor.id,
    )
    _write(visit)
    audit(actor.id, "visit", visit.id, "book", None, _snapshot(visit))
    _tell(visit, "visit_booked", f"Visit booked: {ticket_label(ticket)}", ticket)
    return visit


def reschedule(
    visit: Visit, actor: User, *, starts_at: datetime, ends_at: datetime, override: bool = False
) -> Visit:
    """Move a visit to another time; raise VisitProblem (the visit unchanged) if it cannot be."""
    if visit.status in ENDED:
        raise VisitProblem({"starts_at": "This visit is over; book a new one."})
    _check_times(starts_at, ends_at, _engineer(visit.engineer_id), override)
    before = _snapshot(visit)
    _write(visit, starts_at=starts_at, ends_at=ends_at, outside_hours=override, updated_at=_now())
    audit(actor.id, "visit", visit.id, "reschedule", before, _snapshot(visit))
    ticket = db.session.get(Ticket, visit.ticket_id)
    _tell(visit, "visit_changed", f"Visit moved: {ticket_label(ticket)}", ticket)
    return visit


def set_status(visit: Visit, actor: User, status: str, now: datetime | None = None) -> Visit:
    """Move a visit to `status`; on_site checks in (stopping the on-site clock), done out."""
    if status not in VISIT_STATUSES:
        raise VisitProblem({"status": "Pick one of the statuses offered."})
    if visit.status in ENDED:
        raise VisitProblem({"status": "This visit is over."})
    now = now or _now()
    before = _snapshot(visit)
    ticket = db.session.get(Ticket, visit.ticket_id)
    if status == "on_site" and visit.checked_in_at is None:
        visit.checked_in_at = now
        sla.stop_clock(ticket, "on_site", now)
    if status == "done":
        visit.checked_in_at = visit.checked_in_at or now
        visit.checked_out_at = now
    visit.status, visit.updated_at = status, now
    db.session.flush()
    audit(actor.id, "visit", visit.id, status, before, _snapshot(visit))
    if status == "cancelled":
        _tell(visit, "visit_cancelled", f"Visit cancelled: {ticket_label(ticket)}", ticket)
    return visit


def check_in(visit: Visit, actor: User, now: datetime | None = None) -> Visit:
    """Record the engineer's arrival (the ticket's on-site SLA clock stops)."""
    return set_status(visit, actor, "on_site", now)


def check_out(visit: Visit, actor: User, now: datetime | None = None) -> Visit:
    """Record the engineer leaving: the visit is done."""
    return set_status(visit, actor, "done", now)


def free_slots(
    engineer_id: int, after: datetime, length: timedelta, count: int = 3
) -> list[datetime]:
    """Return the first `count` starts at or after `after` when the engineer is free for
    `length` within working hours (one a gap), looking up to SEARCH_DAYS ahead."""
    calendar = working_calendar(engineer_id)
    start = _round_up(after)
    until = start + timedelta(days=SEARCH_DAYS)
    busy = db.session.execute(
        select(Visit.starts_at, Visit.ends_at)
        .where(
            Visit.tenant_id == current_tenant_id(),
            Visit.engineer_id == engineer_id,
            Visit.status != "cancelled",
            Visit.ends_at > start,
            Visit.starts_at < until,
        )
        .order_by(Visit.starts_at)
    ).all()
    slots: list[datetime] = []
    for lo, hi in _open_spans(calendar, start, until):
        for gap_start, gap_end in _gaps(max(lo, start), hi, busy):
            slot = _round_up(gap_start)
            if slot + length <= gap_end:
                slots.append(slot)
                if len(slots) == count:
                    return slots
    return slots


def working_calendar(engineer_id: int | None) -> Calendar:
    """Return the engineer's working hours: their calendar, else the tenant's default one."""
    calendar_id = None
    if engineer_id is not None:
        calendar_id = db.session.scalar(select(User.calendar_id).where(User.id == engineer_id))
    if calendar_id is None:
        calendar_id = db.session.scalar(
            select(BusinessCalendar.id).where(
                BusinessCalendar.tenant_id == current_tenant_id(), BusinessCalendar.is_default
            )
        )
    return sla.calendar(calendar_id)


def ticket_label(ticket: Ticket | None) -> str:
    """Return how a message names the ticket."""
    return f"#{ticket.number} {ticket.title}" if ticket is not None else "a ticket"


# --- helpers -----------------------------------------------------------------------------------


def _engineer(engineer_id: int | None) -> User | None:
    if engineer_id is None:
        return None
    user = db.session.scalar(
        select(User).where(User.tenant_id == current_tenant_id(), User.id == engineer_id)
    )
    if user is None or not user.is_active or not can(user.role, "tickets.work"):
        raise VisitProblem({"engineer_id": "Pick an engineer of this operator."})
    return user


def _vendor(vendor_id: int | None) -> Vendor | None:
    if vendor_id is None:
        return None
    vendor = db.session.scalar(
        select(Vendor).where(Vendor.tenant_id == current_tenant_id(), Vendor.id == vendor_id)
    )
    if vendor is None:
        raise VisitProblem({"vendor_id": "Pick a vendor of this operator."})
    return vendor


def _check_times(
    starts_at: datetime, ends_at: datetime, engineer: User | None, override: bool
) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise ValueError("visit times must be timezone-aware")
    if ends_at <= starts_at:
        raise VisitProblem({"ends_at": "The end is not after the start."})
    if ends_at - starts_at > LONGEST:
        raise VisitProblem({"ends_at": "A visit lasts at most 24 hours; book one a day."})
    if engineer is None or override:
        return
    calendar = working_calendar(engineer.id)
    if calendar.has_open_hours and calendar.between(starts_at, ends_at) < ends_at - starts_at:
        raise VisitProblem(
            {"starts_at": f"This is outside {engineer.name}'s working hours: confirm to book."},
            free_slots(engineer.id, starts_at, ends_at - starts_at),
        )


def _write(visit: Visit, **changes: object) -> None:
    """Insert the visit, or make `changes` to it, in a savepoint; a double booking raises
    VisitProblem (the savepoint rolled back: a new visit is gone, a moved one as it was)."""
    engineer_id = visit.engineer_id
    start = changes.get("starts_at", visit.starts_at)
    length = changes.get("ends_at", visit.ends_at) - start  # type: ignore[operator]
    try:
        with db.session.begin_nested():
            for name, value in changes.items():
                setattr(visit, name, value)
            db.session.add(visit)
            db.session.flush()
    except IntegrityError as exc:
        if not isinstance(exc.orig, pg_errors.ExclusionViolation) or engineer_id is None:
            raise
        engineer = db.session.get(User, engineer_id)
        raise VisitProblem(
            {"starts_at": f"{engineer.name if engineer else 'The engineer'} is booked then."},
            free_slots(engineer_id, start, length),
        ) from exc


def _snapshot(visit: Visit) -> dict[str, object]:
    return {
        "ticket_id": visit.ticket_id,
        "engineer_id": visit.engineer_id,
        "vendor_id": visit.vendor_id,
        "starts_at": visit.starts_at.isoformat(),
        "ends_at": visit.ends_at.isoformat(),
        "status": visit.status,
        "outside_hours": visit.outside_hours,
    }


def _tell(visit: Visit, kind: str, subject: str, ticket: Ticket | None) -> None:
    """Queue a message to the visit's engineer, or to the people of its vendor."""
    when = visit.starts_at.isoformat(timespec="minutes")
    body = f"{subject}\nWhen: {when} to {visit.ends_at.isoformat(timespec='minutes')}"
    people: Iterable[int]
    if visit.engineer_id is not None:
        people = [visit.engineer_id]
    else:
        people = db.session.scalars(
            select(User.id).where(
                User.tenant_id == current_tenant_id(),
                User.vendor_id == visit.vendor_id,
                User.is_active_flag,
            )
        ).all()
    for user_id in people:
        notifications.queue(
            user_id,
            kind,
            subject,
            body,
            ticket_id=ticket.id if ticket else None,
            dedup_key=f"{kind}:{visit.id}:{visit.updated_at.isoformat()}",
        )


def _round_up(moment: datetime) -> datetime:
    """Return `moment` rounded up to the next quarter hour."""
    step = int(SLOT_STEP.total_seconds())
    seconds = int(moment.timestamp())
    rounded = -(-seconds // step) * step
    return datetime.fromtimestamp(rounded, UTC)


def _open_spans(
    calendar: Calendar, start: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    if calendar.always_open or not calendar.has_open_hours:
        return [(start, until)]
    spans = []
    day = start.astimezone(calendar.zone).date() - timedelta(days=1)
    while datetime.combine(day, datetime.min.time(), UTC) < until + timedelta(days=1):
        spans += [(lo, hi) for lo, hi in calendar.open_spans(day) if hi > start and lo < until]
        day += timedelta(days=1)
    return sorted(spans)


def _gaps(
    lo: datetime, hi: datetime, busy: list[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """Return the free intervals of [lo, hi) around the busy ones (sorted by start)."""
    gaps, cursor = [], lo
    for b_start, b_end in busy:
        if b_end <= cursor or b_start >= hi:
            continue
        if b_start > cursor:
            gaps.append((cursor, b_start))
        cursor = max(cursor, b_end)
    if cursor < hi:
        gaps.append((cursor, hi))
    return gaps
