"""Peak load of a site: the highest total power per 15-minute interval, and energy per period.

Per connector and quarter hour (quarter hours of the epoch: every zone's offset is a multiple
of 15 minutes, so they are local quarter hours too):

- **power** is the mean of its `Power.Active.Import` samples in the interval (W, or kW scaled
  to W); a sample sent per phase counts as the sum of its phases, one without a phase as is;
- when it sent no power sample then, its `Energy.Active.Import.Register` readings stand in: the
  energy between two consecutive readings at most `GAP` apart is spread over the quarter hours
  they span (by time), and an interval's energy ÷ 0.25 h is its mean power. A register that went
  backwards (a meter reset) counts as no energy, not negative; so does a longer gap (the charger
  was offline or idle: when that energy was drawn is unknown, and spreading it would make up
  peaks).

The site's load in an interval is the sum over its connectors; the top intervals are its
peaks. Energy per day, week or month (in the zone) sums the intervals' energy: the register's
where there is one, else power x 0.25 h.

Because a quarter hour's load depends only on the samples up to `GAP` around it, the loads of a
range are the loads of its days computed one at a time. So the report-snapshot job keeps each
site's load per quarter hour in `site_load` for the days that ended (`SiteLoads`, over the same
stale-day marks as the report snapshots), and a period reads those stored quarters and computes
only the rest (today, days a late sample made stale) from the meter values: one statement. The
connectors behind the top quarter hours are computed from the samples around those quarters.

`report()` answers for any of the tenant's sites per site (each site's own peak), per day, week
or month (the chosen sites' load together), or the top quarter hours with the connectors that
drew power in them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import text

from cass.extensions import db
from cass.services.reports import base, snapshots
from cass.tenancy import current_tenant_id

UNITS = ("day", "week", "month")
QUARTER = timedelta(minutes=15)
# A register reading pairs with the one before it only this close (hourly clock-aligned
# readings with some jitter still pair).
GAP = "2 hours"
# The job computes this many days a statement: one day's window would read its GAP twice over.
CHUNK_DAYS = 7

# Each connector's load per quarter hour ("loads": charger_id, connector_no, q, w, wh) in the
# windows [t0, t1) given as arrays :t0s and :t1s (disjoint, quarter-hour aligned, clipped to
# now), for the chargers a `chargers` CTE (charger_id, site_id) names.
_LOADS = """
WITH windows AS (
  SELECT t0, greatest(least(t1, now()), t0) AS t1
  FROM unnest(CAST(:t0s AS timestamptz[]), CAST(:t1s AS timestamptz[])) AS w(t0, t1)
), chargers AS (
  {chargers}
), samples AS (
  SELECT w.t0, m.charger_id, m.connector_no, m.at, m.measurand, m.phase, m.v
  FROM chargers c CROSS JOIN windows w
  -- Per charger and window: each an index-only range scan (ix_meter_value_load has every
  -- column read here). Registers are read up to GAP around the window, to pair with the
  -- readings at its edges.
  CROSS JOIN LATERAL (
    SELECT m.charger_id, m.connector_no, m.at, m.measurand, m.phase,
           m.value * CASE WHEN lower(m.unit) IN ('kw', 'kwh') THEN 1000 ELSE 1 END AS v
    FROM meter_value m
    WHERE m.charger_id = c.charger_id
      AND m.at >= w.t0 - interval '{gap}' AND m.at <= w.t1 + interval '{gap}'
      AND m.value IS NOT NULL
      AND m.measurand IN ('Power.Active.Import', 'Energy.Active.Import.Register')
    -- OFFSET 0 keeps this a scan per charger: flattened into a join, it was planned as one
    -- pass over the tenant's whole meter history (43.8 million rows for a day of a fleet).
    OFFSET 0
  ) AS m
), instants AS (
  -- One power figure per instant: the unphased sample, else the sum of the phases.
  SELECT t0, charger_id, connector_no, at,
         CASE WHEN bool_or(phase IS NULL) THEN avg(v) FILTER (WHERE phase IS NULL)
              ELSE sum(v) END AS w
  FROM samples
  WHERE measurand = 'Power.Active.Import' AND (phase IS NULL OR phase IN ('L1', 'L2', 'L3'))
  GROUP BY t0, charger_id, connector_no, at
), power AS (
  SELECT t0, charger_id, connector_no, date_bin('15 minutes', at, timestamptz 'epoch') AS q,
         avg(w) AS w
  FROM instants
  GROUP BY 1, 2, 3, 4
), readings AS (
  SELECT t0, charger_id, connector_no, at, lag(at) OVER w AS prev,
         date_bin('15 minutes', lag(at) OVER w, timestamptz 'epoch') AS q0,
         greatest(v - lag(v) OVER w, 0) AS wh
  FROM samples
  WHERE measurand = 'Energy.Active.Import.Register' AND phase IS NULL
  WINDOW w AS (PARTITION BY t0, charger_id, connector_no ORDER BY at)
), pairs AS (
  SELECT * FROM readings WHERE at > prev AND at - prev <= interval '{gap}'
), energy AS (
  SELECT t0, charger_id, connector_no, q, sum(wh) AS wh
  FROM (
    -- Most readings close the quarter hour their predecessor opened: no series for those
    -- (a function call per reading was most of a year's cost).
    SELECT t0, charger_id, connector_no, q0 AS q, wh FROM pairs
    WHERE at <= q0 + interval '15 minutes'
    UNION ALL
    SELECT r.t0, r.charger_id, r.connector_no, q,
           r.wh * extract(epoch FROM least(r.at, q + interval '15 minutes') - greatest(r.prev, q))
           / extract(epoch FROM r.at - r.prev)
    FROM pairs r,
         generate_series(r.q0, r.at - interval '1 microsecond', interval '15 minutes') AS q
    WHERE r.at > r.q0 + interval '15 minutes'
  ) AS spread
  GROUP BY 1, 2, 3, 4
), loads AS (
  SELECT charger_id, connector_no, q, coalesce(p.w, e.wh * 4) AS w, coalesce(e.wh, p.w / 4) AS wh
  FROM power p FULL JOIN energy e USING (t0, charger_id, connector_no, q) JOIN windows w USING (t0)
  WHERE q >= w.t0 AND q < w.t1
)"""

_CHARGERS = """SELECT id AS charger_id, coalesce(site_id, 0) AS site_id FROM charger
  WHERE tenant_id = :tenant AND (CAST(:site AS bigint) IS NULL OR site_id = :site)
    AND (CAST(:charger AS bigint) IS NULL OR id = :charger)"""

# The quarters of the stored days [:s0, :s1) but the stale ranges [:x0s, :x1s) from site_load,
# and the loads of the raw windows per site ("site_quarters": site_id (0: none), q, w, wh), and
# of the sites together ("quarters").
_QUARTERS = """
, stored AS (
  SELECT s.site_id, s.q, s.w, s.wh FROM site_load s
  WHERE s.tenant_id = :tenant AND (CAST(:site AS bigint) IS NULL OR s.site_id = :site)
    AND s.q >= :s0 AND s.q < :s1
    AND NOT EXISTS (
      SELECT FROM unnest(CAST(:x0s AS timestamptz[]), CAST(:x1s AS timestamptz[])) AS x(a, b)
      WHERE s.q >= x.a AND s.q < x.b
    )
), site_quarters AS (
  SELECT c.site_id, l.q, sum(l.w) AS w, sum(l.wh) AS wh
  FROM loads l JOIN chargers c USING (charger_id) GROUP BY 1, 2
  UNION ALL
  SELECT site_id, q, w, wh FROM stored
), quarters AS (
  SELECT q, sum(w) AS w, sum(wh) AS wh FROM site_quarters GROUP BY q
)"""


def _sql(tail: str) -> Any:
    """Return the statement of the loads, the quarters and a tail (constants, no input)."""
    return text(_LOADS.format(chargers=_CHARGERS, gap=GAP) + _QUARTERS + tail)


_SITE_SQL = _sql(
    """
(SELECT 'peak' AS kind, q, NULL::timestamp AS local, w FROM quarters ORDER BY w DESC, q LIMIT :top)
UNION ALL
SELECT 'energy', NULL, date_trunc(:unit, q AT TIME ZONE :zone), sum(wh) FROM quarters GROUP BY 3
ORDER BY 1, 4
"""
)


def _room() -> None:
    """Give this transaction's sorts and hashes room for a site-year of samples (~440,000 rows
    at 20 connectors), which the default 4 MB would spill to disk."""
    db.session.execute(text("SET LOCAL work_mem = '64MB'"))


def _binds(
    start: date, end: date, zone: str, site_id: int | None, charger_id: int | None = None
) -> dict[str, Any]:
    """Return the binds saying which quarters of the local days [start, end] to read stored
    (:s0, :s1 but :x0s, :x1s) and which to compute (:t0s, :t1s), and for whom (one charger's
    are all computed: the stored quarters are per site)."""
    if charger_id is None:
        plan = snapshots.split(SITE_LOADS.report, SITE_LOADS.variant(zone), start, end, touch=False)
    else:
        plan = snapshots.Split(start, start - timedelta(days=1), [], [(start, end)])
    s0 = s1 = _instants(start, end, zone)[0]
    if plan.stored:
        s0, s1 = _instants(plan.clean_from, plan.clean_to, zone)
    dirty = [_instants(d, d, zone) for d in plan.dirty]
    raw = [_instants(a, b, zone) for a, b in plan.raw]
    return {
        "tenant": current_tenant_id(),
        "site": site_id,
        "charger": charger_id,
        "zone": zone,
        "s0": s0,
        "s1": s1,
        "x0s": [a for a, _ in dirty],
        "x1s": [b for _, b in dirty],
        "t0s": [a for a, _ in raw],
        "t1s": [b for _, b in raw],
    }


def _instants(start: date, end: date, zone: str) -> tuple[datetime, datetime]:
    """Return [since, until) of the local days [start, end] in `zone`."""
    days = base.Filters(start, end, zone)
    return days.since, days.until


@dataclass(frozen=True)
class Peak:
    """A quarter hour and the site's mean power in it."""

    start: datetime
    kw: float


