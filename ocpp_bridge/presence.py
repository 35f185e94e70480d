"""Online and offline: who holds which charger's socket, and who has gone quiet.

A charger is online while some bridge instance holds its socket. Every touch interval the
instance marks alive those of its chargers that nothing else marked alive during the interval
(a connect, boot or heartbeat sets last_seen too), in transactions of a thousand chargers each,
apart from the chargers' message batches; any instance's sweep sets offline the chargers no
one has marked for `offline_after` seconds (their bridge died, or the network dropped without
a close). WebSocket pings and the idle timeout close sockets of chargers that vanished, which
sets them offline at once. Every change is a charger_event and a live event for the web.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg

from ocpp_bridge.records import LIVE_CHANNEL, Charger, live_payload
from ocpp_bridge.vocab import BRIDGE_CHANNEL

# Locked first, in its own statement: a statement's snapshot would miss a concurrent connect of
# the same charger committed while we waited for its row, and both would record an online.
_LOCK_SQL = "SELECT online FROM charger WHERE id = %s FOR UPDATE"
_CONNECT_SQL = """
WITH updated AS (
  UPDATE charger SET online = true, owner = %(owner)s, connected_at = %(at)s, last_seen = %(at)s,
         ocpp_protocol = %(protocol)s
  WHERE id = %(id)s
  RETURNING tenant_id
)
INSERT INTO charger_event (tenant_id, charger_id, at, kind, data)
SELECT tenant_id, %(id)s, %(at)s, 'online', jsonb_build_object('bridge', %(owner)s::text)
FROM updated WHERE NOT %(was_online)s
RETURNING 1
"""

# Only the connection that is still the charger's latest sets it offline: a newer one (here or
# on another instance) has moved connected_at or the owner on.
_DISCONNECT_SQL = """
WITH updated AS (
  UPDATE charger SET online = false, owner = NULL, last_seen = now()
  WHERE id = %(id)s AND owner = %(owner)s AND connected_at = %(at)s AND online
  RETURNING tenant_id
)
INSERT INTO charger_event (tenant_id, charger_id, kind, data)
SELECT tenant_id, %(id)s, 'offline', jsonb_build_object('reason', %(reason)s::text) FROM updated
RETURNING 1
"""

# Rows another transaction holds (a heartbeat or a boot of that charger, which sets last_seen
# itself) are skipped rather than waited for: waiting on them deadlocked with group commits.
_TOUCH_SQL = """
UPDATE charger SET last_seen = now()
WHERE id IN (SELECT id FROM charger WHERE id = ANY(%s) AND owner = %s
             FOR NO KEY UPDATE SKIP LOCKED)
"""
# A socket we still hold whose charger was swept offline (this bridge stalled past
# offline_after) is ours and online again.
_RECLAIM_SQL = """
WITH back AS (
  UPDATE charger SET online = true, owner = %(owner)s, last_seen = now()
  WHERE id = ANY(%(ids)s) AND owner IS NULL AND NOT online
  RETURNING id, tenant_id, ocpp_id
), events AS (
  INSERT INTO charger_event (tenant_id, charger_id, kind, data)
  SELECT tenant_id, id, 'online', jsonb_build_object('bridge', %(owner)s::text) FROM back
)
SELECT count(pg_notify(%(channel)s, json_build_object('t', tenant_id, 'kind', 'charger',
                                                      'id', ocpp_id, 'online', true)::text))
FROM back
"""

_SWEEP_SQL = """
WITH gone AS (
  UPDATE charger SET online = false, owner = NULL
  WHERE online AND last_seen < now() - make_interval(secs => %(after)s)
  RETURNING id, tenant_id, ocpp_id
), events AS (
  INSERT INTO charger_event (tenant_id, charger_id, kind, data)
  SELECT tenant_id, id, 'offline', '{"reason": "no sign of life"}'::jsonb FROM gone
)
SELECT count(pg_notify(%(channel)s, json_build_object('t', tenant_id, 'kind', 'charger',
                                                      'id', ocpp_id, 'online', false)::text))
FROM gone
"""


async def connected(
    conn: psycopg.AsyncConnection, charger: Charger, owner: str, at: datetime
) -> None:
    """Mark the charger online and owned by this instance; tell the other instances."""
    cursor = await conn.execute(_LOCK_SQL, (charger.id,))
    row = await cursor.fetchone()
    params = {
        "id": charger.id,
        "owner": owner,
        "at": at,
        "protocol": charger.protocol,
        "was_online": bool(row and row[0]),
    }
    cursor = await conn.execute(_CONNECT_SQL, params)
    if await cursor.fetchone():
        await conn.execute(
            "SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, live_payload(charger, online=True))
        )
    # Another instance holding an older socket of this charger closes it.
    await conn.execute("SELECT pg_notify(%s, %s)", (BRIDGE_CHANNEL, f"own:{charger.id}:{owner}"))


async def disconnected(
    conn: psycopg.AsyncConnection, charger: Charger, owner: str, at: datetime, reason: str
) -> None:
    """Mark the charger offline, unless a newer connection has taken it over."""
    cursor = await conn.execute(
        _DISCONNECT_SQL, {"id": charger.id, "owner": owner, "at": at, "reason": reason[:100]}
    )
    if await cursor.fetchone():
        await conn.execute(
            "SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, live_payload(charger, online=False))
        )


async def touch(conn: psycopg.AsyncConnection, charger_ids: list[int], owner: str) -> None:
    """Mark these chargers of this instance alive."""
    await conn.execute(_TOUCH_SQL, (charger_ids, owner))


async def reclaim_and_sweep(
    conn: psycopg.AsyncConnection, charger_ids: list[int], owner: str, offline_after: float
) -> int:
    """Take back our sockets' chargers swept offline; set offline those nobody marked alive
    for `offline_after` seconds; return how many."""
    if charger_ids:
        await conn.execute(
            _RECLAIM_SQL, {"ids": charger_ids, "owner": owner, "channel": LIVE_CHANNEL}
        )
    cursor = await conn.execute(_SWEEP_SQL, {"after": offline_after, "channel": LIVE_CHANNEL})
    row: Any = await cursor.fetchone()
    return int(row[0]) if row else 0
