"""Bad input from chargers gets the OCPP-J answer and hurts no one else (issue 4, point 8)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.exceptions import ConnectionClosed

from tests.ocpp_support import execute, open_socket, query, running_bridge


async def exchange(ws, frame: str) -> list:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


def answers(url: str, cp_id: str, frames: list[str]) -> list[list]:
    async def run() -> list[list]:
        ws = await open_socket(url, cp_id)
        try:
            return [await exchange(ws, frame) for frame in frames]
        finally:
            await ws.close()

    return asyncio.run(run())


BOOT = json.dumps(
    [2, "b-1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
)


def test_malformed_frames_get_call_errors_in_the_16_spelling(database_url, demo):
    frames = [
        "this is not json",  # -> FormationViolation, id "-1"
        json.dumps({"not": "a list"}),  # -> ProtocolError
        json.dumps([2, "short-1"]),  # missing elements -> ProtocolError
        json.dumps([7, "id-7", "Heartbeat", {}]),  # unknown message type
        json.dumps([2, "u-1", "MakeCoffee", {}]),  # not an OCPP 1.6 action -> NotImplemented
        json.dumps([2, "u-2", "ReserveNow", {}]),  # an OCPP action we do not take from chargers
        json.dumps([2, "s-1", "StatusNotification", {"connectorId": 1}]),  # required missing
        json.dumps(
            [
                2,
                "s-2",
                "StatusNotification",
                {"connectorId": "one", "errorCode": "NoError", "status": "Available"},
            ]
        ),
        json.dumps(
            [
                2,
                "s-3",
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"},
            ]
        ),
        BOOT,  # and the charger goes on working
    ]
    with running_bridge(database_url) as bridge:
        got = answers(bridge.url, "DEMO-CP-0001", frames)
    codes = [(a[0], a[1], a[2] if a[0] == 4 else "ok") for a in got]
    assert codes == [
        (4, "-1", "FormationViolation"),
        (4, "-1", "ProtocolError"),
        (4, "short-1", "ProtocolError"),
        (4, "id-7", "PropertyConstraintViolation"),
        (4, "u-1", "NotImplemented"),
        (4, "u-2", "NotSupported"),
        (4, "s-1", "ProtocolError"),
        (4, "s-2", "TypeConstraintViolation"),
        (4, "s-3", "FormationViolation"),
        (3, "b-1", "ok"),
    ]
    # Nothing was stored for the refused calls; every frame in and out was logged.
    assert query(database_url, "SELECT count(*) FROM charger_event WHERE kind = 'status'") == [(0,)]
    assert query(database_url, "SELECT count(*) FROM ocpp_message") == [(len(frames) * 2,)]
    errors = query(
        database_url,
        "SELECT error_code FROM ocpp_message WHERE direction = 'out' AND error_code IS NOT NULL",
    )
    assert len(errors) == len(frames) - 1


def test_a_lenient_model_gets_its_non_compliant_payloads_through(database_url, demo):
    execute(
        database_url,
        "INSERT INTO charger_model_setting (tenant_id, manufacturer, model, lenient_schema) "
        "VALUES (%s, 'Quirky', 'Q1', true)",
        (demo["demo"],),
    )
    boot = json.dumps(
        [2, "b-1", "BootNotification", {"chargePointVendor": "Quirky", "chargePointModel": "Q1"}]
    )
    # An extra field and a status outside the enum: both break the 1.6 schema.
    status = json.dumps(
        [2, "s-1", "StatusNotification",
         {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping", "vendorNote": "x"}]
    )  # fmt: skip
    with running_bridge(database_url) as bridge:
        strict = answers(bridge.url, "DEMO-CP-0002", [status])
        lenient = answers(bridge.url, "DEMO-CP-0002", [boot, status])
    assert strict[0][0] == 4 and strict[0][2] == "FormationViolation"
    assert [a[0] for a in lenient] == [3, 3]
    assert query(
        database_url,
        "SELECT status FROM connector WHERE charger_id = %s AND connector_no = 1",
        (demo["DEMO-CP-0002"],),
    ) == [("Sleeping",)]


def test_oversized_and_binary_frames_close_the_socket(database_url, demo):
    async def close_code(url: str, frame: str | bytes) -> int | None:
        ws = await open_socket(url, "DEMO-CP-0003", max_size=None)
        await ws.send(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        return closed.value.rcvd.code if closed.value.rcvd else None

    big = json.dumps([2, "big-1", "DataTransfer", {"vendorId": "v", "data": "x" * 70_000}])
    with running_bridge(database_url) as bridge:
        assert asyncio.run(close_code(bridge.url, big)) == 1009
        assert asyncio.run(close_code(bridge.url, b"\x00\x01binary")) == 1003
        # The bridge serves the next connection as usual, NUL characters and all.
        nul = json.dumps([2, "nul-1", "DataTransfer", {"vendorId": "v", "data": "a\u0000b"}])
        assert [frame[0] for frame in answers(bridge.url, "DEMO-CP-0003", [BOOT, nul])] == [3, 3]
    # Every frame read is in the log (the oversized one is refused unread), U+0000, which jsonb
    # cannot hold, logged as U+FFFD.
    logged = query(
        database_url,
        "SELECT message_id, payload FROM ocpp_message WHERE direction = 'in' ORDER BY id",
    )
    assert [message_id for message_id, _ in logged] == [None, "b-1", "nul-1"]
    assert logged[0][1] == "\ufffd\u0001binary"
    assert logged[2][1]["data"] == "a\ufffdb"


def test_a_flooding_charger_is_slowed_without_slowing_the_others(database_url, demo):
    heartbeat = json.dumps([2, "h", "Heartbeat", {}])

    throttled: list[int] = []

    async def flood(url: str, count: int) -> float:
        ws = await open_socket(url, "DEMO-CP-0004")
        started = time.monotonic()
        for n in range(count):
            await ws.send(heartbeat.replace('"h"', f'"h{n}"'))
        for _ in range(count):
            await asyncio.wait_for(ws.recv(), 30)
        elapsed = time.monotonic() - started
        # Counted while the socket is open: a closed one's session is gone.
        throttled.append(await asyncio.to_thread(bridge.call, _throttled(bridge.bridge)))
        await ws.close()
        return elapsed

    async def polite(url: str) -> list[float]:
        ws = await open_socket(url, "DEMO-CP-0005")
        times = []
        for n in range(10):
            started = time.monotonic()
            await exchange(ws, heartbeat.replace('"h"', f'"p{n}"'))
            times.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
        await ws.close()
        return times

    async def both(url: str) -> tuple[float, list[float]]:
        flood_task = asyncio.create_task(flood(url, 60))
        await asyncio.sleep(0.1)
        polite_times = await polite(url)
        return await flood_task, polite_times

    # Pings far apart: a throttled socket reads its queue (and so the pongs) only as it drains.
    settings = {"rate_limit": 20.0, "rate_burst": 10.0, "ping_interval": 10.0, "ping_timeout": 10.0}
    with running_bridge(database_url, **settings) as bridge:
        flood_time, polite_times = asyncio.run(both(bridge.url))
    # 60 frames at 20/s after a burst of 10 take about 2.5 s: the flood waited its turn...
    assert flood_time > 2.0
    assert throttled[0] > 0
    # ...while the other charger's heartbeats were answered at once.
    assert sorted(polite_times)[len(polite_times) // 2] < 0.5


async def _throttled(bridge) -> int:
    return sum(s.limiter.throttled for s in bridge.sessions.values())
