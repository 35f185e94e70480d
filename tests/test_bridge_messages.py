"""OCPP 1.6 messages from real simulated chargers to a running bridge, persisted in Postgres."""

from __future__ import annotations

import asyncio

import psycopg
from ocpp.v16 import call

from tests.ocpp_support import Charger16, open_socket, query, running_bridge, serving


def test_boot_heartbeat_status_and_meter_values_are_stored(database_url, demo):
    async def scenario(url: str) -> dict:
        ws = await open_socket(url, "DEMO-CP-0001")
        cp = Charger16("DEMO-CP-0001", ws)
        task = await serving(cp)
        boot = await cp.call(
            call.BootNotification(
                charge_point_vendor="ABB",
                charge_point_model="Terra AC W22",
                charge_point_serial_number="SER-1",
                firmware_version="2.0.0",
            )
        )
        beat = await cp.call(call.Heartbeat())
        await cp.call(call.StatusNotification(1, "NoError", "Available"))
        await cp.call(call.StatusNotification(1, "GroundFailure", "Faulted", info="RCD"))
        await cp.call(call.StatusNotification(1, "GroundFailure", "Faulted", info="RCD"))
        await cp.call(
            call.MeterValues(
                1,
                [
                    {
                        "timestamp": "2026-11-28T10:00:00Z",
                        "sampledValue": [
                            {
                                "value": "1234.5",
                                "measurand": "Energy.Active.Import.Register",
                                "unit": "Wh",
                            },
                            {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                        ],
                    }
                ],
            )
        )
        task.cancel()
        await ws.close()
        return {"boot": boot, "beat": beat}

    with running_bridge(database_url) as bridge:
        result = asyncio.run(scenario(bridge.url))
    assert result["boot"].status == "Accepted"
    assert result["boot"].interval == 60
    charger = query(
        database_url,
        "SELECT model, serial, firmware, online, last_seen IS NOT NULL FROM charger WHERE id = %s",
        (demo["DEMO-CP-0001"],),
    )[0]
    assert charger == ("Terra AC W22", "SER-1", "2.0.0", False, True)
    events = query(
        database_url,
        "SELECT kind, status, error_code FROM charger_event WHERE charger_id = %s ORDER BY id",
        (demo["DEMO-CP-0001"],),
    )
    kinds = [e[0] for e in events]
    assert kinds == ["online", "boot", "status", "status", "offline"], events
    assert events[3][1:] == ("Faulted", "GroundFailure")
    meters = query(database_url, "SELECT measurand, value, unit FROM meter_value ORDER BY id")
    assert meters == [
        ("Energy.Active.Import.Register", 1234.5, "Wh"),
        ("Power.Active.Import", 7.2, "kW"),
    ]
    frames = query(database_url, "SELECT direction, action FROM ocpp_message ORDER BY id")
    assert len(frames) == 12


def test_transactions_authorize_and_resent_messages(database_url, demo):
    started = "2026-11-28T08:00:00Z"

    async def scenario(url: str) -> dict:
        ws = await open_socket(url, "DEMO-CP-0002")
        cp = Charger16("DEMO-CP-0002", ws)
        task = await serving(cp)
        out = {
            "ok": await cp.call(call.Authorize("DEMO-TAG-0001")),
            "blocked": await cp.call(call.Authorize("DEMO-TAG-BLOCKED")),
            "unknown": await cp.call(call.Authorize("ACME-TAG-0001")),  # another tenant's card
        }
        out["start"] = await cp.call(call.StartTransaction(1, "DEMO-TAG-0001", 5000, started))
        out["resent"] = await cp.call(call.StartTransaction(1, "DEMO-TAG-0001", 5000, started))
        out["other"] = await cp.call(
            call.StartTransaction(2, "DEMO-TAG-0002", 100, "2026-11-28T08:05:00Z")
        )
        tx = out["start"].transaction_id
        sample = {"value": "5500", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
        await cp.call(
            call.MeterValues(
                1, [{"timestamp": "2026-11-28T08:30:00Z", "sampledValue": [sample]}], tx
            )
        )
        stop = call.StopTransaction(
            7500,
            "2026-11-28T09:00:00Z",
            tx,
            reason="EVDisconnected",
            id_tag="DEMO-TAG-0001",
            transaction_data=[
                {
                    "timestamp": "2026-11-28T09:00:00Z",
                    "sampledValue": [{"value": "7500", "context": "Transaction.End"}],
                }
            ],
        )
        out["stop"] = await cp.call(stop)
        out["stop_again"] = await cp.call(stop)
        task.cancel()
        await ws.close()
        return out

    with running_bridge(database_url) as bridge:
        out = asyncio.run(scenario(bridge.url))
    assert out["ok"].id_tag_info["status"] == "Accepted"
    assert out["blocked"].id_tag_info["status"] == "Blocked"
    assert out["unknown"].id_tag_info["status"] == "Invalid"
    tx = out["start"].transaction_id
    assert out["resent"].transaction_id == tx  # idempotent
    # From the database sequence (a resent start may use up a number: unique, not gapless).
    other = out["other"].transaction_id
    assert other > tx
    assert out["stop"].id_tag_info["status"] == "Accepted"
    assert out["stop_again"].id_tag_info["status"] == "Accepted"
    sessions = query(
        database_url,
        "SELECT id, connector_no, id_tag, meter_start, meter_stop, energy_wh, stop_reason "
        "FROM charging_session ORDER BY id",
    )
    assert sessions == [
        (tx, 1, "DEMO-TAG-0001", 5000, 7500, 2500, "EVDisconnected"),
        (other, 2, "DEMO-TAG-0002", 100, None, None, None),
    ]
    # The meter value in the transaction and the stop's transaction data, once each.
    values = query(
        database_url,
        "SELECT value, context FROM meter_value WHERE transaction_id = %s ORDER BY at",
        (tx,),
    )
    assert values == [(5500.0, None), (7500.0, "Transaction.End")]


def test_data_transfer_firmware_diagnostics_and_security_events(database_url, demo):
    charger = demo["DEMO-CP-0003"]
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO data_transfer_rule (tenant_id, vendor_id, message_id, status, "
            "response_data) VALUES (%s, 'com.acme', 'ping', 'Accepted', 'pong'), "
            "(%s, 'com.acme', NULL, 'Rejected', NULL)",
            (demo["demo"], demo["demo"]),
        )
        conn.execute(
            "INSERT INTO firmware_job (tenant_id, charger_id, location, retrieve_at) "
            "VALUES (%s, %s, 'https://fw.example/2.0.bin', now())",
            (demo["demo"], charger),
        )
        conn.execute(
            "INSERT INTO diagnostics_request (tenant_id, charger_id, location) "
            "VALUES (%s, %s, 'ftp://diag.example/')",
            (demo["demo"], charger),
        )

    async def scenario(url: str) -> list:
        ws = await open_socket(url, "DEMO-CP-0003")
        cp = Charger16("DEMO-CP-0003", ws)
        task = await serving(cp)
        answers = [
            await cp.call(call.DataTransfer("com.acme", "ping", "hello")),
            await cp.call(call.DataTransfer("com.acme", "other")),
            await cp.call(call.DataTransfer("org.unknown", "x")),
        ]
        for status in ("Downloading", "Downloaded", "Installing", "Installed"):
            await cp.call(call.FirmwareStatusNotification(status))
        await cp.call(call.DiagnosticsStatusNotification("Uploaded"))
        await cp.call(
            call.SecurityEventNotification(
                "FirmwareUpdated", "2026-11-28T10:00:00Z", tech_info="v2.0"
            )
        )
        task.cancel()
        await ws.close()
        return answers

    with running_bridge(database_url) as bridge:
        answers = asyncio.run(scenario(bridge.url))
    assert [(a.status, a.data) for a in answers] == [
        ("Accepted", "pong"),
        ("Rejected", None),
        ("UnknownVendorId", None),
    ]
    assert query(database_url, "SELECT status FROM firmware_job") == [("Installed",)]
    assert query(database_url, "SELECT status FROM diagnostics_request") == [("Uploaded",)]
    events = query(
        database_url,
        "SELECT kind, status, info FROM charger_event WHERE charger_id = %s AND kind <> 'online' "
        "AND kind <> 'offline' ORDER BY id",
        (charger,),
    )
    assert events[:3] == [
        ("data_transfer", "com.acme", "ping"),
        ("data_transfer", "com.acme", "other"),
        ("data_transfer", "org.unknown", "x"),
    ]
    assert [e[1] for e in events if e[0] == "firmware"] == [
        "Downloading",
        "Downloaded",
        "Installing",
        "Installed",
    ]
    assert ("diagnostics", "Uploaded", None) in events
    assert ("security", "FirmwareUpdated", "v2.0") in events


def test_every_frame_in_and_out_is_logged_with_its_action(database_url, demo):
    async def scenario(url: str) -> None:
        ws = await open_socket(url, "DEMO-CP-0004")
        cp = Charger16("DEMO-CP-0004", ws)
        task = await serving(cp)
        await cp.call(call.Heartbeat())
        task.cancel()
        await ws.close()

    with running_bridge(database_url) as bridge:
        asyncio.run(scenario(bridge.url))
    rows = query(
        database_url,
        "SELECT tenant_id, charger_id, direction, message_type, action, payload ? 'currentTime' "
        "FROM ocpp_message ORDER BY id",
    )
    charger = demo["DEMO-CP-0004"]
    assert rows == [
        (demo["demo"], charger, "in", 2, "Heartbeat", False),
        (demo["demo"], charger, "out", 3, "Heartbeat", True),
    ]
