"""Daily snapshots of the reports' figures: long ranges read them, not the raw history.

A report states its figures as `Facts`: one select giving, per local day and group key, measures
that add up (counts, sums of seconds, minutes, watt-hours, money); a report over a range is then
the sum of its days. `figures()` sums the stored days of the report's variant (its zone,
grouping and filters) that are clean, and computes the rest (today, days not stored yet, days a
late change made stale) from the raw rows with the same select, so the result is exactly the raw
computation's.

The nightly job (`refresh`, run hourly: each tenant's day is done an hour after its midnight)
fills every tenant's default variants (each report unfiltered, in each grouping) from the start
of its history, any variant someone asked for since (kept while asked for within
`KEEP_UNUSED_DAYS`), adds the days that ended, and recomputes the stale days that the triggers
of migrations 0014 and 0024 marked in `report_snapshot_dirty`.

Other rollups kept over the same days and marks (`Rollup`, e.g. the sites' quarter-hour load of
`cass.services.peak_load`) register with `register_rollup`: the job fills and refreshes them as
it does the facts, and their readers ask `split()` which days are stored and clean.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from sqlalchemy import text

from cass.extensions import db
from cass.services.reports import base
from cass.tenancy import current_tenant_id, system_context, tenant_context

log = logging.getLogger("cass.reports.snapshots")

# The first day a snapshot holds: before any history a tenant brings along.
FLOOR = date(1990, 1, 1)
# A day is snapshotted once it ended this long ago (writes in flight at midnight have landed).
SETTLE = timedelta(hours=1)
# A variant nobody asked for in this many days is dropped (the defaults are always kept).
KEEP_UNUSED_DAYS = 35
# Beyond this many separate runs of raw days, one select over their hull reads them all.
MAX_RAW_RUNS = 8


@dataclass(frozen=True)
class Facts:
    """A report's additive daily figures: what they vary with, and the select computing them.

    `select(f)` returns SQL yielding (local day, group key as text, *measures) grouped by day
    and key, for the instants in [:since, :until), with the binds of `base.bind(f)` and `binds`.
    """

    report: str
    measures: tuple[str, ...]
    depends: tuple[str, ...]  # "by" and the filter names the figures vary with
    select: Callable[[base.Filters], str]
    binds: Mapping[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """Return the names the measures take in a select of the facts: m1, m2, ..."""
        return [f"m{n}" for n in range(1, len(self.measures) + 1)]

    def variant(self, f: base.Filters) -> str:
        """Return the name of `f`'s variant: the zone, and what the figures depend on in `f`."""
        values = [("zone", f.zone)]
        values += [(n, str(getattr(f, n))) for n in self.depends if getattr(f, n) not in (None, "")]
        return urlencode(values)

    def filters(self, variant: str, start: date, end: date) -> base.Filters:
        """Return the Filters of `variant` over the days [start, end]."""
        return variant_filters(variant, start, end)

    def defaults(self, zone: str) -> list[str]:
        """Return the variants kept for every tenant: unfiltered, in each grouping."""
        report = base.REPORTS[self.report]
        groupings = report.groupings if "by" in self.depends else [report.default_by]
        today = date.today()
        return [self.variant(base.Filters(today, today, zone, by)) for by in groupings]

    def store(self, variant: str, f: base.Filters) -> int:
        """Compute and store `f`'s days of `variant`; return the rows stored."""
        return _store(self, variant, f)

    def clear(self, variant: str, days: list[date] | None) -> None:
        """Delete the variant's stored days `days` (all of them for None)."""
        _clear(self.report, variant, days)


class Rollup(Protocol):
    """Figures kept per day in a table of their own, by the job and marks that keep the facts."""

    report: str

    def defaults(self, zone: str) -> list[str]:
        """Return the variants kept for every tenant."""
        ...

    def filters(self, variant: str, start: date, end: date) -> base.Filters:
        """Return the Filters of `variant` over the days [start, end]."""
        ...

    def store(self, variant: str, f: base.Filters) -> int:
        """Compute and store `f`'s days of `variant`; return the rows stored."""
        ...

    def clear(self, variant: str, days: list[date] | None) -> None:
        """Delete the variant's stored days `days` (all of them for None)."""
        ...


def variant_filters(variant: str, start: date, end: date) -> base.Filters:
    """Return the Filters a variant's name gives over the days [start, end]."""
    values: dict[str, Any] = dict(parse_qsl(variant))
    for name in ("site", "vendor", "engineer"):
        if name in values:
            values[name] = int(values[name])
    return base.Filters(start=start, end=end, **values)


