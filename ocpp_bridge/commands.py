"""Commands to chargers: from charger_command rows to CALLs on the wire and back.

The web inserts a row and NOTIFYs `cass_bridge` with `cmd:<charger id>`. Every bridge instance
hears it; the one holding that charger's socket wakes the charger's command loop, which claims
the oldest pending command, sends it, waits for the answer (one CALL in flight per charger, as
OCPP requires) and stores the outcome. Claims run in the store's command lane, never behind the
chargers' message batches: a claim is one autocommit statement on the lane's own connection,
run at once by the charger's command loop (one round trip, no hand-over to a writer task), so
under a full load of messages a command goes out one round trip after the web's NOTIFY arrives
(claims queued up together, as after a reconnect storm, share group commits). Outcomes go with
the message batches: storing one sends a live notification, and Postgres lets one notifying
transaction commit at a time, so in the command lane they would hold claims up behind the
batches' commits. Commands for offline chargers stay pending until the charger reconnects or
they expire. A periodic poll covers notifications missed while the listening connection was
away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict
from ocpp.charge_point import snake_to_camel_case as to_camel
from ocpp.exceptions import OCPPError
from psycopg.types.json import Jsonb
from websockets.exceptions import ConnectionClosed

from ocpp_bridge.records import LIVE_CHANNEL
from ocpp_bridge.vocab import BRIDGE_CHANNEL

if TYPE_CHECKING:
    from ocpp_bridge.server import Bridge

log = logging.getLogger("ocpp_bridge.commands")
ACCEPTING_STATUSES = {"Accepted", "Unlocked", "Scheduled"}

# A firmware job or diagnostics request whose command ends unanswered (expired while waiting,
# or its answer never came) takes the command's status, here and in _STALE_SQL.
_CLAIM_SQL = """
WITH expired AS (
  UPDATE charger_command SET status = 'expired', finished_at = now()
  WHERE charger_id = %(charger_id)s AND status = 'pending' AND expires_at <= now()
  RETURNING id, status
), follow_firmware AS (
  UPDATE firmware_job j SET status = e.status, updated_at = now()
  FROM expired e WHERE j.command_id = e.id
), follow_diagnostics AS (
  UPDATE diagnostics_request d SET status = e.status, updated_at = now()
  FROM expired e WHERE d.command_id = e.id
)
UPDATE charger_command SET status = 'sent', sent_at = now(), message_id = %(message_id)s
WHERE id = (
  SELECT id FROM charger_command
  WHERE charger_id = %(charger_id)s AND status = 'pending' AND expires_at > now()
  ORDER BY id LIMIT 1
  FOR UPDATE SKIP LOCKED
)
RETURNING id, action, payload
"""

_FINISH_SQL = """
UPDATE charger_command SET status = %(status)s, finished_at = now(), result = %(result)s,
       error = %(error)s
