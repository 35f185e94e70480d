"""What a charger's messages do to the database, shared by the OCPP 1.6 and 2.0.1 handlers.

Each function takes a connection inside the writer's batch transaction and the charger it is
about; none commits. Live events for the web go out with pg_notify, which Postgres delivers only
on commit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

LIVE_CHANNEL = "cass_live"  # the web's live-update channel (cass.live.CHANNEL)


@dataclass
class Charger:
    """A connected charger as the bridge knows it."""

    id: int
    tenant_id: int
    ocpp_id: str
    registration: str
    lenient: bool
    protocol: str = "ocpp1.6"


def parse_time(value: str | None) -> datetime | None:
    """Return an OCPP timestamp as an aware datetime (None when absent or unreadable)."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def live_payload(charger: Charger, **extra: Any) -> str:
    """Return the web's live-event payload about a charger."""
    return json.dumps({"t": charger.tenant_id, "kind": "charger", "id": charger.ocpp_id, **extra})


async def notify_live(conn: psycopg.AsyncConnection, charger: Charger, **extra: Any) -> None:
    await conn.execute("SELECT pg_notify(%s, %s)", (LIVE_CHANNEL, live_payload(charger, **extra)))


_BOOT_SQL = """
WITH updated AS (
  UPDATE charger SET manufacturer = %(vendor)s, model = %(model)s,
         serial = coalesce(%(serial)s, serial), firmware = coalesce(%(firmware)s, firmware),
         last_seen = now()
  WHERE id = %(charger_id)s
  RETURNING tenant_id, registration
), event AS (
  INSERT INTO charger_event (tenant_id, charger_id, kind, status, data)
  SELECT tenant_id, %(charger_id)s, 'boot', registration, %(data)s FROM updated
)
SELECT u.registration, coalesce(s.lenient_schema, false)
FROM updated u
LEFT JOIN charger_model_setting s
  ON s.tenant_id = u.tenant_id AND s.manufacturer = %(vendor)s AND s.model = %(model)s
"""


async def record_boot(
    conn: psycopg.AsyncConnection,
    charger: Charger,
    vendor: str,
    model: str,
    serial: str | None,
    firmware: str | None,
    data: dict[str, Any],
) -> tuple[str, bool]:
    """Store boot data; return the charger's registration and whether its model is lenient."""
    cursor = await conn.execute(
        _BOOT_SQL,
        {
            "charger_id": charger.id,
            "vendor": vendor[:80],
            "model": model[:80],
            "serial": serial[:80] if serial else None,
            "firmware": firmware[:80] if firmware else None,
            "data": psycopg.types.json.Jsonb(data),
        },
    )
    row = await cursor.fetchone()
    return (row[0], row[1]) if row else ("rejected", False)


async def record_heartbeat(conn: psycopg.AsyncConnection, charger: Charger) -> None:
    await conn.execute("UPDATE charger SET last_seen = now() WHERE id = %s", (charger.id,))


# A charger_event row only when the status or error code changed; connector 0 (the charger as
# a whole) has no connector row, so its last status is read from the events.
_STATUS_SQL = """
WITH previous AS (
  SELECT status, error_code FROM connector
  WHERE charger_id = %(charger_id)s AND connector_no = %(no)s AND %(no)s > 0
  UNION ALL
  (SELECT status, error_code FROM charger_event
   WHERE charger_id = %(charger_id)s AND connector_no = 0 AND kind = 'status' AND %(no)s = 0
   ORDER BY at DESC, id DESC LIMIT 1)
), upsert AS (
  INSERT INTO connector (tenant_id, charger_id, connector_no, status, error_code, updated_at)
  SELECT %(tenant_id)s, %(charger_id)s, %(no)s, %(status)s, %(error_code)s, %(at)s
  WHERE %(no)s > 0
  ON CONFLICT (charger_id, connector_no) DO UPDATE
    SET status = excluded.status, error_code = excluded.error_code,
        updated_at = excluded.updated_at
), event AS (
  INSERT INTO charger_event
    (tenant_id, charger_id, connector_no, at, kind, status, error_code, info, vendor_error_code)
  SELECT %(tenant_id)s, %(charger_id)s, %(no)s, %(at)s, 'status', %(status)s, %(error_code)s,
         %(info)s, %(vendor_error_code)s
  WHERE NOT EXISTS (
    SELECT 1 FROM previous WHERE status = %(status)s AND error_code = %(error_code)s)
  RETURNING 1
)
SELECT pg_notify(%(channel)s, %(live)s) FROM event
"""


