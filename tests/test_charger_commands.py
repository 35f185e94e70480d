"""Commands to chargers: queued by the service, routed to the bridge that holds the charger,
answered by simulated OCPP 1.6 chargers, outcomes stored; bad commands refused up front."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ocpp.charge_point import camel_to_snake_case
from ocpp.exceptions import InternalError
from ocpp.v16 import call_result
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import NotFound

from cass.extensions import db
from cass.models import Charger, ChargerCommand, User
from cass.services import charger_commands
from cass.services.charger_commands import CommandError
from cass.tenancy import scoped, system_context, tenant_context
from ocpp_bridge.vocab import COMMANDS_16
from tests.ocpp_support import Charger16, execute, open_socket, query, running_bridge

FINAL = ("accepted", "rejected", "failed", "timed_out", "expired")
# Polling so rare that a command arriving within seconds must have been routed by NOTIFY.
NO_POLL = {"command_poll_interval": 60.0}

# One command of each kind an OCPP 1.6 charger may be sent, with a realistic payload.
PAYLOADS_16: dict[str, dict[str, Any]] = {
    "Reset": {"type": "Soft"},
    "UnlockConnector": {"connectorId": 1},
    "ChangeAvailability": {"connectorId": 2, "type": "Inoperative"},
    "RemoteStartTransaction": {
        "connectorId": 1,
        "idTag": "DRIVER-0001",
        "chargingProfile": {
            "chargingProfileId": 7,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.5}],
            },
        },
    },
    "RemoteStopTransaction": {"transactionId": 4242},
    "GetConfiguration": {"key": ["HeartbeatInterval"]},
    "ChangeConfiguration": {"key": "HeartbeatInterval", "value": "120"},
    "ClearCache": {},
    "TriggerMessage": {"requestedMessage": "StatusNotification", "connectorId": 1},
    "UpdateFirmware": {
        "location": "https://files.example.com/fw/terra-2.1.bin",
        "retrieveDate": "2026-12-01T02:00:00Z",
        "retries": 3,
        "retryInterval": 60,
    },
    "GetDiagnostics": {
        "location": "ftp://upload.example.com/diag/",
        "startTime": "2026-11-27T00:00:00Z",
        "stopTime": "2026-11-28T00:00:00Z",
    },
    "DataTransfer": {"vendorId": "com.example", "messageId": "ping", "data": "hello"},
}


class Recorder(Charger16):
    """A simulated charger that handles each frame in its own task, records when every CALL
    arrived and was answered, and can answer late, refuse (via `answers`) or fail."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[str, float]] = []
        self.answered: list[tuple[str, float]] = []
        self.delays: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # Not one message at a time, as the library does: a second CALL sent while the first
        # is being answered must show up here, so the test can tell.
        while True:
            message = await self._connection.recv()
            frame = json.loads(message)
            if frame[0] == 2:
                self.arrivals.append((frame[2], time.monotonic()))
            task = asyncio.create_task(self.route_message(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _answer(self, action: str, payload: dict[str, Any], default: Any) -> Any:
        self.received.append((action, payload))
        answer = self.answers.get(action, default)
        if isinstance(answer, Exception):
            raise answer
        return self._later(action, answer)

    async def _later(self, action: str, answer: Any) -> Any:
        await asyncio.sleep(self.delays.get(action, 0))
        self.answered.append((action, time.monotonic()))
        return answer


@contextlib.asynccontextmanager
async def connected(url: str, ocpp_id: str):
    """Connect a Recorder charger to a bridge; close it on exit."""
    ws = await open_socket(url, ocpp_id)
    charger = Recorder(ocpp_id, ws)
    task = asyncio.create_task(charger.start())
    try:
        yield charger
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ws.close()


def queue(app, tenant_id: int, ocpp_id: str, action: str, payload: Any = None, **kw: Any) -> int:
    """Queue a command through the service, as the web will; return its id."""
    user_email = kw.pop("user_email", None)
    with app.app_context(), tenant_context(tenant_id):
        charger = db.session.scalars(scoped(Charger, Charger.ocpp_id == ocpp_id)).one()
        if user_email:
            kw["user"] = db.session.scalars(scoped(User, User.email == user_email)).one()
        return charger_commands.queue_command(charger, action, payload, **kw).id


def commands(database_url: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    rows = query(
        database_url,
        "SELECT id, action, status, result, error, message_id, sent_at, finished_at, "
        "created_by_id FROM charger_command WHERE id = ANY(%s) ORDER BY id",
        (ids,),
    )
    names = ("action", "status", "result", "error", "message_id", "sent_at", "finished_at")
    return {r[0]: dict(zip((*names, "created_by_id"), r[1:], strict=True)) for r in rows}


async def eventually(check: Any, timeout: float = 10.0, every: float = 0.05) -> Any:
    """Poll `check` (run in a thread) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(every)


async def settled(database_url: str, ids: list[int], timeout: float = 10.0) -> dict:
    """Wait until every command has a final status; return them all."""

    def check() -> dict | None:
        rows = commands(database_url, ids)
        return rows if all(r["status"] in FINAL for r in rows.values()) else None

    result = await eventually(check, timeout)
    assert result, f"not settled in {timeout} s: {commands(database_url, ids)}"
    return result


def owner_of(database_url: str, charger_id: int) -> tuple[bool, str | None]:
    return query(database_url, "SELECT online, owner FROM charger WHERE id = %s", (charger_id,))[0]


def count_rows(database_url: str) -> tuple[int, int, int]:
    return query(
        database_url,
        "SELECT (SELECT count(*) FROM charger_command), (SELECT count(*) FROM firmware_job), "
        "(SELECT count(*) FROM diagnostics_request)",
    )[0]


# --- delivery and outcomes --------------------------------------------------------------------


def test_every_16_command_reaches_the_charger_and_its_answer_is_stored(app, database_url, demo):
    assert set(PAYLOADS_16) == set(COMMANDS_16)
    email = "engineer@demo.test"

    async def scenario(url: str) -> tuple[list[int], Recorder]:
        async with connected(url, "DEMO-CP-0001") as charger:
            ids = [
                queue(app, demo["demo"], "DEMO-CP-0001", action, payload, user_email=email)
                for action, payload in PAYLOADS_16.items()
            ]
            await settled(database_url, ids)
        return ids, charger

    with running_bridge(database_url) as bridge:
        ids, charger = asyncio.run(scenario(bridge.url))

    rows = commands(database_url, ids)
    assert [r["status"] for r in rows.values()] == ["accepted"] * 12, rows
    assert all(r["created_by_id"] == demo[email] for r in rows.values())
    # The charger got each command once, in the order queued, with the payload as given.
    assert [action for action, _ in charger.received] == list(PAYLOADS_16)
    for action, payload in charger.received:
        assert payload == camel_to_snake_case(PAYLOADS_16[action]), action
    # ... and so did the wire: the logged CALL carries the command's message id and payload.
    frames = {
        r[0]: (r[1], r[2])
        for r in query(
            database_url,
            "SELECT message_id, action, payload FROM ocpp_message "
            "WHERE direction = 'out' AND message_type = 2 AND charger_id = %s",
            (demo["DEMO-CP-0001"],),
        )
    }
    for row in rows.values():
        assert frames[row["message_id"]] == (row["action"], PAYLOADS_16[row["action"]])
    by_action = {r["action"]: r for r in rows.values()}
    assert by_action["Reset"]["result"] == {"status": "Accepted"}
    assert by_action["UnlockConnector"]["result"] == {"status": "Unlocked"}
    assert by_action["GetConfiguration"]["result"] == {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]
    }
    assert by_action["UpdateFirmware"]["result"] == {}
    assert by_action["GetDiagnostics"]["result"] == {"fileName": "diag-1.zip"}
    firmware = query(
        database_url,
        "SELECT charger_id, command_id, location, retrieve_at, status FROM firmware_job",
    )
    assert firmware == [
        (
            demo["DEMO-CP-0001"],
            ids[list(PAYLOADS_16).index("UpdateFirmware")],
            "https://files.example.com/fw/terra-2.1.bin",
            datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
            "pending",  # until the charger reports FirmwareStatusNotifications
        )
    ]
    diagnostics = query(
        database_url, "SELECT command_id, location, file_name, status FROM diagnostics_request"
    )
    assert diagnostics == [
        (
            ids[list(PAYLOADS_16).index("GetDiagnostics")],
            "ftp://upload.example.com/diag/",
            "diag-1.zip",
            "pending",
        )
    ]


def test_rejected_failed_and_unanswered_commands(app, database_url, demo):
    async def scenario(url: str) -> tuple[list[int], Recorder]:
        async with connected(url, "DEMO-CP-0002") as charger:
            charger.answers["Reset"] = call_result.Reset(status="Rejected")
            charger.answers["UpdateFirmware"] = InternalError(description="flash is full")
            charger.delays["GetDiagnostics"] = 3.0  # the bridge waits 2 s (command_timeout)
            ids = [
                queue(app, demo["demo"], "DEMO-CP-0002", action, PAYLOADS_16[action])
                for action in ("Reset", "UpdateFirmware", "GetDiagnostics", "ClearCache")
            ]
            await settled(database_url, ids)
        return ids, charger

    with running_bridge(database_url) as bridge:
        ids, charger = asyncio.run(scenario(bridge.url))

    reset, firmware, diagnostics, clear = (commands(database_url, ids)[i] for i in ids)
    assert (reset["status"], reset["result"], reset["error"]) == (
        "rejected",
        {"status": "Rejected"},
        None,
    )
    assert (firmware["status"], firmware["error"]) == ("failed", "InternalError: flash is full")
    assert (diagnostics["status"], diagnostics["error"]) == ("timed_out", "no answer within 2 s")
    assert diagnostics["result"] is None
    # A charger that did not answer one command still gets the next.
    assert clear["status"] == "accepted"
    assert [a for a, _ in charger.received] == [
        "Reset",
        "UpdateFirmware",
        "GetDiagnostics",
        "ClearCache",
    ]
    # The jobs that follow a command say it never got going.
    assert query(database_url, "SELECT status FROM firmware_job") == [("failed",)]
    assert query(database_url, "SELECT status, file_name FROM diagnostics_request") == [
        ("timed_out", None)
    ]


def test_one_command_in_flight_per_charger(app, database_url, demo):
    keys = ["MeterValueSampleInterval", "ClockAlignedDataInterval", "HeartbeatInterval"]

    async def scenario(url: str) -> tuple[list[int], Recorder]:
        async with connected(url, "DEMO-CP-0003") as charger:
            charger.delays["ChangeConfiguration"] = 0.4
            ids = [
                queue(
                    app,
                    demo["demo"],
                    "DEMO-CP-0003",
                    "ChangeConfiguration",
                    {"key": key, "value": "30"},
                )
                for key in keys
            ]
            await settled(database_url, ids)
        return ids, charger

    with running_bridge(database_url) as bridge:
        ids, charger = asyncio.run(scenario(bridge.url))

    assert [payload["key"] for _, payload in charger.received] == keys  # id order
    arrived = [at for _, at in charger.arrivals]
    answered = [at for _, at in charger.answered]
    assert len(arrived) == len(answered) == 3
    for n in (1, 2):
        # The next CALL reached the charger only after it had answered the previous one.
        assert arrived[n] >= answered[n - 1], (arrived, answered)
    rows = list(commands(database_url, ids).values())
    assert [r["status"] for r in rows] == ["accepted"] * 3
    for before, after in itertools.pairwise(rows):
        assert after["sent_at"] >= before["finished_at"]


def test_offline_charger_gets_its_commands_when_it_connects(app, database_url, demo):
    """Delivery on connect, then commit-to-arrival latency, with polling out of the picture."""

    async def scenario(url: str) -> dict[str, Any]:
        waiting = queue(
            app, demo["demo"], "DEMO-CP-0004", "TriggerMessage", {"requestedMessage": "Heartbeat"}
        )
        await asyncio.sleep(0.5)
        pending = commands(database_url, [waiting])[waiting]
        connect_at = time.monotonic()
        async with connected(url, "DEMO-CP-0004") as charger:
            await settled(database_url, [waiting])
            first_arrival = charger.arrivals[0][1] - connect_at
            latencies = []
            for n in range(6):
                committed = time.monotonic()
                ident = queue(
                    app,
                    demo["demo"],
                    "DEMO-CP-0004",
                    "DataTransfer",
                    {"vendorId": "com.example", "messageId": f"m{n}"},
                )
                await settled(database_url, [ident])
                latencies.append(charger.arrivals[-1][1] - committed)
        return {"pending": pending, "first": first_arrival, "latencies": latencies, "id": waiting}

    with running_bridge(database_url, **NO_POLL) as bridge:
        result = asyncio.run(scenario(bridge.url))

    pending = result["pending"]
    assert (pending["status"], pending["sent_at"], pending["message_id"]) == ("pending", None, None)
    assert commands(database_url, [result["id"]])[result["id"]]["status"] == "accepted"
    assert result["first"] < 2.0, result
    # Loose on purpose (a shared, noisy machine): NOTIFY, not the 60 s poll, delivered these.
    assert sorted(result["latencies"])[-1] < 2.0, result["latencies"]


@pytest.mark.parametrize("swept_by", ["poll", "claim"])
def test_expired_and_cancelled_commands_are_never_sent(app, database_url, demo, swept_by):
    """Expiry while offline: by the bridge's periodic sweep, or when the charger connects."""
    settings = {} if swept_by == "poll" else NO_POLL

    async def scenario(url: str) -> tuple[dict[str, int], Recorder, list[int]]:
        soon = timedelta(seconds=1)
        tenant = demo["demo"]
        ids = {
            "reset": queue(app, tenant, "DEMO-CP-0006", "Reset", {"type": "Hard"}, expires_in=soon),
            "firmware": queue(
                app,
                tenant,
                "DEMO-CP-0006",
                "UpdateFirmware",
                PAYLOADS_16["UpdateFirmware"],
                expires_in=soon,
            ),
            "cancelled": queue(
                app,
                tenant,
                "DEMO-CP-0006",
                "ChangeAvailability",
                {"connectorId": 0, "type": "Inoperative"},
            ),
        }
        with app.app_context(), tenant_context(tenant):
            engineer = db.session.scalars(scoped(User, User.email == "engineer@demo.test")).one()
            command = charger_commands.command_by_id(ids["cancelled"])
            done = charger_commands.cancel_command(command, user=engineer)
            assert (done.status, done.error) == ("expired", "cancelled by engineer@demo.test")
            with pytest.raises(CommandError, match="not been sent"):
                charger_commands.cancel_command(command)
        await asyncio.sleep(1.5)
        before = {r["status"] for r in commands(database_url, list(ids.values())).values()}
        # The sweep has ended them before the charger shows up; without it, the claim does.
        assert before == ({"expired"} if swept_by == "poll" else {"pending", "expired"})
        async with connected(url, "DEMO-CP-0006") as charger:
            # A command queued after connecting is a sync point: anything older that was
            # still to be sent would have gone first.
            ids["fresh"] = queue(app, tenant, "DEMO-CP-0006", "ClearCache", {})
            await settled(database_url, list(ids.values()))
        with app.app_context(), tenant_context(tenant):
            charger_row = db.session.scalars(
                scoped(Charger, Charger.ocpp_id == "DEMO-CP-0006")
            ).one()
            listed = [c.id for c in charger_commands.list_commands(charger_row)]
        return ids, charger, listed

    with running_bridge(database_url, **settings) as bridge:
        ids, charger, listed = asyncio.run(scenario(bridge.url))

    assert [action for action, _ in charger.received] == ["ClearCache"]
    rows = commands(database_url, list(ids.values()))
    for name in ("reset", "firmware", "cancelled"):
        row = rows[ids[name]]
        assert (row["status"], row["sent_at"], row["message_id"]) == ("expired", None, None)
        assert row["finished_at"] is not None
    assert rows[ids["cancelled"]]["error"] == "cancelled by engineer@demo.test"
    assert rows[ids["fresh"]]["status"] == "accepted"
    # The firmware job of an expired command does not stay pending for ever.
    assert query(database_url, "SELECT status FROM firmware_job") == [("expired",)]
    assert listed == [ids["fresh"], ids["cancelled"], ids["firmware"], ids["reset"]]


# --- routing between bridge instances ---------------------------------------------------------


def test_commands_follow_the_charger_between_bridge_instances(app, database_url, demo):
    charger_id = demo["DEMO-CP-0005"]

    async def scenario(url_a: str, url_b: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with connected(url_b, "DEMO-CP-0005") as on_b:
            assert await eventually(lambda: owner_of(database_url, charger_id) == (True, "b"))
            first = queue(
                app,
                demo["demo"],
                "DEMO-CP-0005",
                "TriggerMessage",
                {"requestedMessage": "Heartbeat"},
            )
            out["first"] = (await settled(database_url, [first], timeout=5))[first]
            async with connected(url_a, "DEMO-CP-0005") as on_a:
                # Instance B closes its older socket of the same charger.
                await asyncio.wait_for(on_b._connection.wait_closed(), 5)
                out["closed"] = (on_b._connection.close_code, on_b._connection.close_reason)
                out["owner"] = await eventually(
                    lambda: owner_of(database_url, charger_id) == (True, "a")
                )
                await asyncio.sleep(0.5)  # B's disconnect must not set it offline meanwhile
                out["owner_later"] = owner_of(database_url, charger_id)
                second = queue(app, demo["demo"], "DEMO-CP-0005", "ClearCache", {})
                out["second"] = (await settled(database_url, [second], timeout=5))[second]
                out["a"] = [action for action, _ in on_a.received]
            out["b"] = [action for action, _ in on_b.received]
        return out

    with (
        running_bridge(database_url, instance_id="a", **NO_POLL) as bridge_a,
        running_bridge(database_url, instance_id="b", **NO_POLL) as bridge_b,
    ):
        out = asyncio.run(scenario(bridge_a.url, bridge_b.url))
        still_on_b = bridge_b.call(_has_session(bridge_b.bridge, charger_id))

    assert out["first"]["status"] == "accepted"
    assert out["b"] == ["TriggerMessage"]
    assert out["closed"] == (1000, "the charger connected to another bridge")
    assert out["owner"] and out["owner_later"] == (True, "a")
    assert out["second"]["status"] == "accepted"
    assert out["a"] == ["ClearCache"]
    assert not still_on_b


async def _has_session(bridge: Any, charger_id: int) -> bool:
    return charger_id in bridge.sessions


# --- refused commands -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "action", "payload", "message"),
    [
        (None, "SelfDestruct", {}, '"SelfDestruct" is not a command'),
        (None, "RequestStartTransaction", {}, "cannot be sent to an OCPP 1.6 charger"),
        ("ocpp2.0.1", "GetConfiguration", {}, "cannot be sent to an OCPP 2.0.1 charger"),
        (None, "Reset", {}, 'Reset needs a value for "type"'),
        (None, "Reset", {"type": "Gentle"}, '"type" must be one of: Hard, Soft'),
        (None, "UnlockConnector", {"connectorId": "1"}, '"connectorId" must be a whole number'),
        (None, "ClearCache", {"force": True}, 'ClearCache has no field "force"'),
        (None, "ChangeConfiguration", {"key": "K" * 51, "value": "1"}, "50 characters at most"),
        (
            None,
            "RemoteStartTransaction",
            {"idTag": "T", "chargingProfile": {"chargingProfileId": 1}},
            'needs a value for "chargingProfile.stackLevel"',
        ),
        (
            None,
            "UpdateFirmware",
            {"location": "https://x.example/fw.bin", "retrieveDate": "tomorrow"},
            '"retrieveDate" must be a date and time',
        ),
        (
            None,
            "UpdateFirmware",
            {"location": "https://x.example/fw.bin", "retrieveDate": "2026-12-01"},
            '"retrieveDate" must be a date and time',
        ),
        (None, "GetDiagnostics", {"location": "somewhere"}, '"location" must be a full URL'),
        (None, "Reset", ["Hard"], "must be an object"),
        ("ocpp2.0.1", "Reset", {"type": "Immediate", "evseId": "one"}, '"evseId" must be a whole'),
    ],
)
def test_bad_commands_are_refused_and_nothing_is_written(
    app, database_url, demo, protocol, action, payload, message
):
    if protocol:
        execute(
            database_url,
            "UPDATE charger SET ocpp_protocol = %s WHERE ocpp_id = 'DEMO-CP-0007'",
            (protocol,),
        )
    with pytest.raises(CommandError) as refused:
        queue(app, demo["demo"], "DEMO-CP-0007", action, payload)
    assert message in str(refused.value)
    assert count_rows(database_url) == (0, 0, 0)


def test_a_201_charger_takes_its_own_commands(app, database_url, demo):
    execute(
        database_url,
        "UPDATE charger SET ocpp_protocol = 'ocpp2.0.1' WHERE id = %s",
        (demo["DEMO-CP-0008"],),
    )
    ident = queue(app, demo["demo"], "DEMO-CP-0008", "Reset", {"type": "Immediate", "evseId": 1})
    assert query(database_url, "SELECT action, payload, status FROM charger_command") == [
        ("Reset", {"type": "Immediate", "evseId": 1}, "pending")
    ]
    assert ident


def test_expiry_and_registration_rules(app, database_url, demo):
    for expires_in in (timedelta(0), timedelta(seconds=-5), timedelta(days=31)):
        with pytest.raises(CommandError, match="30 days"):
            queue(app, demo["demo"], "DEMO-CP-0009", "ClearCache", {}, expires_in=expires_in)
    execute(
        database_url,
        "UPDATE charger SET registration = 'rejected' WHERE id = %s",
        (demo["DEMO-CP-0009"],),
    )
    with pytest.raises(CommandError, match="rejected"):
        queue(app, demo["demo"], "DEMO-CP-0009", "ClearCache", {})
    assert count_rows(database_url) == (0, 0, 0)


def test_another_tenants_charger_is_not_found(app, database_url, demo):
    with app.app_context():
        with system_context():
            acme = db.session.scalars(
                select(Charger).where(Charger.ocpp_id == "ACME-CP-0001")
            ).one()
            db.session.expunge(acme)
        with tenant_context(demo["demo"]):
            with pytest.raises(NotFound):
                charger_commands.queue_command(acme, "Reset", {"type": "Soft"})
            with pytest.raises(NotFound):
                charger_commands.list_commands(acme)
            # Row-level security refuses the row too, should a query ever skip the check.
            db.session.add(
                ChargerCommand(
                    tenant_id=acme.tenant_id,
                    charger_id=acme.id,
                    action="Reset",
                    payload={"type": "Soft"},
                    expires_at=datetime.now(UTC) + timedelta(hours=1),
                )
            )
            with pytest.raises(DBAPIError, match="row-level security"):
                db.session.flush()
            db.session.rollback()
    assert count_rows(database_url) == (0, 0, 0)