WHERE id = %(id)s
RETURNING tenant_id, action
"""

# Side tables that follow a command: the file name a charger will upload diagnostics as, and
# the job's status when the charger refused or never answered.
_DIAGNOSTICS_FILE_SQL = (
    "UPDATE diagnostics_request SET file_name = %s, updated_at = now() WHERE command_id = %s"
)
_JOB_FAILED_SQL = {
    "UpdateFirmware": "UPDATE firmware_job SET status = %s, updated_at = now() "
    "WHERE command_id = %s",
    "GetDiagnostics": "UPDATE diagnostics_request SET status = %s, updated_at = now() "
    "WHERE command_id = %s",
}

# Commands left 'sent' by a bridge that died, or whose connection dropped, end up timed out;
# pending ones past their expiry, expired, also for chargers that never come back.
_STALE_SQL = """
WITH lost AS (
  UPDATE charger_command SET status = 'timed_out', finished_at = now(),
         error = 'no answer: the connection or the bridge went away'
  WHERE status = 'sent' AND sent_at < now() - make_interval(secs => %(lost_after)s)
  RETURNING id, status
), expired AS (
  UPDATE charger_command SET status = 'expired', finished_at = now()
  WHERE status = 'pending' AND expires_at <= now()
  RETURNING id, status
), ended AS (
  SELECT id, status FROM lost UNION ALL SELECT id, status FROM expired
), follow_firmware AS (
  UPDATE firmware_job j SET status = e.status, updated_at = now()
  FROM ended e WHERE j.command_id = e.id
), follow_diagnostics AS (
  UPDATE diagnostics_request d SET status = e.status, updated_at = now()
  FROM ended e WHERE d.command_id = e.id
)
SELECT (SELECT count(*) FROM lost) + (SELECT count(*) FROM expired)
"""


@dataclass
class Outcome:
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None


async def claim_next(
    conn: psycopg.AsyncConnection, charger_id: int, message_id: str
) -> tuple[int, str, dict[str, Any]] | None:
    cursor = await conn.execute(_CLAIM_SQL, {"charger_id": charger_id, "message_id": message_id})
    row = await cursor.fetchone()
    return (int(row[0]), row[1], row[2]) if row else None


async def finish(conn: psycopg.AsyncConnection, command_id: int, outcome: Outcome) -> None:
    cursor = await conn.execute(
        _FINISH_SQL,
        {
            "id": command_id,
            "status": outcome.status,
            "result": Jsonb(outcome.result) if outcome.result is not None else None,
            "error": outcome.error[:500] if outcome.error else None,
        },
    )
    row = await cursor.fetchone()
    if row is None:
        return
    tenant_id, action = row
    if action == "GetDiagnostics" and outcome.result and outcome.result.get("fileName"):
        await conn.execute(_DIAGNOSTICS_FILE_SQL, (outcome.result["fileName"], command_id))
    if action in _JOB_FAILED_SQL and outcome.status != "accepted":
        await conn.execute(_JOB_FAILED_SQL[action], (outcome.status, command_id))
    await conn.execute(
        "SELECT pg_notify(%s, json_build_object('t', %s::bigint, 'kind', 'command', "
        "'id', %s::text)::text)",
        (LIVE_CHANNEL, tenant_id, str(command_id)),
    )


async def send(session: Any, action: str, payload: dict[str, Any], message_id: str) -> Outcome:
    """Send one command as a CALL on the session and turn the answer into an outcome."""
    try:
        request = getattr(session.call_module, action)(**camel_to_snake_case(payload))
    except (AttributeError, TypeError) as exc:
        return Outcome("failed", error=f"not a valid {action} for this charger: {exc}")
    try:
        answer = await session.call(request, suppress=False, unique_id=message_id)
    except TimeoutError:
        return Outcome("timed_out", error=f"no answer within {session._response_timeout:g} s")
    except OCPPError as exc:
        return Outcome("failed", error=f"{exc.code}: {exc.description}")
    except ConnectionClosed:
        return Outcome("failed", error="the connection closed before the answer")
    except Exception as exc:  # e.g. an error code the library does not know
        return Outcome("failed", error=f"{type(exc).__name__}: {exc}")
    result = to_camel(remove_nones(serialize_as_dict(answer)))
    status = result.get("status")
    accepted = status is None or status in ACCEPTING_STATUSES
    return Outcome("accepted" if accepted else "rejected", result=result)


async def command_loop(bridge: Bridge, session: Any) -> None:
    """Send a charger's pending commands, oldest first, one at a time, whenever woken."""
    wake: asyncio.Event = session.command_wake
    charger_id = session.charger.id
    while True:
        await wake.wait()
        wake.clear()
        while True:
            message_id = str(uuid.uuid4())
            try:
                claimed = await bridge.store.run_command(
                    lambda conn, m=message_id: claim_next(conn, charger_id, m)
                )
            except Exception:
                log.warning("could not read commands for charger %s; retrying", charger_id)
                await asyncio.sleep(1)
                wake.set()
                break
            if claimed is None:
                break
            command_id, action, payload = claimed
            outcome = await send(session, action, payload, message_id)
            try:
                await bridge.store.run(lambda conn, c=command_id, o=outcome: finish(conn, c, o))
            except Exception:
                log.exception("could not store the outcome of command %s", command_id)


async def listen_loop(bridge: Bridge) -> None:
    """LISTEN on cass_bridge and route commands and ownership changes to this instance."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(
                bridge.config.database_url, autocommit=True
            ) as conn:
                await conn.execute(f"LISTEN {BRIDGE_CHANNEL}")
                bridge.wake_all_commands()  # catch up on what was missed while away
                async for notice in conn.notifies():
                    bridge.on_notice(notice.payload)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("command listener lost the database (%s); reconnecting", exc)
            await asyncio.sleep(1)


async def pending_chargers(conn: psycopg.AsyncConnection, charger_ids: list[int]) -> list[int]:
    cursor = await conn.execute(
        "SELECT DISTINCT charger_id FROM charger_command "
        "WHERE status = 'pending' AND charger_id = ANY(%s)",
        (charger_ids,),
    )
    return [row[0] for row in await cursor.fetchall()]


async def poll_loop(bridge: Bridge) -> None:
    """Every poll interval: wake chargers with pending commands; time out stale ones."""
    while True:
        await asyncio.sleep(bridge.config.command_poll_interval)
        with contextlib.suppress(Exception):
            ids = list(bridge.sessions)
            if ids:
                for charger_id in await bridge.store.run_command(
                    lambda conn, i=ids: pending_chargers(conn, i)
                ):
                    bridge.wake_commands(charger_id)
            await bridge.store.run_command(
                lambda conn: conn.execute(
                    _STALE_SQL, {"lost_after": bridge.config.command_timeout * 2 + 5}
                )
            )