async def record_status(
    conn: psycopg.AsyncConnection,
    charger: Charger,
    connector_no: int,
    status: str,
    error_code: str,
    info: str | None = None,
    vendor_error_code: str | None = None,
    at: datetime | None = None,
) -> None:
    """Store a connector's status; a change makes an event and a live notification.

    Nothing is read back, so in a pipelined group commit the statement costs no round trip.
    """
    await conn.execute(
        _STATUS_SQL,
        {
            "tenant_id": charger.tenant_id,
            "charger_id": charger.id,
            "no": connector_no,
            "status": status[:30],
            "error_code": (error_code or "NoError")[:40],
            "info": info[:500] if info else None,
            "vendor_error_code": vendor_error_code[:100] if vendor_error_code else None,
            "at": at or datetime.now(UTC),
            "channel": LIVE_CHANNEL,
            "live": live_payload(charger, connector=connector_no, status=status),
        },
    )


_METER_SQL = """
INSERT INTO meter_value (tenant_id, charger_id, connector_no, transaction_id, at, measurand,
                         phase, unit, context, location, value, raw)
SELECT %(tenant_id)s, %(charger_id)s, %(no)s, %(transaction_id)s, m.*
FROM unnest(%(at)s::timestamptz[], %(measurand)s::text[], %(phase)s::text[], %(unit)s::text[],
            %(context)s::text[], %(location)s::text[], %(value)s::float8[], %(raw)s::text[])
  AS m(at, measurand, phase, unit, context, location, value, raw)
"""
# A transaction's reading of one measurand at one instant is stored once: OCPP 2.0.1 chargers
# resend a TransactionEvent they got no answer to, samples included.
_METER_NEW_SQL = (
    _METER_SQL  # noqa: S608 (constant text)
    + """WHERE NOT EXISTS (
  SELECT 1 FROM meter_value v
  WHERE v.charger_id = %(charger_id)s AND v.transaction_id = %(transaction_id)s
    AND v.at = m.at AND v.measurand = m.measurand AND v.phase IS NOT DISTINCT FROM m.phase
    AND v.context IS NOT DISTINCT FROM m.context AND v.location IS NOT DISTINCT FROM m.location)
"""
)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


METER_COLUMNS = (
    "tenant_id",
    "charger_id",
    "connector_no",
    "transaction_id",
    "at",
    "measurand",
    "phase",
    "unit",
    "context",
    "location",
    "value",
    "raw",
)


def meter_rows(
    charger: Charger,
    connector_no: int,
    transaction_id: int | None,
    samples: list[tuple[datetime, dict[str, Any]]],
) -> list[tuple[Any, ...]]:
    """Return meter_value rows (METER_COLUMNS) for sampled values, each (time, {value,
    measurand, phase, unit, context, location}); a value that is not a number is kept raw."""
    rows = []
    for at, sample in samples:
        number = _number(sample.get("value"))
        rows.append(
            (
                charger.tenant_id,
                charger.id,
                connector_no,
                transaction_id,
                at,
                (sample.get("measurand") or "Energy.Active.Import.Register")[:60],
                _cut(sample.get("phase"), 10),
                _cut(sample.get("unit"), 20),
                _cut(sample.get("context"), 30),
                _cut(sample.get("location"), 20),
                number,
                None if number is not None else str(sample.get("value")),
            )
        )
    return rows


async def record_meter_values(
    conn: psycopg.AsyncConnection,
    charger: Charger,
    connector_no: int,
    transaction_id: int | None,
    samples: list[tuple[datetime, dict[str, Any]]],
    *,
    skip_stored: bool = False,
) -> int:
    """Store sampled values, each (time, {value, measurand, phase, unit, context, location}).

    With `skip_stored`, samples the transaction already has (same time, measurand, phase,
    context and location) are left out.
    """
    if not samples:
        return 0
    rows = meter_rows(charger, connector_no, transaction_id, samples)
    names = ("at", "measurand", "phase", "unit", "context", "location", "value", "raw")
    columns = {name: [row[4 + i] for row in rows] for i, name in enumerate(names)}
    await conn.execute(
        _METER_NEW_SQL if skip_stored and transaction_id is not None else _METER_SQL,
        {
            "tenant_id": charger.tenant_id,
            "charger_id": charger.id,
            "no": connector_no,
            "transaction_id": transaction_id,
            **columns,
        },
    )
    return len(samples)


def _cut(value: Any, length: int) -> str | None:
    return str(value)[:length] if value is not None else None