FACTS: dict[str, Facts] = {}
ROLLUPS: dict[str, Rollup] = {}
# False inside `raw()`: figures come from the raw rows only (the baseline reports are checked
# and timed against).
_use_snapshots: ContextVar[bool] = ContextVar("use_snapshots", default=True)


@contextmanager
def raw() -> Iterator[None]:
    """Compute reports from the raw rows only, in the block."""
    token = _use_snapshots.set(False)
    try:
        yield
    finally:
        _use_snapshots.reset(token)


def register(facts: Facts) -> Facts:
    """Add `facts` to those the nightly job keeps."""
    FACTS[facts.report] = facts
    return facts


Sums = dict[Any, list[Decimal]]


def register_rollup(rollup: Rollup) -> Rollup:
    """Add `rollup` to those the nightly job keeps."""
    ROLLUPS[rollup.report] = rollup
    return rollup


@dataclass(frozen=True)
class Split:
    """Which of a range's days to read stored: [clean_from, clean_to] but the `dirty` ones;
    the `raw` runs of days (in order) to compute from the raw rows."""

    clean_from: date
    clean_to: date
    dirty: list[date]
    raw: list[tuple[date, date]]

    @property
    def stored(self) -> bool:
        """Return whether any day is read stored."""
        return self.clean_from <= self.clean_to


def split(report: str, variant: str, start: date, end: date, *, touch: bool = True) -> Split:
    """Return how to read the days [start, end] of a kept variant (all raw inside `raw()`).

    `touch` notes that the variant was asked for, so that the job starts or keeps it.
    """
    span = _span(report, variant, touch) if _use_snapshots.get() else None
    clean_from, clean_to = start, start - timedelta(days=1)
    dirty: list[date] = []
    if span is not None:
        clean_from, clean_to = max(start, span[0]), min(end, span[1])
    if clean_from <= clean_to:
        dirty = _dirty_days(clean_from, clean_to)
    return Split(clean_from, clean_to, dirty, _raw_runs(start, end, clean_from, clean_to, dirty))


def figures(facts: Facts, f: base.Filters, unit: str | None = None) -> Sums:
    """Return the report's measures over `f`'s days, summed per key (or per (period, key)).

    `unit` (day, week or month) sums per period start instead: the key is then (date, key).
    """
    variant = facts.variant(f)
    plan = split(facts.report, variant, f.start, f.end)
    sums: Sums = {}
    if plan.stored:
        _add(sums, _stored(facts, variant, plan.clean_from, plan.clean_to, plan.dirty, unit), unit)
    raw = plan.raw
    if len(raw) > MAX_RAW_RUNS:
        days = [d for a, b in raw for d in _days(a, b)]
        _add(sums, _computed(facts, f, raw[0][0], raw[-1][1], unit, days), unit)
    else:
        for a, b in raw:
            _add(sums, _computed(facts, f, a, b, unit), unit)
    return sums


def numbers(values: Iterable[Decimal], kinds: str) -> list[Any]:
    """Return measures as the report shows them: "i" an int, "n" a Decimal as summed."""
    return [int(v) if k == "i" else v for v, k in zip(values, kinds, strict=True)]


def _add(sums: Sums, rows: Iterable[tuple[Any, ...]], unit: str | None) -> None:
    """Add rows of (key, *measures), or (period, key, *measures) with a unit, into `sums`."""
    width = 1 if unit is None else 2
    for row in rows:
        key = row[0] if unit is None else (row[0], row[1])
        values = [v if v is not None else Decimal(0) for v in row[width:]]
        known = sums.get(key)
        sums[key] = values if known is None else [a + b for a, b in zip(known, values, strict=True)]


def _measure_sql(facts: Facts, column: str) -> str:
    return ", ".join(f"sum({column.format(n=n)})" for n in range(1, len(facts.measures) + 1))


def _group(unit: str | None) -> str:
    """Return the period a day falls in, as the select's first column (nothing without a unit)."""
    if unit is None:
        return ""
    return "CAST(date_trunc(:unit, CAST(day AS timestamp)) AS date), "


def _stored(
    facts: Facts, variant: str, start: date, end: date, dirty: list[date], unit: str | None
) -> list[tuple[Any, ...]]:
    """Sum the stored days [start, end] but `dirty` of `variant`, per key (or period and key)."""
    group = _group(unit)
    return base.fetch(
        f"""
        SELECT {group}key, {_measure_sql(facts, "figures[{n}]")}
        FROM report_snapshot
        WHERE tenant_id = :tenant AND report = :report AND variant = :variant
          AND day BETWEEN :start AND :end AND NOT (day = ANY(:dirty))
        GROUP BY {group}key
        """,
        {
            "tenant": current_tenant_id(),
            "report": facts.report,
            "variant": variant,
            "start": start,
            "end": end,
            "dirty": dirty,
            "unit": unit,
        },
    )


