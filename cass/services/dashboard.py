"""The home page's dashboard: each role's figures, one set-based select per figure at most.

Ticket figures count the tickets the user may see (`tickets.visible`, narrowed to their own
for "My work"); the 30-day SLA compliance and response times are the reports' own totals
(`reports.run`), so the dashboard never disagrees with the report it links to; the fleet is the
charger list's state counts and the connector faults per day, counted in the tenant's days.

The 30-day figures cost the most (two aggregates over a month of clocks and tickets), move
slowly and are the same for everyone in the tenant, so each web process keeps them per tenant
for PERIOD_SECONDS: the desk's dashboards, each refreshed on every ticket event, share one
computation a minute instead of making one each. Every other figure is read on each request.
"""

from __future__ import annotations

import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import ColumnElement, Date, cast, distinct, func, select, text

from cass.extensions import db
from cass.lifecycle import OPEN_STATUSES
from cass.models import CLOCKS, Charger, ChargerEvent, SlaClock, Ticket, User
from cass.models.tickets import PRIORITIES
from cass.permissions import can
from cass.services import charger_list, reports, sla, tickets
from cass.services.charger_list import ChargerQuery, StateCounts
from cass.services.reports.base import tenant_zone, today_in
from cass.services.reports.chargers import FAULT
from cass.tenancy import current_tenant_id

# As /sla/at-risk by default: warned, breached, or due within four hours.
AT_RISK_HORIZON = timedelta(hours=4)
TOP_AT_RISK = 5  # the overview's and the desk's list
MY_AT_RISK = 10  # an engineer's own list: all of it, as a rule
FAULT_DAYS = 14
# The clock states sla.at_risk lists; a stopped clock keeps its state (breached, say), so
# stopped_at tells the live ones.
LIVE_STATES = ("running", "warning", "breached")
ALARMED_STATES = ("warning", "breached")
PERIOD_SECONDS = 60.0  # how long the 30-day figures are kept (config DASHBOARD_PERIOD_SECONDS)
KEPT = "cass_dashboard_period"  # in app.extensions: (tenant, figure) -> (read at, value)

T = TypeVar("T")


@dataclass(frozen=True)
class OpenTickets:
    """Open tickets counted per status and per priority (every open status and priority, 0
    when none), in the lifecycle's and the priorities' order."""

    by_status: list[tuple[str, int]]
    by_priority: list[tuple[str, int]]

    @property
    def total(self) -> int:
        """Return how many tickets are open."""
        return sum(n for _, n in self.by_status)


@dataclass(frozen=True)
class Compliance:
    """The SLA report's totals: clocks met and breached, and met / decided in percent."""

    percent: float | None
    met: int
    breached: int
    params: dict[str, str]  # the report's parameters, for the link to it


@dataclass(frozen=True)
class ResponseTimes:
    """The resolution report's whole-period row: mean hours to first response and to resolve."""

    mtta_hours: float | None
    responded: int
    mttr_hours: float | None
    resolved: int
    params: dict[str, str]


@dataclass(frozen=True)
class TicketPanel:
    """The ticket figures of one role's dashboard.

    `kind` says which: "overview" (those who read reports: admin, manager, viewer), "desk"
    (call-center agents), "work" (an engineer's own tickets) or "vendor" (the vendor's).
    """

    kind: str
    open: OpenTickets
    at_risk: int | None = None  # tickets with a clock at risk
    urgent: list[sla.AtRisk] | None = None  # the most urgent clock of the first few of them
    compliance: Compliance | None = None
    times: ResponseTimes | None = None
    prefix: str = ""  # the tenant's ticket-key prefix, for the keys of `urgent`