async def id_tag_info(
    conn: psycopg.AsyncConnection, charger: Charger, id_tag: str | None, unknown: str = "Invalid"
) -> dict[str, Any]:
    """Return OCPP 1.6 idTagInfo for a tag of the charger's tenant (`unknown` when not found)."""
    if not id_tag:
        return {"status": "Invalid"}
    cursor = await conn.execute(
        "SELECT status, expiry_date, parent_id_tag FROM id_tag "
        "WHERE tenant_id = %s AND id_tag = %s",
        (charger.tenant_id, id_tag),
    )
    row = await cursor.fetchone()
    if row is None:
        return {"status": unknown}
    status, expiry, parent = row
    if status == "Accepted" and expiry is not None and expiry < datetime.now(UTC):
        status = "Expired"
    info: dict[str, Any] = {"status": status}
    if expiry is not None:
        info["expiry_date"] = expiry.isoformat()
    if parent:
        info["parent_id_tag"] = parent
    return info


_START_SQL = """
WITH inserted AS (
  INSERT INTO charging_session (tenant_id, charger_id, connector_no, id_tag, started_at,
                                meter_start, reservation_id, transaction_ref)
  VALUES (%(tenant_id)s, %(charger_id)s, %(no)s, %(id_tag)s, %(at)s, %(meter_start)s,
          %(reservation_id)s, %(ref)s)
  ON CONFLICT DO NOTHING
  RETURNING id
)
SELECT id FROM inserted
UNION ALL
SELECT id FROM charging_session
WHERE charger_id = %(charger_id)s
  AND ((%(ref)s::text IS NULL AND connector_no = %(no)s AND started_at = %(at)s)
       OR transaction_ref = %(ref)s)
LIMIT 1
"""


async def start_session(
    conn: psycopg.AsyncConnection,
    charger: Charger,
    connector_no: int,
    id_tag: str | None,
    at: datetime,
    meter_start: int | None,
    reservation_id: int | None = None,
    ref: str | None = None,
) -> int:
    """Open a charging session (or find the one a resent start already opened); return its id."""
    cursor = await conn.execute(
        _START_SQL,
        {
            "tenant_id": charger.tenant_id,
            "charger_id": charger.id,
            "no": connector_no,
            "id_tag": id_tag[:36] if id_tag else None,
            "at": at,
            "meter_start": meter_start,
            "reservation_id": reservation_id,
            "ref": ref,
        },
    )
    row = await cursor.fetchone()
    assert row is not None  # inserted, or found after a conflict
    return int(row[0])


# An OCPP 2.0.1 transaction may learn its token (authorized after plug-in) or its EVSE
# (plugged in after authorization) after it started; a value once known is kept. The row is
# written only when something is learnt.
_COMPLETE_SQL = """
WITH updated AS (
  UPDATE charging_session
  SET id_tag = coalesce(id_tag, %(id_tag)s),
      connector_no = CASE WHEN connector_no = 0 THEN %(no)s ELSE connector_no END
  WHERE id = %(id)s AND charger_id = %(charger_id)s
    AND ((id_tag IS NULL AND %(id_tag)s::text IS NOT NULL) OR (connector_no = 0 AND %(no)s > 0))
  RETURNING connector_no
)
SELECT connector_no FROM updated
UNION ALL
SELECT connector_no FROM charging_session WHERE id = %(id)s
LIMIT 1
"""


