"""SLA clocks: start, pause, resume, stop and recompute them as tickets change, in the same
transaction as the change.

Each clock stores its due and warning instants, computed here in business time, so the sweep
(cass.services.sla_sweep) needs nothing but set-based SQL against `now()`. Paused time is kept
as business seconds earned (`paused_seconds`): a policy or priority change recomputes the due
time from the start, the new target and that credit, so no paused time is ever lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import g, has_app_context
from psycopg.rows import namedtuple_row
from sqlalchemy import select

from cass.business_time import TWENTY_FOUR_SEVEN, Calendar
from cass.extensions import db
from cass.models import (
    BusinessCalendar,
    CalendarHoliday,
    SlaClock,
    SlaTarget,
    Ticket,
)
from cass.pool import alongside

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


@dataclass
class _Plan:
    """The clocks a ticket should have under its policy, its default calendar, and the
    version of every calendar involved (so cached calendars need no query)."""

    targets: dict[str, SlaTarget]
    default_calendar_id: int | None
    versions: dict[int, int]
    policy_id: int | None = None

    def calendar_id(self, clock: str) -> int | None:
        target = self.targets.get(clock)
        if target is not None and target.calendar_id is not None:
            return target.calendar_id
        return self.default_calendar_id


def _driver_sql(statement: str) -> str:
    """Turn :name parameters into psycopg's %(name)s (a `::type` cast stays as it is)."""
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement)


def _run(statement: str, params: dict[str, Any]) -> list[Any]:
    """Run a statement on the session's connection, in its transaction and tenant binding,
    straight through psycopg: these few statements run on every ticket change, and
    SQLAlchemy's handling of a statement costs more than the statement itself."""
    connection = db.session.connection().connection.driver_connection
    with connection.cursor(row_factory=namedtuple_row) as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


@dataclass
class Terms:
    """One clock of a policy as the clocks need it (the fields of sla_target they read)."""

    id: int
    clock: str
    target_minutes: int
    calendar_id: int | None
    pause_statuses: list[str]
    warn_percent: int
    escalations: list[dict[str, Any]]


# Parameters are cast: psycopg sends them untyped, and a NULL one needs a type.
_PLAN_SQL = _driver_sql("""
WITH policy AS (
    SELECT p.id FROM sla_policy p
    WHERE p.tenant_id = CAST(:tenant AS bigint) AND p.active
      AND p.priority = CAST(:priority AS text)
      AND (p.site_id IS NULL OR p.site_id = CAST(:site AS bigint))
      AND (p.category IS NULL OR p.category = CAST(:category AS text))
      AND (p.charger_model IS NULL
           OR p.charger_model = (SELECT model FROM charger WHERE id = CAST(:charger AS bigint)))
    ORDER BY (p.site_id IS NOT NULL)::int + (p.category IS NOT NULL)::int
             + (p.charger_model IS NOT NULL)::int DESC, p.id
    LIMIT 1
), fallback AS (
    SELECT id, version FROM business_calendar
    WHERE tenant_id = CAST(:tenant AS bigint)
      AND (site_id = CAST(:site AS bigint) OR (is_default AND site_id IS NULL))
    ORDER BY site_id IS NULL
    LIMIT 1
)
SELECT t.id, t.clock, t.target_minutes, t.calendar_id, t.pause_statuses, t.warn_percent,
       t.escalations, own.version AS own_version, f.id AS default_id, f.version AS default_version,
       t.policy_id
FROM sla_target t
JOIN policy ON t.policy_id = policy.id
LEFT JOIN business_calendar own ON own.id = t.calendar_id
LEFT JOIN fallback f ON true
""")


def _plan_params(ticket: Ticket) -> dict[str, Any]:
    return {
        "tenant": ticket.tenant_id,
        "priority": ticket.priority,
        "site": ticket.site_id,
        "category": ticket.category,
        "charger": ticket.charger_id,
    }


RODE_ALONG = "sla_rode_along"  # in flask.g: {(session transaction, key): rows}


@contextmanager
def _ride_along(key: tuple[Any, ...], sql: str, params: dict[str, Any]) -> Iterator[None]:
    """Send `sql` with the next statement the block sends, in its round trip; keep its rows for
    _rows_for(key) in this transaction (none kept: it did not ride, or found nothing)."""
    if not has_app_context():
        yield
        return
    with alongside(db.session.connection(), sql, params) as rows:
        yield
    if rows:
        g.setdefault(RODE_ALONG, {})[db.session().get_transaction(), key] = rows


