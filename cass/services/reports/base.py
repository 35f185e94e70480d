"""The parts every report shares: filters, columns, tables, the registry, SQL helpers.

A report module defines a `build(filters) -> Table` and registers a `Report` with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from cass import csv_download
from cass.bounds import DAY_RANGE, FIRST_DAY, LAST_DAY, parse_id
from cass.csv_download import csv_cell
from cass.extensions import db
from cass.lifecycle import STATUS_LABELS
from cass.models import Site, User, Vendor
from cass.models.tickets import CATEGORIES, CHANNELS, PRIORITIES
from cass.tenancy import current_tenant_id

# Every filter a report may take, in the order the form shows them.
FILTERS = ("site", "vendor", "engineer", "priority", "category")
DEFAULT_DAYS = 30
# A range longer than this is refused: it is no report anyone reads, and it bounds the work.
MAX_DAYS = 3660


@dataclass(frozen=True)
class Column:
    """A column: its key, its header, and how its values read (text, int, hours, percent…)."""

    key: str
    label: str
    kind: str = "int"  # text | period | int | number | hours | percent | kwh | money

    @property
    def numeric(self) -> bool:
        """Tell whether the column holds numbers (right-aligned, totalled where it adds up)."""
        return self.kind not in ("text", "period")


@dataclass(frozen=True)
class Chart:
    """What to draw: bar or line, the label column, the series columns, stacked or not."""

    kind: str  # bar | line
    series: tuple[str, ...]
    stacked: bool = False
    horizontal: bool = False
    unit: str = ""
    # Draw at most this many rows (the first ones: the table's order puts the biggest first).
    limit: int | None = None


@dataclass
class Table:
    """A report's result: columns, rows (tuples in column order), an optional totals row."""

    columns: tuple[Column, ...]
    rows: list[tuple[Any, ...]]
    totals: tuple[Any, ...] | None = None
    chart: Chart | None = None
    notes: list[str] = field(default_factory=list)

    def position(self, key: str) -> int:
        """Return where column `key` stands in the rows."""
        return next(n for n, column in enumerate(self.columns) if column.key == key)


@dataclass(frozen=True)
class Filters:
    """A report's parameters: the days [start, end] in the tenant's zone, filters, grouping."""

    start: date
    end: date
    zone: str = "UTC"
    by: str = ""
    site: int | None = None
    vendor: int | None = None
    engineer: int | None = None
    priority: str | None = None
    category: str | None = None

    @property
    def since(self) -> datetime:
        """Return the first instant of the range (midnight of `start` in the tenant's zone)."""
        return datetime.combine(self.start, time(), ZoneInfo(self.zone))

    @property
    def until(self) -> datetime:
        """Return the first instant after the range (midnight after `end`)."""
        return datetime.combine(self.end + timedelta(days=1), time(), ZoneInfo(self.zone))

    def params(self) -> dict[str, str]:
        """Return the filters as query parameters (only those set), for links and schedules."""
        values = {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "by": self.by,
            **{name: getattr(self, name) for name in FILTERS},
        }
        return {k: str(v) for k, v in values.items() if v not in (None, "")}


@dataclass(frozen=True)
class Report:
    """A report: its slug, title, what it tells, the filters and groupings it takes, its select."""

    slug: str
    title: str
    summary: str
    filters: tuple[str, ...]
    groupings: Mapping[str, str]  # by -> label; the first is the default
    build: Callable[[Filters], Table]

    @property
    def default_by(self) -> str:
        """Return the grouping used when none is asked for."""
        return next(iter(self.groupings))


REPORTS: dict[str, Report] = {}


def register(report: Report) -> Report:
    """Add `report` to the registry (and to the CSV exports)."""
    from cass.services.exports import TITLES

    REPORTS[report.slug] = report
    TITLES[report.slug] = report.title
    return report


class BadFilters(ValueError):
    """The parameters do not make a report; `errors` says which field is wrong and why."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def tenant_zone() -> str:
    """Return the IANA name of the current tenant's zone (UTC when unset or unknown)."""
    return csv_download.tenant_zone().key


def today_in(zone: str) -> date:
    """Return today's date in `zone`."""
    return datetime.now(ZoneInfo(zone)).date()


