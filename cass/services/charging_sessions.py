"""Charging sessions: the filtered list (keyset pages, newest first) and its CSV rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, select, tuple_

from cass.bounds import DAY_RANGE, parse_day, parse_id, parse_moment
from cass.csv_download import csv_cell, tenant_zone
from cass.extensions import db
from cass.models import Charger, ChargingSession, Site, Tariff
from cass.tenancy import current_tenant_id

PAGE_SIZE = 50
STATES = ("open", "closed")
CSV_HEADER = (
    "session",
    "charger",
    "connector",
    "site",
    "id_tag",
    "started_at",
    "stopped_at",
    "duration_s",
    "energy_kwh",
    "cost",
    "currency",
    "tariff",
    "stop_reason",
)


@dataclass(frozen=True)
class SessionQuery:
    """The list's filters, read from the query string; `problems` are what was not understood."""

    site: int | None = None
    charger: str = ""
    id_tag: str = ""
    since: date | None = None
    until: date | None = None
    state: str = ""
    after: tuple[datetime, int] | None = None
    problems: tuple[str, ...] = field(default=(), compare=False)

    def params(self, **changes: Any) -> dict[str, str]:
        """Return the filters as query parameters (with `changes`), empty ones left out."""
        query = replace(self, **changes) if changes else self
        values = {
            "site": query.site,
            "charger": query.charger,
            "id_tag": query.id_tag,
            "since": query.since.isoformat() if query.since else None,
            "until": query.until.isoformat() if query.until else None,
            "state": query.state,
            "after": f"{query.after[0].isoformat()}|{query.after[1]}" if query.after else None,
        }
        return {k: str(v) for k, v in values.items() if v not in (None, "")}


def parse_query(args: Mapping[str, str]) -> SessionQuery:
    """Read the filters from query parameters; a value not understood is left out and noted."""
    problems: list[str] = []

    def as_date(name: str, label: str) -> date | None:
        raw = (args.get(name) or "").strip()
        if not raw:
            return None
        try:
            return parse_day(raw)
        except ValueError:
            problems.append(
                f"“{raw[:20]}” is not a date for “{label}” (use YYYY-MM-DD, {DAY_RANGE})."
            )
            return None

    site = None
    if args.get("site"):
        try:
            site = parse_id(args["site"])
        except ValueError:
            problems.append("Unknown site.")
    state = args.get("state", "")
    if state not in ("", *STATES):
        problems.append(f"Unknown state “{state[:20]}”.")
        state = ""
    after = None
    if args.get("after"):
        at, _, ident = args["after"].partition("|")
        try:
            after = (parse_moment(at), parse_id(ident))
        except ValueError:
            problems.append("This “Load more” link is broken; the list starts from the top.")
    since, until = as_date("since", "From"), as_date("until", "To")
    if since and until and until < since:
        problems.append("“To” is before “From”.")
    return SessionQuery(
        site=site,
        charger=(args.get("charger") or "").strip()[:64],
        id_tag=(args.get("id_tag") or "").strip()[:36],
        since=since,
        until=until,
        state=state,
        after=after,
        problems=tuple(problems),
    )


@dataclass(frozen=True)
class SessionRow:
    """One session as the list shows it."""

    id: int
    ocpp_id: str
    connector_no: int
    site: str
    id_tag: str | None
    started_at: datetime
    stopped_at: datetime | None
    energy_wh: int | None
    cost: Decimal | None
    currency: str | None
    tariff: str | None
    stop_reason: str | None

    @property
    def duration(self) -> timedelta | None:
        """How long it lasted (None while open)."""
        return self.stopped_at - self.started_at if self.stopped_at else None

    @property
    def kwh(self) -> Decimal | None:
        return Decimal(self.energy_wh) / 1000 if self.energy_wh is not None else None


@dataclass(frozen=True)
class SessionPage:
    rows: list[SessionRow]
    next_after: tuple[datetime, int] | None


def _statement(query: SessionQuery) -> Select[Any]:
    """Return the filtered sessions of the current tenant, newest first."""
    s = ChargingSession
    stmt = (
        select(
            s.id,
            Charger.ocpp_id,
            s.connector_no,
            Site.name,
            s.id_tag,
            s.started_at,
            s.stopped_at,
            s.energy_wh,
            s.cost,
            s.currency,
            Tariff.name,
            s.stop_reason,
        )
        .join(Charger, (Charger.tenant_id == s.tenant_id) & (Charger.id == s.charger_id))
        .join(Site, (Site.tenant_id == Charger.tenant_id) & (Site.id == Charger.site_id))
        .outerjoin(Tariff, (Tariff.tenant_id == s.tenant_id) & (Tariff.id == s.tariff_id))
        .where(s.tenant_id == current_tenant_id())
        .order_by(s.started_at.desc(), s.id.desc())
    )
    if query.site is not None:
        stmt = stmt.where(Charger.site_id == query.site)
    if query.charger:
        escaped = query.charger.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_")
        stmt = stmt.where(Charger.ocpp_id.ilike(escaped, escape="\\"))
    if query.id_tag:
        stmt = stmt.where(s.id_tag == query.id_tag)
    if query.since:
        stmt = stmt.where(s.started_at >= datetime.combine(query.since, time(), UTC))
    if query.until:
        stmt = stmt.where(
            s.started_at < datetime.combine(query.until + timedelta(days=1), time(), UTC)
        )
    if query.state == "open":
        stmt = stmt.where(s.stopped_at.is_(None))
    elif query.state == "closed":
        stmt = stmt.where(s.stopped_at.is_not(None))
    return stmt


def list_sessions(query: SessionQuery, page_size: int = PAGE_SIZE) -> SessionPage:
    """Return one page of sessions after the query's cursor, and the next page's cursor."""
    stmt = _statement(query)
    if query.after:
        stmt = stmt.where(
            tuple_(ChargingSession.started_at, ChargingSession.id) < tuple_(*query.after)
        )
    rows = [SessionRow(*row) for row in db.session.execute(stmt.limit(page_size + 1))]
    more = len(rows) > page_size
    rows = rows[:page_size]
    return SessionPage(rows, (rows[-1].started_at, rows[-1].id) if more else None)


def session_row(ident: int) -> SessionRow | None:
    """Return the tenant's session `ident` as the list shows it, or None."""
    found = db.session.execute(_statement(SessionQuery()).where(ChargingSession.id == ident))
    row = found.first()
    return SessionRow(*row) if row is not None else None


def export_rows(query: SessionQuery, batch: int = 1000) -> Iterator[list[str]]:
    """Yield the CSV rows (header first) of every matching session, by a server-side cursor."""
    yield list(CSV_HEADER)
    zone = tenant_zone()
    stmt = _statement(replace(query, after=None)).execution_options(yield_per=batch)
    for values in db.session.execute(stmt):
        row = SessionRow(*values)
        duration = row.duration
        yield [
            csv_cell(value, zone)
            for value in (
                row.id,
                row.ocpp_id,
                row.connector_no,
                row.site,
                row.id_tag,
                row.started_at,
                row.stopped_at,
                int(duration.total_seconds()) if duration is not None else None,
                row.kwh,
                row.cost,
                row.currency,
                row.tariff,
                row.stop_reason,
            )
        ]


def site_choices() -> list[tuple[int, str]]:
    """Return (id, name) of the tenant's sites, for the site filter."""
    stmt = select(Site.id, Site.name).where(Site.tenant_id == current_tenant_id())
    return [(row.id, row.name) for row in db.session.execute(stmt.order_by(Site.name))]