def _rows_for(key: tuple[Any, ...], sql: str, params: dict[str, Any]) -> list[Any]:
    """Return the rows that rode along for `key` in this transaction, once (a later read must
    see what the transaction wrote since), else run `sql`."""
    kept = g.get(RODE_ALONG) if has_app_context() else None
    rows = kept.pop((db.session().get_transaction(), key), None) if kept else None
    return _run(sql, params) if rows is None else rows


def plan_alongside(ticket: Ticket) -> Any:
    """Read the policy the ticket matches with the next statement the block sends (e.g. the
    ticket's own INSERT), in its round trip; plan_for() of the same terms uses it once."""
    params = _plan_params(ticket)
    return _ride_along(("plan", *params.values()), _PLAN_SQL, params)


def plan_for(ticket: Ticket) -> _Plan:
    """Read the matching policy's targets and the calendars they use, in one statement (a
    policy always has a target: the admin refuses one without), unless it came along already."""
    params = _plan_params(ticket)
    rows = _rows_for(("plan", *params.values()), _PLAN_SQL, params)
    versions: dict[int, int] = {}
    targets: dict[str, Terms] = {}
    default_id = policy_id = None
    # By position: the rows come as named tuples from _run, as plain ones from a ride-along.
    for row in rows:
        policy_id = row[10]
        targets[row[1]] = Terms(*row[:7])
        if row[3] is not None:
            versions[row[3]] = row[7]
        default_id = row[8]
        if default_id is not None:
            versions[default_id] = row[9]
    return _Plan(targets, default_id, versions, policy_id)  # type: ignore[arg-type]


# The stored columns of a clock, in the order the statements below read and write them.
CLOCK_COLUMNS = (
    "id",
    "tenant_id",
    "ticket_id",
    "clock",
    "target_id",
    "calendar_id",
    "target_minutes",
    "started_at",
    "paused_seconds",
    "paused_since",
    "warn_at",
    "due_at",
    "state",
    "stopped_at",
    "warned_at",
    "breached_at",
    "escalation_level",
    "next_escalation_at",
)


@dataclass(eq=False)
class ClockRow:
    """A ticket's clock read into plain Python: changed in memory, written back by _persist()."""

    id: int | None
    tenant_id: int
    ticket_id: int
    clock: str
    target_id: int | None = None
    calendar_id: int | None = None
    target_minutes: int = 0
    started_at: datetime | None = None
    paused_seconds: int = 0
    paused_since: datetime | None = None
    warn_at: datetime | None = None
    due_at: datetime | None = None
    state: str = "running"
    stopped_at: datetime | None = None
    warned_at: datetime | None = None
    breached_at: datetime | None = None
    escalation_level: int = 0
    next_escalation_at: datetime | None = None
    updated_at: datetime | None = None
    pending_events: list[dict[str, Any]] = field(default_factory=list)
    loaded: tuple[Any, ...] = ()

    def values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in CLOCK_COLUMNS)

    @property
    def changed(self) -> bool:
        return self.values() != self.loaded or bool(self.pending_events)


_CLOCKS_SQL = f"""
SELECT {", ".join("c." + name for name in CLOCK_COLUMNS)},
       t.id AS t_id, t.clock AS t_clock, t.target_minutes AS t_minutes,
       t.calendar_id AS t_calendar, t.pause_statuses, t.warn_percent, t.escalations,
       b.version AS calendar_version
FROM sla_clock c
LEFT JOIN sla_target t ON t.id = c.target_id
LEFT JOIN business_calendar b ON b.id = c.calendar_id
"""  # noqa: S608 (fixed column names)
_TICKET_CLOCKS = _driver_sql(_CLOCKS_SQL + " WHERE c.ticket_id = CAST(:ticket AS bigint)")


# The same, for the ticket with a number (in the tenant), to ride with the ticket's own select.
_NUMBER_CLOCKS = _driver_sql(
    _CLOCKS_SQL  # noqa: S608 (fixed SQL)
    + """WHERE c.ticket_id = (
    SELECT t.id FROM ticket t
    WHERE t.tenant_id = CAST(:tenant AS bigint) AND t.number = CAST(:number AS int)
)"""
)


def _rows(result: Any) -> list[ClockRow]:
    """Turn rows of _CLOCKS_SQL (tuples or named) into clock rows with their terms."""
    n = len(CLOCK_COLUMNS)
    clocks = []
    for row in result:
        clock = ClockRow(*row[:n])
        clock.loaded = clock.values()
        terms = Terms(*row[n : n + 7]) if row[n] else None
        _remember(clock, terms, row[n + 7])  # type: ignore[arg-type]
        clocks.append(clock)
    return clocks