@dataclass(frozen=True)
class PeakLoad:
    """A site's top quarter hours (highest first) and its energy per period (in time order)."""

    peaks: list[Peak]
    energy: list[tuple[date, float]]  # (first day of the period, kWh)

    @property
    def peak_kw(self) -> float | None:
        """Return the highest load of the period in kW (None without data)."""
        return self.peaks[0].kw if self.peaks else None


def peak_load(
    site_id: int | None,
    start: date,
    end: date,
    zone: str,
    *,
    top: int = 10,
    unit: str = "day",
    charger_id: int | None = None,
) -> PeakLoad:
    """Return the peak load and energy per `unit` of a site (or one charger) of the current
    tenant over the local days [start, end] of `zone`."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}")
    if end < start:
        raise ValueError("end is before start")
    if site_id is None and charger_id is None:
        raise ValueError("a site or a charger is needed")
    binds = _binds(start, end, zone, site_id, charger_id)
    _room()
    rows = db.session.execute(_SITE_SQL, {**binds, "unit": unit, "top": top}).all()
    peaks = [Peak(q, float(w) / 1000) for kind, q, _, w in rows if kind == "peak"]
    peaks.sort(key=lambda p: (-p.kw, p.start))
    energy = sorted(
        (local.date(), float(wh) / 1000) for kind, _, local, wh in rows if kind == "energy"
    )
    return PeakLoad(peaks, energy)


# --- the report: many sites, per site, per period or the top quarter hours ---------------------

GROUPS = ("site", "peak", "day", "week", "month")

# Every tail answers (key, q of the highest quarter hour, its W, Wh of the group).
_REPORT_SQL = {
    # Per site: its own load's peak (sites peak at different times), and its energy.
    "site": _sql(
        """
