"""Availability of chargers and connectors over a period, from their event history.

Over a period [start, end), clipped to now (the future is not counted):

- A **charger** is up while online and down while offline, from its `online`/`offline`
  events (the bridge's and those an external CSMS reported).
- A **connector** is up while its status is one of `AVAILABLE_STATUSES` (free, in use or
  reserved: it works), and down while its status is anything else (Faulted, Unavailable), while
  connector 0 (the charger as a whole) reports Faulted or Unavailable, or while the charger is
  offline: a charger that lost power reports nothing more, and its last "Available" must not
  count as available.
- The state at `start` is what the last event before `start` said; the time before anything is
  known (no event before, none yet in the period) is **unknown**, counted in neither up nor
  down. The percentage is up / (up + down), None when nothing is known.

One set-based statement computes every charger and connector asked for. A charger's presence
is worked out one charger at a time (a lateral join reading its online/offline events by time):
seeded at `start` with its last earlier event, each change holds until the next. A connector's
signals (presence, connector 0, its own status) are streams of events seeded alike, merged in
one ordered pass that carries each signal's last value forward (a running max over the rows that
set it), and each piece between two changes is summed as up, down or unknown. `presence()` runs
only the presence part (the same SQL fragments), for callers that need the chargers' own figures
and not their connectors' (the chargers report).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT

from cass.extensions import db
from cass.tenancy import current_tenant_id

# OCPP 1.6 and 2.0.1 connector statuses in which a connector works.
AVAILABLE_STATUSES = (
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEV",
    "SuspendedEVSE",
    "Finishing",
    "Reserved",
    "Occupied",
)

# The period clipped to now, and the chargers asked for (of the current tenant, if any).
_BOUNDS = """
bounds AS (
  SELECT CAST(:start AS timestamptz) AS t0,
         greatest(least(CAST(:end AS timestamptz), now()), CAST(:start AS timestamptz)) AS t1
), chargers AS (
  SELECT c.id AS charger_id FROM charger c
  WHERE c.id = ANY(:ids) AND (CAST(:tenant AS bigint) IS NULL OR c.tenant_id = :tenant)
)"""

# A charger's presence changes over the period, for one charger `c` (joined laterally): its
# online/offline events in the period, and its last one before t0 moved to t0 (id 0 sorts it
# before an event at exactly t0, which then wins). Both halves read one charger's online/offline
# events by time, for the partial index ix_charger_event_presence (charger_id, at, id) INCLUDE
# (kind, tenant_id) WHERE kind IN ('online', 'offline'): index-only scans, no sort.
_PRESENCE_CHANGES = """
    (SELECT b.t0 AS at, 0::bigint AS id, e.kind = 'online' AS up
     FROM charger_event e
     WHERE e.charger_id = c.charger_id AND e.at < b.t0 AND e.kind IN ('online', 'offline')
     ORDER BY e.at DESC, e.id DESC
     LIMIT 1)
    UNION ALL
    SELECT e.at, e.id, e.kind = 'online'
    FROM charger_event e
    WHERE e.charger_id = c.charger_id AND e.at >= b.t0 AND e.at < b.t1
      AND e.kind IN ('online', 'offline')
"""

# Each charger's seconds online and offline: each change holds until the next one (or t1); the
# time before the first known state is in neither. One charger at a time, so each window sorts
# only that charger's changes; intervals are summed and turned into seconds once.
_PRESENCE_TOTALS = f"""
presence_totals AS (
  SELECT c.charger_id, t.up_s, t.down_s, extract(epoch FROM b.t1 - b.t0) AS period_s
  FROM chargers c CROSS JOIN bounds b
  CROSS JOIN LATERAL (
    SELECT coalesce(extract(epoch FROM sum(len) FILTER (WHERE up)), 0) AS up_s,
           coalesce(extract(epoch FROM sum(len) FILTER (WHERE NOT up)), 0) AS down_s
    FROM (
      SELECT p.up, lead(p.at, 1, b.t1) OVER (ORDER BY p.at, p.id) - p.at AS len
      FROM ({_PRESENCE_CHANGES}) AS p
    ) AS pieces
  ) AS t
)"""  # noqa: S608 (only the fixed fragment above is interpolated)

_PRESENCE_SQL = text(
    f"""