def clocks_alongside(tenant_id: int | None, number: int) -> Any:
    """Read the clocks of ticket `number` with the next statement the block sends (the ticket's
    own select), in its round trip; the ticket's first clock read in this transaction uses them."""
    params = {"tenant": tenant_id, "number": number}
    return _ride_along(("clocks", tenant_id, number), _NUMBER_CLOCKS, params)


_DUE_ESCALATIONS = _driver_sql(
    _CLOCKS_SQL
    + """WHERE c.next_escalation_at <= CAST(:now AS timestamptz)
  AND c.state IN ('running', 'warning', 'breached')
  AND (CAST(:clock AS bigint) IS NULL OR c.id = CAST(:clock AS bigint))
ORDER BY c.next_escalation_at
LIMIT CAST(:limit AS int)
FOR UPDATE OF c SKIP LOCKED"""
)


def due_escalations(now: datetime, limit: int, clock_id: int | None = None) -> list[ClockRow]:
    """Lock and return up to `limit` live clocks (or clock `clock_id`) whose next escalation level
    is due, with their targets and calendar versions (one statement; clocks another scheduler
    holds are skipped)."""
    return _rows(_run(_DUE_ESCALATIONS, {"now": now, "limit": limit, "clock": clock_id}))


def escalation_levels(target: Any) -> list[dict[str, Any]]:
    """Return a target's escalation levels, lowest percent first."""
    return sorted(target.escalations if target else [], key=lambda e: e.get("percent", 100))


def next_level(clock: ClockRow) -> dict[str, Any]:
    """Return the escalation level the clock fires next ({} past its last)."""
    levels = escalation_levels(terms_of(clock))
    return levels[clock.escalation_level] if clock.escalation_level < len(levels) else {}


def escalated(clocks: list[ClockRow], now: datetime) -> None:
    """Write clocks whose escalation level was raised (rescheduled here) and their events."""
    for clock in clocks:
        _schedule(clock, now)
    _persist(clocks, now)


def _clocks(ticket: Ticket) -> dict[str, ClockRow]:
    """Read the ticket's clocks with their targets and calendar versions, in one statement
    (none when they came with the ticket's select in this transaction: used once, as a later
    read must see what this transaction wrote since)."""
    key = ("clocks", ticket.tenant_id, ticket.number)
    rows = _rows_for(key, _TICKET_CLOCKS, {"ticket": ticket.id})
    return {clock.clock: clock for clock in _rows(rows)}


_STORED = ", ".join(
    f"{name} {kind}"
    for name, kind in (
        ("id", "bigint"),
        ("tenant_id", "bigint"),
        ("ticket_id", "bigint"),
        ("clock", "text"),
        ("target_id", "bigint"),
        ("calendar_id", "bigint"),
        ("target_minutes", "int"),
        ("started_at", "timestamptz"),
        ("paused_seconds", "bigint"),
        ("paused_since", "timestamptz"),
        ("warn_at", "timestamptz"),
        ("due_at", "timestamptz"),
        ("state", "text"),
        ("stopped_at", "timestamptz"),
        ("warned_at", "timestamptz"),
        ("breached_at", "timestamptz"),
        ("escalation_level", "int"),
        ("next_escalation_at", "timestamptz"),
    )
)
_WRITTEN = CLOCK_COLUMNS[1:]
# One statement writes every changed clock (updates and inserts) and all their events.
_PERSIST_SQL = _driver_sql(f"""
WITH v AS (
    SELECT * FROM jsonb_to_recordset(CAST(:clocks AS jsonb)) AS v({_STORED})
), updated AS (
    UPDATE sla_clock c SET {", ".join(f"{n} = v.{n}" for n in _WRITTEN)}, updated_at = :now
    -- The ids again as an array: the planner takes jsonb_to_recordset for 100 rows, and would
    -- hash-join a sequential scan of a small clock table rather than look each id up.
    FROM v WHERE c.id = ANY(CAST(:ids AS bigint[])) AND c.id = v.id
    RETURNING c.id
), inserted AS (
    INSERT INTO sla_clock ({", ".join(_WRITTEN)}, updated_at)
    SELECT {", ".join(_WRITTEN)}, :now FROM v WHERE v.id IS NULL
    RETURNING id
), events AS (
    INSERT INTO sla_event (tenant_id, ticket_id, clock, kind, at, detail)
    SELECT e.tenant_id, e.ticket_id, e.clock, e.kind, e.at, e.detail
    FROM jsonb_to_recordset(CAST(:events AS jsonb))
         AS e(tenant_id bigint, ticket_id bigint, clock text, kind text, at timestamptz,
              detail jsonb)
    RETURNING 1
)
SELECT (SELECT count(*) FROM updated) AS updated, (SELECT count(*) FROM inserted) AS inserted,
       (SELECT count(*) FROM events) AS events
""")  # noqa: S608 (fixed column names)


