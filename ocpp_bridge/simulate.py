"""Simulated OCPP 1.6 chargers, many in one process, for the demo, tests and benchmarks.

`python -m ocpp_bridge.simulate --chargers 12` connects DEMO-CP-0001 … DEMO-CP-0012 to the
bridge with HTTP Basic auth and lets them live: each boots, reports its two connectors, sends
heartbeats, now and then faults (Faulted with an error code) and recovers, and runs charging
sessions (Authorize, StartTransaction, MeterValues with a rising energy register,
StopTransaction). It answers every command the bridge sends and does what it says: a remote
start starts a session, a reset reboots, a firmware update walks through its statuses and
reboots on the new version. When the bridge goes away the chargers reconnect with jittered
exponential backoff. Ctrl-C or SIGTERM closes every socket and prints a one-line summary.

Each charger is the `ocpp` library's ChargePoint (its receive loop answers the bridge) plus one
task working off a small timetable of due actions, so thousands fit in a process: no threads,
no timer per activity, one socket and two tasks per charger. Importable: `Simulator` and
`run_simulation()` serve tests and benchmarks.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import heapq
import itertools
import logging
import os
import random
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import ocpp.messages
from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from ocpp_bridge import speedups

log = logging.getLogger("ocpp_bridge.simulate")
# The library logs every frame at INFO; validation in a thread buys nothing under the GIL.
logging.getLogger("ocpp").setLevel(logging.WARNING)
ocpp.messages.ASYNC_VALIDATION = False
speedups.install()

CONNECTORS = (1, 2)
# The demo seed's models, picked the same way (number % 3), so a demo charger keeps its make.
MODELS = (("Alpitronic", "HYC300"), ("ABB", "Terra AC W22"), ("Kempower", "S-Series"))
ERROR_CODES = (
    "GroundFailure",
    "HighTemperature",
    "OverCurrentFailure",
    "PowerMeterFailure",
    "ConnectorLockFailure",
    "EVCommunicationError",
    "ReaderFailure",
    "PowerSwitchFailure",
)
TRIGGERABLE = {
    "BootNotification",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StatusNotification",
}
_VERSION_RE = re.compile(r"(\d+\.\d+(?:\.\d+)?)")
_order = itertools.count()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class SimulationConfig:
    """What to simulate; the command line maps onto these fields."""

    url: str = "ws://127.0.0.1:9000"
    chargers: int = 1
    prefix: str = "DEMO-CP-"
    start: int = 1
    digits: int = 4
    key: str = ""
    protocol: str = "ocpp1.6"
    duration: float = 0.0  # seconds; 0 runs until stopped
    heartbeat: float | None = None  # None: the interval the bridge gives at boot
    meter_interval: float = 60.0
    fault_rate: float = 0.01  # faults per charger per minute, on average
    fault_duration: float = 90.0  # mean seconds a fault lasts
    session_gap: float = 900.0  # mean idle seconds of a connector between sessions
    session_length: float = 1800.0  # mean seconds a session lasts
    step_delay: float = 2.0  # seconds between firmware/diagnostics steps; time to reboot
    connect_rate: float = 100.0  # new connections a second while starting up
    max_backoff: float = 60.0
    id_tags: tuple[str, ...] = ()  # default: <PREFIX'S FIRST WORD>-TAG-0001 … 0003
    seed: int | None = None

    def charge_point_id(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.digits}d}"

    def tags(self) -> tuple[str, ...]:
        if self.id_tags:
            return self.id_tags
        word = self.prefix.split("-")[0] or "DEMO"
        return tuple(f"{word}-TAG-{n:04d}" for n in (1, 2, 3))


@dataclass
class Stats:
    """Counters over the whole fleet."""

    online: int = 0
    peak_online: int = 0
    connects: int = 0
    reconnects: int = 0
    connect_errors: int = 0
    auth_failures: int = 0
    calls: int = 0
    call_errors: int = 0
    commands: int = 0
    sessions: int = 0
    faults: int = 0
    reboots: int = 0
    booted: set[int] = field(default_factory=set)

    def summary(self, chargers: int, seconds: float) -> str:
        return (
            f"simulate: {chargers:,} chargers, {len(self.booted):,} booted, "
            f"{self.peak_online:,} online at most; "
            f"{self.calls:,} calls ({self.call_errors:,} failed), "
            f"{self.commands:,} commands answered, {self.sessions:,} sessions, "
            f"{self.faults:,} faults, {self.reboots:,} reboots, {self.reconnects:,} reconnects, "
            f"{self.connect_errors:,} connect errors ({self.auth_failures:,} refused) "
            f"in {seconds:.1f} s"
        )


@dataclass
class Connector:
    no: int
    status: str = "Available"
    error_code: str = "NoError"
    available: bool = True  # ChangeAvailability Operative / Inoperative
    pending_inoperative: bool = False  # Inoperative once the running session ends
    faulted: bool = False
    starting: bool = False  # between the decision to charge and StartTransaction's answer
    transaction_id: int | None = None
    id_tag: str | None = None
    meter_wh: float = 0.0
    power_w: float = 0.0
    metered_at: float = 0.0

    @property
    def free(self) -> bool:
        return (
            self.available
            and not self.faulted
            and not self.starting
            and self.transaction_id is None
        )


Step = Callable[[], Awaitable[Any]]


class SimCharger(ChargePoint):
    """One simulated charger: state that outlives connections, and a timetable of actions."""

    def __init__(self, sim: Simulator, number: int) -> None:
        config = sim.config
        super().__init__(config.charge_point_id(number), None, response_timeout=30)
        self.sim = sim
        self.number = number
        self.vendor, self.model = MODELS[number % len(MODELS)]
        letters = re.sub(r"[^A-Z]", "", config.prefix.upper())[:2] or "SI"
        self.serial = f"{letters}{2024000 + number}"
        self.firmware = "1.4.2"
        self.fast = self.model != "Terra AC W22"  # DC chargers draw more
        rng = sim.rng
        self.connectors = {n: Connector(n, meter_wh=rng.uniform(1e5, 5e6)) for n in CONNECTORS}
        self.heartbeat_interval = config.heartbeat or 60.0
        self.meter_interval = config.meter_interval
        self.firmware_status = "Idle"
        self.diagnostics_status = "Idle"
        # (due time, order, action, connection generation or None for "whenever connected")
        self._timetable: list[tuple[float, int, Step, int | None]] = []
        self._generation = 0
        self._wake = asyncio.Event()
        self._reboot_after: float | None = None
        self._heartbeat_token = 0
        self.connected_before = False

    # --- the timetable --------------------------------------------------------------------
    def later(self, delay: float, step: Step, *, survives_reconnect: bool = False) -> None:
        """Do `step` in `delay` seconds (on this connection, unless it survives reconnects)."""
        when = asyncio.get_running_loop().time() + max(0.0, delay)
        generation = None if survives_reconnect else self._generation
        heapq.heappush(self._timetable, (when, next(_order), step, generation))
        self._wake.set()

    def soon(self, step: Step) -> None:
        """Do `step` shortly: after the answer to the command that asked for it is out."""
        self.later(0.05, step)

    async def _work(self) -> None:
        """Run due actions, one at a time (one CALL in flight), for as long as it is cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            delay = self._timetable[0][0] - loop.time() if self._timetable else 3600.0
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()
                self._wake.clear()
                continue
            _, _, step, generation = heapq.heappop(self._timetable)
            if generation is None or generation == self._generation:
                await step()

    # --- calls to the bridge --------------------------------------------------------------
    async def send(self, request: Any) -> Any:
        """Send a CALL; return its result, or None after a CallError or no answer."""
        stats = self.sim.stats
        stats.calls += 1
        try:
            return await self.call(request, suppress=False)
        except (OCPPError, TimeoutError) as exc:
            stats.call_errors += 1
            log.info("%s: %s failed: %s", self.id, type(request).__name__, exc)
            return None

    async def status(self, connector: Connector, status: str | None = None) -> None:
        if status is not None:
            connector.status = status
        await self.send(
            call.StatusNotification(
                connector_id=connector.no,
                error_code=connector.error_code,
                status=connector.status,
                timestamp=now_iso(),
                info="simulated fault" if connector.faulted else None,
            )
        )

    async def boot(self) -> bool:
        """BootNotification until accepted (pending and rejected retry after the interval)."""
        while True:
            result = await self.send(
                call.BootNotification(
                    charge_point_vendor=self.vendor,
                    charge_point_model=self.model,
                    charge_point_serial_number=self.serial,
                    firmware_version=self.firmware,
                )
            )
            status = result.status if result else None
            if result and self.sim.config.heartbeat is None and result.interval > 0:
                self.heartbeat_interval = float(result.interval)
            if status == "Accepted":
                self.sim.stats.booted.add(self.number)
                return True
            retry = float(result.interval) if result and result.interval > 0 else 30.0
            if await self.sim.sleep(retry):
                return False

    # --- life on a connection -------------------------------------------------------------
    async def serve(self, connection: ClientConnection) -> None:
        """Answer the bridge and live on this connection until either side closes it."""
        self._connection = connection
        self._response_queue = asyncio.Queue()
        self._call_lock = asyncio.Lock()
        self._generation += 1
        receiver = asyncio.create_task(self.start())
        worker = asyncio.create_task(self._session())
        # The simulation stopping ends the connection too, not only this task's cancellation:
        # Python 3.11 can swallow a cancellation that lands as a connect completes.
        stopping = asyncio.create_task(self.sim.stopped())
        tasks = (receiver, worker, stopping)
        try:
            # A closed socket ends the receiver; the worker may be waiting for an answer that
            # will never come, so it is cancelled rather than left to time out.
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed, Exception):
                    await task

    async def _session(self) -> None:
        """Boot, report the connectors, then work the timetable."""
        if not await self.boot():
            return
        for connector in self.connectors.values():
            await self.status(connector)
        self._schedule_heartbeat()
        config = self.sim.config
        if config.fault_rate > 0:
            self.later(self.sim.rng.expovariate(config.fault_rate / 60.0), self.fault)
        for connector in self.connectors.values():
            if connector.transaction_id is not None:  # it kept charging through the outage
                self._schedule_session(connector, connector.transaction_id)
            elif connector.free:
                self._schedule_start(connector)
        await self._work()

    def _schedule_heartbeat(self) -> None:
        self._heartbeat_token += 1
        token = self._heartbeat_token

        async def beat() -> None:
            if token != self._heartbeat_token:
                return  # the interval changed; a newer beat is scheduled
            await self.send(call.Heartbeat())
            self.later(self.heartbeat_interval, beat)

        self.later(self.heartbeat_interval, beat)

    def _schedule_start(self, connector: Connector) -> None:
        gap = self.sim.rng.expovariate(1.0 / self.sim.config.session_gap)

        async def begin() -> None:
            if connector.free:
                await self.start_session(connector, self.sim.rng.choice(self.sim.config.tags()))
            elif connector.transaction_id is None and not connector.starting:
                self._schedule_start(connector)  # faulted or unavailable: try again later

        self.later(gap, begin)

    def _schedule_session(self, connector: Connector, transaction_id: int) -> None:
        """Meter values every interval, and the end of the session, for a running session."""

        async def meter() -> None:
            if connector.transaction_id == transaction_id:
                await self.meter_values(connector)
                self.later(self.meter_interval, meter)

        async def end() -> None:
            if connector.transaction_id == transaction_id:
                await self.stop_session(connector, "Local")

        self.later(self.meter_interval, meter)
        self.later(self.sim.rng.expovariate(1.0 / self.sim.config.session_length), end)

    # --- charging sessions ----------------------------------------------------------------
    async def start_session(self, connector: Connector, id_tag: str, remote: bool = False) -> None:
        """Authorize (unless remote), Preparing, StartTransaction, Charging."""
        connector.starting = True
        try:
            if not remote:
                answer = await self.send(call.Authorize(id_tag=id_tag))
                if not answer or (answer.id_tag_info or {}).get("status") != "Accepted":
                    self._schedule_start(connector)
                    return
            await self.status(connector, "Preparing")
            started = await self.send(
                call.StartTransaction(
                    connector_id=connector.no,
                    id_tag=id_tag,
                    meter_start=int(connector.meter_wh),
                    timestamp=now_iso(),
                )
            )
        finally:
            connector.starting = False
        if started is None:
            await self.status(connector, "Available")
            self._schedule_start(connector)
            return
        connector.transaction_id = started.transaction_id
        connector.id_tag = id_tag
        rng = self.sim.rng
        connector.power_w = rng.uniform(40e3, 150e3) if self.fast else rng.uniform(3.7e3, 22e3)
        connector.metered_at = time.monotonic()
        self.sim.stats.sessions += 1
        if (started.id_tag_info or {}).get("status") != "Accepted":
            await self.stop_session(connector, "DeAuthorized")
            return
        await self.status(connector, "Charging")
        self._schedule_session(connector, started.transaction_id)

    def _advance_meter(self, connector: Connector) -> None:
        now = time.monotonic()
        if connector.transaction_id is not None:
            connector.meter_wh += connector.power_w * (now - connector.metered_at) / 3600.0
        connector.metered_at = now

    async def meter_values(self, connector: Connector) -> None:
        self._advance_meter(connector)
        charging = connector.transaction_id is not None
        sampled = [
            {
                "value": str(int(connector.meter_wh)),
                "measurand": "Energy.Active.Import.Register",
                "unit": "Wh",
                "context": "Sample.Periodic" if charging else "Trigger",
                "location": "Outlet",
            },
            {
                "value": f"{connector.power_w if charging else 0.0:.0f}",
                "measurand": "Power.Active.Import",
                "unit": "W",
                "context": "Sample.Periodic" if charging else "Trigger",
            },
        ]
        await self.send(
            call.MeterValues(
                connector_id=connector.no,
                transaction_id=connector.transaction_id,
                meter_value=[{"timestamp": now_iso(), "sampled_value": sampled}],
            )
        )

    async def stop_session(self, connector: Connector, reason: str) -> None:
        """StopTransaction with the final register; Finishing, then Available (or not)."""
        transaction_id = connector.transaction_id
        if transaction_id is None:
            return
        self._advance_meter(connector)
        connector.transaction_id = None
        await self.send(
            call.StopTransaction(
                meter_stop=int(connector.meter_wh),
                timestamp=now_iso(),
                transaction_id=transaction_id,
                reason=reason,
                id_tag=connector.id_tag,
            )
        )
        connector.id_tag, connector.power_w = None, 0.0
        if reason in ("HardReset", "SoftReset", "Reboot"):
            return  # the charger goes down; it reports its status after booting
        if connector.pending_inoperative:
            connector.pending_inoperative, connector.available = False, False
        if connector.faulted:
            return
        await self.status(connector, "Finishing")

        async def settle() -> None:
            if connector.transaction_id is None and not connector.starting:
                if not connector.faulted:
                    await self.status(
                        connector, "Available" if connector.available else "Unavailable"
                    )
                if connector.free:
                    self._schedule_start(connector)

        self.later(min(5.0, self.sim.config.step_delay), settle)

    # --- faults ---------------------------------------------------------------------------
    async def fault(self) -> None:
        """Fault a connector (ending its session), recover after a while; schedule the next."""
        rng = self.sim.rng
        config = self.sim.config
        self.later(rng.expovariate(config.fault_rate / 60.0), self.fault)
        connector = self.connectors[rng.choice(CONNECTORS)]
        if connector.faulted:
            return
        self.sim.stats.faults += 1
        connector.faulted = True
        connector.error_code = rng.choice(ERROR_CODES)
        if connector.transaction_id is not None:
            await self.stop_session(connector, "Other")
        await self.status(connector, "Faulted")

        async def recover() -> None:
            connector.faulted, connector.error_code = False, "NoError"
            await self.status(connector, "Available" if connector.available else "Unavailable")
            if connector.free:
                self._schedule_start(connector)

        self.later(max(1.0, rng.expovariate(1.0 / config.fault_duration)), recover)

    # --- reboots --------------------------------------------------------------------------
    async def reboot(self, reason: str) -> None:
        """End sessions, close the socket and come back after the reboot delay."""
        for connector in self.connectors.values():
            if connector.transaction_id is not None:
                await self.stop_session(connector, reason)
        self.sim.stats.reboots += 1
        self._reboot_after = self.sim.config.step_delay
        await self._connection.close(1000, "rebooting")

    # --- commands from the bridge ---------------------------------------------------------
    def _command(self) -> None:
        self.sim.stats.commands += 1

    def _connector(self, connector_id: int | None) -> Connector | None:
        return self.connectors.get(connector_id) if connector_id else None

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> call_result.Reset:
        self._command()
        reason = "HardReset" if type == "Hard" else "SoftReset"
        self.soon(lambda: self.reboot(reason))
        return call_result.Reset(status="Accepted")

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **_: Any) -> call_result.UnlockConnector:
        self._command()
        connector = self._connector(connector_id)
        if connector is None:
            return call_result.UnlockConnector(status="NotSupported")
        if connector.transaction_id is not None:
            self.soon(lambda: self.stop_session(connector, "UnlockCommand"))
        return call_result.UnlockConnector(status="Unlocked")

    @on(Action.change_availability)
    def on_change_availability(
        self, connector_id: int, type: str, **_: Any
    ) -> call_result.ChangeAvailability:
        self._command()
        if connector_id == 0:
            targets = list(self.connectors.values())
        elif connector_id in self.connectors:
            targets = [self.connectors[connector_id]]
        else:
            return call_result.ChangeAvailability(status="Rejected")
        operative = type == "Operative"
        scheduled = False
        for connector in targets:
            if not operative and connector.transaction_id is not None:
                connector.pending_inoperative = scheduled = True
                continue
            connector.pending_inoperative = False
            if connector.available != operative:
                connector.available = operative
                if not connector.faulted and not connector.starting:
                    self.soon(
                        lambda c=connector: self.status(
                            c, "Available" if operative else "Unavailable"
                        )
                    )
                if operative and connector.free:
                    self._schedule_start(connector)
        return call_result.ChangeAvailability(status="Scheduled" if scheduled else "Accepted")

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(
        self, id_tag: str, connector_id: int | None = None, **_: Any
    ) -> call_result.RemoteStartTransaction:
        self._command()
        if connector_id:
            connector = self._connector(connector_id)
        else:
            connector = next((c for c in self.connectors.values() if c.free), None)
        if connector is None or not connector.free:
            return call_result.RemoteStartTransaction(status="Rejected")
        connector.starting = True  # nothing else may take it before the session starts
        self.soon(lambda: self.start_session(connector, id_tag, remote=True))
        return call_result.RemoteStartTransaction(status="Accepted")

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(
        self, transaction_id: int, **_: Any
    ) -> call_result.RemoteStopTransaction:
        self._command()
        for connector in self.connectors.values():
            if connector.transaction_id == transaction_id:
                self.soon(lambda c=connector: self.stop_session(c, "Remote"))
                return call_result.RemoteStopTransaction(status="Accepted")
        return call_result.RemoteStopTransaction(status="Rejected")

    def _configuration(self) -> dict[str, tuple[str, bool]]:
        """Configuration keys: value and whether read-only."""
        return {
            "HeartbeatInterval": (f"{self.heartbeat_interval:g}", False),
            "MeterValueSampleInterval": (f"{self.meter_interval:g}", False),
            "NumberOfConnectors": (str(len(self.connectors)), True),
            "AuthorizeRemoteTxRequests": ("false", False),
            "ConnectionTimeOut": ("60", False),
            "MeterValuesSampledData": ("Energy.Active.Import.Register,Power.Active.Import", False),
            "SupportedFeatureProfiles": (
                "Core,FirmwareManagement,RemoteTrigger,LocalAuthListManagement",
                True,
            ),
        }

    @on(Action.get_configuration)
    def on_get_configuration(
        self, key: list[str] | None = None, **_: Any
    ) -> call_result.GetConfiguration:
        self._command()
        known = self._configuration()
        wanted = key or list(known)
        found = [
            {"key": name, "readonly": known[name][1], "value": known[name][0]}
            for name in wanted
            if name in known
        ]
        unknown = [name for name in wanted if name not in known]
        return call_result.GetConfiguration(configuration_key=found, unknown_key=unknown or None)

    @on(Action.change_configuration)
    def on_change_configuration(
        self, key: str, value: str, **_: Any
    ) -> call_result.ChangeConfiguration:
        self._command()
        known = self._configuration()
        if key not in known:
            return call_result.ChangeConfiguration(status="NotSupported")
        if known[key][1]:
            return call_result.ChangeConfiguration(status="Rejected")
        if key in ("HeartbeatInterval", "MeterValueSampleInterval"):
            try:
                seconds = float(value)
            except ValueError:
                return call_result.ChangeConfiguration(status="Rejected")
            if seconds <= 0:
                return call_result.ChangeConfiguration(status="Rejected")
            if key == "HeartbeatInterval":
                self.heartbeat_interval = seconds
                self._schedule_heartbeat()
            else:
                self.meter_interval = seconds
        return call_result.ChangeConfiguration(status="Accepted")

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> call_result.ClearCache:
        self._command()
        return call_result.ClearCache(status="Accepted")

    @on(Action.trigger_message)
    def on_trigger_message(
        self, requested_message: str, connector_id: int | None = None, **_: Any
    ) -> call_result.TriggerMessage:
        self._command()
        if requested_message not in TRIGGERABLE:
            return call_result.TriggerMessage(status="NotImplemented")
        if connector_id and connector_id not in self.connectors:
            return call_result.TriggerMessage(status="Rejected")
        targets = (
            [self.connectors[connector_id]] if connector_id else list(self.connectors.values())
        )
        if requested_message == "BootNotification":
            self.soon(self.boot)
        elif requested_message == "Heartbeat":
            self.soon(lambda: self.send(call.Heartbeat()))
        elif requested_message == "StatusNotification":
            for connector in targets:
                self.soon(lambda c=connector: self.status(c))
        elif requested_message == "MeterValues":
            for connector in targets:
                self.soon(lambda c=connector: self.meter_values(c))
        elif requested_message == "FirmwareStatusNotification":
            self.soon(self._send_firmware_status)
        else:
            self.soon(self._send_diagnostics_status)
        return call_result.TriggerMessage(status="Accepted")

    async def _send_firmware_status(self, status: str | None = None) -> None:
        if status is not None:
            self.firmware_status = status
        await self.send(call.FirmwareStatusNotification(status=self.firmware_status))

    async def _send_diagnostics_status(self, status: str | None = None) -> None:
        if status is not None:
            self.diagnostics_status = status
        await self.send(call.DiagnosticsStatusNotification(status=self.diagnostics_status))

    @on(Action.update_firmware)
    def on_update_firmware(
        self, location: str, retrieve_date: str, **_: Any
    ) -> call_result.UpdateFirmware:
        self._command()
        wait = 0.0
        with contextlib.suppress(ValueError, TypeError):
            retrieve = datetime.fromisoformat(retrieve_date.replace("Z", "+00:00"))
            wait = min(3600.0, max(0.0, (retrieve - datetime.now(UTC)).total_seconds()))
        match = _VERSION_RE.search(location.rsplit("/", 1)[-1])
        version = match.group(1) if match else _next_version(self.firmware)
        step = self.sim.config.step_delay

        def report(status: str) -> Step:
            return lambda: self._send_firmware_status(status)

        async def installed() -> None:
            self.firmware = version
            await self._send_firmware_status("Installed")
            await self.reboot("Reboot")

        for n, status in enumerate(("Downloading", "Downloaded", "Installing"), start=0):
            self.later(wait + 0.05 + n * step, report(status), survives_reconnect=True)
        self.later(wait + 0.05 + 3 * step, installed, survives_reconnect=True)
        return call_result.UpdateFirmware()

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, **_: Any) -> call_result.GetDiagnostics:
        self._command()
        name = f"diagnostics-{self.id}-{datetime.now(UTC):%Y%m%dT%H%M%S}.zip"
        step = self.sim.config.step_delay
        self.later(
            0.05, lambda: self._send_diagnostics_status("Uploading"), survives_reconnect=True
        )
        self.later(
            0.05 + step, lambda: self._send_diagnostics_status("Uploaded"), survives_reconnect=True
        )
        return call_result.GetDiagnostics(file_name=name)

    @on(Action.data_transfer)
    def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
    ) -> call_result.DataTransfer:
        self._command()
        return call_result.DataTransfer(status="Accepted", data=data)

    # --- connecting -----------------------------------------------------------------------
    async def live(self, first_delay: float) -> None:
        """Connect, serve, and reconnect (after a reboot, or with backoff) until stopped."""
        sim = self.sim
        config = sim.config
        stats = sim.stats
        delay = first_delay
        failures = 0
        url = f"{config.url.rstrip('/')}/ocpp/{self.id}"
        token = base64.b64encode(f"{self.id}:{config.key}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
        while not await sim.sleep(delay):
            try:
                connection = await connect(
                    url,
                    subprotocols=[config.protocol],  # type: ignore[list-item]
                    additional_headers=headers,
                    open_timeout=30,
                    ping_interval=None,  # the bridge pings; answering costs nothing
                    compression=None,
                    max_queue=8,
                )
            except InvalidStatus as exc:
                stats.connect_errors += 1
                code = exc.response.status_code
                if code in (401, 403, 404):
                    stats.auth_failures += 1
                    if failures == 0:
                        log.warning("%s: the bridge refused the charger (HTTP %s)", self.id, code)
                failures += 1
                delay = sim.backoff(failures + 3)  # refusals are not fixed by hurrying
                continue
            except (OSError, TimeoutError, InvalidHandshake) as exc:
                stats.connect_errors += 1
                failures += 1
                log.info("%s: cannot connect (%s)", self.id, exc)
                delay = sim.backoff(failures)
                continue
            stats.reconnects += 1 if self.connected_before else 0
            self.connected_before = True
            stats.connects += 1
            stats.online += 1
            stats.peak_online = max(stats.peak_online, stats.online)
            failures = 0
            try:
                await self.serve(connection)
            except ConnectionClosed:
                pass
            finally:
                stats.online -= 1
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await connection.close()
            if self._reboot_after is not None:
                delay, self._reboot_after = self._reboot_after, None
            else:
                failures += 1
                delay = sim.backoff(failures)


def _next_version(version: str) -> str:
    parts = version.split(".")
    if parts and parts[-1].isdigit():
        parts[-1] = str(int(parts[-1]) + 1)
        return ".".join(parts)
    return version + ".1"


class Simulator:
    """A fleet of simulated chargers sharing one event loop, one random source and counters."""

    def __init__(self, config: SimulationConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.stats = Stats()
        self.chargers: list[SimCharger] = []
        self._stop: asyncio.Event | None = None

    async def sleep(self, seconds: float) -> bool:
        """Sleep; return True at once when the simulation is stopping."""
        assert self._stop is not None
        if self._stop.is_set():
            return True
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._stop.wait()
        return self._stop.is_set()

    def backoff(self, failures: int) -> float:
        """Jittered exponential backoff: 1, 2, 4 … up to max_backoff seconds."""
        ceiling = min(self.config.max_backoff, 2.0 ** max(0, failures - 1))
        return self.rng.uniform(0.5, 1.0) * ceiling

    def stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def stopped(self) -> None:
        """Return once the simulation is stopping."""
        assert self._stop is not None
        await self._stop.wait()

    async def run(self, stop: asyncio.Event | None = None) -> Stats:
        """Run the fleet until `stop` is set (or the configured duration ends)."""
        config = self.config
        self._stop = stop or asyncio.Event()
        self.chargers = [
            SimCharger(self, number)
            for number in range(config.start, config.start + config.chargers)
        ]
        rate = max(config.connect_rate, 0.001)
        tasks = [
            asyncio.create_task(charger.live(n / rate), name=charger.id)
            for n, charger in enumerate(self.chargers)
        ]
        try:
            if config.duration > 0:
                await self.sleep(config.duration)
            else:
                await self._stop.wait()
        finally:
            self._stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return self.stats


async def run_simulation(stop: asyncio.Event | None = None, **settings: Any) -> Stats:
    """Run a simulation with SimulationConfig fields as keywords; return its counters."""
    return await Simulator(SimulationConfig(**settings)).run(stop)


def parse_args(argv: list[str] | None = None) -> SimulationConfig:
    parser = argparse.ArgumentParser(
        prog="python -m ocpp_bridge.simulate",
        description="Simulated OCPP 1.6 chargers connecting to the CASS bridge.",
    )
    parser.add_argument("--chargers", type=int, required=True, help="how many chargers")
    parser.add_argument("--url", default="ws://127.0.0.1:9000", help="the bridge's base URL")
    parser.add_argument("--prefix", default="DEMO-CP-", help="charge point id prefix")
    parser.add_argument("--start", type=int, default=1, help="first charger number")
    parser.add_argument("--digits", type=int, default=4, help="zero-padded number width")
    parser.add_argument(
        "--key",
        default=os.environ.get("CASS_SIMULATOR_KEY") or os.environ.get("CASS_DEMO_CHARGER_KEY"),
        help="the chargers' Basic-auth key (env CASS_SIMULATOR_KEY or CASS_DEMO_CHARGER_KEY)",
    )
    parser.add_argument("--protocol", default="ocpp1.6", choices=["ocpp1.6"])
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 = until stopped")
    parser.add_argument(
        "--heartbeat", type=float, help="heartbeat seconds (default: as the bridge says at boot)"
    )
    parser.add_argument("--meter-interval", type=float, default=60.0, help="seconds")
    parser.add_argument(
        "--fault-rate", type=float, default=0.01, help="faults per charger per minute"
    )
    parser.add_argument("--fault-duration", type=float, default=90.0, help="mean seconds")
    parser.add_argument("--session-gap", type=float, default=900.0, help="mean idle seconds")
    parser.add_argument("--session-length", type=float, default=1800.0, help="mean seconds")
    parser.add_argument(
        "--step-delay", type=float, default=2.0, help="seconds per firmware step, reboot time"
    )
    parser.add_argument(
        "--connect-rate", type=float, default=100.0, help="connections a second at start"
    )
    parser.add_argument("--id-tag", action="append", default=[], help="id tag (repeatable)")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every connect error")
    args = parser.parse_args(argv)
    if args.chargers < 1:
        parser.error("--chargers must be at least 1")
    if not args.key:
        parser.error("no key: pass --key or set CASS_SIMULATOR_KEY")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s simulate %(message)s",
    )
    return SimulationConfig(
        url=args.url,
        chargers=args.chargers,
        prefix=args.prefix,
        start=args.start,
        digits=args.digits,
        key=args.key,
        protocol=args.protocol,
        duration=args.duration,
        heartbeat=args.heartbeat,
        meter_interval=args.meter_interval,
        fault_rate=args.fault_rate,
        fault_duration=args.fault_duration,
        session_gap=args.session_gap,
        session_length=args.session_length,
        step_delay=args.step_delay,
        connect_rate=args.connect_rate,
        id_tags=tuple(args.id_tag),
        seed=args.seed,
    )


async def _main(config: SimulationConfig) -> Stats:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    return await Simulator(config).run(stop)


def main(argv: list[str] | None = None) -> None:
    """Run the simulator from the command line; print a one-line summary at the end."""
    config = parse_args(argv)
    _raise_open_files_limit(config.chargers + 100)
    started = time.monotonic()
    try:  # uvloop when installed: less CPU per socket event, more chargers per process
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        stats = runner.run(_main(config))
    print(stats.summary(config.chargers, time.monotonic() - started), flush=True)
    sys.exit(0)


def _raise_open_files_limit(wanted: int) -> None:
    """Lift the soft open-files limit towards the hard one: each charger holds a socket."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


if __name__ == "__main__":
    main()
