"""Utilization of connectors, chargers and sites over a period, from their status history.

Over the local days [start, end] of a zone (the tenant's), clipped to now, each connector's time
is split by what its last status said:

- **charging**: `Charging`;
- **occupied**: a car is there but not drawing power: `Preparing`, `Finishing`, `SuspendedEV`,
  `SuspendedEVSE`, and OCPP 2.0.1's `Occupied` (a 2.0.1 charger reports no `Charging`);
- **available**: `Available`;
- **offline**: its charger is offline (its last status is stale then, as in `uptime`);
- **other**: any other status (Faulted, Unavailable, Reserved…);
- **unknown**: before anything is known (no status before the period and none yet in it).

The state at the start comes from the last event before it, as in `cass.services.uptime`, whose
presence fragment this module reuses. Sessions started in the period give the sessions per day,
the mean energy (sessions with a reading) and the mean duration (stopped sessions).

The weekday-by-hour matrix is the share of connector-time spent charging in each local weekday
and hour: charging time cut at local hour boundaries (`date_trunc('hour', at, zone)`, so a DST
day has 23 or 25 hours and a 30-minute zone cuts at its own half hours) over the connector-time
of the same weekday-hours in the period.

Everything is one statement: the connectors' states as pieces between changes (`lead()`), their
totals and sessions rolled up per connector, charger or site with a grand total
(GROUPING SETS), and the heat cells, in one result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT

from cass.extensions import db
from cass.services.uptime import _PRESENCE_CHANGES
from cass.tenancy import current_tenant_id

LEVELS = ("connector", "charger", "site")
OCCUPIED_STATUSES = ("Preparing", "Finishing", "SuspendedEV", "SuspendedEVSE", "Occupied")
STATES = ("charging", "occupied", "available", "offline", "other", "unknown")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Group keys per level; the total row is the empty grouping set.
_KEYS = {
    "connector": "c.site_id, k.charger_id, k.connector_no",
    "charger": "c.site_id, k.charger_id",
    "site": "c.site_id",
}

# Status categories as small codes, so that the last one can be carried forward with a running
# max of ord * 8 + code (the uptime module's trick; strings have no such order).
_CODE = """CASE WHEN {s} = 'Charging' THEN 1
     WHEN {s} IN ('Preparing', 'Finishing', 'SuspendedEV', 'SuspendedEVSE', 'Occupied') THEN 2
     WHEN {s} = 'Available' THEN 3 ELSE 4 END"""

_SQL = """
WITH bounds AS (
  SELECT CAST(:since AS timestamptz) AS t0,
         greatest(least(CAST(:until AS timestamptz), now()), CAST(:since AS timestamptz)) AS t1
), chargers AS (
  SELECT c.id AS charger_id, c.site_id FROM charger c
  WHERE c.tenant_id = :tenant
    AND (CAST(:site AS bigint) IS NULL OR c.site_id = :site)
    AND (CAST(:ids AS bigint[]) IS NULL OR c.id = ANY(:ids))
), changes AS (
  SELECT e.charger_id, e.connector_no, e.at, e.id, {code_e} AS code
  FROM charger_event e JOIN chargers USING (charger_id)
  -- The bounds as parameters (t0, t1 of `bounds`), not from the CTE: so they bound each
  -- charger's index range scan instead of filtering its whole history.
  WHERE e.at >= CAST(:since AS timestamptz)
    AND e.at < least(CAST(:until AS timestamptz), now())
    AND e.kind = 'status' AND e.connector_no > 0
), connectors AS (
  SELECT k.charger_id, k.connector_no FROM connector k JOIN chargers USING (charger_id)
  WHERE k.connector_no > 0
  UNION SELECT charger_id, connector_no FROM changes
), presence AS (
  SELECT c.charger_id, p.at, p.id, p.up
  FROM chargers c CROSS JOIN bounds b CROSS JOIN LATERAL ({presence}) AS p
), points AS (
  -- A marker at t0 (the time before anything is known is unknown), each connector's status
  -- at t0 (its last one before, moved to t0; id 0 lets an event at exactly t0 win), its
  -- changes, and its charger's presence changes.
  SELECT k.charger_id, k.connector_no, b.t0 AS at, -1::bigint AS id,
         NULL::int AS code, NULL::boolean AS up
  FROM connectors k CROSS JOIN bounds b
  UNION ALL
  SELECT k.charger_id, k.connector_no, b.t0, 0, last.code, NULL
  FROM connectors k CROSS JOIN bounds b
  CROSS JOIN LATERAL (
    SELECT {code_e} AS code FROM charger_event e
    WHERE e.charger_id = k.charger_id AND e.at < b.t0
      AND e.kind = 'status' AND e.connector_no = k.connector_no
    ORDER BY e.at DESC, e.id DESC LIMIT 1
  ) AS last
  UNION ALL
  SELECT charger_id, connector_no, at, id, code, NULL FROM changes
  UNION ALL
  SELECT k.charger_id, k.connector_no, p.at, p.id, NULL, p.up
  FROM connectors k JOIN presence p USING (charger_id)
), ordered AS (
  SELECT p.*, row_number() OVER (PARTITION BY charger_id, connector_no
                                 ORDER BY at, id, code NULLS FIRST) AS ord
  FROM points p
), carried AS (
  SELECT charger_id, connector_no, at, lead(at, 1, b.t1) OVER w AS until,
         max(ord * 8 + code) OVER w AS code,
         max(ord * 2 + up::int) OVER w AS online
  FROM ordered CROSS JOIN bounds b
  WINDOW w AS (PARTITION BY charger_id, connector_no ORDER BY ord
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), pieces AS (
  SELECT charger_id, connector_no, at, until,
         CASE WHEN online % 2 = 0 THEN 'offline'
              WHEN code IS NULL THEN 'unknown'
              ELSE (ARRAY['charging', 'occupied', 'available', 'other'])[code % 8] END AS state
  FROM carried
  WHERE until > at
), totals AS (
  SELECT charger_id, connector_no,
         {sums}
  FROM (SELECT *, extract(epoch FROM until - at) AS len FROM pieces) AS p
  GROUP BY charger_id, connector_no
), sessions AS (
  SELECT s.charger_id, s.connector_no, count(*) AS n, sum(s.energy_wh) AS wh,
         count(s.energy_wh) AS n_wh,
         sum(extract(epoch FROM s.stopped_at - s.started_at)) AS dur_s,
         count(s.stopped_at) AS n_stopped
  FROM chargers c JOIN charging_session s USING (charger_id)
  JOIN connectors k USING (charger_id, connector_no)
  -- Per charger and with the bounds as parameters: through the bounds CTE Postgres read the
  -- tenant's sessions of the period (1.46 million in a year of the benchmark) for one site's.
  WHERE s.started_at >= CAST(:since AS timestamptz)
    AND s.started_at < least(CAST(:until AS timestamptz), now())
  GROUP BY s.charger_id, s.connector_no
), hours AS (
  -- Every local hour of the period, as [h, h + 1 hour) clipped to it.
  SELECT greatest(h, b.t0) AS h0, least(h + interval '1 hour', b.t1) AS h1
  FROM bounds b,
       generate_series(date_trunc('hour', b.t0, :zone), b.t1 - interval '1 microsecond',
                       interval '1 hour') AS h
), charging_hours AS (
  SELECT date_trunc('hour', h, :zone) AS h,
         extract(epoch FROM least(p.until, h + interval '1 hour') - greatest(p.at, h)) AS len
  FROM pieces p,
       generate_series(date_trunc('hour', p.at, :zone), p.until - interval '1 microsecond',
                       interval '1 hour') AS h
  WHERE p.state = 'charging'
)
SELECT 'row' AS kind, {shown}, grouping({keys}) AS total, count(*) AS connectors,
       {rollup}, coalesce(sum(s.n), 0), coalesce(sum(s.wh), 0), coalesce(sum(s.n_wh), 0),
       coalesce(sum(s.dur_s), 0), coalesce(sum(s.n_stopped), 0),
       max(extract(epoch FROM b.t1 - b.t0))
FROM connectors k JOIN chargers c USING (charger_id) CROSS JOIN bounds b
LEFT JOIN totals t USING (charger_id, connector_no)
LEFT JOIN sessions s USING (charger_id, connector_no)
GROUP BY GROUPING SETS (({keys}), ())
UNION ALL
-- Heat cells: the weekday (ISO, 1 = Monday) and hour in the first two key columns; the
-- charging seconds and the connector-seconds of that weekday-hour in the first two figures.
SELECT 'heat', extract(isodow FROM w.local)::bigint, extract(hour FROM w.local)::bigint,
       {heat_nulls}0, 0, sum(w.charging), sum(w.span) * (SELECT count(*) FROM connectors),
       {heat_zeros}
FROM (
  SELECT h0 AT TIME ZONE :zone AS local, 0 AS charging, extract(epoch FROM h1 - h0) AS span
  FROM hours
  UNION ALL
  SELECT h AT TIME ZONE :zone, len, 0 FROM charging_hours
) AS w
GROUP BY 2, 3
"""


def _statement(level: str) -> Any:
    """Return the statement for one level (its group keys spliced in)."""
    keys = _KEYS[level]
    # Every level shows at least two key columns, so that the heat rows' weekday and hour fit.
    shown = keys if level != "site" else f"{keys}, NULL::bigint"
    sums = ",\n         ".join(
        f"coalesce(sum(len) FILTER (WHERE state = '{s}'), 0) AS {s}_s" for s in STATES
    )
    sql = _SQL.format(
        code_e=_CODE.format(s="e.status"),
        presence=_PRESENCE_CHANGES,
        sums=sums,
        keys=keys,
        shown=shown,
        rollup=", ".join(f"coalesce(sum(t.{s}_s), 0)" for s in STATES),
        heat_nulls="NULL::bigint, " * (_width(level) - 2),
        heat_zeros=", ".join(["0"] * (len(STATES) + 6 - 2)),
    )
    return text(sql).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))


def _width(level: str) -> int:
    """Return how many key columns the level's rows show."""
    return max(len(_KEYS[level].split(",")), 2)


_STATEMENTS = {level: _statement(level) for level in LEVELS}


@dataclass(frozen=True)
class Usage:
    """Connector-time per state, and the sessions started, of a connector or a group of them."""

    connectors: int
    period_seconds: float  # of one connector (the period clipped to now)
    seconds: dict[str, float]  # per state in STATES
    sessions: int
    energy_wh: int  # of the sessions with a reading
    sessions_with_energy: int
    duration_seconds: float  # of the stopped sessions
    stopped_sessions: int
    days: int  # local days of the period up to today, for sessions per day

    def share(self, state: str) -> float | None:
        """Return the share (0 to 1) of connector-time in `state` (None for no time)."""
        whole = self.connectors * self.period_seconds
        return self.seconds[state] / whole if whole > 0 else None

    @property
    def sessions_per_day(self) -> float | None:
        """Return the sessions started per day (all connectors together)."""
        return self.sessions / self.days if self.days else None

    @property
    def mean_kwh(self) -> float | None:
        """Return the mean energy of the sessions that have a reading, in kWh."""
        return (
            self.energy_wh / 1000 / self.sessions_with_energy if self.sessions_with_energy else None
        )

    @property
    def mean_hours(self) -> float | None:
        """Return the mean duration of the stopped sessions, in hours."""
        return (
            self.duration_seconds / 3600 / self.stopped_sessions if self.stopped_sessions else None
        )


@dataclass(frozen=True)
class Utilization:
    """The figures per group (site id, charger id or (charger id, connector no)), the total,
    and the weekday-by-hour charging shares (7 rows from Monday, 24 hours; None where the
    period has no such hour)."""

    level: str
    start: date
    end: date
    zone: str
    groups: dict[Any, Usage]
    total: Usage
    heat: list[list[float | None]] = field(default_factory=list)
    sites: dict[Any, int] = field(default_factory=dict)  # group -> its site id


def bounds(start: date, end: date, zone: str) -> tuple[datetime, datetime]:
    """Return the instants [since, until) of the local days [start, end] in `zone`."""
    tz = ZoneInfo(zone)
    return datetime.combine(start, time(), tz), datetime.combine(
        end + timedelta(days=1), time(), tz
    )


def utilization(
    start: date,
    end: date,
    zone: str,
    level: str = "charger",
    *,
    site_id: int | None = None,
    charger_ids: Iterable[int] | None = None,
) -> Utilization:
    """Return the utilization of the current tenant's connectors over the local days [start,
    end] of `zone`, per connector, charger or site (of one site or some chargers if given)."""
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}")
    if end < start:
        raise ValueError("end is before start")
    since, until = bounds(start, end, zone)
    today = datetime.now(ZoneInfo(zone)).date()
    days = max((min(end, today) - start).days + 1, 0)
    rows = db.session.execute(
        _STATEMENTS[level],
        {
            "since": since,
            "until": until,
            "zone": zone,
            "tenant": current_tenant_id(),
            "site": site_id,
            "ids": sorted({int(i) for i in charger_ids}) if charger_ids is not None else None,
        },
    ).all()
    n_keys = _width(level)
    groups: dict[Any, Usage] = {}
    sites: dict[Any, int] = {}
    total = Usage(0, 0.0, dict.fromkeys(STATES, 0.0), 0, 0, 0, 0.0, 0, days)
    heat: list[list[float | None]] = [[None] * 24 for _ in range(7)]
    for row in rows:
        keys = row[1 : 1 + n_keys]
        figures = row[1 + n_keys + 1 :]
        if row[0] == "heat":
            charging, span = float(figures[1]), float(figures[2])
            weekday, hour = int(keys[0]), int(keys[1])
            heat[weekday - 1][hour] = charging / span if span else None
            continue
        usage = _usage(figures, days)
        if row[1 + n_keys]:
            total = usage
            continue
        key: Any = keys[0] if level == "site" else keys[1] if level == "charger" else keys[1:3]
        groups[key] = usage
        sites[key] = keys[0]
    return Utilization(level, start, end, zone, groups, total, heat, sites)


def _usage(figures: tuple[Any, ...], days: int) -> Usage:
    """Return a Usage from a row's figures: connectors, seconds per state, sessions, period."""
    connectors, *rest = figures
    seconds = {s: float(v) for s, v in zip(STATES, rest[: len(STATES)], strict=True)}
    n, wh, n_wh, dur, n_stopped, period = rest[len(STATES) :]
    return Usage(
        int(connectors),
        float(period or 0),
        seconds,
        int(n),
        int(wh),
        int(n_wh),
        float(dur),
        int(n_stopped),
        days,
    )