def _persist(clocks: Iterable[ClockRow], now: datetime) -> None:
    """Write the changed clocks and their events in one statement."""
    changed = [c for c in clocks if c.changed]
    if not changed:
        return
    events = [event for clock in changed for event in clock.pending_events]
    _run(
        _PERSIST_SQL,
        {
            "clocks": _json([dict(zip(CLOCK_COLUMNS, c.values(), strict=True)) for c in changed]),
            "ids": [c.id for c in changed if c.id is not None],
            "events": _json(events),
            "now": now,
        },
    )
    for clock in changed:
        clock.pending_events = []
        clock.loaded = clock.values()


def _json(value: Any) -> str:
    return json.dumps(value, default=_iso, separators=(",", ":"))


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__}")


def _remember(clock: SlaClock, target: SlaTarget | None, version: int | None) -> None:
    # Plain attributes beside the mapped ones: what _schedule() needs, already read.
    clock.__dict__["_sla_terms"] = (target, version)


def add_event(clock: ClockRow, kind: str, at: datetime, **detail: Any) -> None:
    """Record an event of the clock, written with the clock by its next _persist()."""
    clock.pending_events.append(
        {
            "tenant_id": clock.tenant_id,
            "ticket_id": clock.ticket_id,
            "clock": clock.clock,
            "kind": kind,
            "at": at,
            "detail": detail,
        }
    )


def terms_of(clock: SlaClock) -> SlaTarget | None:
    """Return the clock's target as it was read with the clock (or read it now)."""
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
    target = terms_of(clock)
    credit = timedelta(seconds=clock.paused_seconds)
    budget = timedelta(minutes=clock.target_minutes)
    warn_percent = target.warn_percent if target else 80
    clock.due_at = cal.add(clock.started_at, budget + credit)
    clock.warn_at = cal.add(clock.started_at, budget * warn_percent / 100 + credit)
    levels = escalation_levels(target)
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
    ticket: Ticket, plan: _Plan, name: str, now: datetime, existing: ClockRow | None = None
) -> ClockRow | None:
    target = plan.targets.get(name)
    if target is None:
        return None
    clock = existing or ClockRow(None, ticket.tenant_id, ticket.id, name)
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
    _schedule(clock, now)
    add_event(clock, "started", now, due_at=clock.due_at.isoformat() if clock.due_at else None)
    return clock


