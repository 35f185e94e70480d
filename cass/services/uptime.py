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

One set-based statement computes every charger and connector asked for: each signal (presence,
connector 0, each connector) is a stream of events, seeded at `start` with its last earlier
event; a connector's streams are merged in one ordered pass that carries each signal's last
value forward (a running max over the rows that set it), and each piece between two changes is
summed as up, down or unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, bindparam, text
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

_UPTIME_SQL = text(
    """
WITH bounds AS (
  SELECT CAST(:start AS timestamptz) AS t0,
         greatest(least(CAST(:end AS timestamptz), now()), CAST(:start AS timestamptz)) AS t1
), chargers AS (
  SELECT c.id AS charger_id FROM charger c
  WHERE c.id = ANY(:ids) AND (CAST(:tenant AS bigint) IS NULL OR c.tenant_id = :tenant)
), changes AS (
  -- sig -1: presence (online/offline); sig n >= 0: the status of connector n.
  SELECT e.charger_id, CASE WHEN e.kind = 'status' THEN e.connector_no ELSE -1 END AS sig,
         e.at, e.id,
         CASE WHEN e.kind = 'status' THEN e.status = ANY(:available) ELSE e.kind = 'online' END
           AS up
  FROM charger_event e JOIN chargers USING (charger_id) CROSS JOIN bounds b
  WHERE e.at >= b.t0 AND e.at < b.t1
    AND (e.kind IN ('online', 'offline') OR (e.kind = 'status' AND e.connector_no IS NOT NULL))
), signals AS (
  SELECT charger_id, -1 AS sig FROM chargers
  UNION SELECT charger_id, 0 FROM chargers
  UNION SELECT k.charger_id, k.connector_no FROM connector k JOIN chargers USING (charger_id)
  UNION SELECT charger_id, sig FROM changes
), seeds AS (
  -- Each signal's state at t0: its last event before t0, moved to t0 (id 0 sorts it before
  -- an event at exactly t0, which then wins).
  SELECT s.charger_id, s.sig, b.t0 AS at, 0::bigint AS id, last.up
  FROM signals s CROSS JOIN bounds b
  CROSS JOIN LATERAL (
    SELECT CASE WHEN e.kind = 'status' THEN e.status = ANY(:available)
                ELSE e.kind = 'online' END AS up
    FROM charger_event e
    WHERE e.charger_id = s.charger_id AND e.at < b.t0
      AND CASE WHEN s.sig = -1 THEN e.kind IN ('online', 'offline')
               ELSE e.kind = 'status' AND e.connector_no = s.sig END
    ORDER BY e.at DESC, e.id DESC
    LIMIT 1
  ) last
), points AS (
  SELECT * FROM seeds UNION ALL SELECT * FROM changes
), presence AS (
  SELECT p.charger_id, p.up,
         lead(p.at, 1, b.t1) OVER (PARTITION BY p.charger_id ORDER BY p.at, p.id) - p.at AS len
  FROM points p CROSS JOIN bounds b
  WHERE p.sig = -1
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
  SELECT charger_id, NULL::int AS connector_no, len,
         CASE WHEN up THEN 'up' ELSE 'down' END AS state
  FROM presence
  UNION ALL
  SELECT charger_id, connector_no, len,
         CASE WHEN online % 2 = 0 OR whole_up % 2 = 0 THEN 'down'
              WHEN own_up IS NULL THEN 'unknown'
              WHEN own_up % 2 = 1 THEN 'up' ELSE 'down' END
  FROM pieces
), totals AS (
  SELECT charger_id, connector_no,
         coalesce(sum(extract(epoch FROM len)) FILTER (WHERE state = 'up'), 0) AS up_s,
         coalesce(sum(extract(epoch FROM len)) FILTER (WHERE state = 'down'), 0) AS down_s
  FROM states
  GROUP BY charger_id, connector_no
)
SELECT k.charger_id, CASE WHEN k.sig = -1 THEN NULL ELSE k.sig END AS connector_no,
       coalesce(t.up_s, 0) AS up_s, coalesce(t.down_s, 0) AS down_s,
       extract(epoch FROM b.t1 - b.t0) AS period_s
FROM signals k CROSS JOIN bounds b
LEFT JOIN totals t ON t.charger_id = k.charger_id
  AND t.connector_no IS NOT DISTINCT FROM CASE WHEN k.sig = -1 THEN NULL ELSE k.sig END
WHERE k.sig <> 0
ORDER BY k.charger_id, k.sig
"""
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


def _check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware")
    if end < start:
        raise ValueError("end is before start")


def availability(
    charger_ids: Iterable[int], start: datetime, end: datetime
) -> dict[int, ChargerAvailability]:
    """Return the availability over [start, end) of each charger (by id) and its connectors.

    Ids of chargers that do not exist (or belong to another tenant) are left out.
    """
    _check_period(start, end)
    ids = sorted({int(i) for i in charger_ids})
    if not ids:
        return {}
    rows = db.session.execute(
        _UPTIME_SQL, {"ids": ids, "start": start, "end": end, "tenant": current_tenant_id()}
    )
    result: dict[int, ChargerAvailability] = {}
    for charger_id, connector_no, up_s, down_s, period_s in rows:
        up, down = float(up_s), float(down_s)
        figures = Availability(up, down, max(float(period_s) - up - down, 0.0))
        if connector_no is None:
            result[charger_id] = ChargerAvailability(charger_id, figures)
        else:
            result[charger_id].connectors[connector_no] = figures
    return result


def charger_availability(
    charger_id: int, start: datetime, end: datetime
) -> ChargerAvailability | None:
    """Return one charger's availability over [start, end) (None when there is no such
    charger)."""
    return availability([charger_id], start, end).get(charger_id)
