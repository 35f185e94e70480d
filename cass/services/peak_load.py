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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import text

from cass.extensions import db
from cass.services.utilization import bounds
from cass.tenancy import current_tenant_id

UNITS = ("day", "week", "month")

_SQL = text(
    """
WITH bounds AS (
  SELECT CAST(:since AS timestamptz) AS t0,
         greatest(least(CAST(:until AS timestamptz), now()), CAST(:since AS timestamptz)) AS t1
), chargers AS (
  SELECT id AS charger_id FROM charger WHERE tenant_id = :tenant AND site_id = :site
), samples AS (
  SELECT m.charger_id, m.connector_no, m.at, m.measurand, m.phase,
         m.value * CASE WHEN lower(m.unit) IN ('kw', 'kwh') THEN 1000 ELSE 1 END AS v
  FROM meter_value m JOIN chargers USING (charger_id) CROSS JOIN bounds b
  WHERE m.at >= b.t0 - interval '1 hour' AND m.at <= b.t1 AND m.value IS NOT NULL
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
  SELECT charger_id, connector_no,
         to_timestamp(floor(extract(epoch FROM at) / 900) * 900) AS q, avg(w) AS w
  FROM instants
  GROUP BY 1, 2, 3
), readings AS (
  SELECT charger_id, connector_no, at, lag(at) OVER w AS prev,
         greatest(v - lag(v) OVER w, 0) AS wh
  FROM samples
  WHERE measurand = 'Energy.Active.Import.Register' AND phase IS NULL
  WINDOW w AS (PARTITION BY charger_id, connector_no ORDER BY at)
), energy AS (
  SELECT r.charger_id, r.connector_no, q,
         sum(r.wh * extract(epoch FROM least(r.at, q + interval '15 minutes') - greatest(r.prev, q))
             / extract(epoch FROM r.at - r.prev)) AS wh
  FROM readings r,
       generate_series(to_timestamp(floor(extract(epoch FROM r.prev) / 900) * 900),
                       r.at - interval '1 microsecond', interval '15 minutes') AS q
  WHERE r.prev IS NOT NULL AND r.at > r.prev
  GROUP BY 1, 2, 3
), quarters AS (
  SELECT q, sum(coalesce(p.w, e.wh * 4)) AS w, sum(coalesce(e.wh, p.w / 4)) AS wh
  FROM power p FULL JOIN energy e USING (charger_id, connector_no, q) CROSS JOIN bounds b
  WHERE q >= b.t0 AND q < b.t1
  GROUP BY q
)
(SELECT 'peak' AS kind, q, NULL::timestamp AS local, w FROM quarters ORDER BY w DESC, q LIMIT :top)
UNION ALL
SELECT 'energy', NULL, date_trunc(:unit, q AT TIME ZONE :zone), sum(wh) FROM quarters GROUP BY 3
ORDER BY 1, 4
"""
)


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