def parse_filters(report: Report, args: Mapping[str, Any], zone: str) -> Filters:
    """Read `report`'s parameters from `args`; raise BadFilters naming each bad one.

    Filters the report does not take are ignored, so one query string serves every report.
    """
    errors: dict[str, str] = {}
    end = _date(args, "end", errors) or today_in(zone)
    # `days=N` is "the last N days up to the end": a range that moves, for scheduled exports.
    days = _one(args, "days")
    if days and not (days.isascii() and days.isdigit() and 1 <= int(days) <= MAX_DAYS):
        errors["days"] = f"Give a number of days from 1 to {MAX_DAYS}."
    span = int(days) if days and "days" not in errors else DEFAULT_DAYS
    start = _date(args, "start", errors) or end - timedelta(days=span - 1)
    if "start" not in errors and "end" not in errors:
        if start > end:
            errors["end"] = "The end is before the start."
        elif (end - start).days >= MAX_DAYS:
            errors["start"] = f"Pick a range of at most {MAX_DAYS} days."
    by = _one(args, "by") or report.default_by
    if by not in report.groupings:
        errors["by"] = "Pick one of the groupings offered."
    values: dict[str, Any] = {}
    for name in report.filters:
        raw = _one(args, name)
        if not raw:
            continue
        if name in ("priority", "category"):
            if raw not in (PRIORITIES if name == "priority" else CATEGORIES):
                errors[name] = "Pick one of the values offered."
            values[name] = raw
        else:
            try:
                values[name] = parse_id(raw)
            except ValueError:
                errors[name] = "Pick one of the values offered."
    if errors:
        raise BadFilters(errors)
    return Filters(start=start, end=end, zone=zone, by=by, **values)


def _one(args: Mapping[str, Any], key: str) -> str:
    value = args.get(key)
    return value.strip() if isinstance(value, str) else ""


def _date(args: Mapping[str, Any], key: str, errors: dict[str, str]) -> date | None:
    raw = _one(args, key)
    if not raw:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        errors[key] = "Use a date like 2026-11-28."
        return None
    if not FIRST_DAY <= day <= LAST_DAY:
        # A day at the calendar's ends overflows when the range is worked out (a day after the
        # end, 30 days before it).
        errors[key] = f"Give a day {DAY_RANGE}."
        return None
    return day


def run(slug: str, args: Mapping[str, Any]) -> tuple[Report, Filters, Table]:
    """Run report `slug` for the current tenant with the page's parameters `args`."""
    report = REPORTS[slug]
    filters = parse_filters(report, args, tenant_zone())
    return report, filters, report.build(filters)


def choices() -> dict[str, list[tuple[str, str]]]:
    """Return the filter choices of the current tenant: sites, vendors, engineers, enums."""
    tenant = current_tenant_id()
    sites = db.session.execute(
        select(Site.id, Site.name).where(Site.tenant_id == tenant).order_by(Site.name)
    )
    vendors = db.session.execute(
        select(Vendor.id, Vendor.name).where(Vendor.tenant_id == tenant).order_by(Vendor.name)
    )
    people = db.session.execute(
        select(User.id, User.name)
        .where(User.tenant_id == tenant, User.role.in_(WORKER_ROLES))
        .order_by(User.name)
    )
    return {
        "site": [(str(i), n) for i, n in sites],
        "vendor": [(str(i), n) for i, n in vendors],
        "engineer": [(str(i), n) for i, n in people],
        "priority": list(PRIORITIES.items()),
        "category": list(CATEGORIES.items()),
    }


# The roles that get tickets assigned (as permissions' "tickets.work").
WORKER_ROLES = ("admin", "as_manager", "as_engineer")


def csv_rows(slug: str, args: Mapping[str, Any]) -> Iterator[list[Any]]:
    """Yield report `slug` as CSV rows: the header, the rows, then the totals row if any."""
    _, _, table = run(slug, args)
    return table_rows(table)


def table_rows(table: Table) -> Iterator[list[Any]]:
    """Yield `table` as CSV rows: the header, the rows, then the totals row if any."""
    yield [c.label for c in table.columns]
    for row in table.rows:
        yield [_cell(v) for v in row]
    if table.totals is not None:
        yield [_cell(v) for v in table.totals]


def _cell(value: Any) -> str:
    # Report cells are labels, dates and numbers: no instants, so the zone does not matter.
    return csv_cell(value, ZoneInfo("UTC"))


# --- helpers the report modules share -------------------------------------------------------


def ticket_conditions(f: Filters, names: Sequence[str], alias: str = "t") -> list[str]:
    """Return SQL conditions on ticket `alias` for the filters in `names` that are set."""
    columns = {
        "site": "site_id",
        "vendor": "assignee_vendor_id",
        "engineer": "assignee_user_id",
        "priority": "priority",
        "category": "category",
    }
    return [f"{alias}.{columns[n]} = :{n}" for n in names if getattr(f, n) is not None]


def and_tickets(f: Filters, names: Sequence[str], alias: str = "t") -> str:
    """Return " AND <condition>" for each filter in `names` that is set (or "")."""
    return "".join(f" AND {c}" for c in ticket_conditions(f, names, alias))


