"""Online state, database outages and bridge crashes (issue 4, points 6 and 7)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest
import requests
from ocpp.v16 import call
from websockets.exceptions import ConnectionClosed

from tests.net import free_port
from tests.ocpp_support import Charger16, execute, open_socket, query, running_bridge, serving


def wait_for(check, timeout: float = 10, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(interval)


def online(database_url: str, cp_id: str) -> bool:
    return query(database_url, "SELECT online FROM charger WHERE ocpp_id = %s", (cp_id,))[0][0]


def test_a_charger_that_vanishes_without_closing_goes_offline(database_url, demo):
    """No close frame, no answers to pings: offline after ping interval + timeout + the close
    timeout."""
    listener = psycopg.connect(database_url, autocommit=True)
    listener.execute("LISTEN cass_live")

    async def vanish(url: str) -> float:
        ws = await open_socket(url, "DEMO-CP-0001")
        await asyncio.to_thread(wait_for, lambda: online(database_url, "DEMO-CP-0001"))
        ws.transport.pause_reading()  # the charger's network is gone: pings go unanswered
        started = time.monotonic()
        await asyncio.to_thread(wait_for, lambda: not online(database_url, "DEMO-CP-0001"), 15)
        elapsed = time.monotonic() - started
        ws.transport.abort()
        return elapsed

    with running_bridge(database_url) as bridge:
        elapsed = asyncio.run(vanish(bridge.url))
    # ping_interval 0.5 s + ping_timeout 0.5 s + close_timeout 1 s in the tests (30 + 30 + 10 s
    # by default, under 90 s).
    assert elapsed < 5
    kinds = query(
        database_url,
        "SELECT kind FROM charger_event WHERE charger_id = %s ORDER BY id",
        (demo["DEMO-CP-0001"],),
    )
    assert [k[0] for k in kinds] == ["online", "offline"]
    events = [json.loads(n.payload) for n in listener.notifies(timeout=1, stop_after=2)]
    listener.close()
    assert [(e["kind"], e["id"], e["online"]) for e in events] == [
        ("charger", "DEMO-CP-0001", True),
        ("charger", "DEMO-CP-0001", False),
    ]
    assert {e["t"] for e in events} == {demo["demo"]}


def test_chargers_of_a_dead_bridge_are_swept_offline(database_url, demo):
    """A charger marked online by an instance that stopped marking it goes offline."""
    execute(
        database_url,
        "UPDATE charger SET online = true, owner = 'ghost:1', "
        "last_seen = now() - interval '10 minutes' WHERE ocpp_id = 'DEMO-CP-0002'",
    )
    execute(
        database_url,
        "UPDATE charger SET online = true, owner = 'ghost:1', last_seen = now() + interval '1 hour'"
        " WHERE ocpp_id = 'DEMO-CP-0003'",
    )  # still fresh: left alone
    with running_bridge(database_url):
        wait_for(lambda: not online(database_url, "DEMO-CP-0002"), 10)
    assert online(database_url, "DEMO-CP-0003")
    assert query(
        database_url,
        "SELECT kind, data->>'reason' FROM charger_event WHERE charger_id = %s",
        (demo["DEMO-CP-0002"],),
    ) == [("offline", "no sign of life")]


def test_a_silent_but_connected_charger_is_closed_after_the_idle_timeout(database_url, demo):
    async def idle(url: str) -> int | None:
        ws = await open_socket(url, "DEMO-CP-0004")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        return closed.value.rcvd.code if closed.value.rcvd else None

    with running_bridge(database_url, idle_timeout=1.0) as bridge:
        assert asyncio.run(idle(bridge.url)) == 1000
    assert not online(database_url, "DEMO-CP-0004")


@pytest.fixture
def outage(database_url):
    """Take the database away from everyone else (and give it back)."""
    name = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    admin_url = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")

    def down() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )

    def up() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    try:
        yield down, up
    finally:
        up()


def test_database_outage_gets_internal_error_and_the_bridge_recovers_by_itself(
    database_url, demo, outage
):
    down, up = outage

    async def scenario(url: str) -> tuple[str, str]:
        ws = await open_socket(url, "DEMO-CP-0005")
        cp = Charger16("DEMO-CP-0005", ws)
        task = await serving(cp)
        await cp.call(call.Heartbeat())
        await asyncio.to_thread(down)
        with pytest.raises(Exception) as failed:
            await cp.call(call.StatusNotification(1, "NoError", "Available"), suppress=False)
        await asyncio.to_thread(up)
        # The charger retries, as chargers do, until the bridge's pool has reconnected.
        deadline = time.monotonic() + 20
        while True:
            try:
                await cp.call(call.StatusNotification(1, "NoError", "Available"), suppress=False)
                break
            except Exception:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.3)
        task.cancel()
        await ws.close()
        return failed.value.code, "recovered"

    with running_bridge(database_url, db_timeout=1.0) as bridge:
        code, state = asyncio.run(scenario(bridge.url))
    assert code == "InternalError" and state == "recovered"
    assert query(
        database_url,
        "SELECT status FROM connector WHERE charger_id = %s AND connector_no = 1",
        (demo["DEMO-CP-0005"],),
    ) == [("Available",)]


def start_bridge_process(database_url: str, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, DATABASE_URL=database_url)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ocpp_bridge", "--port", str(port), "--ping-interval", "1",
         "--ping-timeout", "1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def ready() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).ok
        except requests.ConnectionError:
            return False

    wait_for(ready, 30, 0.1)
    return proc


@pytest.mark.slow
def test_a_killed_bridge_loses_nothing_it_acknowledged(database_url, demo):
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    proc = start_bridge_process(database_url, port)
    acked: list[int] = []
    started_at = "2026-11-28T09:00:00Z"

    async def before_the_crash() -> int:
        ws = await open_socket(url, "DEMO-CP-0006")
        cp = Charger16("DEMO-CP-0006", ws)
        task = await serving(cp)
        start = await cp.call(call.StartTransaction(1, "DEMO-TAG-0001", 1000, started_at))
        try:
            for n in range(10_000):
                sample = {"value": str(1000 + n), "measurand": "Energy.Active.Import.Register"}
                values = [{"timestamp": f"2026-11-28T09:{n // 60 % 60:02d}:{n % 60:02d}Z",
                           "sampledValue": [sample]}]  # fmt: skip
                await cp.call(
                    call.MeterValues(1, values, transaction_id=start.transaction_id),
                    suppress=False,
                )
                acked.append(n)
                if n == 40:
                    proc.send_signal(signal.SIGKILL)  # mid-stream, while messages are in flight
        except (ConnectionClosed, TimeoutError):
            pass
        task.cancel()
        return start.transaction_id

    try:
        transaction_id = asyncio.run(before_the_crash())
        proc.wait(10)
        stored = query(
            database_url,
            "SELECT count(*) FROM meter_value WHERE transaction_id = %s",
            (transaction_id,),
        )[0][0]
        assert len(acked) > 40
        assert stored >= len(acked)  # every acknowledged message's effect was committed
        # The message log holds at least every acknowledged frame in.
        logged = query(
            database_url,
            "SELECT count(*) FROM ocpp_message WHERE direction = 'in' AND action = 'MeterValues'",
        )[0][0]
        assert logged >= len(acked)

        proc = start_bridge_process(database_url, port)

        async def after_the_restart() -> tuple[int, str]:
            ws = await open_socket(url, "DEMO-CP-0006")
            cp = Charger16("DEMO-CP-0006", ws)
            task = await serving(cp)
            # A StartTransaction resent after the crash finds the same transaction.
            again = await cp.call(call.StartTransaction(1, "DEMO-TAG-0001", 1000, started_at))
            stop = await cp.call(
                call.StopTransaction(2000, "2026-11-28T10:00:00Z", transaction_id, reason="Local")
            )
            task.cancel()
            await ws.close()
            return again.transaction_id, stop.id_tag_info

        again, _ = asyncio.run(after_the_restart())
        assert again == transaction_id
        assert query(
            database_url,
            "SELECT energy_wh, stop_reason FROM charging_session WHERE id = %s",
            (transaction_id,),
        ) == [(1000, "Local")]
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


def test_a_charger_swept_while_its_socket_is_held_comes_back_online(database_url, demo):
    """If this bridge stalled past offline_after, its next touch claims its sockets again."""

    async def scenario(url: str) -> None:
        ws = await open_socket(url, "DEMO-CP-0007")
        await asyncio.to_thread(wait_for, lambda: online(database_url, "DEMO-CP-0007"))
        execute(
            database_url,
            "UPDATE charger SET online = false, owner = NULL WHERE ocpp_id = 'DEMO-CP-0007'",
        )
        await asyncio.to_thread(wait_for, lambda: online(database_url, "DEMO-CP-0007"))
        await ws.close()

    with running_bridge(database_url, instance_id="me") as bridge:
        asyncio.run(scenario(bridge.url))
    kinds = query(
        database_url,
        "SELECT kind, data->>'bridge' FROM charger_event WHERE charger_id = %s ORDER BY id",
        (demo["DEMO-CP-0007"],),
    )
    assert kinds == [("online", "me"), ("online", "me"), ("offline", None)]
