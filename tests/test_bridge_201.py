"""OCPP 2.0.1 from real simulated chargers to a running bridge: messages persisted in Postgres,
resent transaction events idempotent, commands answered, protocol errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import make_dataclass
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.routing import on
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call, call_result
from ocpp.v201.enums import Action

from tests.ocpp_support import Answering, execute, open_socket, query, running_bridge, serving

T0, T1, T2 = "2026-11-28T10:00:00Z", "2026-11-28T10:15:00Z", "2026-11-28T10:30:00Z"
STATION = {
    "model": "Terra AC W22",
    "vendor_name": "ABB",
    "serial_number": "SER-201",
    "firmware_version": "3.1.0",
}
FINAL_STATES = ("accepted", "rejected", "failed", "timed_out", "expired")


class Charger201(Answering, ChargePoint201):
    """A simulated OCPP 2.0.1 charger that answers the bridge's commands and records them."""

    @on(Action.reset)
    def on_reset(self, **payload: Any) -> Any:
        return self._answer("Reset", payload, call_result.Reset(status="Accepted"))

    @on(Action.request_start_transaction)
    def on_request_start(self, **payload: Any) -> Any:
        answer = call_result.RequestStartTransaction(status="Accepted", transaction_id="tx-rs-1")
        return self._answer("RequestStartTransaction", payload, answer)

    @on(Action.request_stop_transaction)
    def on_request_stop(self, **payload: Any) -> Any:
        answer = call_result.RequestStopTransaction(status="Accepted")
        return self._answer("RequestStopTransaction", payload, answer)

    @on(Action.change_availability)
    def on_availability(self, **payload: Any) -> Any:
        answer = call_result.ChangeAvailability(status="Scheduled")
        return self._answer("ChangeAvailability", payload, answer)

    @on(Action.unlock_connector)
    def on_unlock(self, **payload: Any) -> Any:
        answer = call_result.UnlockConnector(status="Unlocked")
        return self._answer("UnlockConnector", payload, answer)

    @on(Action.trigger_message)
    def on_trigger(self, **payload: Any) -> Any:
        answer = call_result.TriggerMessage(status="Accepted")
        return self._answer("TriggerMessage", payload, answer)


async def connect(url: str, ocpp_id: str) -> tuple[Charger201, Any, asyncio.Task[None]]:
    """Open a 2.0.1 charger's socket and start its receive loop."""
    ws = await open_socket(url, ocpp_id, protocol="ocpp2.0.1")
    assert ws.subprotocol == "ocpp2.0.1"
    charger = Charger201(ocpp_id, ws, response_timeout=10)
    return charger, ws, await serving(charger)


async def hang_up(ws: Any, task: asyncio.Task[None]) -> None:
    task.cancel()
    await ws.close()


async def raw_call(charger: Charger201, action: str, payload: dict[str, Any]) -> Any:
    """Send any payload as `action` unchecked; return the answer or the CallError's exception."""
    cls = make_dataclass(action, [(key, Any) for key in payload])
    try:
        return await charger.call(cls(**payload), suppress=False, skip_schema_validation=True)
    except OCPPError as error:
        return error