def _computed(
    facts: Facts,
    f: base.Filters,
    start: date,
    end: date,
    unit: str | None,
    only: list[date] | None = None,
) -> list[tuple[Any, ...]]:
    """Compute the days [start, end] (only those in `only`, if given) from the raw rows."""
    days = base.Filters(start, end, f.zone)
    group = _group(unit)
    keep = "WHERE day = ANY(:only)" if only is not None else ""
    return base.fetch(
        f"""
        SELECT {group}key, {_measure_sql(facts, "m{n}")}
        FROM ({facts.select(f)}) AS x(day, key, {", ".join(facts.columns)})
        {keep}
        GROUP BY {group}key
        """,
        {
            **base.bind(f),
            **facts.binds,
            "since": days.since,
            "until": days.until,
            "unit": unit,
            "only": only,
        },
    )


def _span(report: str, variant: str, touch: bool = True) -> tuple[date, date] | None:
    """Return the days the variant holds (None if none yet), registering it when asked first
    (with `touch`)."""
    row = db.session.execute(
        text(
            """
            SELECT first_day, last_day, used_at < now() - interval '1 day'
            FROM report_snapshot_span
            WHERE tenant_id = :tenant AND report = :report AND variant = :variant
            """
        ),
        {"tenant": current_tenant_id(), "report": report, "variant": variant},
    ).first()
    if touch and (row is None or row[2]):
        _touch(report, variant)
    if row is None or row[0] is None or row[1] is None:
        return None
    return row[0], row[1]


def _touch(report: str, variant: str) -> None:
    """Note that the variant was asked for (so the job keeps or starts it), in a transaction of
    its own: the page's own transaction may never commit."""
    with db.engine.begin() as connection:
        connection.execute(
            text(
                """
                INSERT INTO report_snapshot_span (tenant_id, report, variant)
                VALUES (:tenant, :report, :variant)
                ON CONFLICT (tenant_id, report, variant) DO UPDATE SET used_at = now()
                """
            ),
            {"tenant": current_tenant_id(), "report": report, "variant": variant},
        )


def _dirty_days(start: date, end: date) -> list[date]:
    """Return the tenant's days in [start, end] whose snapshots a late change made stale."""
    return [
        r[0]
        for r in base.fetch(
            """
            SELECT DISTINCT day FROM report_snapshot_dirty
            WHERE tenant_id = :tenant AND day BETWEEN :start AND :end
            ORDER BY 1
            """,
            {"tenant": current_tenant_id(), "start": start, "end": end},
        )
    ]


def _raw_runs(
    start: date, end: date, clean_from: date, clean_to: date, dirty: list[date]
) -> list[tuple[date, date]]:
    """Return the runs of days in [start, end] not read from snapshots, in order."""
    if clean_from > clean_to:
        return [(start, end)]
    runs: list[tuple[date, date]] = []
    if start < clean_from:
        runs.append((start, clean_from - timedelta(days=1)))
    runs += [(d, d) for d in dirty]
    if clean_to < end:
        runs.append((clean_to + timedelta(days=1), end))
    return _merged(runs)


