"""OCPP 1.6 messages from real simulated chargers to a running bridge, persisted in Postgres."""

from __future__ import annotations

import asyncio

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
