"""The bridge's WebSocket server: /healthz and /ocpp/<charge_point_id>.

Chargers authenticate with HTTP Basic (user = charge point id, password = the charger's key)
before the WebSocket handshake completes; the subprotocol (ocpp1.6 or ocpp2.0.1) picks the
handlers. It never imports Flask.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import signal
import ssl
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from ocpp_bridge import commands, presence
from ocpp_bridge.config import BridgeConfig
from ocpp_bridge.keys import MIN_KEY_LENGTH, hash_key, verify_key
from ocpp_bridge.records import Charger
from ocpp_bridge.store import DatabaseUnavailable, Store
from ocpp_bridge.vocab import CHARGE_POINT_ID_RE

log = logging.getLogger("ocpp_bridge")
SUBPROTOCOLS = ["ocpp1.6", "ocpp2.0.1"]
TOUCH_CHUNK = 1000  # chargers marked alive per transaction

_CHARGER_SQL = """
SELECT c.id, c.tenant_id, c.key_hash, c.registration, coalesce(s.lenient_schema, false)
FROM charger c
LEFT JOIN charger_model_setting s
  ON s.tenant_id = c.tenant_id AND s.manufacturer = c.manufacturer AND s.model = c.model
WHERE c.ocpp_id = %s
"""
_AUTOREGISTER_TENANT_SQL = """
SELECT id FROM tenant
WHERE ocpp_autoregister_prefix <> '' AND starts_with(%s, ocpp_autoregister_prefix)
ORDER BY length(ocpp_autoregister_prefix) DESC LIMIT 1
"""
# An auto-registered charger lands on its tenant's "Auto-registered" site, pending, with the
# key it presented (trust on first use; an admin accepts or rejects it).
_AUTOREGISTER_SQL = """
WITH site_row AS (
  INSERT INTO site (tenant_id, name, timezone) VALUES (%(tenant_id)s, 'Auto-registered', 'UTC')
  ON CONFLICT (tenant_id, name) DO UPDATE SET name = excluded.name
  RETURNING id
)
INSERT INTO charger (tenant_id, ocpp_id, site_id, key_hash, registration)
SELECT %(tenant_id)s, %(ocpp_id)s, id, %(key_hash)s, 'pending' FROM site_row
ON CONFLICT (ocpp_id) DO NOTHING
"""


def _unauthorized(connection: ServerConnection) -> Response:
    response = connection.respond(HTTPStatus.UNAUTHORIZED, "charger credentials required\n")
    response.headers["WWW-Authenticate"] = 'Basic realm="CASS OCPP", charset="UTF-8"'
    return response


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    """Return (user, password) from an Authorization: Basic header, or None."""
    value = headers.get("Authorization", "")
    scheme, _, encoded = value.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, sep, password = (
            base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        )
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return (user, password) if sep else None


class Bridge:
    """One bridge instance: the server, its chargers' sessions and its background loops."""

    def __init__(self, config: BridgeConfig) -> None:
        self.config = config
        self.store = Store(
            config.database_url,
            writers=config.writers,
            pool_size=config.pool_size,
            timeout=config.db_timeout,
        )
        self.store.retention_days = config.log_retention_days
        self.sessions: dict[int, Any] = {}  # charger id -> its live session
        self._tasks: list[asyncio.Task[None]] = []
        self._closing: set[asyncio.Task[None]] = set()
        self.port: int = config.port

    def close_later(self, session: Any, code: int, reason: str, *, replaced: bool = False) -> None:
        """Close a session's socket without waiting (keeping the task referenced until done).

        A replaced session leaves the charger's state to its successor: it records no offline.
        """
        session.replaced = replaced
        task = asyncio.ensure_future(session._connection.close(code, reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # --- notices from other processes -----------------------------------------------------
    def on_notice(self, payload: str) -> None:
        """Act on a cass_bridge notification: a queued command or a charger moving elsewhere."""
        kind, _, rest = payload.partition(":")
        if kind == "cmd":
            with contextlib.suppress(ValueError):
                self.wake_commands(int(rest))
        elif kind == "own":
            charger_id, _, owner = rest.partition(":")
            with contextlib.suppress(ValueError):
                session = self.sessions.get(int(charger_id))
                if session is not None and owner != self.config.instance_id:
                    self.sessions.pop(int(charger_id), None)
                    self.close_later(
                        session, 1000, "the charger connected to another bridge", replaced=True
                    )

    def wake_commands(self, charger_id: int) -> None:
        session = self.sessions.get(charger_id)
        if session is not None:
            session.command_wake.set()

    def wake_all_commands(self) -> None:
        for session in self.sessions.values():
            session.command_wake.set()

    # --- the handshake --------------------------------------------------------------------
    async def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Answer /healthz; authenticate chargers before the WebSocket handshake."""
        if request.path == "/healthz":
            return connection.respond(HTTPStatus.OK, "ok\n")
        ocpp_id = request.path.removeprefix("/ocpp/")
        if not request.path.startswith("/ocpp/") or not CHARGE_POINT_ID_RE.fullmatch(ocpp_id):
            return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
        credentials = basic_credentials(request.headers)
        try:
            rows = await self.store.read(_CHARGER_SQL, (ocpp_id,))
            if not rows:
                rows = await self._autoregister(ocpp_id, credentials)
        except DatabaseUnavailable:
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "database unavailable\n")
        if not rows:
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown charge point\n")
        charger_id, tenant_id, key_hash, registration, lenient = rows[0]
        if credentials is None or credentials[0] != ocpp_id:
            return _unauthorized(connection)
        if not verify_key(key_hash, credentials[1]):
            log.info("charger %s: wrong key", ocpp_id)
            return _unauthorized(connection)
        # Carried on the connection to the handler (a failed handshake drops it with the socket).
        connection.cass_charger = Charger(  # type: ignore[attr-defined]
            charger_id, tenant_id, ocpp_id, registration, lenient
        )
        return None

    async def _autoregister(
        self, ocpp_id: str, credentials: tuple[str, str] | None
    ) -> list[tuple[Any, ...]]:
        """Register an unknown charger as pending when a tenant auto-registers its prefix."""
        tenants = await self.store.read(_AUTOREGISTER_TENANT_SQL, (ocpp_id,))
        if not tenants or credentials is None or credentials[0] != ocpp_id:
            return []
        if len(credentials[1]) < MIN_KEY_LENGTH:
            return []
        params = {
            "tenant_id": tenants[0][0],
            "ocpp_id": ocpp_id,
            "key_hash": hash_key(credentials[1]),
        }
        await self.store.run(lambda conn: conn.execute(_AUTOREGISTER_SQL, params))
        log.info("charger %s registered itself; pending an admin's acceptance", ocpp_id)
        return await self.store.read(_CHARGER_SQL, (ocpp_id,))

    # --- a connection ---------------------------------------------------------------------
    async def handle(self, connection: ServerConnection) -> None:
        """Serve one charger until it disconnects."""
        charger: Charger | None = getattr(connection, "cass_charger", None)
        if charger is None:  # cannot happen: process_request vouched for it
            await connection.close(1008, "not authenticated")
            return
        charger.protocol = connection.subprotocol or "ocpp1.6"
        session = self._new_session(connection, charger)
        older = self.sessions.get(charger.id)
        self.sessions[charger.id] = session
        if older is not None:  # without waiting: a vanished peer would hold us up to close_timeout
            self.close_later(older, 1000, "replaced by a newer connection", replaced=True)
        at = datetime.now(UTC)
        owner = self.config.instance_id
        try:
            await self.store.run(lambda conn: presence.connected(conn, charger, owner, at))
        except Exception:
            log.warning("charger %s: database unavailable at connect; closing", charger.ocpp_id)
            if self.sessions.get(charger.id) is session:
                del self.sessions[charger.id]
            await connection.close(1011, "database unavailable, try again")
            return
        session.seen_at = time.monotonic()  # connected() set last_seen
        log.info("charger %s connected (%s)", charger.ocpp_id, charger.protocol)
        command_task = asyncio.create_task(commands.command_loop(self, session))
        session.command_wake.set()  # commands queued while it was offline
        reason = "closed"
        try:
            await session.start()
        except ConnectionClosed as closed:
            reason = f"closed ({closed.rcvd.code if closed.rcvd else 'no close frame'})"
        finally:
            command_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await command_task
            if self.sessions.get(charger.id) is session:
                del self.sessions[charger.id]
            if not session.replaced:
                with contextlib.suppress(Exception):
                    await self.store.run(
                        lambda conn: presence.disconnected(conn, charger, owner, at, reason)
                    )
            log.info("charger %s disconnected: %s", charger.ocpp_id, reason)

    def _new_session(self, connection: ServerConnection, charger: Charger) -> Any:
        if charger.protocol == "ocpp2.0.1":
            from ocpp.v201 import call as call_module

            from ocpp_bridge.charge_point_201 import ChargePoint201 as cls
        else:
            from ocpp.v16 import call as call_module

            from ocpp_bridge.charge_point import ChargePoint16 as cls
        session = cls(charger.ocpp_id, connection, response_timeout=self.config.command_timeout)
        session.setup(self, charger)
        session.call_module = call_module
        session.command_wake = asyncio.Event()
        session.replaced = False
        return session

    # --- background loops -----------------------------------------------------------------
    async def _presence_loop(self) -> None:
        """Mark our chargers alive, sweep silent ones offline, close idle sockets."""
        config = self.config
        owner = config.instance_id
        while True:
            await asyncio.sleep(config.touch_interval)
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now - session.last_frame > config.idle_timeout:
                    self.close_later(session, 1000, "no frames, idle")
            # Only chargers nothing marked alive during the last interval, so last_seen is never
            # older than two intervals; a thousand per transaction, outside the message batches,
            # so a batch waits at most for one short touch's row locks.
            stale = [
                session
                for session in self.sessions.values()
                if now - session.seen_at >= config.touch_interval
            ]
            for start in range(0, len(stale), TOUCH_CHUNK):
                chunk = stale[start : start + TOUCH_CHUNK]
                ids = [session.charger.id for session in chunk]
                try:
                    await self.store.run_alone(lambda conn, i=ids: presence.touch(conn, i, owner))
                except Exception:
                    log.warning("could not mark %d chargers alive", len(ids))
                    break
                for session in chunk:
                    session.seen_at = now
            ids = list(self.sessions)
            with contextlib.suppress(Exception):
                await self.store.run_alone(
                    lambda conn, i=ids: presence.reclaim_and_sweep(
                        conn, i, owner, config.offline_after
                    )
                )

    async def _partition_loop(self) -> None:
        """Keep the message log's coming partitions made and old ones dropped, hourly."""
        while True:
            with contextlib.suppress(Exception):
                await self.store.run(
                    lambda conn: conn.execute(
                        "SELECT cass_ocpp_message_partitions(%s, 3)",
                        (self.config.log_retention_days,),
                    )
                )
            await asyncio.sleep(3600)

    async def run(self, ready: asyncio.Future[int] | None = None, stop: Any = None) -> None:
        """Serve until `stop` resolves (a future or event); set `ready` to the bound port."""
        await self.store.open()
        self._tasks = [
            asyncio.create_task(commands.listen_loop(self), name="listen"),
            asyncio.create_task(commands.poll_loop(self), name="poll"),
            asyncio.create_task(self._presence_loop(), name="presence"),
            asyncio.create_task(self._partition_loop(), name="partitions"),
        ]
        config = self.config
        tls = None
        if config.certfile:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(config.certfile, config.keyfile)
        try:
            async with serve(
                self.handle,
                config.host,
                config.port,
                subprotocols=SUBPROTOCOLS,  # type: ignore[arg-type]
                process_request=self.process_request,
                max_size=config.max_frame_bytes,
                ping_interval=config.ping_interval,
                ping_timeout=config.ping_timeout,
                close_timeout=config.close_timeout,
                ssl=tls,
            ) as server:
                self.port = server.sockets[0].getsockname()[1]
                scheme = "wss" if tls else "ws"
                log.info(
                    "bridge %s listening on %s://%s:%s/ocpp/<charge_point_id>",
                    config.instance_id,
                    scheme,
                    config.host,
                    self.port,
                )
                if ready is not None and not ready.done():
                    ready.set_result(self.port)
                await (stop.wait() if isinstance(stop, asyncio.Event) else stop)
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self.store.close()


async def serve_forever(config: BridgeConfig) -> None:
    """Run the bridge until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, lambda: stop.done() or stop.set_result(None))
    await Bridge(config).run(stop=stop)
