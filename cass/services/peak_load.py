"""Peak load of a site: the highest total power per 15-minute interval, and energy per period.

Per connector and quarter hour (quarter hours of the epoch: every zone's offset is a multiple
of 15 minutes, so they are local quarter hours too):

- **power** is the mean of its `Power.Active.Import` samples in the interval (W, or kW scaled
  to W); a sample sent per phase counts as the sum of its phases, one without a phase as is;
- when it sent no power sample then, its `Energy.Active.Import.Register` readings stand in: the
  energy between two consecutive readings is spread over the quarter hours they span (by time),
  and an interval's energy ÷ 0.25 h is its mean power. A register that went backwards (a meter
  reset) counts as no energy, not negative.

The site's load in an interval is the sum over its connectors; the top intervals are its
peaks. Energy per day, week or month (in the zone) sums the intervals' energy: the register's
where there is one, else power x 0.25 h. Register readings up to an hour before the period pair
with the first ones in it. One statement.

`report()` runs the same load per connector for any of the tenant's sites and answers per site
(each site's own peak), per day, week or month (the chosen sites' load together), or the top
quarter hours with the connectors that drew power in them: one statement too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import text

from cass.extensions import db
from cass.services.utilization import bounds
from cass.tenancy import current_tenant_id

UNITS = ("day", "week", "month")

# Each connector's load per quarter hour of the period ("loads": charger_id, connector_no, q, w,
# wh) for the chargers a `chargers` CTE (charger_id, site_id) names.
_LOADS = """
WITH bounds AS (
  SELECT CAST(:since AS timestamptz) AS t0,
         greatest(least(CAST(:until AS timestamptz), now()), CAST(:since AS timestamptz)) AS t1
), chargers AS (
  {chargers}
), samples AS (
  SELECT m.charger_id, m.connector_no, m.at, m.measurand, m.phase,
         m.value * CASE WHEN lower(m.unit) IN ('kw', 'kwh') THEN 1000 ELSE 1 END AS v
  FROM meter_value m JOIN chargers USING (charger_id)
  -- The bounds as parameters, not from the CTE: so they bound each charger's index range scan.
  WHERE m.at >= CAST(:since AS timestamptz) - interval '1 hour'
    AND m.at <= least(CAST(:until AS timestamptz), now()) AND m.value IS NOT NULL
    AND m.measurand IN ('Power.Active.Import', 'Energy.Active.Import.Register')
), instants AS (
  -- One power figure per instant: the unphased sample, else the sum of the phases.
  SELECT charger_id, connector_no, at,
         CASE WHEN bool_or(phase IS NULL) THEN avg(v) FILTER (WHERE phase IS NULL)
              ELSE sum(v) END AS w
  FROM samples
  WHERE measurand = 'Power.Active.Import' AND (phase IS NULL OR phase IN ('L1', 'L2', 'L3'))
  GROUP BY charger_id, connector_no, at
), power AS (
  SELECT charger_id, connector_no, date_bin('15 minutes', at, timestamptz 'epoch') AS q,
         avg(w) AS w
  FROM instants
  GROUP BY 1, 2, 3
), readings AS (
  SELECT charger_id, connector_no, at, lag(at) OVER w AS prev,
         date_bin('15 minutes', lag(at) OVER w, timestamptz 'epoch') AS q0,
         greatest(v - lag(v) OVER w, 0) AS wh
  FROM samples
  WHERE measurand = 'Energy.Active.Import.Register' AND phase IS NULL
  WINDOW w AS (PARTITION BY charger_id, connector_no ORDER BY at)
), energy AS (
  SELECT charger_id, connector_no, q, sum(wh) AS wh
  FROM (
    -- Most readings close the quarter hour their predecessor opened: no series for those
    -- (a function call per reading was most of a year's cost).
    SELECT charger_id, connector_no, q0 AS q, wh FROM readings
    WHERE at > prev AND at <= q0 + interval '15 minutes'
    UNION ALL
    SELECT r.charger_id, r.connector_no, q,
           r.wh * extract(epoch FROM least(r.at, q + interval '15 minutes') - greatest(r.prev, q))
           / extract(epoch FROM r.at - r.prev)
    FROM readings r,
         generate_series(r.q0, r.at - interval '1 microsecond', interval '15 minutes') AS q
    WHERE r.at > r.prev AND r.at > r.q0 + interval '15 minutes'
  ) AS spread
  GROUP BY 1, 2, 3
), loads AS (
  SELECT charger_id, connector_no, q, coalesce(p.w, e.wh * 4) AS w, coalesce(e.wh, p.w / 4) AS wh
  FROM power p FULL JOIN energy e USING (charger_id, connector_no, q) CROSS JOIN bounds b
  WHERE q >= b.t0 AND q < b.t1
), quarters AS (
  SELECT q, sum(w) AS w, sum(wh) AS wh FROM loads GROUP BY q
)"""

_SITE_CHARGERS = (
    "SELECT id AS charger_id FROM charger WHERE tenant_id = :tenant AND site_id = :site"
)
_SITE_TAIL = """
(SELECT 'peak' AS kind, q, NULL::timestamp AS local, w FROM quarters ORDER BY w DESC, q LIMIT :top)
UNION ALL
SELECT 'energy', NULL, date_trunc(:unit, q AT TIME ZONE :zone), sum(wh) FROM quarters GROUP BY 3
ORDER BY 1, 4
"""
# Constants spliced together (no input): the statements differ only in their chargers and tail.
_SQL = text(_LOADS.format(chargers=_SITE_CHARGERS) + _SITE_TAIL)


def _room() -> None:
    """Give this transaction's sorts and hashes room for a site-year of samples (~440,000 rows
    at 20 connectors), which the default 4 MB would spill to disk."""
    db.session.execute(text("SET LOCAL work_mem = '64MB'"))


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
    site_id: int, start: date, end: date, zone: str, *, top: int = 10, unit: str = "day"
) -> PeakLoad:
    """Return the peak load and energy per `unit` of a site of the current tenant over the
    local days [start, end] of `zone`."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}")
    if end < start:
        raise ValueError("end is before start")
    since, until = bounds(start, end, zone)
    _room()
    rows = db.session.execute(
        _SQL,
        {
            "since": since,
            "until": until,
            "zone": zone,
            "unit": unit,
            "top": top,
            "site": site_id,
            "tenant": current_tenant_id(),
        },
    ).all()
    peaks = [Peak(q, float(w) / 1000) for kind, q, _, w in rows if kind == "peak"]
    peaks.sort(key=lambda p: (-p.kw, p.start))
    energy = sorted(
        (local.date(), float(wh) / 1000) for kind, _, local, wh in rows if kind == "energy"
    )
    return PeakLoad(peaks, energy)