async def complete_session(
    conn: psycopg.AsyncConnection,
    charger: Charger,
    session_id: int,
    connector_no: int,
    id_tag: str | None,
) -> int:
    """Fill in a session's token and connector when it started without them; return its
    connector."""
    cursor = await conn.execute(
        _COMPLETE_SQL,
        {
            "id": session_id,
            "charger_id": charger.id,
            "no": connector_no,
            "id_tag": id_tag[:36] if id_tag else None,
        },
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else connector_no


# The price comes with the stop, in the same statement: the tariff of the charger's site in
# force when the session started; cost = per session + per kWh * kWh + per minute * minutes
# (to the second). With no tariff, tariff, cost and currency stay NULL; with a price per kWh
# and no usable energy (a reading missing, or a meter that went backwards) the cost is unknown
# (NULL), not a guess, while the tariff and currency are still kept.
_STOP_SQL = """
UPDATE charging_session s
SET (stopped_at, meter_stop, stop_reason, energy_wh, tariff_id, currency, cost) = (
  SELECT %(at)s::timestamptz, %(meter_stop)s::bigint, %(reason)s::text, e.wh, t.id, t.currency,
         CASE WHEN t.per_kwh > 0 AND (e.wh IS NULL OR e.wh < 0) THEN NULL
              ELSE round(t.per_session + t.per_kwh * greatest(coalesce(e.wh, 0), 0) / 1000.0
                         + t.per_minute
                           * greatest(extract(epoch FROM %(at)s::timestamptz - s.started_at), 0)
                           / 60.0, 4)
         END
  FROM (SELECT %(meter_stop)s::bigint - s.meter_start AS wh) e
  LEFT JOIN LATERAL (
    SELECT tariff.id, tariff.currency, tariff.per_kwh, tariff.per_minute, tariff.per_session
    FROM tariff JOIN charger c ON c.tenant_id = tariff.tenant_id AND c.site_id = tariff.site_id
    WHERE c.id = s.charger_id AND tariff.valid_from <= s.started_at
      AND (tariff.valid_to IS NULL OR tariff.valid_to > s.started_at)
    ORDER BY tariff.valid_from DESC
    LIMIT 1
  ) t ON true
)
WHERE s.charger_id = %(charger_id)s AND s.stopped_at IS NULL
  AND (s.id = %(id)s OR s.transaction_ref = %(ref)s)
RETURNING s.id
"""


async def stop_session(
    conn: psycopg.AsyncConnection,
    charger: Charger,
    transaction_id: int | None,
    at: datetime,
    meter_stop: int | None,
    reason: str | None,
    ref: str | None = None,
) -> bool:
    """Close a session of this charger and price it by its site's tariff; a resent stop finds it
    closed and changes nothing."""
    cursor = await conn.execute(
        _STOP_SQL,
        {
            "charger_id": charger.id,
            "id": transaction_id,
            "ref": ref,
            "at": at,
            "meter_stop": meter_stop,
            "reason": reason[:40] if reason else None,
        },
    )
    return (await cursor.fetchone()) is not None


async def record_event(
    conn: psycopg.AsyncConnection,
    charger: Charger,
    kind: str,
    *,
    status: str | None = None,
    info: str | None = None,
    data: Any = None,
    at: datetime | None = None,
    connector_no: int | None = None,
) -> None:
    """Append a charger_event of any kind."""
    await conn.execute(
        "INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status, info, "
        "data) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (
            charger.tenant_id,
            charger.id,
            connector_no,
            at or datetime.now(UTC),
            kind,
            status[:40] if status else None,
            info[:500] if info else None,
            psycopg.types.json.Jsonb(data) if data is not None else None,
        ),
    )


_DATA_TRANSFER_RULE_SQL = """
SELECT status, response_data, message_id FROM data_transfer_rule
WHERE tenant_id = %s AND vendor_id = %s AND (message_id = %s OR message_id IS NULL)
ORDER BY message_id IS NULL
"""


async def data_transfer(
    conn: psycopg.AsyncConnection,
    charger: Charger,
    vendor_id: str,
    message_id: str | None,
    data: str | None,
) -> tuple[str, str | None]:
    """Store a DataTransfer; return (status, data) per the tenant's rules for the vendor."""
    await record_event(
        conn,
        charger,
        "data_transfer",
        status=vendor_id,
        info=message_id,
        data={"vendorId": vendor_id, "messageId": message_id, "data": data},
    )
    cursor = await conn.execute(_DATA_TRANSFER_RULE_SQL, (charger.tenant_id, vendor_id, message_id))
    rows = await cursor.fetchall()
    if not rows:
        cursor = await conn.execute(
            "SELECT 1 FROM data_transfer_rule WHERE tenant_id = %s AND vendor_id = %s LIMIT 1",
            (charger.tenant_id, vendor_id),
        )
        known_vendor = await cursor.fetchone() is not None
        return ("UnknownMessageId" if known_vendor else "UnknownVendorId"), None
    status, response_data, _ = rows[0]
    return status, response_data


async def job_status(
    conn: psycopg.AsyncConnection, charger: Charger, table: str, status: str
) -> None:
    """Set the status of the charger's latest firmware job or diagnostics request."""
    assert table in ("firmware_job", "diagnostics_request")
    await conn.execute(
        f"UPDATE {table} SET status = %s, updated_at = now() "  # noqa: S608 (fixed names)
        f"WHERE id = (SELECT max(id) FROM {table} WHERE charger_id = %s)",
        (status[:30], charger.id),
    )
    await record_event(
        conn, charger, "firmware" if table == "firmware_job" else "diagnostics", status=status
    )
    if table == "firmware_job":  # wakes the workflow worker: a failed update opens a ticket
        await notify_live(conn, charger, firmware=status)
