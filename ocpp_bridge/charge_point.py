"""OCPP 1.6-J handlers: what the bridge answers a charger, after its effects are committed."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16Base
from ocpp.v16 import call_result
from ocpp.v16.enums import Action, RegistrationStatus

from ocpp_bridge import records
from ocpp_bridge.session import SessionMixin
from ocpp_bridge.store import Rows

_REGISTRATION = {
    "accepted": RegistrationStatus.accepted,
    "pending": RegistrationStatus.pending,
    "rejected": RegistrationStatus.rejected,
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def samples_of(meter_value: list[dict[str, Any]] | None) -> list[tuple[datetime, dict[str, Any]]]:
    """Flatten 1.6 meterValue entries into (time, sampled value) pairs."""
    samples = []
    for entry in meter_value or []:
        at = records.parse_time(entry.get("timestamp")) or datetime.now(UTC)
        for sample in entry.get("sampled_value") or []:
            samples.append((at, sample))
    return samples


class SharedHandlers:
    """Handlers alike in OCPP 1.6 and 2.0.1 (same action names; each version's result types)."""

    store: Any
    charger: records.Charger
    _call_result: Any  # the version's call_result module, set by the ocpp library

    @on("Heartbeat")
    async def on_heartbeat(self, **_: Any) -> Any:
        await self.store.run(lambda conn: records.record_heartbeat(conn, self.charger))
        self.seen_at = time.monotonic()
        return self._call_result.Heartbeat(current_time=now_iso())

    @on("FirmwareStatusNotification")
    async def on_firmware_status_notification(self, status: str, **_: Any) -> Any:
        # The charger's latest firmware job follows (2.0.1's requestId is not needed for that).
        await self.store.run(
            lambda conn: records.job_status(conn, self.charger, "firmware_job", status)
        )
        return self._call_result.FirmwareStatusNotification()

    @on("SecurityEventNotification")
    async def on_security_event_notification(
        self, type: str, timestamp: str, tech_info: str | None = None, **_: Any
    ) -> Any:
        await self.store.run(
            lambda conn: records.record_event(
                conn,
                self.charger,
                "security",
                status=type,
                info=tech_info,
                at=records.parse_time(timestamp),
            )
        )
        return self._call_result.SecurityEventNotification()


class ChargePoint16(SessionMixin, SharedHandlers, ChargePoint16Base):
    """A charger speaking OCPP 1.6-J."""

    @on(Action.boot_notification)
    async def on_boot_notification(
        self,
        charge_point_vendor: str,
        charge_point_model: str,
        charge_point_serial_number: str | None = None,
        charge_box_serial_number: str | None = None,
        firmware_version: str | None = None,
        **extra: Any,
    ) -> call_result.BootNotification:
        data = {
            "vendor": charge_point_vendor,
            "model": charge_point_model,
            "serial": charge_point_serial_number or charge_box_serial_number,
            "firmware": firmware_version,
            **extra,
        }

        async def job(conn: Any) -> tuple[str, bool]:
            return await records.record_boot(
                conn,
                self.charger,
                charge_point_vendor,
                charge_point_model,
                charge_point_serial_number or charge_box_serial_number,
                firmware_version,
                data,
            )

        registration, lenient = await self.store.run(job)
        self.seen_at = time.monotonic()
        self.charger.registration = registration
        self.set_lenient(lenient)
        config = self.bridge.config
        return call_result.BootNotification(
            current_time=now_iso(),
            interval=config.heartbeat_interval
            if registration == "accepted"
            else config.pending_retry_interval,
            status=_REGISTRATION[registration],
        )

    @on(Action.status_notification)
    async def on_status_notification(
        self,
        connector_id: int,
        error_code: str,
        status: str,
        info: str | None = None,
        vendor_error_code: str | None = None,
        timestamp: str | None = None,
        **_: Any,
    ) -> call_result.StatusNotification:
        await self.store.run(
            lambda conn: records.record_status(
                conn,
                self.charger,
                connector_id,
                status,
                error_code,
                info,
                vendor_error_code,
                records.parse_time(timestamp),
            )
        )
        return call_result.StatusNotification()

    @on(Action.meter_values)
    async def on_meter_values(
        self,
        connector_id: int,
        meter_value: list[dict[str, Any]],
        transaction_id: int | None = None,
        **_: Any,
    ) -> call_result.MeterValues:
        rows = records.meter_rows(
            self.charger, connector_id, transaction_id, samples_of(meter_value)
        )
        if rows:  # copied with the batch's other rows, answered once committed
            await self.store.run(Rows("meter_value", records.METER_COLUMNS, rows))
        return call_result.MeterValues()

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **_: Any) -> call_result.Authorize:
        info = await self.store.run(lambda conn: records.id_tag_info(conn, self.charger, id_tag))
        return call_result.Authorize(id_tag_info=info)

    @on(Action.start_transaction)
    async def on_start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start: int,
        timestamp: str,
        reservation_id: int | None = None,
        **_: Any,
    ) -> call_result.StartTransaction:
        at = records.parse_time(timestamp) or datetime.now(UTC)

        async def job(conn: Any) -> tuple[int, dict[str, Any]]:
            info = await records.id_tag_info(conn, self.charger, id_tag)
            session_id = await records.start_session(
                conn, self.charger, connector_id, id_tag, at, meter_start, reservation_id
            )
            return session_id, info

        session_id, info = await self.store.run(job)
        return call_result.StartTransaction(transaction_id=session_id, id_tag_info=info)

    @on(Action.stop_transaction)
    async def on_stop_transaction(
        self,
        meter_stop: int,
        timestamp: str,
        transaction_id: int,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
        **_: Any,
    ) -> call_result.StopTransaction:
        at = records.parse_time(timestamp) or datetime.now(UTC)
        samples = samples_of(transaction_data)

        async def job(conn: Any) -> dict[str, Any] | None:
            stopped = await records.stop_session(
                conn, self.charger, transaction_id, at, meter_stop, reason
            )
            if stopped and samples:  # a resent stop does not store its samples twice
                await records.record_meter_values(conn, self.charger, 0, transaction_id, samples)
            return await records.id_tag_info(conn, self.charger, id_tag) if id_tag else None

        info = await self.store.run(job)
        return call_result.StopTransaction(id_tag_info=info)

    @on(Action.data_transfer)
    async def on_data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None, **_: Any
    ) -> call_result.DataTransfer:
        status, answer = await self.store.run(
            lambda conn: records.data_transfer(conn, self.charger, vendor_id, message_id, data)
        )
        return call_result.DataTransfer(status=status, data=answer)

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status_notification(
        self, status: str, **_: Any
    ) -> call_result.DiagnosticsStatusNotification:
        await self.store.run(
            lambda conn: records.job_status(conn, self.charger, "diagnostics_request", status)
        )
        return call_result.DiagnosticsStatusNotification()