@dataclass(frozen=True)
class Fleet:
    """The fleet now (chargers online, offline, faulted) and its faults per day."""

    counts: StateCounts
    faults: list[tuple[date, int]]  # FAULT_DAYS days in the tenant's zone, oldest first
    zone: str

    @property
    def fault_total(self) -> int:
        """Return the faults of the whole period."""
        return sum(n for _, n in self.faults)

    def report_params(self) -> dict[str, str]:
        """Return the charger report's parameters for the same days, by error code."""
        return {
            "start": self.faults[0][0].isoformat(),
            "end": self.faults[-1][0].isoformat(),
            "by": "error_code",
        }


def panel_kind(actor: User) -> str:
    """Return which ticket figures `actor`'s role gets (see TicketPanel)."""
    if actor.role == "vendor":
        return "vendor"
    if can(actor.role, "reports.view"):
        return "overview"
    if actor.role == "as_engineer":
        return "work"
    return "desk"


def ticket_panel(actor: User, now: datetime | None = None) -> TicketPanel:
    """Return the ticket figures of `actor`'s role."""
    kind = panel_kind(actor)
    visible = tickets.visible(actor)
    if kind == "vendor":
        return TicketPanel(kind, open_tickets(visible))
    mine = kind == "work"
    if mine:
        visible = visible.where(Ticket.assignee_user_id == actor.id)
    # Live clocks are open tickets' clocks: "mine" starts from my few open tickets. Staff see
    # the whole tenant, whose clocks need no join to their tickets at all.
    open_visible = visible.where(Ticket.status.in_(OPEN_STATUSES))
    overview = kind == "overview"
    return TicketPanel(
        kind,
        open_tickets(visible),
        at_risk=at_risk_count(open_visible if mine else None, now),
        urgent=most_urgent(
            open_visible if mine else visible, MY_AT_RISK if mine else TOP_AT_RISK, now
        ),
        compliance=sla_compliance() if overview else None,
        times=response_times() if overview else None,
        prefix=tickets.tenant_prefix(),
    )


def open_tickets(visible: Any) -> OpenTickets:
    """Count the open tickets of the select `visible` per status and priority (one GROUP BY)."""
    stmt = (
        select(Ticket.status, Ticket.priority, func.count())
        .where(visible.whereclause, Ticket.status.in_(OPEN_STATUSES))
        .group_by(Ticket.status, Ticket.priority)
    )
    statuses = dict.fromkeys(OPEN_STATUSES, 0)
    priorities = dict.fromkeys(PRIORITIES, 0)
    for status, priority, n in db.session.execute(stmt):
        statuses[status] = statuses.get(status, 0) + n
        priorities[priority] = priorities.get(priority, 0) + n
    return OpenTickets(list(statuses.items()), list(priorities.items()))


def _at_risk_clocks(now: datetime) -> list[ColumnElement[bool]]:
    # The same clocks as sla.at_risk: live, and warned, breached or due within the horizon.
    return [
        SlaClock.tenant_id == current_tenant_id(),
        SlaClock.state.in_(LIVE_STATES),
        SlaClock.stopped_at.is_(None),
        (SlaClock.due_at <= now + AT_RISK_HORIZON) | SlaClock.state.in_(ALARMED_STATES),
    ]


def at_risk_count(visible: Any | None, now: datetime | None = None) -> int:
    """Count the tickets with a clock at risk, among `visible` (None: the whole tenant)."""
    stmt = select(func.count(distinct(SlaClock.ticket_id))).where(
        *_at_risk_clocks(now or datetime.now(UTC))
    )
    if visible is not None:
        stmt = stmt.where(SlaClock.ticket_id.in_(select(Ticket.id).where(visible.whereclause)))
    return db.session.scalar(stmt) or 0


def most_urgent(visible: Any, limit: int, now: datetime | None = None) -> list[sla.AtRisk]:
    """Return the first `limit` tickets at risk among `visible`, each by its most urgent clock,
    the soonest due first (as /sla/at-risk orders its clocks)."""
    # A ticket has one clock of each kind at most, so this many clocks hold `limit` tickets.
    rows = sla.at_risk(visible, AT_RISK_HORIZON, limit=limit * len(CLOCKS), now=now)
    seen: set[int] = set()
    first = []
    for row in rows:
        if row.ticket.id not in seen:
            seen.add(row.ticket.id)
            first.append(row)
    return first[:limit]