def _pause(clock: SlaClock, now: datetime, why: str) -> None:
    if clock.state == "paused" or clock.stopped_at is not None:
        return
    clock.state = "paused"
    clock.paused_since = now
    clock.next_escalation_at = None
    clock.updated_at = now
    add_event(clock, "paused", now, status=why)


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
    add_event(
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
    add_event(clock, clock.state if clock.state != "breached" else "stopped_late", now)


def _pauses(clock: SlaClock, status: str) -> bool:
    target = terms_of(clock)
    statuses = target.pause_statuses if target else ["on_hold"]
    return status in statuses


@_quiet
def on_created(ticket: Ticket, now: datetime | None = None) -> None:
    """Start the clocks of a new ticket's policy."""
    now = now or ticket.created_at or _now()
    plan = plan_for(ticket)
    names = ["first_response", "resolution", "on_site"]
    if ticket.assignee_vendor_id:
        names.append("vendor")
    started = [_start(ticket, plan, name, now) for name in names]
    _persist([clock for clock in started if clock is not None], now)


@_quiet
def on_status(ticket: Ticket, old: str, new: str, now: datetime | None = None) -> None:
    """Move the ticket's clocks for a status change (already applied to the ticket)."""
    now = now or _now()
    clocks = _clocks(ticket)
    for name, clock in clocks.items():
        _move(clock, name, old, new, now)
    _persist(clocks.values(), now)


def _move(clock: ClockRow, name: str, old: str, new: str, now: datetime) -> None:
    """Move one clock for a status change from `old` to `new`."""
    if new in _ENDED:
        if clock.stopped_at is None:
            _stop(clock, now, cancel=True)
        return
    if name == "first_response" and old == "new":
        _stop(clock, now)
        return
    if new == "resolved" and name in ("resolution", "vendor", "on_site"):
        # On-site arrival is moot once the ticket is solved without a visit.
        _stop(clock, now, cancel=name == "on_site" and clock.stopped_at is None)
        return
    if old == "resolved" and new == "reopened" and name == "resolution":
        # The time between resolving and reopening is not the desk's: credit it back.
        if clock.stopped_at is not None and clock.state != "cancelled":
            since = clock.stopped_at
            clock.state = "breached" if clock.breached_at else "running"
            _resume(clock, now, since)
        return
    if clock.stopped_at is not None:
        return
    was_paused, pauses = clock.state == "paused", _pauses(clock, new)
    if pauses and not was_paused:
        _pause(clock, now, new)
    elif was_paused and not pauses:
        _resume(clock, now)


@_quiet
def on_first_answer(ticket: Ticket, now: datetime | None = None) -> None:
    """Stop the first-response clock: someone answered the ticket."""
    now = now or _now()
    clock = _clocks(ticket).get("first_response")
    if clock is not None:
        _stop(clock, now)
        _persist([clock], now)


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
            _persist([clock], now)
        return
    started = _start(ticket, plan_for(ticket), "vendor", now, existing=clock)
    if started is not None:
        _persist([started], now)


@_quiet
def stop_clock(ticket: Ticket, name: str, now: datetime | None = None) -> None:
    """Stop one clock of the ticket (e.g. on-site arrival at an engineer's check-in)."""
    now = now or _now()
    clock = _clocks(ticket).get(name)
    if clock is not None:
        _stop(clock, now)
        _persist([clock], now)


@_quiet
def recompute(ticket: Ticket, now: datetime | None = None, reason: str = "policy") -> None:
    """Re-apply the ticket's policy (after a priority, site or policy change), keeping credit."""
    now = now or _now()
    plan = plan_for(ticket)
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
        add_event(
            clock,
            "recomputed",
            now,
            reason=reason,
            due_at=clock.due_at.isoformat() if clock.due_at else None,
        )
    # A clock the old policy lacked starts as if it had run from the ticket's creation.
    written = list(clocks.values())
    if ticket.status not in _ENDED:
        for name in ("first_response", "resolution", "on_site"):
            if name in plan.targets and name not in clocks and _applies(ticket, name):
                started = _start(ticket, plan, name, ticket.created_at or now)
                if started is not None:
                    _schedule(started, now, fresh=True)
                    written.append(started)
    _persist(written, now)


def _applies(ticket: Ticket, name: str) -> bool:
    if name == "first_response":
        return ticket.status == "new"
    return ticket.status != "resolved"


def clocks_of(ticket: Ticket) -> list[ClockRow]:
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


def urgent_clock(ticket_id: Any = None) -> Any:
    """Return a LATERAL select of the most urgent live clock of the ticket `ticket_id` (a column,
    Ticket.id by default; join it on true()): breached first, then the soonest due; paused
    clocks count, stopped ones do not. Its calendar's version lets badge_of() use the cache."""
    from sqlalchemy import case

    version = select(BusinessCalendar.version).where(BusinessCalendar.id == SlaClock.calendar_id)
    return (
        select(
            SlaClock.clock.label("sla_clock"),
            SlaClock.state.label("sla_state"),
            SlaClock.due_at.label("sla_due_at"),
            SlaClock.calendar_id.label("sla_calendar_id"),
            SlaClock.paused_since.label("sla_paused_since"),
            version.scalar_subquery().label("sla_calendar_version"),
        )
        .where(
            SlaClock.ticket_id == (Ticket.id if ticket_id is None else ticket_id),
            SlaClock.stopped_at.is_(None),
        )
        .order_by(case((SlaClock.state == "breached", 0), else_=1), SlaClock.due_at)
        .limit(1)
        .lateral("urgent_sla")
    )


def badge_of(row: Any, now: datetime | None = None) -> Badge | None:
    """Return the badge of a row carrying urgent_clock()'s columns, or None without a clock."""
    from cass.models import CLOCKS

    if row.sla_clock is None:
        return None
    clock = ClockRow(
        None,
        0,
        0,
        row.sla_clock,
        calendar_id=row.sla_calendar_id,
        due_at=row.sla_due_at,
        state=row.sla_state,
        paused_since=row.sla_paused_since,
    )
    left = remaining(clock, now, row.sla_calendar_version)
    return Badge(row.sla_clock, CLOCKS[row.sla_clock], row.sla_state, row.sla_due_at, left)


def badges(ticket: Ticket, now: datetime | None = None) -> list[Badge]:
    """Return the ticket's clocks as badges, in display order (one statement)."""
    from cass.models import CLOCKS

    now = now or _now()
    return [
        Badge(c.clock, CLOCKS[c.clock], c.state, c.due_at, remaining(c, now))
        for c in clocks_of(ticket)
    ]
