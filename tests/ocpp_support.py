"""Helpers for bridge tests: a real bridge in a background thread and simulated chargers.

The bridge runs its own event loop in a thread, against the test database, with the intervals
shortened. Chargers are the `ocpp` library's ChargePoint over real WebSocket connections.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect

from ocpp_bridge.config import BridgeConfig
from ocpp_bridge.server import Bridge
from tests.conftest import CHARGER_KEY

FAST = {
    "ping_interval": 0.5,
    "ping_timeout": 0.5,
    "close_timeout": 1.0,
    "touch_interval": 0.2,
    "offline_after": 1.5,
    "command_timeout": 2.0,
    "command_poll_interval": 0.3,
    "idle_timeout": 30.0,
}


class RunningBridge:
    """A bridge serving in a background thread; `call` runs a coroutine on its loop."""

    def __init__(self, bridge: Bridge, loop: asyncio.AbstractEventLoop) -> None:
        self.bridge = bridge
        self.loop = loop
        self.port = bridge.port

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


@contextmanager
def running_bridge(database_url: str, **overrides: Any) -> Iterator[RunningBridge]:
    """Start a bridge (on a free port unless `port` is given); stop it (closing every charger)
    on exit."""
    settings = {"port": 0, **FAST, **overrides}
    config = BridgeConfig(database_url=database_url, **settings)
    loop = asyncio.new_event_loop()
    ready: Any = None
    stop: asyncio.Event | None = None
    bridge = Bridge(config)

    async def main() -> None:
        nonlocal ready, stop
        await bridge.run(ready=ready, stop=stop)

    def thread_main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main())

    async def prepare() -> None:
        nonlocal ready, stop
        ready = loop.create_future()
        stop = asyncio.Event()

    loop.run_until_complete(prepare())
    thread = threading.Thread(target=thread_main, name="bridge", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(ready), 15), loop).result(20)
    try:
        yield RunningBridge(bridge, loop)
    finally:
        loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
        thread.join(30)
        if thread.is_alive():
            # Say what the bridge is stuck on instead of failing later on a running loop.
            stuck = [
                "".join(traceback.format_stack(task.get_stack()[-1])) + repr(task)
                for task in asyncio.all_tasks(loop)
                if task.get_stack()
            ]
            raise AssertionError("the bridge did not stop within 30 s:\n" + "\n".join(stuck))
        loop.close()


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def open_socket(
    url: str,
    charge_point_id: str,
    key: str | None = CHARGER_KEY,
    protocol: str = "ocpp1.6",
    **kwargs: Any,
) -> ClientConnection:
    """Open a charger's WebSocket to the bridge (raises InvalidStatus when refused)."""
    headers = basic_auth(charge_point_id, key) if key is not None else {}
    return await connect(
        f"{url}/ocpp/{charge_point_id}",
        subprotocols=[protocol] if protocol else None,  # type: ignore[list-item]
        additional_headers=headers,
        open_timeout=10,
        **kwargs,
    )


class Answering:
    """Mixin for simulated chargers: record each command; answer it as a test says or by default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}

    def _answer(self, action: str, payload: dict[str, Any], default: Any) -> Any:
        self.received.append((action, payload))
        return self.answers.get(action, default)


class Charger16(Answering, ChargePoint16):
    """A simulated OCPP 1.6 charger that answers the bridge's commands and records them."""

    @on(Action.reset)
    def on_reset(self, **payload: Any) -> Any:
        return self._answer("Reset", payload, call_result.Reset(status="Accepted"))

    @on(Action.unlock_connector)
    def on_unlock(self, **payload: Any) -> Any:
        return self._answer("UnlockConnector", payload, call_result.UnlockConnector("Unlocked"))

    @on(Action.change_availability)
    def on_availability(self, **payload: Any) -> Any:
        return self._answer(
            "ChangeAvailability", payload, call_result.ChangeAvailability("Accepted")
        )

    @on(Action.remote_start_transaction)
    def on_remote_start(self, **payload: Any) -> Any:
        return self._answer(
            "RemoteStartTransaction", payload, call_result.RemoteStartTransaction("Accepted")
        )

    @on(Action.remote_stop_transaction)
    def on_remote_stop(self, **payload: Any) -> Any:
        return self._answer(
            "RemoteStopTransaction", payload, call_result.RemoteStopTransaction("Accepted")
        )

    @on(Action.get_configuration)
    def on_get_configuration(self, **payload: Any) -> Any:
        keys = [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
        return self._answer(
            "GetConfiguration", payload, call_result.GetConfiguration(configuration_key=keys)
        )

    @on(Action.change_configuration)
    def on_change_configuration(self, **payload: Any) -> Any:
        return self._answer(
            "ChangeConfiguration", payload, call_result.ChangeConfiguration("Accepted")
        )

    @on(Action.clear_cache)
    def on_clear_cache(self, **payload: Any) -> Any:
        return self._answer("ClearCache", payload, call_result.ClearCache("Accepted"))

    @on(Action.trigger_message)
    def on_trigger(self, **payload: Any) -> Any:
        return self._answer("TriggerMessage", payload, call_result.TriggerMessage("Accepted"))

    @on(Action.update_firmware)
    def on_update_firmware(self, **payload: Any) -> Any:
        return self._answer("UpdateFirmware", payload, call_result.UpdateFirmware())

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, **payload: Any) -> Any:
        return self._answer(
            "GetDiagnostics", payload, call_result.GetDiagnostics(file_name="diag-1.zip")
        )

    @on(Action.data_transfer)
    def on_data_transfer(self, **payload: Any) -> Any:
        return self._answer("DataTransfer", payload, call_result.DataTransfer("Accepted"))


async def serving(charger: Any) -> asyncio.Task[None]:
    """Start the charger's receive loop as a task (so it can send and receive at once)."""
    return asyncio.create_task(charger.start())


def query(database_url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Read rows as the table owner (RLS does not filter)."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def execute(database_url: str, sql: str, params: Any = None) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql, params)