, per_site AS (SELECT site_id, q, sum(w) AS w, sum(wh) AS wh FROM site_quarters GROUP BY 1, 2)
SELECT DISTINCT ON (site_id) nullif(site_id, 0), q, w, sum(wh) OVER (PARTITION BY site_id)
FROM per_site ORDER BY site_id, w DESC, q
"""
    ),
    # Per local day, week or month: the load of the chosen sites together.
    "period": _sql(
        """
, periods AS (SELECT date_trunc(:unit, q AT TIME ZONE :zone)::date AS p, q, w, wh FROM quarters)
SELECT DISTINCT ON (p) p, q, w, sum(wh) OVER (PARTITION BY p)
FROM periods ORDER BY p, w DESC, q
"""
    ),
    # The top quarter hours (who drew them comes after, from `_WHO`).
    "peak": _sql("SELECT q, q, w, wh FROM quarters ORDER BY w DESC, q LIMIT :top"),
}
# The connectors that drew power in each of the windows (the top quarter hours), biggest first.
_WHO = text(
    _LOADS.format(chargers=_CHARGERS, gap=GAP)
    + """
SELECT l.q, string_agg(ch.ocpp_id || ' #' || l.connector_no || ': '
                       || round(CAST(l.w / 1000 AS numeric), 1) || ' kW', ', '
                       ORDER BY l.w DESC, ch.ocpp_id, l.connector_no)
FROM loads l JOIN charger ch ON ch.id = l.charger_id
WHERE l.w > 0
GROUP BY l.q
"""
)


@dataclass(frozen=True)
class Group:
    """A report row: a site id, a period's first day or a quarter hour; the group's highest
    quarter hour and its kW, the group's kWh, and who drew the power (top quarter hours)."""

    key: Any
    start: datetime | None
    kw: float | None
    kwh: float
    chargers: str = ""