def _merged(runs: list[tuple[date, date]]) -> list[tuple[date, date]]:
    """Join runs of days (sorted) that touch."""
    out: list[tuple[date, date]] = []
    for a, b in runs:
        if out and out[-1][1] + timedelta(days=1) >= a:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _days(start: date, end: date) -> Iterable[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


# --- the nightly job ---------------------------------------------------------------------------


def refresh(now: datetime | None = None) -> int:
    """Bring every tenant's report snapshots up to its last finished day; return rows written."""
    from cass.csv_download import zone_of

    now = now or datetime.now(UTC)
    with system_context():
        tenants = db.session.execute(text("SELECT id, timezone FROM tenant ORDER BY id")).all()
    written, failed = 0, []
    for tenant_id, zone in tenants:
        # One tenant's failure (a zone Postgres does not know) must not hold up the others.
        try:
            with tenant_context(tenant_id):
                written += refresh_tenant(zone_of(zone).key, now)
                db.session.commit()
        except Exception:
            log.exception("report snapshots of tenant %s failed", tenant_id)
            failed.append(tenant_id)
    if failed:
        raise RuntimeError(f"report snapshots failed for tenants {failed}")
    return written


def refresh_tenant(zone: str, now: datetime) -> int:
    """Fill and update the bound tenant's snapshots (not committed); return the rows written.

    Reads the stale-day marks first and deletes exactly those at the end: a mark written while
    this runs stays for the next run, whether or not this run saw its change.
    """
    tenant = current_tenant_id()
    last = (now - SETTLE).astimezone(ZoneInfo(zone)).date() - timedelta(days=1)
    kept: dict[str, Facts | Rollup] = {**FACTS, **ROLLUPS}
    defaults = [f"{k.report}?{v}" for k in kept.values() for v in k.defaults(zone)]
    values = {"tenant": tenant, "defaults": defaults, "keep": KEEP_UNUSED_DAYS}
    db.session.execute(
        text(
            """
            INSERT INTO report_snapshot_span (tenant_id, report, variant)
            SELECT :tenant, split_part(d, '?', 1), substr(d, strpos(d, '?') + 1)
            FROM unnest(CAST(:defaults AS text[])) AS d
            ON CONFLICT DO NOTHING
            """
        ),
        values,
    )
    db.session.execute(
        text(
            """
            WITH gone AS (
                DELETE FROM report_snapshot_span
                WHERE tenant_id = :tenant AND used_at < now() - :keep * interval '1 day'
                  AND NOT (report || '?' || variant = ANY(:defaults))
                RETURNING report, variant
            )
            DELETE FROM report_snapshot r USING gone
            WHERE r.tenant_id = :tenant AND r.report = gone.report AND r.variant = gone.variant
            """
        ),
        values,
    )
    marks = db.session.execute(
        text("SELECT id, day FROM report_snapshot_dirty WHERE tenant_id = :tenant"), values
    ).all()
    dirty = sorted({day for _, day in marks})
    spans = db.session.execute(
        text(
            "SELECT report, variant, first_day, last_day FROM report_snapshot_span"
            " WHERE tenant_id = :tenant ORDER BY report, variant"
        ),
        values,
    ).all()
    written = 0
    for report, variant, first_day, last_day in spans:
        keeper = kept.get(report)
        if keeper is None or dict(parse_qsl(variant)).get("zone") != zone:
            _drop(keeper, report, variant)
            continue
        if first_day is None or last_day is None:
            keeper.clear(variant, None)
            first_day, runs = FLOOR, [(FLOOR, last)]
        else:
            stale = [d for d in dirty if first_day <= d <= last_day]
            keeper.clear(variant, stale)
            runs = [(d, d) for d in stale]
            if last_day < last:
                runs.append((last_day + timedelta(days=1), last))
            runs = _merged(runs)
        for start, end in runs:
            written += keeper.store(variant, keeper.filters(variant, start, end))
        db.session.execute(
            text(
                """
                UPDATE report_snapshot_span
                SET first_day = :first, last_day = greatest(last_day, :last), built_at = now()
                WHERE tenant_id = :tenant AND report = :report AND variant = :variant
                """
            ),
            {
                "tenant": tenant,
                "report": report,
                "variant": variant,
                "first": first_day,
                "last": last,
            },
        )
    db.session.execute(
        text("DELETE FROM report_snapshot_dirty WHERE id = ANY(:ids)"),
        {"ids": [i for i, _ in marks]},
    )
    return written


def _store(facts: Facts, variant: str, f: base.Filters) -> int:
    """Compute and store `f`'s days of `variant` from the raw rows; return the rows stored."""
    array = ", ".join(f"CAST(x.{n} AS numeric)" for n in facts.columns)
    result = db.session.execute(
        text(
            f"""
            INSERT INTO report_snapshot (tenant_id, report, variant, day, key, figures)
            SELECT :tenant, :report, :variant, x.day, x.key, ARRAY[{array}]
            FROM ({facts.select(f)}) AS x(day, key, {", ".join(facts.columns)})
            """
        ),
        {**base.bind(f), **facts.binds, "report": facts.report, "variant": variant},
    )
    return result.rowcount or 0


def _clear(report: str, variant: str, days: list[date] | None) -> None:
    """Delete the variant's stored days `days` (all of them for None)."""
    db.session.execute(
        text(
            """
            DELETE FROM report_snapshot
            WHERE tenant_id = :tenant AND report = :report AND variant = :variant
              AND (CAST(:days AS date[]) IS NULL OR day = ANY(:days))
            """
        ),
        {"tenant": current_tenant_id(), "report": report, "variant": variant, "days": days},
    )


def _drop(keeper: Facts | Rollup | None, report: str, variant: str) -> None:
    """Forget a variant: its span and its days."""
    if keeper is None:
        _clear(report, variant, None)
    else:
        keeper.clear(variant, None)
    db.session.execute(
        text(
            "DELETE FROM report_snapshot_span"
            " WHERE tenant_id = :tenant AND report = :report AND variant = :variant"
        ),
        {"tenant": current_tenant_id(), "report": report, "variant": variant},
    )