def bind(f: Filters, **extra: Any) -> dict[str, Any]:
    """Return the bound values every report select uses: tenant, range, zone and filters."""
    return {
        "tenant": current_tenant_id(),
        "since": f.since,
        "until": f.until,
        "zone": f.zone,
        **{name: getattr(f, name) for name in FILTERS},
        **extra,
    }


def fetch(sql: str, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Run one report select and return its rows as tuples."""
    return [tuple(r) for r in db.session.execute(text(sql), dict(values))]


def hours(seconds: Any) -> float | None:
    """Return seconds as hours to two decimals (None stays None)."""
    return None if seconds is None else round(float(seconds) / 3600, 2)


def mean_hours(seconds: Any, count: int) -> float | None:
    """Return the mean of `count` durations summing to `seconds`, in hours (None for none)."""
    return hours(float(seconds) / count) if count and seconds is not None else None


def period_starts(f: Filters, unit: str) -> list[date]:
    """Return the first days of the periods (day, week from Monday, or month) that start in or
    hold the range's days: the calendar a trend is drawn on, so empty periods show as zero."""
    day = f.start
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit == "month":
        day = day.replace(day=1)
    starts = []
    while day <= f.end:
        starts.append(day)
        if unit == "day":
            day += timedelta(days=1)
        elif unit == "week":
            day += timedelta(days=7)
        else:
            day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return starts


def percent(part: int, whole: int) -> float | None:
    """Return part/whole in percent to one decimal (None when whole is 0)."""
    return round(100.0 * part / whole, 1) if whole else None


def total(rows: Sequence[tuple[Any, ...]], index: int) -> Any:
    """Return the sum of column `index` over `rows`, None values skipped."""
    values = [r[index] for r in rows if r[index] is not None]
    return sum(values, Decimal(0) if values and isinstance(values[0], Decimal) else 0)


# --- grouping tickets -------------------------------------------------------------------------

# by -> the ticket column grouped on, and its labels: a dict for a fixed set of values (in the
# order rows are shown), or the table whose names label the ids (rows shown biggest first).
TICKET_GROUPS: dict[str, tuple[str, Mapping[str, str] | str]] = {
    "status": ("status", STATUS_LABELS),
    "priority": ("priority", PRIORITIES),
    "category": ("category", CATEGORIES),
    "channel": ("channel", CHANNELS),
    "site": ("site_id", "site"),
    "vendor": ("assignee_vendor_id", "vendor"),
    "engineer": ("assignee_user_id", "app_user"),
}
NONE_LABELS = {"site": "No site", "vendor": "No vendor", "engineer": "Unassigned"}
GROUP_TITLES = {
    "status": "Status",
    "priority": "Priority",
    "category": "Category",
    "channel": "Channel",
    "site": "Site",
    "vendor": "Vendor",
    "engineer": "Engineer",
}


def group_key(by: str, key: str) -> Any:
    """Return a group key as stored in a snapshot ("" for none) as the grouping's value."""
    if key == "":
        return None
    labels = TICKET_GROUPS[by][1] if by in TICKET_GROUPS else {}
    return key if isinstance(labels, Mapping) else int(key)


def labelled(by: str, rows: list[tuple[Any, ...]], sort_index: int = 1) -> list[tuple[Any, ...]]:
    """Replace each row's first value (a group key) by its label, in the grouping's order.

    Fixed values keep their defined order; names of sites, vendors and people are looked up in
    one select and rows sorted by column `sort_index`, biggest first, then by name.
    """
    _, labels = TICKET_GROUPS[by]
    if isinstance(labels, Mapping):
        order = {key: n for n, key in enumerate(labels)}
        rows = sorted(rows, key=lambda r: order.get(r[0], len(order)))
        return [(labels.get(r[0], r[0]), *r[1:]) for r in rows]
    names = entity_names(labels, [r[0] for r in rows if r[0] is not None])
    none = NONE_LABELS[by]
    named = [(names.get(r[0], none) if r[0] is not None else none, *r[1:]) for r in rows]
    return sorted(named, key=lambda r: (-(r[sort_index] or 0), r[0]))


def entity_names(table: str, ids: Sequence[int]) -> dict[int, str]:
    """Return the names of rows `ids` of `table` (site, vendor or app_user) of this tenant."""
    if not ids:
        return {}
    assert table in ("site", "vendor", "app_user", "charger")
    column = "ocpp_id" if table == "charger" else "name"
    found = db.session.execute(
        text(f"SELECT id, {column} FROM {table} WHERE tenant_id = :tenant AND id = ANY(:ids)"),
        {"tenant": current_tenant_id(), "ids": list(ids)},
    )
    return {key: name for key, name in found}
