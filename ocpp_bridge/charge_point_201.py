"""OCPP 2.0.1 handlers (the core subset): what the bridge answers, after its effects are committed.

They store what 2.0.1 chargers report in the same tables, with the same SQL (records.py), as the
OCPP 1.6 handlers, translating 2.0.1's shapes into ours on the way:

- Connectors: we number connectors per charger, 2.0.1 numbers them per EVSE. We use the EVSE id
  as our connector number: most chargers have one connector per EVSE, and an EVSE is what a
  driver and a ticket point at. A charger with two connectors on one EVSE shows the EVSE's
  latest connector status.
- Faults: 2.0.1 has no error codes in StatusNotification (it reports problems by NotifyEvent),
  so a status is stored with error code NoError, and a NotifyEvent that reports a fault also
  sets the connector Faulted (see `_fault_of`).
- Transactions: the charger names them (a string), stored as charging_session.transaction_ref;
  meter values refer to the session's numeric id, as for 1.6.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from ocpp.charge_point import snake_to_camel_case
from ocpp.routing import on
from ocpp.v201 import ChargePoint as ChargePoint201Base
from ocpp.v201 import call_result
from ocpp.v201.enums import Action, RegistrationStatusEnumType

from ocpp_bridge import records
from ocpp_bridge.charge_point import SharedHandlers, now_iso
from ocpp_bridge.session import SessionMixin

_REGISTRATION = {
    "accepted": RegistrationStatusEnumType.accepted,
    "pending": RegistrationStatusEnumType.pending,
    "rejected": RegistrationStatusEnumType.rejected,
}
ENERGY_REGISTER = "Energy.Active.Import.Register"


def sample_of(sampled_value: dict[str, Any]) -> dict[str, Any]:
    """Turn a 2.0.1 sampledValue into the 1.6-shaped sample records.record_meter_values stores.

    2.0.1 values are numbers with a unit and a power-of-ten multiplier; the multiplier is applied,
    so the stored value is in the stored unit.
    """
    unit_of_measure = sampled_value.get("unit_of_measure") or {}
    value = sampled_value.get("value")
    multiplier = unit_of_measure.get("multiplier") or 0
    if isinstance(value, int | float) and multiplier:
        value = value * 10**multiplier if multiplier > 0 else value / 10**-multiplier
    return {
        "value": value,
        "measurand": sampled_value.get("measurand"),
        "phase": sampled_value.get("phase"),
        "unit": unit_of_measure.get("unit"),
        "context": sampled_value.get("context"),
        "location": sampled_value.get("location"),
    }


def samples_of(meter_value: list[dict[str, Any]] | None) -> list[tuple[datetime, dict[str, Any]]]:
    """Flatten 2.0.1 meterValue entries into (time, sample) pairs."""
    samples = []
    for entry in meter_value or []:
        at = records.parse_time(entry.get("timestamp")) or datetime.now(UTC)
        for sampled_value in entry.get("sampled_value") or []:
            samples.append((at, sample_of(sampled_value)))
    return samples


def register_wh(samples: list[tuple[datetime, dict[str, Any]]], context: str) -> int | None:
    """Return the energy register in Wh: the reading taken in `context`, else the latest one.

    Only the charger's total (no phase) counts; a missing measurand means the register, as in
    the spec. None when the samples have no register reading.
    """
    readings = [
        (sample.get("context") == context, at, sample)
        for at, sample in samples
        if (sample.get("measurand") or ENERGY_REGISTER) == ENERGY_REGISTER
        and sample.get("phase") is None
        and isinstance(sample.get("value"), int | float)
    ]
    if not readings:
        return None
    _, _, sample = max(readings, key=lambda reading: reading[:2])
    factor = 1000 if (sample.get("unit") or "Wh") == "kWh" else 1
    return round(sample["value"] * factor)


def id_token_info(info: dict[str, Any]) -> dict[str, Any]:
    """Turn our OCPP 1.6 idTagInfo into 2.0.1 idTokenInfo (the statuses are spelled alike)."""
    token_info: dict[str, Any] = {"status": info["status"]}
    if info.get("expiry_date"):
        token_info["cache_expiry_date_time"] = info["expiry_date"]
    if info.get("parent_id_tag"):
        token_info["group_id_token"] = {"id_token": info["parent_id_tag"], "type": "Central"}
    return token_info


def token_of(id_token: dict[str, Any] | None) -> str | None:
    """Return the identifier to store and look up, or None when there is none."""
    if not id_token or id_token.get("type") == "NoAuthorization":
        return None
    return id_token.get("id_token") or None


async def authorize(
    conn: Any, charger: records.Charger, id_token: dict[str, Any]
) -> dict[str, Any]:
    """Return idTokenInfo for a token; a token unknown to the tenant is Unknown.

    A charger that charges without authorization says so with type NoAuthorization; there is
    nothing to check, so it is Accepted.
    """
    token = token_of(id_token)
    if token is None:
        unchecked = id_token.get("type") == "NoAuthorization"
        return {"status": "Accepted" if unchecked else "Invalid"}
    return id_token_info(await records.id_tag_info(conn, charger, token, unknown="Unknown"))


def _fault_of(event: dict[str, Any]) -> tuple[int, str, str | None] | None:
    """Return (connector no, error code, info) when an EventData reports a fault, else None.

    Kept simple: a component whose AvailabilityState became Faulted, or whose Problem variable
    became true, is a fault of its EVSE (connector 0, the charger as a whole, when the
    component is not on an EVSE). A cleared problem changes no status: the charger reports the
    recovered state with a StatusNotification.
    """
    if event.get("cleared"):
        return None
    variable = (event.get("variable") or {}).get("name")
    value = str(event.get("actual_value", "")).strip().lower()
    if not (
        (variable == "AvailabilityState" and value == "faulted")
        or (variable == "Problem" and value == "true")
    ):
        return None
    component = event.get("component") or {}
    evse = component.get("evse") or {}
    code = event.get("tech_code") or "OtherError"
    info = event.get("tech_info") or f"{component.get('name')}.{variable}"
    return int(evse.get("id") or 0), code, info


class ChargePoint201(SessionMixin, SharedHandlers, ChargePoint201Base):
    """A charger speaking OCPP 2.0.1 (the core subset)."""

    @on(Action.boot_notification)
    async def on_boot_notification(
        self, charging_station: dict[str, Any], reason: str, **_: Any
    ) -> call_result.BootNotification:
        vendor = charging_station["vendor_name"]
        model = charging_station["model"]
        serial = charging_station.get("serial_number")
        firmware = charging_station.get("firmware_version")
        data = {
            "vendor": vendor,
            "model": model,
            "serial": serial,
            "firmware": firmware,
            "reason": reason,
        }
        if charging_station.get("modem"):
            data["modem"] = charging_station["modem"]

        async def job(conn: Any) -> tuple[str, bool]:
            return await records.record_boot(
                conn, self.charger, vendor, model, serial, firmware, data
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
        self, timestamp: str, connector_status: str, evse_id: int, connector_id: int, **_: Any
    ) -> call_result.StatusNotification:
        # The EVSE is our connector (see the module's docstring); 2.0.1 has no error code here.
        await self.store.run(
            lambda conn: records.record_status(
                conn,
                self.charger,
                evse_id,
                connector_status,
                "NoError",
                at=records.parse_time(timestamp),
            )
        )
        return call_result.StatusNotification()

    @on(Action.meter_values)
    async def on_meter_values(
        self, evse_id: int, meter_value: list[dict[str, Any]], **_: Any
    ) -> call_result.MeterValues:
        samples = samples_of(meter_value)
        await self.store.run(
            lambda conn: records.record_meter_values(conn, self.charger, evse_id, None, samples)
        )
        return call_result.MeterValues()

    @on(Action.authorize)
    async def on_authorize(self, id_token: dict[str, Any], **_: Any) -> call_result.Authorize:
        info = await self.store.run(lambda conn: authorize(conn, self.charger, id_token))
        return call_result.Authorize(id_token_info=info)

    @on(Action.transaction_event)
    async def on_transaction_event(
        self,
        event_type: str,
        timestamp: str,
        trigger_reason: str,
        seq_no: int,
        transaction_info: dict[str, Any],
        meter_value: list[dict[str, Any]] | None = None,
        evse: dict[str, Any] | None = None,
        id_token: dict[str, Any] | None = None,
        reservation_id: int | None = None,
        **_: Any,
    ) -> call_result.TransactionEvent:
        ref = str(transaction_info["transaction_id"])[:36]  # str even from a lenient model
        at = records.parse_time(timestamp) or datetime.now(UTC)
        # The EVSE is sent once it is known, not with every event; 0 while it is unknown.
        connector_no = int(evse["id"]) if evse else 0
        token = token_of(id_token)
        samples = samples_of(meter_value)

        async def job(conn: Any) -> dict[str, Any] | None:
            # Every event finds its session by the charger's transaction id, and opens it if
            # the Started never arrived (a charger may give up resending one): its Updated and
            # Ended events then still count, from their own time and without a start reading.
            session_id = await records.start_session(
                conn,
                self.charger,
                connector_no,
                token,
                at,
                register_wh(samples, "Transaction.Begin") if event_type == "Started" else None,
                reservation_id,
                ref=ref,
            )
            # Later events may bring the token or the EVSE the session started without; its
            # samples are stored under the session's connector.
            session_connector = connector_no
            if event_type != "Started":
                session_connector = await records.complete_session(
                    conn, self.charger, session_id, connector_no, token
                )
            # A resent event's samples are already stored: skip_stored leaves them out.
            await records.record_meter_values(
                conn, self.charger, session_connector, session_id, samples, skip_stored=True
            )
            if event_type == "Ended":
                # The energy: the register read at Transaction.End (else the latest register
                # the Ended event carries) minus the one read at the start. Without either
                # reading the session's energy stays unknown rather than guessed. A resent
                # Ended finds the session closed and changes nothing.
                await records.stop_session(
                    conn,
                    self.charger,
                    session_id,
                    at,
                    register_wh(samples, "Transaction.End"),
                    # The spec lets a charger omit the reason only when it is Local.
                    transaction_info.get("stopped_reason") or "Local",
                    ref=ref,
                )
            return await authorize(conn, self.charger, id_token) if id_token else None

        info = await self.store.run(job)
        return call_result.TransactionEvent(id_token_info=info)

    @on(Action.notify_event)
    async def on_notify_event(
        self, generated_at: str, seq_no: int, event_data: list[dict[str, Any]], **_: Any
    ) -> call_result.NotifyEvent:
        at = records.parse_time(generated_at)
        faults = [(event, fault) for event in event_data if (fault := _fault_of(event))]
        first = event_data[0] if event_data else {}
        summary = "; ".join(
            f"{(e.get('component') or {}).get('name')}.{(e.get('variable') or {}).get('name')}"
            f"={e.get('actual_value')}"
            for e in event_data
        )

        async def job(conn: Any) -> None:
            await records.record_event(
                conn,
                self.charger,
                "notify_event",
                status=first.get("actual_value") if len(event_data) == 1 else None,
                info=summary,
                data=snake_to_camel_case(event_data),
                at=at,
            )
            for event, (connector_no, code, info) in faults:
                await records.record_status(
                    conn,
                    self.charger,
                    connector_no,
                    "Faulted",
                    code,
                    info,
                    at=records.parse_time(event.get("timestamp")) or at,
                )

        await self.store.run(job)
        return call_result.NotifyEvent()