def _kept(name: str, compute: Callable[[], T]) -> T:
    """Return the tenant's figure `name` as computed within PERIOD_SECONDS, else compute it."""
    seconds = float(current_app.config.get("DASHBOARD_PERIOD_SECONDS", PERIOD_SECONDS))
    kept: dict[tuple[int, str], tuple[float, Any]] = current_app.extensions.setdefault(KEPT, {})
    key = (current_tenant_id(), name)
    found = kept.get(key)
    now = clock.monotonic()
    if found is not None and now - found[0] < seconds:
        return found[1]  # type: ignore[no-any-return]
    value = compute()
    kept[key] = (now, value)
    return value


def sla_compliance() -> Compliance:
    """Return the SLA report's totals over its default period (the last 30 days), as kept."""
    return _kept("sla", _sla_compliance)


def _sla_compliance() -> Compliance:
    _, filters, table = reports.run("sla", {"by": "clock"})
    met, breached, share = _totals(table, "met", "breached", "compliance")
    return Compliance(share, met or 0, breached or 0, filters.params())


def response_times() -> ResponseTimes:
    """Return the resolution report's whole-period MTTA and MTTR (the last 30 days), as kept."""
    return _kept("resolution", _response_times)


def _response_times() -> ResponseTimes:
    _, filters, table = reports.run("resolution", {"by": "week"})
    mtta, responded, mttr, resolved = _totals(table, "mtta", "responded", "mttr", "resolved")
    return ResponseTimes(mtta, responded or 0, mttr, resolved or 0, filters.params())


def _totals(table: reports.Table, *keys: str) -> list[Any]:
    """Return the values of the columns `keys` in `table`'s totals row (None without one)."""
    return [table.totals[table.position(key)] if table.totals else None for key in keys]


def fleet(actor: User) -> Fleet:
    """Return the chargers `actor` sees by state now, and their faults per day."""
    counts = charger_list.state_counts(actor, ChargerQuery())
    zone = tenant_zone()
    return Fleet(counts, faults_per_day(actor, zone), zone)


def faults_per_day(actor: User, zone: str, days: int = FAULT_DAYS) -> list[tuple[date, int]]:
    """Count the connector faults of the last `days` days (today included) per day in `zone`,
    of the chargers `actor` sees, in one GROUP BY; days without faults count 0."""
    first = today_in(zone) - timedelta(days=days - 1)
    since = datetime.combine(first, time(), ZoneInfo(zone))
    e = ChargerEvent.__table__.alias("e")  # FAULT names the event "e"
    day = cast(func.timezone(zone, e.c.at), Date)
    stmt = (
        select(day, func.count())
        .where(e.c.tenant_id == current_tenant_id(), e.c.at >= since, text(FAULT))
        .group_by(text("1"))  # the day's expression holds a bound zone: group by position
    )
    criteria = charger_list.visible_criteria(actor)
    if len(criteria) > 1:  # a vendor's chargers, not the tenant's
        stmt = stmt.where(e.c.charger_id.in_(select(Charger.id).where(*criteria)))
    found: dict[date, int] = {d: n for d, n in db.session.execute(stmt)}
    every = [first + timedelta(days=i) for i in range(days)]
    return [(d, found.get(d, 0)) for d in every]


@dataclass(frozen=True)
class Dashboard:
    """A role's whole dashboard: its ticket figures and, for staff, the fleet."""

    tickets: TicketPanel
    fleet: Fleet | None


def for_user(actor: User) -> Dashboard:
    """Return every figure of `actor`'s dashboard (vendors get no fleet: they have their card)."""
    return Dashboard(ticket_panel(actor), None if actor.role == "vendor" else fleet(actor))