def report(
    start: date,
    end: date,
    zone: str,
    by: str,
    *,
    site_id: int | None = None,
    top: int = 20,
) -> list[Group]:
    """Return the current tenant's peak load over the local days [start, end] of `zone` per
    site, per day, week or month, or as the `top` quarter hours (of one site if given)."""
    if by not in GROUPS:
        raise ValueError(f"by must be one of {GROUPS}")
    if end < start:
        raise ValueError("end is before start")
    binds = _binds(start, end, zone, site_id)
    statement = _REPORT_SQL[by if by in ("site", "peak") else "period"]
    _room()
    rows = db.session.execute(
        statement, {**binds, "unit": by if by in UNITS else "day", "top": top}
    ).all()
    who: dict[datetime, str] = {}
    if by == "peak" and rows:
        quarters = [q for _, q, _, _ in rows]
        who = dict(
            db.session.execute(
                _WHO,
                {**binds, "t0s": quarters, "t1s": [q + QUARTER for q in quarters]},
            ).all()
        )
    return [
        Group(
            key,
            q,
            None if w is None else float(w) / 1000,
            float(wh or 0) / 1000,
            who.get(q, "") if by == "peak" else "",
        )
        for key, q, w, wh in rows
    ]


# --- the rollup the snapshot job keeps --------------------------------------------------------

_FIRST_SAMPLE = text(
    """
SELECT min(first.at) FROM charger c
CROSS JOIN LATERAL (
  SELECT at FROM meter_value m WHERE m.charger_id = c.id ORDER BY at LIMIT 1
) AS first
WHERE c.tenant_id = :tenant
"""
)
_STORE = text(
    _LOADS.format(chargers=_CHARGERS, gap=GAP)
    + """
INSERT INTO site_load (tenant_id, site_id, q, w, wh)
SELECT :tenant, c.site_id, l.q, sum(l.w), sum(l.wh)
FROM loads l JOIN chargers c USING (charger_id)
GROUP BY 2, 3
"""
)
_CLEAR = text(
    """
DELETE FROM site_load s
WHERE s.tenant_id = :tenant
  AND (CAST(:x0s AS timestamptz[]) IS NULL OR EXISTS (
    SELECT FROM unnest(CAST(:x0s AS timestamptz[]), CAST(:x1s AS timestamptz[])) AS x(a, b)
    WHERE s.q >= x.a AND s.q < x.b
  ))
"""
)


class SiteLoads:
    """Every site's load per quarter hour of the days that ended, in `site_load`."""

    report = "site-load"

    def variant(self, zone: str) -> str:
        """Return the one variant: the tenant's zone (its local days are what is kept)."""
        return urlencode([("zone", zone)])

    def defaults(self, zone: str) -> list[str]:
        """Return the variants kept for every tenant: the one."""
        return [self.variant(zone)]

    def filters(self, variant: str, start: date, end: date) -> base.Filters:
        """Return the days [start, end] in the variant's zone."""
        return snapshots.variant_filters(variant, start, end)

    def store(self, variant: str, f: base.Filters) -> int:
        """Compute and store every site's quarters of `f`'s days, a week at a time; return
        the rows stored."""
        tenant = current_tenant_id()
        first = db.session.execute(_FIRST_SAMPLE, {"tenant": tenant}).scalar()
        if first is None:
            return 0
        start = max(f.start, first.astimezone(f.since.tzinfo).date())
        written = 0
        _room()
        while start <= f.end:
            end = min(start + timedelta(days=CHUNK_DAYS - 1), f.end)
            since, until = _instants(start, end, f.zone)
            done = db.session.execute(
                _STORE,
                {"tenant": tenant, "site": None, "charger": None, "t0s": [since], "t1s": [until]},
            )
            written += done.rowcount or 0
            start = end + timedelta(days=1)
        return written

    def clear(self, variant: str, days: list[date] | None) -> None:
        """Delete the stored quarters of the local days `days` (all of them for None)."""
        zone = snapshots.variant_filters(variant, date.min, date.min).zone
        ranges = None if days is None else [_instants(d, d, zone) for d in days]
        db.session.execute(
            _CLEAR,
            {
                "tenant": current_tenant_id(),
                "x0s": None if ranges is None else [a for a, _ in ranges],
                "x1s": None if ranges is None else [b for _, b in ranges],
            },
        )


SITE_LOADS = snapshots.register_rollup(SiteLoads())
