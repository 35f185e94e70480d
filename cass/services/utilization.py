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
of the same weekday-hours in the period (each hour's length, from the calendar, times the
connectors).

The figures are report-snapshot facts (`cass.services.reports.snapshots`): one select gives, per
local day, each connector's known seconds per state and the sessions it started (key
`c:<charger>:<connector>`), and the charging seconds per local weekday and hour
(`h:<isodow>:<hour>`). Because the state at the start of any run of days comes from the last
event before it, the figures of a period are exactly the sum of its days' figures, each day
computed alone: so the snapshot job stores every finished day, a long period reads them, and only
today, days not stored yet and days a late event or session made stale (migrations 0014 and
0024 mark them) are computed from the raw rows. Unknown time is not stored: it is what the known
states leave of the period (a connector with no row on a day knew nothing that day), so the
decades before a connector's history cost no rows. The connectors are grouped per connector,
charger or site (the charger's current site) here, so one variant per site filter serves every
level; the charger pages' panels (`charger_ids`) are computed raw through the same select.

The connectors counted are those in the `connector` table of the chosen chargers now, and any
other that reported a status change in the period (the bridge upserts a connector with every
status, so hardly any): the latter count on the days of their changes only (unknown on the
others), so that a day's figures do not depend on the days computed with it. A stored day holds
the chargers of its site when it was computed; a charger moved to another site marks every day
since its history began (migration 0024), so both sites' days are computed raw until the job has
stored them again. A deleted charger is left out of the groups (its charging stays in the heat
map's stored days).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text

from cass.extensions import db
from cass.services.reports import base, snapshots
from cass.services.uptime import _PRESENCE_CHANGES
from cass.tenancy import current_tenant_id

LEVELS = ("connector", "charger", "site")
OCCUPIED_STATUSES = ("Preparing", "Finishing", "SuspendedEV", "SuspendedEVSE", "Occupied")
STATES = ("charging", "occupied", "available", "offline", "other", "unknown")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# The states stored (unknown is what they leave of the period) and each one's code in the select.
KNOWN = {"charging": 1, "occupied": 2, "available": 3, "offline": 5, "other": 4}
SESSION_MEASURES = ("sessions", "energy_wh", "sessions_with_energy", "duration_s", "stopped")
MEASURES = (*(f"{s}_s" for s in KNOWN), *SESSION_MEASURES, "heat_charging_s")

# Status categories as small codes, so that the last one can be carried forward with a running
# max of ord * 8 + code (the uptime module's trick; strings have no such order). Offline (5) is
# set from the presence, not from a status.
_CODE = """CASE WHEN e.status = 'Charging' THEN 1
     WHEN e.status IN ('Preparing', 'Finishing', 'SuspendedEV', 'SuspendedEVSE', 'Occupied')
     THEN 2
     WHEN e.status = 'Available' THEN 3 ELSE 4 END"""

_SQL = """
WITH chargers AS (
  SELECT c.id AS charger_id FROM charger c
  WHERE c.tenant_id = :tenant{site}
    AND (CAST(:ids AS bigint[]) IS NULL OR c.id = ANY(CAST(:ids AS bigint[])))
), bounds AS (
  SELECT CAST(:since AS timestamptz) AS t0,
         greatest(least(CAST(:until AS timestamptz), now()), CAST(:since AS timestamptz)) AS t1
), changes AS (
  SELECT e.charger_id, e.connector_no, e.at, e.id, {code} AS code
  FROM charger_event e JOIN chargers USING (charger_id)
  -- The bounds as parameters (t0, t1 of `bounds`), not from the CTE: so they bound each
  -- charger's index range scan instead of filtering its whole history.
  WHERE e.at >= CAST(:since AS timestamptz)
    AND e.at < least(CAST(:until AS timestamptz), now())
    AND e.kind = 'status' AND e.connector_no > 0
), listed AS (
  SELECT k.charger_id, k.connector_no FROM connector k JOIN chargers USING (charger_id)
  WHERE k.connector_no > 0
), unlisted_days AS (
  -- Connectors known only from their status changes, and the days they changed on: they count
  -- on those days only (a day computed alone would not know them on the others).
  SELECT DISTINCT x.charger_id, x.connector_no, CAST(x.at AT TIME ZONE :zone AS date) AS day
  FROM changes x LEFT JOIN listed k USING (charger_id, connector_no)
  WHERE k.charger_id IS NULL
), connectors AS (
  SELECT charger_id, connector_no FROM listed
  UNION SELECT charger_id, connector_no FROM unlisted_days
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
    SELECT {code} AS code FROM charger_event e
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
  -- The known pieces only: offline (5) whatever the status, else the status's code; unknown
  -- time is left out (before a connector's history starts it would be a row a day for years).
  SELECT charger_id, connector_no, at, until,
         CASE WHEN online % 2 = 0 THEN 5 ELSE code % 8 END AS state
  FROM carried
  WHERE until > at AND (online % 2 = 0 OR code IS NOT NULL)
), day_pieces AS (
  -- Pieces cut at local midnights: the days as local timestamps (a day is one calendar step
  -- there, 23 or 25 hours long when turned back into instants). Most pieces lie in one day.
  SELECT p.charger_id, p.connector_no, p.state, CAST(d AS date) AS day,
         greatest(p.at, d AT TIME ZONE :zone) AS a,
         least(p.until, (d + interval '1 day') AT TIME ZONE :zone) AS b
  FROM pieces p
  CROSS JOIN LATERAL generate_series(date_trunc('day', p.at AT TIME ZONE :zone),
                                     (p.until AT TIME ZONE :zone) - interval '1 microsecond',
                                     interval '1 day') AS d
  WHERE (p.charger_id, p.connector_no) IN (SELECT charger_id, connector_no FROM listed)
     OR (p.charger_id, p.connector_no, CAST(d AS date)) IN (SELECT * FROM unlisted_days)
), facts AS (
  SELECT charger_id, connector_no, day, state, b - a AS len,
         NULL::bigint AS wh, NULL::interval AS dur
  FROM day_pieces
  UNION ALL
  -- Sessions by the local day they started on, as state 0.
  SELECT s.charger_id, s.connector_no, CAST(s.started_at AT TIME ZONE :zone AS date), 0, NULL,
         s.energy_wh, s.stopped_at - s.started_at
  FROM chargers c JOIN charging_session s USING (charger_id)
  -- Per charger and with the bounds as parameters: through the bounds CTE Postgres read the
  -- tenant's sessions of the period (1.46 million in a year of the benchmark) for one site's.
  WHERE s.started_at >= CAST(:since AS timestamptz)
    AND s.started_at < least(CAST(:until AS timestamptz), now())
    AND ((s.charger_id, s.connector_no) IN (SELECT charger_id, connector_no FROM listed)
         OR (s.charger_id, s.connector_no, CAST(s.started_at AT TIME ZONE :zone AS date))
            IN (SELECT * FROM unlisted_days))
)
SELECT day, 'c:' || charger_id || ':' || connector_no,
       {states},
       count(*) FILTER (WHERE state = 0), coalesce(sum(wh), 0), count(wh),
       coalesce(extract(epoch FROM sum(dur)), 0), count(dur), 0
FROM facts
GROUP BY day, charger_id, connector_no
UNION ALL
-- Charging time per local weekday and hour (ISO weekday, 1 = Monday), cut at local hours:
-- summed per local hour first, so that the key is made once per hour, not per piece.
SELECT day, 'h:' || extract(isodow FROM l) || ':' || extract(hour FROM l), {zeros},
       extract(epoch FROM len)
FROM (
  SELECT day, h AT TIME ZONE :zone AS l,
         sum(least(b, h + interval '1 hour') - greatest(a, h)) AS len
  FROM day_pieces
  CROSS JOIN LATERAL generate_series(date_trunc('hour', a, :zone), b - interval '1 microsecond',
                                     interval '1 hour') AS h
  WHERE state = 1
  GROUP BY 1, 2
) AS hours
"""

# The weekday-hours of a period clipped to now, and each one's length: the heat map's
# denominators (times the connectors), and the period's length (their sum). A whole day of 24
# hours gives each of its hours 3,600 seconds; the others (the days of a clock change, and the
# first and last if clipped) are walked hour by hour, as the charging time is cut.
_SPANS = text(
    """
WITH bounds AS (
  SELECT CAST(:since AS timestamptz) AS t0,
         greatest(least(CAST(:until AS timestamptz), now()), CAST(:since AS timestamptz)) AS t1
), days AS (
  SELECT d, greatest(d AT TIME ZONE :zone, b.t0) AS a,
         least((d + interval '1 day') AT TIME ZONE :zone, b.t1) AS b
  FROM bounds b,
       generate_series(date_trunc('day', b.t0 AT TIME ZONE :zone),
                       (b.t1 AT TIME ZONE :zone) - interval '1 microsecond', interval '1 day') AS d
), whole AS (
  SELECT extract(isodow FROM d)::int AS weekday, count(*) AS n FROM days
  WHERE b - a = interval '24 hours'
  GROUP BY 1
), spans AS (
  SELECT w.weekday, h.hour, w.n * 3600 AS span
  FROM whole w CROSS JOIN generate_series(0, 23) AS h(hour)
  UNION ALL
  SELECT extract(isodow FROM l)::int, extract(hour FROM l)::int, span
  FROM days
  CROSS JOIN LATERAL generate_series(date_trunc('hour', a, :zone), b - interval '1 microsecond',
                                     interval '1 hour') AS h
  CROSS JOIN LATERAL (
    SELECT h AT TIME ZONE :zone AS l,
           extract(epoch FROM least(h + interval '1 hour', b) - greatest(h, a)) AS span
  ) AS x
  WHERE b - a <> interval '24 hours'
)
SELECT weekday, hour, sum(span) FROM spans GROUP BY 1, 2
"""
)

# The chosen chargers as they are now, their sites, and their connectors.
_SCOPE = text(
    """
SELECT c.id, c.site_id, k.connector_no
FROM charger c LEFT JOIN connector k ON k.charger_id = c.id AND k.connector_no > 0
WHERE c.tenant_id = :tenant AND (CAST(:site AS bigint) IS NULL OR c.site_id = :site)
  AND (CAST(:ids AS bigint[]) IS NULL OR c.id = ANY(CAST(:ids AS bigint[])))
"""
)


def _select(f: base.Filters) -> str:
    """Select per local day: each connector's known seconds per state and its sessions, and the
    charging seconds per weekday and hour."""
    states = ",\n       ".join(
        f"coalesce(extract(epoch FROM sum(len) FILTER (WHERE state = {code})), 0)"
        for code in KNOWN.values()
    )
    return _SQL.format(
        site=" AND c.site_id = :site" if f.site is not None else "",
        code=_CODE,
        presence=_PRESENCE_CHANGES,
        states=states,
        zeros=", ".join(["0"] * (len(MEASURES) - 1)),
    )


FACTS = snapshots.register(
    snapshots.Facts(
        report="utilization",
        measures=MEASURES,
        # Not "by": the levels are grouped here from the connectors' figures.
        depends=("site",),
        select=_select,
        binds={"ids": None},
    )
)


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
    ids = sorted({int(i) for i in charger_ids}) if charger_ids is not None else None
    today = datetime.now(ZoneInfo(zone)).date()
    days = max((min(end, today) - start).days + 1, 0)
    f = base.Filters(start, end, zone, site=site_id)
    sites, listed = _scope(site_id, ids)
    spans = _spans(f)
    if ids is None:
        sums = snapshots.figures(FACTS, f)
    else:
        # A few chargers' figures are quick to compute, and not worth a variant each.
        with snapshots.raw():
            sums = snapshots.figures(replace(FACTS, binds={"ids": ids}), f)

    width = len(MEASURES)
    per_connector: dict[tuple[int, int], list[Decimal]] = {k: [Decimal(0)] * width for k in listed}
    charging: dict[tuple[int, int], Decimal] = {}
    for key, values in sums.items():
        kind, a, b = key.split(":")
        if kind == "h":
            charging[(int(a), int(b))] = values[-1]
        elif int(a) in sites:
            # A charger stored with the site's days but since moved or deleted is left out.
            per_connector[(int(a), int(b))] = values
    period = sum(spans.values(), Decimal(0)) if per_connector else Decimal(0)

    groups: dict[Any, list[Any]] = {}
    group_sites: dict[Any, int] = {}
    for connector in sorted(per_connector):
        site = sites[connector[0]]
        key: Any = site if level == "site" else connector[0] if level == "charger" else connector
        groups.setdefault(key, []).append(per_connector[connector])
        group_sites[key] = site
    ordered = sorted(groups, key=lambda k: (k is None, k))
    heat: list[list[float | None]] = [[None] * 24 for _ in range(7)]
    for (weekday, hour), span in spans.items():
        whole = float(span * len(per_connector))
        heat[weekday - 1][hour] = float(charging.get((weekday, hour), 0)) / whole if whole else None
    return Utilization(
        level,
        start,
        end,
        zone,
        {k: _usage(groups[k], period, days) for k in ordered},
        _usage(list(per_connector.values()), period, days),
        heat,
        {k: group_sites[k] for k in ordered},
    )


def _scope(site_id: int | None, ids: list[int] | None) -> tuple[dict[int, Any], set[Any]]:
    """Return the chosen chargers now (charger id -> site id) and their connectors."""
    rows = db.session.execute(
        _SCOPE, {"tenant": current_tenant_id(), "site": site_id, "ids": ids}
    ).all()
    return {r[0]: r[1] for r in rows}, {(r[0], r[2]) for r in rows if r[2] is not None}


def _spans(f: base.Filters) -> dict[tuple[int, int], Decimal]:
    """Return the seconds of each local (ISO weekday, hour) in `f`'s period, clipped to now."""
    rows = db.session.execute(_SPANS, {"since": f.since, "until": f.until, "zone": f.zone})
    return {(int(weekday), int(hour)): Decimal(span) for weekday, hour, span in rows}


def _usage(connectors: list[list[Decimal]], period: Decimal, days: int) -> Usage:
    """Return the Usage of connectors from their summed measures; unknown is the rest."""
    sums = [sum(column, Decimal(0)) for column in zip(*connectors, strict=True)]
    if not sums:
        sums = [Decimal(0)] * len(MEASURES)
    known = dict(zip(KNOWN, sums, strict=False))
    unknown = len(connectors) * period - sum(known.values(), Decimal(0))
    n, wh, n_wh, dur, n_stopped = sums[len(KNOWN) : len(KNOWN) + len(SESSION_MEASURES)]
    return Usage(
        len(connectors),
        float(period),
        {s: float(known[s]) if s in known else float(unknown) for s in STATES},
        int(n),
        int(wh),
        int(n_wh),
        float(dur),
        int(n_stopped),
        days,
    )