# --- the report: many sites, per site, per period or the top quarter hours ---------------------

GROUPS = ("site", "peak", "day", "week", "month")

_REPORT_CHARGERS = """SELECT id AS charger_id, site_id FROM charger
  WHERE tenant_id = :tenant AND (CAST(:site AS bigint) IS NULL OR site_id = :site)"""

# Every tail answers (key, q of the highest quarter hour, its W, Wh of the group, who drew it).
_TAILS = {
    # Per site: its own load's peak (sites peak at different times), and its energy.
    "site": """
, per_site AS (
  SELECT c.site_id, l.q, sum(l.w) AS w, sum(l.wh) AS wh
  FROM loads l JOIN chargers c USING (charger_id) GROUP BY 1, 2
)
SELECT DISTINCT ON (site_id) site_id, q, w, sum(wh) OVER (PARTITION BY site_id), NULL::text
FROM per_site ORDER BY site_id, w DESC, q
""",
    # Per local day, week or month: the load of the chosen sites together.
    "period": """
, periods AS (SELECT date_trunc(:unit, q AT TIME ZONE :zone)::date AS p, q, w, wh FROM quarters)
SELECT DISTINCT ON (p) p, q, w, sum(wh) OVER (PARTITION BY p), NULL::text
FROM periods ORDER BY p, w DESC, q
""",
    # The top quarter hours, each with the connectors that drew power in it (biggest first).
    "peak": """
, top AS (SELECT q, w, wh FROM quarters ORDER BY w DESC, q LIMIT :top)
SELECT t.q, t.q, t.w, t.wh,
       string_agg(ch.ocpp_id || ' #' || l.connector_no || ': '
                  || round(CAST(l.w / 1000 AS numeric), 1) || ' kW', ', '
                  ORDER BY l.w DESC, ch.ocpp_id, l.connector_no)
FROM top t LEFT JOIN loads l ON l.q = t.q AND l.w > 0
LEFT JOIN charger ch ON ch.id = l.charger_id
GROUP BY t.q, t.w, t.wh ORDER BY t.w DESC, t.q
""",
}
_REPORT_SQL = {
    tail: text(_LOADS.format(chargers=_REPORT_CHARGERS) + sql) for tail, sql in _TAILS.items()
}


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
    since, until = bounds(start, end, zone)
    statement = _REPORT_SQL[by if by in ("site", "peak") else "period"]
    _room()
    rows = db.session.execute(
        statement,
        {
            "since": since,
            "until": until,
            "zone": zone,
            "unit": by if by in UNITS else "day",
            "top": top,
            "site": site_id,
            "tenant": current_tenant_id(),
        },
    ).all()
    return [
        Group(key, q, None if w is None else float(w) / 1000, float(wh or 0) / 1000, who or "")
        for key, q, w, wh, who in rows
    ]
