"""The bridge's WebSocket server: /healthz and /ocpp/<charge_point_id>.

This first slice accepts chargers on the OCPP 1.6-J subprotocol and answers every call with a
NotImplemented CallError (the `ocpp` library's default); handlers and persistence come with the
bridge issue. It never imports Flask.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from http import HTTPStatus

from ocpp.v16 import ChargePoint
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

log = logging.getLogger("ocpp_bridge")
SUBPROTOCOLS = ["ocpp1.6"]


def process_request(connection: ServerConnection, request: Request) -> Response | None:
    """Answer /healthz over plain HTTP; refuse paths other than /ocpp/<id>."""
    if request.path == "/healthz":
        return connection.respond(HTTPStatus.OK, "ok\n")
    charge_point_id = request.path.removeprefix("/ocpp/")
    if not request.path.startswith("/ocpp/") or not charge_point_id or "/" in charge_point_id:
        return connection.respond(HTTPStatus.NOT_FOUND, "not found\n")
    return None


async def handle(connection: ServerConnection) -> None:
    """Serve one charger until it disconnects."""
    charge_point_id = connection.request.path.removeprefix("/ocpp/")
    if connection.subprotocol is None:
        await connection.close(1002, "OCPP subprotocol required")
        return
    log.info("charger %s connected", charge_point_id)
    try:
        await ChargePoint(charge_point_id, connection).start()
    except Exception:  # a closed socket ends the session
        log.info("charger %s disconnected", charge_point_id)


async def serve_forever(host: str, port: int) -> None:
    """Listen until SIGTERM or SIGINT."""
    stop = asyncio.get_running_loop().create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set_result, None)
    async with serve(
        handle, host, port, subprotocols=SUBPROTOCOLS, process_request=process_request
    ):
        log.info("bridge listening on ws://%s:%s/ocpp/<charge_point_id>", host, port)
        await stop
