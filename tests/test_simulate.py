"""The charger simulator (issue 4, point 10): a fleet against a real bridge, commands answered
and acted on, reconnection after the bridge goes away, and `cass up --demo-chargers`."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from click.testing import CliRunner

from cass.cli import cli
from cass.launcher import child_commands
from ocpp_bridge.simulate import SimulationConfig, Simulator, parse_args
from tests.conftest import CHARGER_KEY
from tests.net import free_port
from tests.ocpp_support import execute, query, running_bridge

# Everything happens fast: sessions start within a second and meter every 0.3 s.
FAST = {
    "key": CHARGER_KEY,
    "heartbeat": 1.0,
    "meter_interval": 0.3,
    "fault_rate": 0.0,
    "session_gap": 0.3,
    "session_length": 60.0,
    "step_delay": 0.2,
    "connect_rate": 50.0,
    "max_backoff": 1.0,
    "seed": 7,
}


@contextmanager
def running_simulator(**settings: Any) -> Iterator[Simulator]:
    """Run a Simulator on its own event loop in a thread; stop it (closing sockets) on exit."""
    simulator = Simulator(SimulationConfig(**{**FAST, **settings}))
    loop = asyncio.new_event_loop()
    stop: asyncio.Event | None = None
    started = threading.Event()

    async def main() -> None:
        nonlocal stop
        stop = asyncio.Event()
        started.set()
        await simulator.run(stop)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield simulator
    finally:
        loop.call_soon_threadsafe(stop.set)  # type: ignore[union-attr]
        thread.join(20)
        assert not thread.is_alive(), "the simulator did not stop"
        loop.close()


def wait_for(check: Callable[[], Any], timeout: float = 15, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}")


def queue_command(url: str, charger_id: int, action: str, payload: dict[str, Any]) -> int:
    """Queue a command as the web does: a charger_command row and a cass_bridge notification."""
    rows = query(
        url,
        "INSERT INTO charger_command (tenant_id, charger_id, action, payload, expires_at) "
        "SELECT tenant_id, id, %s, %s::jsonb, now() + interval '5 minutes' FROM charger "
        "WHERE id = %s RETURNING id",
        (action, json.dumps(payload), charger_id),
    )
    execute(url, "SELECT pg_notify('cass_bridge', %s)", (f"cmd:{charger_id}",))
    return rows[0][0]


def command_outcome(url: str, command_id: int) -> tuple[str, Any] | None:
    row = query(url, "SELECT status, result FROM charger_command WHERE id = %s", (command_id,))[0]
    return row if row[0] not in ("pending", "sent") else None


def test_simulated_chargers_boot_report_charge_and_obey_commands(database_url, demo):
    ids = [demo[f"DEMO-CP-{n:04d}"] for n in (1, 2, 3)]
    cp1 = ids[0]
    with (
        running_bridge(database_url) as bridge,
        running_simulator(url=bridge.url, chargers=3) as sim,
    ):
        wait_for(
            lambda: query(database_url, "SELECT count(*) FROM charger WHERE online")[0][0] == 3,
            what="three chargers online",
        )
        # Both connectors of every charger reported, and sessions meter a rising register.
        wait_for(
            lambda: (
                query(
                    database_url,
                    "SELECT count(DISTINCT (charger_id, connector_no)) FROM charger_event "
                    "WHERE kind = 'status'",
                )[0][0]
                == 6
            ),
            what="status of all six connectors",
        )
        session_id = wait_for(
            lambda: query(
                database_url,
                "SELECT transaction_id FROM meter_value WHERE charger_id = %s "
                "AND measurand = 'Energy.Active.Import.Register' GROUP BY transaction_id "
                "HAVING count(*) >= 3 LIMIT 1",
                (cp1,),
            ),
            what="three meter values in one session of DEMO-CP-0001",
        )[0][0]
        energy = [
            row[0]
            for row in query(
                database_url,
                "SELECT value FROM meter_value WHERE transaction_id = %s "
                "AND measurand = 'Energy.Active.Import.Register' ORDER BY at, id",
                (session_id,),
            )
        ]
        assert energy == sorted(energy) and energy[-1] > energy[0], energy
        assert query(
            database_url,
            "SELECT id_tag, stopped_at FROM charging_session WHERE id = %s",
            (session_id,),
        )[0] in (("DEMO-TAG-0001", None), ("DEMO-TAG-0002", None), ("DEMO-TAG-0003", None))

        # Queued commands are answered, and the charger does what they say.
        config = queue_command(
            database_url, cp1, "GetConfiguration", {"key": ["HeartbeatInterval"]}
        )
        status, result = wait_for(lambda: command_outcome(database_url, config), what="config")
        assert status == "accepted"
        assert result["configurationKey"] == [
            {"key": "HeartbeatInterval", "readonly": False, "value": "1"}
        ]

        stop = queue_command(
            database_url, cp1, "RemoteStopTransaction", {"transactionId": session_id}
        )
        assert wait_for(lambda: command_outcome(database_url, stop))[0] == "accepted"
        wait_for(
            lambda: (
                query(
                    database_url,
                    "SELECT stop_reason FROM charging_session "
                    "WHERE id = %s AND stopped_at IS NOT NULL",
                    (session_id,),
                )
                == [("Remote",)]
            ),
            what="the session stopped remotely",
        )

        trigger = queue_command(
            database_url, cp1, "TriggerMessage", {"requestedMessage": "Heartbeat"}
        )
        assert wait_for(lambda: command_outcome(database_url, trigger))[0] == "accepted"

        firmware = queue_command(
            database_url,
            cp1,
            "UpdateFirmware",
            {
                "location": "https://fw.example/terra-2.1.0.bin",
                "retrieveDate": "2020-01-01T00:00:00Z",
            },
        )
        assert wait_for(lambda: command_outcome(database_url, firmware))[0] == "accepted"
        # Downloading … Installed, then a reboot and a boot on the new version.
        wait_for(
            lambda: (
                query(database_url, "SELECT firmware FROM charger WHERE id = %s", (cp1,))
                == [("2.1.0",)]
            ),
            what="a boot on the new firmware",
        )
        steps = [
            row[0]
            for row in query(
                database_url,
                "SELECT status FROM charger_event WHERE charger_id = %s AND kind = 'firmware' "
                "ORDER BY id",
                (cp1,),
            )
        ]
        assert steps == ["Downloading", "Downloaded", "Installing", "Installed"], steps
        wait_for(lambda: sim.stats.reboots == 1 and sim.stats.online == 3, what="back online")

        diagnostics = queue_command(
            database_url, cp1, "GetDiagnostics", {"location": "ftp://logs.example/"}
        )
        status, result = wait_for(lambda: command_outcome(database_url, diagnostics))
        assert status == "accepted" and result["fileName"].startswith("diagnostics-DEMO-CP-0001-")
        wait_for(
            lambda: (
                query(
                    database_url,
                    "SELECT status FROM charger_event "
                    "WHERE charger_id = %s AND kind = 'diagnostics' ORDER BY id DESC LIMIT 1",
                    (cp1,),
                )
                == [("Uploaded",)]
            ),
            what="diagnostics uploaded",
        )
        stats = sim.stats
    assert stats.auth_failures == 0 and stats.call_errors == 0, stats
    assert stats.commands == 5 and len(stats.booted) == 3 and stats.sessions >= 3
    # Stopping closed every socket cleanly: the bridge set them all offline.
    wait_for(
        lambda: query(database_url, "SELECT count(*) FROM charger WHERE online")[0][0] == 0,
        what="all offline",
    )


def test_faults_are_reported_and_recovered(database_url, demo):
    with (
        running_bridge(database_url) as bridge,
        running_simulator(
            url=bridge.url, chargers=2, fault_rate=60.0, fault_duration=0.5, session_gap=3600
        ) as sim,
    ):
        wait_for(lambda: sim.stats.faults >= 2, what="two faults")
        faulted = wait_for(
            lambda: query(
                database_url,
                "SELECT charger_id, connector_no, error_code FROM charger_event "
                "WHERE kind = 'status' AND status = 'Faulted' LIMIT 1",
            ),
            what="a Faulted status",
        )[0]
        assert faulted[2] != "NoError"
        wait_for(
            lambda: query(
                database_url,
                "SELECT 1 FROM charger_event WHERE charger_id = %s AND connector_no = %s "
                "AND kind = 'status' AND status = 'Available' AND error_code = 'NoError' "
                "AND id > (SELECT min(id) FROM charger_event WHERE status = 'Faulted' "
                "AND charger_id = %s AND connector_no = %s)",
                (faulted[0], faulted[1], faulted[0], faulted[1]),
            ),
            what="recovery to Available",
        )


def test_chargers_reconnect_when_the_bridge_comes_back(database_url, demo):
    port = free_port()
    url = f"ws://127.0.0.1:{port}"
    with running_simulator(url=url, chargers=2) as sim:
        time.sleep(0.5)  # no bridge yet: connections are refused and retried
        assert sim.stats.connect_errors >= 2 and sim.stats.online == 0
        with running_bridge(database_url, port=port):
            wait_for(lambda: sim.stats.online == 2 and len(sim.stats.booted) == 2)
        wait_for(lambda: sim.stats.online == 0, what="sockets closed by the bridge's exit")
        with running_bridge(database_url, port=port):
            wait_for(lambda: sim.stats.online == 2 and sim.stats.reconnects >= 2, what="back")
            wait_for(
                lambda: query(database_url, "SELECT count(*) FROM charger WHERE online")[0][0] == 2,
                what="online again",
            )


def test_a_wrong_key_is_refused_and_counted(database_url, demo):
    with (
        running_bridge(database_url) as bridge,
        running_simulator(url=bridge.url, chargers=1, key="not-the-key-0000000") as sim,
    ):
        wait_for(lambda: sim.stats.auth_failures >= 1, what="a refusal")
        assert sim.stats.booted == set() and sim.stats.online == 0


def test_command_line_defaults_and_key_from_the_environment(monkeypatch):
    monkeypatch.setenv("CASS_DEMO_CHARGER_KEY", "demo-key-from-env")
    monkeypatch.delenv("CASS_SIMULATOR_KEY", raising=False)
    config = parse_args(["--chargers", "12"])
    assert config.key == "demo-key-from-env"
    assert [config.charge_point_id(n) for n in (1, 12)] == ["DEMO-CP-0001", "DEMO-CP-0012"]
    assert config.tags() == ("DEMO-TAG-0001", "DEMO-TAG-0002", "DEMO-TAG-0003")


def test_cass_up_starts_the_simulator_only_when_asked():
    plain = child_commands(8000, 9000)
    assert set(plain) == {"web", "bridge", "scheduler"}
    assert child_commands(8000, 9000, demo_chargers=0) == plain
    with_demo = child_commands(8000, 9000, demo_chargers=5)
    assert set(with_demo) == {"web", "bridge", "scheduler", "simulator"}
    argv = with_demo["simulator"]
    assert argv[1:3] == ["-m", "ocpp_bridge.simulate"]
    assert argv[argv.index("--chargers") + 1] == "5"
    assert argv[argv.index("--url") + 1] == "ws://127.0.0.1:9000"
    assert argv[argv.index("--prefix") + 1] == "DEMO-CP-"
    assert "--key" not in argv  # the key travels in the environment, not on `ps`


def test_cass_up_accepts_up_to_twelve_demo_chargers():
    runner = CliRunner()
    help_text = runner.invoke(cli, ["up", "--help"]).output
    assert "--demo-chargers" in help_text
    refused = runner.invoke(cli, ["up", "--demo-chargers", "13"])
    assert refused.exit_code == 2 and "13" in refused.output