WITH {_BOUNDS}, {_PRESENCE_TOTALS}
SELECT charger_id, NULL::int AS connector_no, up_s, down_s, period_s
FROM presence_totals
ORDER BY charger_id
"""  # noqa: S608 (only the fixed fragments above are interpolated)
).bindparams(bindparam("ids", type_=ARRAY(BIGINT)))

_UPTIME_SQL = text(
    f"""
WITH {_BOUNDS}, {_PRESENCE_TOTALS}, presence_points AS (
  SELECT c.charger_id, -1 AS sig, p.at, p.id, p.up
  FROM chargers c CROSS JOIN bounds b CROSS JOIN LATERAL ({_PRESENCE_CHANGES}) AS p
), changes AS (
  -- sig n >= 0: the status of connector n.
  SELECT e.charger_id, e.connector_no AS sig, e.at, e.id, e.status = ANY(:available) AS up
  FROM charger_event e JOIN chargers USING (charger_id) CROSS JOIN bounds b
  WHERE e.at >= b.t0 AND e.at < b.t1 AND e.kind = 'status' AND e.connector_no IS NOT NULL
), signals AS (
  SELECT charger_id, 0 AS sig FROM chargers
  UNION SELECT k.charger_id, k.connector_no FROM connector k JOIN chargers USING (charger_id)
  UNION SELECT charger_id, sig FROM changes
), seeds AS (
  -- Each connector's status at t0: its last one before t0, moved to t0 (as presence's).
  SELECT s.charger_id, s.sig, b.t0 AS at, 0::bigint AS id, last.up
  FROM signals s CROSS JOIN bounds b
  CROSS JOIN LATERAL (
    SELECT e.status = ANY(:available) AS up
    FROM charger_event e
    WHERE e.charger_id = s.charger_id AND e.at < b.t0
      AND e.kind = 'status' AND e.connector_no = s.sig
    ORDER BY e.at DESC, e.id DESC
    LIMIT 1
  ) last
), points AS (
  SELECT * FROM seeds UNION ALL SELECT * FROM changes UNION ALL SELECT * FROM presence_points
), stream AS (
  -- Per connector: its own, connector 0's and the presence changes, and a row at t0.
  SELECT k.charger_id, k.sig AS connector_no, p.at, p.id, p.sig AS source,
         CASE WHEN p.sig = -1 THEN p.up END AS presence,
         CASE WHEN p.sig = 0 THEN p.up END AS whole,
         CASE WHEN p.sig = k.sig THEN p.up END AS own
  FROM signals k JOIN points p ON p.charger_id = k.charger_id AND p.sig IN (-1, 0, k.sig)
  WHERE k.sig > 0
  UNION ALL
  SELECT k.charger_id, k.sig, b.t0, -1, -2, NULL, NULL, NULL
  FROM signals k CROSS JOIN bounds b
  WHERE k.sig > 0
), ordered AS (
  SELECT s.*, row_number() OVER (PARTITION BY charger_id, connector_no
                                 ORDER BY at, id, source) AS ord
  FROM stream s
), pieces AS (
  -- Each signal's value carried forward: the running max of ord * 2 + value over the rows
  -- that set it is the last one set (value = code % 2; NULL while none was set).
  SELECT charger_id, connector_no,
         lead(at, 1, b.t1) OVER w - at AS len,
         max(CASE WHEN presence IS NOT NULL THEN ord * 2 + presence::int END) OVER w AS online,
         max(CASE WHEN whole IS NOT NULL THEN ord * 2 + whole::int END) OVER w AS whole_up,
         max(CASE WHEN own IS NOT NULL THEN ord * 2 + own::int END) OVER w AS own_up
  FROM ordered CROSS JOIN bounds b
  WINDOW w AS (PARTITION BY charger_id, connector_no ORDER BY ord
               ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
), states AS (
  SELECT charger_id, connector_no, len,
         CASE WHEN online % 2 = 0 OR whole_up % 2 = 0 THEN 'down'
              WHEN own_up IS NULL THEN 'unknown'
              WHEN own_up % 2 = 1 THEN 'up' ELSE 'down' END AS state
  FROM pieces
), totals AS (
  SELECT charger_id, connector_no,
         coalesce(sum(extract(epoch FROM len)) FILTER (WHERE state = 'up'), 0) AS up_s,
         coalesce(sum(extract(epoch FROM len)) FILTER (WHERE state = 'down'), 0) AS down_s
  FROM states
  GROUP BY charger_id, connector_no
)
SELECT charger_id, NULL::int AS connector_no, up_s, down_s, period_s FROM presence_totals
UNION ALL
SELECT k.charger_id, k.sig, coalesce(t.up_s, 0), coalesce(t.down_s, 0),
       extract(epoch FROM b.t1 - b.t0)
FROM signals k CROSS JOIN bounds b
LEFT JOIN totals t ON t.charger_id = k.charger_id AND t.connector_no = k.sig
WHERE k.sig > 0
ORDER BY 1, 2 NULLS FIRST
"""  # noqa: S608 (only the fixed fragments above are interpolated)
).bindparams(
    bindparam("ids", type_=ARRAY(BIGINT)),
    bindparam("available", value=list(AVAILABLE_STATUSES), type_=ARRAY(String)),
)


@dataclass(frozen=True)
class Availability:
    """Seconds up, down and unknown over the period (clipped to now)."""

    up_seconds: float
    down_seconds: float
    unknown_seconds: float

    @property
    def percent(self) -> float | None:
        """Return the share of known time that was up, in percent (None when none is known)."""
        known = self.up_seconds + self.down_seconds
        return 100.0 * self.up_seconds / known if known > 0 else None


@dataclass(frozen=True)
class ChargerAvailability:
    """A charger's own availability (online/offline) and each connector's."""

    charger_id: int
    charger: Availability
    connectors: dict[int, Availability] = field(default_factory=dict)


def _measure(
    sql: TextClause, charger_ids: Iterable[int], start: datetime, end: datetime
) -> Iterator[tuple[int, int | None, Availability]]:
    """Yield (charger id, connector number or None for the charger, figures) from `sql`."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end < start:
        raise ValueError("end is before start")
    ids = sorted({int(i) for i in charger_ids})
    if not ids:
        return
    rows = db.session.execute(
        sql, {"ids": ids, "start": start, "end": end, "tenant": current_tenant_id()}
    )
    for charger_id, connector_no, up_s, down_s, period_s in rows:
        up, down = float(up_s), float(down_s)
        yield (
            charger_id,
            connector_no,
            Availability(up, down, max(float(period_s) - up - down, 0.0)),
        )


def availability(
    charger_ids: Iterable[int], start: datetime, end: datetime
) -> dict[int, ChargerAvailability]:
    """Return the availability over [start, end) of each charger (by id) and its connectors.

    Ids of chargers that do not exist (or belong to another tenant) are left out.
    """
    result: dict[int, ChargerAvailability] = {}
    for charger_id, connector_no, figures in _measure(_UPTIME_SQL, charger_ids, start, end):
        if connector_no is None:
            result[charger_id] = ChargerAvailability(charger_id, figures)
        else:
            result[charger_id].connectors[connector_no] = figures
    return result


def presence(charger_ids: Iterable[int], start: datetime, end: datetime) -> dict[int, Availability]:
    """Return each charger's own availability (online/offline) over [start, end), by id.

    The same figures as `availability(...)[id].charger`, without working out the connectors.
    Ids of chargers that do not exist (or belong to another tenant) are left out.
    """
    return {i: figures for i, _, figures in _measure(_PRESENCE_SQL, charger_ids, start, end)}


def charger_availability(
    charger_id: int, start: datetime, end: datetime
) -> ChargerAvailability | None:
    """Return one charger's availability over [start, end) (None when there is no such
    charger)."""
    return availability([charger_id], start, end).get(charger_id)