async def wait_for(
    database_url: str,
    sql: str,
    params: Any,
    done: Callable[[list[tuple[Any, ...]]], bool],
    timeout: float = 20,
) -> list[tuple[Any, ...]]:
    """Poll a query (off the charger's event loop) until `done(rows)`; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await asyncio.to_thread(query, database_url, sql, params)
        if done(rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting; last rows: {rows}")
        await asyncio.sleep(0.05)


def energy(value: float, unit: str = "Wh", context: str | None = None, **more: Any) -> dict:
    sample: dict[str, Any] = {"value": value, "unit_of_measure": {"unit": unit}, **more}
    if context:
        sample["context"] = context
    return sample


def tx_event(event_type: str, ref: str, at: str, seq_no: int, trigger: str, **more: Any) -> Any:
    info = {"transaction_id": ref, **more.pop("info", {})}
    return call.TransactionEvent(
        event_type=event_type,
        timestamp=at,
        trigger_reason=trigger,
        seq_no=seq_no,
        transaction_info=info,
        **more,
    )


def token(id_token: str, kind: str = "ISO14443") -> dict[str, str]:
    return {"id_token": id_token, "type": kind}


def test_boot_heartbeat_status_meter_values_events_and_firmware_are_stored(database_url, demo):
    charger_id = demo["DEMO-CP-0002"]
    execute(
        database_url,
        "INSERT INTO firmware_job (tenant_id, charger_id, location, retrieve_at) "
        "SELECT tenant_id, id, 'https://fw.example/3.1.0.bin', now() FROM charger WHERE id = %s",
        (charger_id,),
    )
    fault = {
        "event_id": 1,
        "timestamp": T1,
        "trigger": "Delta",
        "actual_value": "Faulted",
        "event_notification_type": "HardWiredNotification",
        "component": {"name": "Connector", "evse": {"id": 2, "connector_id": 1}},
        "variable": {"name": "AvailabilityState"},
        "tech_code": "GroundFailure",
        "tech_info": "RCD tripped",
    }
    reading = {
        "event_id": 2,
        "timestamp": T2,
        "trigger": "Periodic",
        "actual_value": "41.5",
        "event_notification_type": "PreconfiguredMonitor",
        "component": {"name": "ChargingStation"},
        "variable": {"name": "Temperature"},
    }

    async def scenario(url: str) -> dict[str, Any]:
        cp, ws, task = await connect(url, "DEMO-CP-0002")
        answers = {
            "boot": await cp.call(
                call.BootNotification(charging_station=STATION, reason="PowerUp")
            ),
            "beat": await cp.call(call.Heartbeat()),
        }
        await cp.call(call.StatusNotification(T0, "Available", evse_id=1, connector_id=1))
        await cp.call(call.StatusNotification(T1, "Occupied", evse_id=1, connector_id=1))
        await cp.call(call.StatusNotification(T1, "Occupied", evse_id=1, connector_id=1))
        await cp.call(
            call.MeterValues(
                evse_id=1,
                meter_value=[
                    {
                        "timestamp": T0,
                        "sampled_value": [
                            energy(12.5, "kWh"),
                            {
                                "value": 72,
                                "measurand": "Power.Active.Import",
                                "phase": "L1-N",
                                "unit_of_measure": {"unit": "W", "multiplier": 2},
                            },
                        ],
                    }
                ],
            )
        )
        await cp.call(call.NotifyEvent(generated_at=T1, seq_no=0, event_data=[fault]))
        await cp.call(call.NotifyEvent(generated_at=T2, seq_no=1, event_data=[reading]))
        await cp.call(call.FirmwareStatusNotification(status="Downloading", request_id=1))
        await hang_up(ws, task)
        return answers

    with running_bridge(database_url) as bridge:
        answers = asyncio.run(scenario(bridge.url))

    assert answers["boot"].status == "Accepted"
    assert answers["boot"].interval == 60
    assert answers["beat"].current_time.endswith("Z")
    charger = query(
        database_url,
        "SELECT manufacturer, model, serial, firmware, ocpp_protocol FROM charger WHERE id = %s",
        (charger_id,),
    )
    assert charger == [("ABB", "Terra AC W22", "SER-201", "3.1.0", "ocpp2.0.1")]

    events = query(
        database_url,
        "SELECT kind, connector_no, status, error_code, info, data FROM charger_event "
        "WHERE charger_id = %s AND kind NOT IN ('online', 'offline') ORDER BY id",
        (charger_id,),
    )
    assert [(kind, no, status, code) for kind, no, status, code, _, _ in events] == [
        ("boot", None, "accepted", None),
        ("status", 1, "Available", "NoError"),
        ("status", 1, "Occupied", "NoError"),  # the repeated Occupied made no event
        ("notify_event", None, "Faulted", None),
        ("status", 2, "Faulted", "GroundFailure"),  # the fault the NotifyEvent reported
        ("notify_event", None, "41.5", None),
        ("firmware", None, "Downloading", None),
    ]
    assert events[0][5]["reason"] == "PowerUp"
    notified = events[3][5]
    assert notified[0]["actualValue"] == "Faulted"
    assert notified[0]["component"] == {"name": "Connector", "evse": {"id": 2, "connectorId": 1}}
    assert events[3][4] == "Connector.AvailabilityState=Faulted"
    assert events[4][4] == "RCD tripped"

    connectors = query(
        database_url,
        "SELECT connector_no, status, error_code FROM connector WHERE charger_id = %s "
        "ORDER BY connector_no",
        (charger_id,),
    )
    assert connectors == [(1, "Occupied", "NoError"), (2, "Faulted", "GroundFailure")]
    meters = query(
        database_url,
        "SELECT connector_no, transaction_id, measurand, phase, unit, value FROM meter_value "
        "WHERE charger_id = %s ORDER BY id",
        (charger_id,),
    )
    assert meters == [
        (1, None, "Energy.Active.Import.Register", None, "kWh", 12.5),
        (1, None, "Power.Active.Import", "L1-N", "W", 7200.0),  # the multiplier applied
    ]
    jobs = query(
        database_url, "SELECT status FROM firmware_job WHERE charger_id = %s", (charger_id,)
    )
    assert jobs == [("Downloading",)]

    frames = query(
        database_url,
        # By time: log rows reach the table in batches, not always in order of id.
        "SELECT direction, message_type, action FROM ocpp_message WHERE charger_id = %s "
        "ORDER BY at, id",
        (charger_id,),
    )
    calls = [action for direction, kind, action in frames if direction == "in" and kind == 2]
    assert calls == [
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "StatusNotification",
        "StatusNotification",
        "MeterValues",
        "NotifyEvent",
        "NotifyEvent",
        "FirmwareStatusNotification",
    ]
    results = [action for direction, kind, action in frames if direction == "out" and kind == 3]
    assert results == calls


def test_transaction_events_open_update_and_close_one_session_and_resends_change_nothing(
    database_url, demo
):
    charger_id = demo["DEMO-CP-0003"]
    started = tx_event(
        "Started",
        "tx-201-a",
        T0,
        0,
        "Authorized",
        info={"charging_state": "EVConnected"},
        id_token=token("DEMO-TAG-0001"),
        evse={"id": 1, "connector_id": 1},
        meter_value=[
            {"timestamp": T0, "sampled_value": [energy(1000, context="Transaction.Begin")]}
        ],
    )
    updated = tx_event(
        "Updated",
        "tx-201-a",
        T1,
        1,
        "MeterValuePeriodic",
        info={"charging_state": "Charging"},
        meter_value=[
            {
                "timestamp": T1,
                "sampled_value": [
                    energy(1200, context="Sample.Periodic"),
                    {
                        "value": 7000,
                        "measurand": "Power.Active.Import",
                        "context": "Sample.Periodic",
                        "unit_of_measure": {"unit": "W"},
                    },
                ],
            }
        ],
    )
    ended = tx_event(
        "Ended",
        "tx-201-a",
        T2,
        2,
        "EVCommunicationLost",
        info={"stopped_reason": "EVDisconnected"},
        id_token=token("DEMO-TAG-0001"),
        meter_value=[
            {
                "timestamp": T2,
                "sampled_value": [
                    energy(1.4, "kWh", context="Sample.Periodic", phase="L1"),
                    energy(1.5, "kWh", context="Transaction.End"),
                ],
            }
        ],
    )
    sessions_sql = (
        "SELECT id, transaction_ref, connector_no, id_tag, started_at, meter_start, stopped_at, "
        "meter_stop, energy_wh, stop_reason FROM charging_session WHERE charger_id = %s"
    )
    meters_sql = (
        "SELECT transaction_id, connector_no, at, measurand, phase, context, unit, value "
        "FROM meter_value WHERE charger_id = %s ORDER BY id"
    )

    async def scenario(url: str) -> dict[str, Any]:
        cp, ws, task = await connect(url, "DEMO-CP-0003")
        seen: dict[str, Any] = {"started": await cp.call(started)}
        seen["started_again"] = await cp.call(started)
        seen["after_start"] = await asyncio.to_thread(
            query, database_url, sessions_sql, (charger_id,)
        )
        await cp.call(updated)
        await cp.call(updated)
        seen["ended"] = await cp.call(ended)
        seen["after_end"] = await asyncio.to_thread(
            query, database_url, sessions_sql, (charger_id,)
        )
        seen["meters_after_end"] = await asyncio.to_thread(
            query, database_url, meters_sql, (charger_id,)
        )
        seen["ended_again"] = await cp.call(ended)
        await hang_up(ws, task)
        return seen

    with running_bridge(database_url) as bridge:
        seen = asyncio.run(scenario(bridge.url))

    assert seen["started"].id_token_info == {"status": "Accepted"}
    assert seen["started_again"].id_token_info == {"status": "Accepted"}
    assert seen["ended"].id_token_info == {"status": "Accepted"}
    assert seen["ended_again"].id_token_info == {"status": "Accepted"}
    assert len(seen["after_start"]) == 1  # the resent Started found its session
    session_id = seen["after_start"][0][0]
    sessions = query(database_url, sessions_sql, (charger_id,))
    assert sessions == seen["after_end"]  # the resent Ended changed nothing
    _, ref, connector_no, id_tag, started_at, meter_start, stopped_at, *rest = sessions[0]
    assert (ref, connector_no, id_tag, meter_start) == ("tx-201-a", 1, "DEMO-TAG-0001", 1000)
    assert started_at.isoformat() == "2026-11-28T10:00:00+00:00"
    assert stopped_at.isoformat() == "2026-11-28T10:30:00+00:00"
    # The Transaction.End register, not the per-phase reading; kWh made Wh.
    assert rest == [1500, 500, "EVDisconnected"]

    meters = query(database_url, meters_sql, (charger_id,))
    assert meters == seen["meters_after_end"]  # the resent Ended stored no samples
    # Stored once each, though the Started and the Updated were sent twice.
    assert [(m[0], m[3], m[4], m[5], m[6], m[7]) for m in meters] == [
        (session_id, "Energy.Active.Import.Register", None, "Transaction.Begin", "Wh", 1000.0),
        (session_id, "Energy.Active.Import.Register", None, "Sample.Periodic", "Wh", 1200.0),
        (session_id, "Power.Active.Import", None, "Sample.Periodic", "W", 7000.0),
        (session_id, "Energy.Active.Import.Register", "L1", "Sample.Periodic", "kWh", 1.4),
        (session_id, "Energy.Active.Import.Register", None, "Transaction.End", "kWh", 1.5),
    ]
    # The session's EVSE, though only the Started named it.
    assert [m[1] for m in meters] == [1, 1, 1, 1, 1]


def test_tokens_are_checked_and_a_session_learns_its_token_and_evse_later(database_url, demo):
    charger_id = demo["DEMO-CP-0004"]

    async def scenario(url: str) -> dict[str, Any]:
        cp, ws, task = await connect(url, "DEMO-CP-0004")
        answers: dict[str, Any] = {}
        # Plugged in first, authorized later.
        answers["plugged"] = await cp.call(
            tx_event("Started", "tx-plug", T0, 0, "CablePluggedIn", evse={"id": 1})
        )
        answers["authorized"] = await cp.call(
            tx_event("Updated", "tx-plug", T1, 1, "Authorized", id_token=token("DEMO-TAG-0002"))
        )
        # Authorized first, plugged in later.
        answers["card_first"] = await cp.call(
            tx_event("Started", "tx-card", T0, 2, "Authorized", id_token=token("DEMO-TAG-0003"))
        )
        await cp.call(tx_event("Updated", "tx-card", T1, 3, "CablePluggedIn", evse={"id": 2}))
        answers["blocked"] = await cp.call(
            tx_event(
                "Started",
                "tx-blocked",
                "2026-11-28T10:05:00Z",
                4,
                "Authorized",
                id_token=token("DEMO-TAG-BLOCKED"),
            )
        )
        answers["unknown"] = await cp.call(
            tx_event("Started", "tx-unknown", T1, 5, "Authorized", id_token=token("NOBODY"))
        )
        answers["free"] = await cp.call(
            tx_event(
                "Started",
                "tx-free",
                T2,
                6,
                "CablePluggedIn",
                evse={"id": 2},
                id_token=token("", "NoAuthorization"),
            )
        )
        # Ended without readings or a reason; and an Ended whose Started never arrived.
        await cp.call(tx_event("Ended", "tx-plug", T2, 7, "EVDeparted"))
        await cp.call(
            tx_event("Ended", "tx-lost", T2, 8, "StopAuthorized", info={"stopped_reason": "Remote"})
        )
        answers["authorize"] = await cp.call(call.Authorize(id_token=token("DEMO-TAG-0001")))
        answers["authorize_blocked"] = await cp.call(
            call.Authorize(id_token=token("DEMO-TAG-BLOCKED"))
        )
        answers["authorize_unknown"] = await cp.call(call.Authorize(id_token=token("NOBODY")))
        await hang_up(ws, task)
        return answers

    with running_bridge(database_url) as bridge:
        answers = asyncio.run(scenario(bridge.url))

    statuses = {
        name: answer.id_token_info["status"] if answer.id_token_info else None
        for name, answer in answers.items()
    }
    assert statuses == {
        "plugged": None,  # no token in the request, none in the answer
        "authorized": "Accepted",
        "card_first": "Accepted",
        "blocked": "Blocked",
        "unknown": "Unknown",
        "free": "Accepted",
        "authorize": "Accepted",
        "authorize_blocked": "Blocked",
        "authorize_unknown": "Unknown",
    }
    sessions = query(
        database_url,
        "SELECT transaction_ref, connector_no, id_tag, started_at = stopped_at, meter_stop, "
        "energy_wh, stop_reason FROM charging_session WHERE charger_id = %s ORDER BY id",
        (charger_id,),
    )
    assert sessions == [
        ("tx-plug", 1, "DEMO-TAG-0002", False, None, None, "Local"),
        ("tx-card", 2, "DEMO-TAG-0003", None, None, None, None),
        ("tx-blocked", 0, "DEMO-TAG-BLOCKED", None, None, None, None),
        ("tx-unknown", 0, "NOBODY", None, None, None, None),
        ("tx-free", 2, None, None, None, None, None),
        ("tx-lost", 0, None, True, None, None, "Remote"),
    ]


COMMANDS = [
    ("Reset", {"type": "Immediate"}),
    (
        "RequestStartTransaction",
        {
            "idToken": {"idToken": "DEMO-TAG-0001", "type": "Central"},
            "remoteStartId": 7,
            "evseId": 1,
        },
    ),
    ("RequestStopTransaction", {"transactionId": "tx-201-a"}),
    ("ChangeAvailability", {"operationalStatus": "Inoperative", "evse": {"id": 1}}),
    ("UnlockConnector", {"evseId": 1, "connectorId": 1}),
    (
        "TriggerMessage",
        {"requestedMessage": "StatusNotification", "evse": {"id": 1, "connectorId": 1}},
    ),
]


async def queue_commands(
    database_url: str, charger_id: int, commands: list[tuple[str, dict[str, Any]]]
) -> list[int]:
    """Queue commands as the web does: pending rows, then one NOTIFY for the charger."""

    def insert() -> list[int]:
        ids = []
        for action, payload in commands:
            rows = query(
                database_url,
                "INSERT INTO charger_command (tenant_id, charger_id, action, payload, status, "
                "expires_at) SELECT tenant_id, id, %s, %s::jsonb, 'pending', "
                "now() + interval '1 hour' FROM charger WHERE id = %s RETURNING id",
                (action, json.dumps(payload), charger_id),
            )
            ids.append(rows[0][0])
        execute(database_url, "SELECT pg_notify('cass_bridge', %s)", (f"cmd:{charger_id}",))
        return ids

    return await asyncio.to_thread(insert)


def run_commands(
    database_url: str,
    ocpp_id: str,
    charger_id: int,
    commands: list[tuple[str, dict[str, Any]]],
    answers: dict[str, Any] | None = None,
) -> tuple[list[tuple[Any, ...]], list[tuple[str, dict[str, Any]]]]:
    """Connect a 2.0.1 charger, queue the commands, wait until each has ended; return the
    command rows (action, status, result, error, message_id) and what the charger received."""
    command_sql = (
        "SELECT action, status, result, error, message_id FROM charger_command "
        "WHERE charger_id = %s ORDER BY id"
    )

    async def scenario(url: str) -> tuple[list[tuple[Any, ...]], list[Any]]:
        cp, ws, task = await connect(url, ocpp_id)
        cp.answers = answers or {}
        await cp.call(call.BootNotification(charging_station=STATION, reason="PowerUp"))
        await queue_commands(database_url, charger_id, commands)
        rows = await wait_for(
            database_url,
            command_sql,
            (charger_id,),
            lambda rows: len(rows) == len(commands) and all(r[1] in FINAL_STATES for r in rows),
        )
        await hang_up(ws, task)
        return rows, cp.received

    with running_bridge(database_url) as bridge:
        return asyncio.run(scenario(bridge.url))


def test_each_command_is_sent_to_a_201_charger_and_its_answer_stored(database_url, demo):
    charger_id = demo["DEMO-CP-0005"]
    rows, received = run_commands(database_url, "DEMO-CP-0005", charger_id, COMMANDS)

    assert [(action, status, error) for action, status, _, error, _ in rows] == [
        (action, "accepted", None) for action, _ in COMMANDS
    ]
    assert [result for _, _, result, _, _ in rows] == [
        {"status": "Accepted"},
        {"status": "Accepted", "transactionId": "tx-rs-1"},
        {"status": "Accepted"},
        {"status": "Scheduled"},
        {"status": "Unlocked"},
        {"status": "Accepted"},
    ]
    # The charger got each command's payload (the library hands it over in snake_case).
    assert received == [
        ("Reset", {"type": "Immediate"}),
        (
            "RequestStartTransaction",
            {
                "id_token": {"id_token": "DEMO-TAG-0001", "type": "Central"},
                "remote_start_id": 7,
                "evse_id": 1,
            },
        ),
        ("RequestStopTransaction", {"transaction_id": "tx-201-a"}),
        ("ChangeAvailability", {"operational_status": "Inoperative", "evse": {"id": 1}}),
        ("UnlockConnector", {"evse_id": 1, "connector_id": 1}),
        (
            "TriggerMessage",
            {"requested_message": "StatusNotification", "evse": {"id": 1, "connector_id": 1}},
        ),
    ]
    # Each CALL went out under the command's message id, and its answer came back under it.
    frames = query(
        database_url,
        "SELECT direction, message_type, message_id, action FROM ocpp_message "
        "WHERE charger_id = %s AND message_id = ANY(%s) ORDER BY at, id",
        (charger_id, [row[4] for row in rows]),
    )
    assert [(d, t, a) for d, t, _, a in frames if t == 2] == [
        ("out", 2, action) for action, _ in COMMANDS
    ]
    assert sorted(m for _, t, m, _ in frames if t == 3) == sorted(row[4] for row in rows)


def test_refused_commands_are_rejected_and_unknown_ones_fail(database_url, demo):
    charger_id = demo["DEMO-CP-0006"]
    refusal = {"reason_code": "NoTx", "additional_info": "no such transaction"}
    answers = {
        "Reset": call_result.Reset(status="Rejected"),
        "RequestStopTransaction": call_result.RequestStopTransaction(
            status="Rejected", status_info=refusal
        ),
        "UnlockConnector": call_result.UnlockConnector(status="UnlockFailed"),
        "TriggerMessage": call_result.TriggerMessage(status="NotImplemented"),
    }
    commands = [
        ("Reset", {"type": "OnIdle"}),
        ("RequestStopTransaction", {"transactionId": "tx-none"}),
        ("UnlockConnector", {"evseId": 1, "connectorId": 1}),
        ("TriggerMessage", {"requestedMessage": "MeterValues"}),
        ("RemoteStartTransaction", {"idTag": "DEMO-TAG-0001"}),  # OCPP 1.6 only
    ]
    rows, received = run_commands(database_url, "DEMO-CP-0006", charger_id, commands, answers)

    assert [(action, status, result) for action, status, result, _, _ in rows] == [
        ("Reset", "rejected", {"status": "Rejected"}),
        (
            "RequestStopTransaction",
            "rejected",
            {
                "status": "Rejected",
                "statusInfo": {"reasonCode": "NoTx", "additionalInfo": "no such transaction"},
            },
        ),
        ("UnlockConnector", "rejected", {"status": "UnlockFailed"}),
        ("TriggerMessage", "rejected", {"status": "NotImplemented"}),
        ("RemoteStartTransaction", "failed", None),
    ]
    assert "not a valid RemoteStartTransaction" in rows[4][3]
    assert [action for action, _ in received] == [action for action, _ in commands[:4]]


def test_bad_calls_get_the_201_call_errors_and_pending_chargers_are_gated(database_url, demo):
    pending_id = demo["DEMO-CP-0008"]
    execute(
        database_url, "UPDATE charger SET registration = 'pending' WHERE id = %s", (pending_id,)
    )
    status = {"timestamp": T0, "connectorStatus": "Available", "evseId": 1, "connectorId": 1}

    async def scenario(url: str) -> dict[str, Any]:
        cp, ws, task = await connect(url, "DEMO-CP-0007")
        seen = {
            "bad_enum": await raw_call(
                cp, "StatusNotification", {**status, "connectorStatus": "Broken"}
            ),
            "bad_type": await raw_call(cp, "StatusNotification", {**status, "evseId": "one"}),
            "extra_field": await raw_call(cp, "StatusNotification", {**status, "colour": "red"}),
            "missing_field": await raw_call(
                cp, "StatusNotification", {k: v for k, v in status.items() if k != "evseId"}
            ),
            "unknown_action": await raw_call(cp, "MakeCoffee", {"strength": 3}),
            "unhandled_action": await raw_call(cp, "LogStatusNotification", {"status": "Idle"}),
            "still_fine": await raw_call(cp, "StatusNotification", status),
        }
        await hang_up(ws, task)

        cp, ws, task = await connect(url, "DEMO-CP-0008")
        seen["pending_status"] = await raw_call(cp, "StatusNotification", status)
        seen["pending_boot"] = await cp.call(
            call.BootNotification(charging_station=STATION, reason="PowerUp")
        )
        seen["pending_heartbeat"] = await cp.call(call.Heartbeat())
        await hang_up(ws, task)
        return seen

    with running_bridge(database_url) as bridge:
        seen = asyncio.run(scenario(bridge.url))

    codes = {name: getattr(answer, "code", "ok") for name, answer in seen.items()}
    assert codes == {
        "bad_enum": "FormatViolation",  # 1.6 would spell it FormationViolation
        "bad_type": "TypeConstraintViolation",
        "extra_field": "FormatViolation",
        "missing_field": "ProtocolError",
        "unknown_action": "NotImplemented",
        "unhandled_action": "NotSupported",
        "still_fine": "ok",
        "pending_status": "SecurityError",
        "pending_boot": "ok",
        "pending_heartbeat": "ok",
    }
    assert seen["pending_boot"].status == "Pending"
    assert seen["pending_boot"].interval == 30
    errors = query(
        database_url,
        "SELECT action, error_code FROM ocpp_message WHERE charger_id = %s "
        "AND direction = 'out' AND message_type = 4 ORDER BY at, id",
        (demo["DEMO-CP-0007"],),
    )
    assert errors == [
        ("StatusNotification", "FormatViolation"),
        ("StatusNotification", "TypeConstraintViolation"),
        ("StatusNotification", "FormatViolation"),
        ("StatusNotification", "ProtocolError"),
        ("MakeCoffee", "NotImplemented"),
        ("LogStatusNotification", "NotSupported"),
    ]
    # Only the valid StatusNotification was stored.
    assert query(
        database_url,
        "SELECT connector_no, status FROM charger_event WHERE charger_id = %s AND kind = 'status'",
        (demo["DEMO-CP-0007"],),
    ) == [(1, "Available")]
    assert query(
        database_url,
        "SELECT kind FROM charger_event WHERE charger_id = %s AND kind IN ('boot', 'status')",
        (pending_id,),
    ) == [("boot",)]
