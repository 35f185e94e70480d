"""Remote operations on the charger page (issue 5, point 4): a form per OCPP command, a
confirmation step, queued through charger_commands with an audit row in the same transaction,
bad input answered 422 with nothing written, cancelling, roles, and the answer of a simulated
charger through a real bridge appearing on the page."""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from typing import Any

import psycopg
import pytest

from cass.chargers.forms import FORMS
from tests.conftest import as_user, page_token
from tests.ocpp_support import Charger16, open_socket, running_bridge

HX = {"HX-Request": "true"}
CP = "DEMO-CP-0001"


def owner(database_url: str, sql: str, *args):
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchall()


def execute(database_url: str, sql: str, *args) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql, args)


def commands(database_url: str) -> list[tuple]:
    return owner(
        database_url,
        "SELECT id, action, payload, status, created_by_id FROM charger_command ORDER BY id",
    )


def audits(database_url: str) -> list[tuple]:
    return owner(
        database_url,
        "SELECT entity, entity_id, action, actor_id, before, after FROM audit_log"
        " WHERE entity = 'charger_command' ORDER BY id",
    )


@pytest.fixture
def engineer(app, demo):
    return as_user(app, "engineer@demo.test")


def post(client, action: str, data: dict[str, Any], headers=None, ocpp_id: str = CP):
    token = page_token(client, f"/chargers/{ocpp_id}")
    return client.post(
        f"/chargers/{ocpp_id}/commands/{action}",
        data={"csrf_token": token, **data},
        headers=headers or {},
    )


# --- forms and the confirmation step --------------------------------------------------------


@pytest.mark.parametrize("action", list(FORMS["1.6"]))
def test_each_form_with_and_without_htmx(engineer, action):
    fragment = engineer.get(f"/chargers/{CP}/commands/{action}", headers=HX)
    html = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "<html" not in html
    assert html.lstrip().startswith("<form") and 'hx-target="#command-slot"' in html
    whole = engineer.get(f"/chargers/{CP}/commands/{action}")
    page = whole.get_data(as_text=True)
    assert whole.status_code == 200 and page.startswith("<!doctype html>")
    assert '<div id="command-slot">' in page and 'id="command-form"' in page


def test_the_page_offers_the_operations_of_its_protocol(engineer, database_url):
    page = engineer.get(f"/chargers/{CP}").get_data(as_text=True)
    offered = re.findall(rf'href="/chargers/{CP}/commands/(\w+)"', page)
    assert offered == list(FORMS["1.6"])
    execute(database_url, "UPDATE charger SET ocpp_protocol = 'ocpp2.0.1' WHERE ocpp_id = %s", CP)
    page = engineer.get(f"/chargers/{CP}").get_data(as_text=True)
    offered = re.findall(rf'href="/chargers/{CP}/commands/(\w+)"', page)
    assert offered == list(FORMS["2.0.1"])
    # A 1.6-only command is not there for a 2.0.1 charger.
    assert engineer.get(f"/chargers/{CP}/commands/GetConfiguration").status_code == 404


@pytest.mark.parametrize("action", ["Nope", "DataTransfer", "reset"])
def test_an_unknown_operation_is_404(engineer, action):
    assert engineer.get(f"/chargers/{CP}/commands/{action}").status_code == 404


def test_the_first_post_asks_to_confirm_and_queues_nothing(engineer, database_url):
    for headers in (HX, {}):
        response = post(engineer, "Reset", {"type": "Hard"}, headers)
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert f"Send Reset to {CP}?" in html
        assert "<dt>Type</dt><dd>Hard: reboot the unit</dd>" in html
        assert '<input type="hidden" name="type" value="Hard">' in html
        assert '<input type="hidden" name="confirmed" value="1">' in html
        assert "Confirm: Reset" in html
        assert html.startswith("<!doctype") == (headers == {})
    assert commands(database_url) == [] and audits(database_url) == []


def test_confirmed_with_htmx_queues_audits_and_shows_it(engineer, database_url, demo):
    response = post(engineer, "Reset", {"type": "Hard", "confirmed": "1"}, HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    [(ident, action, payload, status, by)] = commands(database_url)
    assert (action, payload, status, by) == (
        "Reset",
        {"type": "Hard"},
        "pending",
        demo["engineer@demo.test"],
    )
    # The slot says so, and the command list is swapped out of band with the new row.
    assert "Reset queued for DEMO-CP-0001" in html
    assert re.search(r'<div id="charger-commands" hx-swap-oob="true">', html)
    assert f'<tr id="command-{ident}" data-status="pending">' in html
    assert "Erin Engineer" in html
    [(entity, entity_id, verb, actor, before, after)] = audits(database_url)
    assert (entity, entity_id, verb, actor, before) == (
        "charger_command",
        ident,
        "queue",
        demo["engineer@demo.test"],
        None,
    )
    assert after == {
        "charger": CP,
        "charger_id": demo[CP],
        "action": "Reset",
        "payload": {"type": "Hard"},
    }
    # The audit row and the command were written by one transaction: the same now().
    same = owner(
        database_url,
        "SELECT a.at = c.created_at FROM audit_log a JOIN charger_command c ON c.id = a.entity_id"
        " WHERE a.entity = 'charger_command'",
    )
    assert same == [(True,)]


def test_confirmed_without_htmx_redirects_to_the_page_with_a_flash(engineer, database_url):
    response = post(engineer, "ClearCache", {"confirmed": "1"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/chargers/{CP}#commands"
    page = engineer.get(f"/chargers/{CP}").get_data(as_text=True)
    assert f"Clear cache queued for {CP}" in page
    assert [c[1] for c in commands(database_url)] == ["ClearCache"]


FUTURE = "2030-01-02T03:04"
PAYLOADS = [
    ("Reset", {"type": "Soft"}, {"type": "Soft"}),
    ("UnlockConnector", {"connectorId": "2"}, {"connectorId": 2}),
    ("ChangeAvailability", {"connectorId": "0", "type": "Inoperative"},
     {"connectorId": 0, "type": "Inoperative"}),
    ("ChangeAvailability", {"connectorId": "1", "type": "Operative"},
     {"connectorId": 1, "type": "Operative"}),
    ("RemoteStartTransaction", {"idTag": " DEMO-TAG-0001 ", "connectorId": ""},
     {"idTag": "DEMO-TAG-0001"}),
    ("RemoteStartTransaction", {"idTag": "T1", "connectorId": "2"},
     {"idTag": "T1", "connectorId": 2}),
    ("RemoteStopTransaction", {"transactionId": "4242"}, {"transactionId": 4242}),
    ("GetConfiguration", {"keys": ""}, {}),
    ("GetConfiguration", {"keys": "HeartbeatInterval, MeterValueSampleInterval,HeartbeatInterval"},
     {"key": ["HeartbeatInterval", "MeterValueSampleInterval"]}),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"},
     {"key": "HeartbeatInterval", "value": "120"}),
    ("TriggerMessage", {"requestedMessage": "StatusNotification", "connectorId": "1"},
     {"requestedMessage": "StatusNotification", "connectorId": 1}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": ""},
     {"requestedMessage": "Heartbeat"}),
    ("UpdateFirmware", {"location": "https://fw.example.com/a.bin", "retrieveDate": FUTURE,
                        "retries": "3", "retryInterval": ""},
     {"location": "https://fw.example.com/a.bin", "retrieveDate": "2030-01-02T03:04:00Z",
      "retries": 3}),
    ("GetDiagnostics", {"location": "ftp://up.example.com/d/", "startTime": "2030-01-01T00:00",
                        "stopTime": FUTURE},
     {"location": "ftp://up.example.com/d/", "startTime": "2030-01-01T00:00:00Z",
      "stopTime": "2030-01-02T03:04:00Z"}),
    ("ClearCache", {}, {}),
]  # fmt: skip


@pytest.mark.parametrize(("action", "data", "payload"), PAYLOADS)
def test_each_operation_sends_its_payload(engineer, database_url, action, data, payload):
    response = post(engineer, action, {**data, "confirmed": "1"}, HX)
    assert response.status_code == 200, response.get_data(as_text=True)
    [(_, sent, stored, status, _)] = commands(database_url)
    assert (sent, stored, status) == (action, payload, "pending")
    assert len(audits(database_url)) == 1


def test_firmware_and_diagnostics_make_their_jobs(engineer, database_url):
    post(engineer, "UpdateFirmware", {"location": "https://fw.example.com/a.bin",
                                      "retrieveDate": FUTURE, "confirmed": "1"})  # fmt: skip
    post(engineer, "GetDiagnostics", {"location": "ftp://up.example.com/", "confirmed": "1"})
    assert owner(database_url, "SELECT location, status FROM firmware_job") == [
        ("https://fw.example.com/a.bin", "pending")
    ]
    assert owner(database_url, "SELECT location, status FROM diagnostics_request") == [
        ("ftp://up.example.com/", "pending")
    ]


def test_the_2_0_1_forms_send_2_0_1_payloads(engineer, database_url):
    execute(database_url, "UPDATE charger SET ocpp_protocol = 'ocpp2.0.1' WHERE ocpp_id = %s", CP)
    cases = [
        ("Reset", {"type": "OnIdle"}, {"type": "OnIdle"}),
        ("ChangeAvailability", {"evse": "2", "operationalStatus": "Inoperative"},
         {"operationalStatus": "Inoperative", "evse": {"id": 2}}),
        ("UnlockConnector", {"evseId": "1"}, {"evseId": 1, "connectorId": 1}),
        ("TriggerMessage", {"requestedMessage": "StatusNotification", "evse": "1"},
         {"requestedMessage": "StatusNotification", "evse": {"id": 1}}),
        ("RequestStopTransaction", {"transactionId": "tx-1"}, {"transactionId": "tx-1"}),
    ]  # fmt: skip
    for action, data, payload in cases:
        assert post(engineer, action, {**data, "confirmed": "1"}, HX).status_code == 200
        assert commands(database_url)[-1][1:3] == (action, payload)
    response = post(
        engineer,
        "RequestStartTransaction",
        {"idToken": "TOKEN-1", "tokenType": "ISO14443", "evseId": "", "confirmed": "1"},
        HX,
    )
    assert response.status_code == 200
    stored = commands(database_url)[-1][2]
    assert stored["idToken"] == {"idToken": "TOKEN-1", "type": "ISO14443"}
    assert isinstance(stored["remoteStartId"], int)


# --- bad input ------------------------------------------------------------------------------

BAD = [
    ("ChangeConfiguration", {"key": "", "value": "1"}, "This field is required."),
    ("RemoteStartTransaction", {"idTag": "X" * 21}, "Field cannot be longer than 20"),
    ("RemoteStartTransaction", {"idTag": ""}, "This field is required."),
    ("UnlockConnector", {"connectorId": "9"}, "Not a valid choice"),
    ("UnlockConnector", {"connectorId": "abc"}, "Not a valid choice"),
    ("Reset", {"type": "Sideways"}, "Not a valid choice"),
    ("RemoteStopTransaction", {"transactionId": "-3"}, "Number must be between"),
    ("UpdateFirmware", {"location": "not a url", "retrieveDate": FUTURE}, "Invalid URL"),
    ("UpdateFirmware", {"location": "https://x.example.com/f", "retrieveDate": "tomorrow"},
     "Not a valid datetime value"),
    ("GetDiagnostics", {"location": "ftp://x.example.com/", "startTime": FUTURE,
                        "stopTime": "2029-01-01T00:00"}, "“To” must be after “From”."),
    # The form lets it through; the OCPP schema does not (keys are 50 characters at most).
    ("GetConfiguration", {"keys": "K" * 51}, "is too long (50 characters at most)"),
]  # fmt: skip


@pytest.mark.parametrize(("action", "data", "message"), BAD)
@pytest.mark.parametrize("headers", [HX, {}], ids=["htmx", "plain"])
def test_bad_input_is_422_and_writes_nothing(
    engineer, database_url, action, data, message, headers
):
    response = post(engineer, action, {**data, "confirmed": "1"}, headers)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html
    assert 'id="command-form"' in html
    assert html.startswith("<!doctype") == (headers == {})
    assert commands(database_url) == [] and audits(database_url) == []
    assert owner(database_url, "SELECT count(*) FROM firmware_job") == [(0,)]


def test_a_rejected_charger_takes_no_command(engineer, database_url):
    execute(database_url, "UPDATE charger SET registration = 'rejected' WHERE ocpp_id = %s", CP)
    response = post(engineer, "Reset", {"type": "Soft", "confirmed": "1"}, HX)
    assert response.status_code == 422
    assert "registration was rejected" in response.get_data(as_text=True)
    assert commands(database_url) == [] and audits(database_url) == []


def test_without_the_csrf_token_nothing_is_queued(engineer, database_url):
    response = engineer.post(
        f"/chargers/{CP}/commands/Reset", data={"type": "Soft", "confirmed": "1"}
    )
    assert response.status_code == 400
    assert commands(database_url) == []


def test_another_tenants_charger_is_404_and_gets_nothing(app, database_url, demo):
    client = as_user(app, "engineer@demo.test")
    token = page_token(client, f"/chargers/{CP}")
    response = client.post(
        "/chargers/ACME-CP-0001/commands/Reset",
        data={"csrf_token": token, "type": "Soft", "confirmed": "1"},
    )
    assert response.status_code == 404
    assert commands(database_url) == []


@pytest.mark.parametrize("email", ["agent@demo.test", "viewer@demo.test", "vendor@demo.test"])
def test_roles_without_chargers_command_see_no_operations_and_cannot_post(
    app, database_url, demo, email
):
    client = as_user(app, email)
    execute(
        database_url,
        "UPDATE charger SET vendor_id = %s WHERE ocpp_id = %s",
        demo["vendor:Demo Field Services"],
        CP,
    )
    page = client.get(f"/chargers/{CP}").get_data(as_text=True)
    assert 'id="command-slot"' not in page and f"/chargers/{CP}/commands/" not in page
    token = page_token(client, f"/chargers/{CP}")
    response = client.post(
        f"/chargers/{CP}/commands/Reset",
        data={"csrf_token": token, "type": "Soft", "confirmed": "1"},
    )
    assert response.status_code == 403
    assert commands(database_url) == []


@pytest.mark.parametrize("email", ["admin@demo.test", "manager@demo.test", "engineer@demo.test"])
def test_roles_with_chargers_command_may_queue(app, database_url, demo, email):
    client = as_user(app, email)
    assert (
        post(
            client, "TriggerMessage", {"requestedMessage": "Heartbeat", "confirmed": "1"}
        ).status_code
        == 303
    )
    assert [c[1] for c in commands(database_url)] == ["TriggerMessage"]


# --- cancel ---------------------------------------------------------------------------------


def queue_one(engineer, database_url) -> int:
    post(engineer, "ClearCache", {"confirmed": "1"})
    return commands(database_url)[-1][0]


def test_withdraw_a_pending_command_with_htmx(engineer, database_url, demo):
    ident = queue_one(engineer, database_url)
    page = engineer.get(f"/chargers/{CP}").get_data(as_text=True)
    assert f"/chargers/{CP}/commands/{ident}/cancel" in page
    token = page_token(engineer, f"/chargers/{CP}")
    response = engineer.post(
        f"/chargers/{CP}/commands/{ident}/cancel", data={"csrf_token": token}, headers=HX
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<div id="charger-commands"')
    assert f'<tr id="command-{ident}" data-status="expired">' in html
    assert "cancelled by engineer@demo.test" in html
    assert [a[2] for a in audits(database_url)] == ["queue", "cancel"]
    # A second time: it is no longer pending.
    again = engineer.post(
        f"/chargers/{CP}/commands/{ident}/cancel", data={"csrf_token": token}, headers=HX
    )
    assert again.status_code == 422
    assert "Only a command that has not been sent yet" in again.get_data(as_text=True)
    assert [a[2] for a in audits(database_url)] == ["queue", "cancel"]


def test_withdraw_without_htmx_redirects_with_a_flash(engineer, database_url):
    ident = queue_one(engineer, database_url)
    execute(database_url, "UPDATE charger_command SET status = 'sent' WHERE id = %s", ident)
    token = page_token(engineer, f"/chargers/{CP}")
    response = engineer.post(f"/chargers/{CP}/commands/{ident}/cancel", data={"csrf_token": token})
    assert response.status_code == 303
    page = engineer.get(f"/chargers/{CP}").get_data(as_text=True)
    assert "Only a command that has not been sent yet can be cancelled." in page


def test_withdraw_another_chargers_command_is_404(engineer, database_url):
    ident = queue_one(engineer, database_url)
    token = page_token(engineer, f"/chargers/{CP}")
    for path in (f"/chargers/DEMO-CP-0002/commands/{ident}/cancel",
                 f"/chargers/{CP}/commands/{ident + 100}/cancel"):  # fmt: skip
        assert engineer.post(path, data={"csrf_token": token}).status_code == 404
    assert commands(database_url)[-1][3] == "pending"


# --- through a real bridge ------------------------------------------------------------------


class ChargerThread:
    """A simulated OCPP 1.6 charger on its own thread and event loop, connected to a bridge."""

    def __init__(self, url: str, ocpp_id: str) -> None:
        self.url, self.ocpp_id = url, ocpp_id
        self.loop = asyncio.new_event_loop()
        self.charger: Charger16 | None = None
        self.ready = threading.Event()
        self.stop = asyncio.Event()
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),))

    async def _main(self) -> None:
        async with await open_socket(self.url, self.ocpp_id) as ws:
            self.charger = Charger16(self.ocpp_id, ws)
            task = asyncio.create_task(self.charger.start())
            self.ready.set()
            await self.stop.wait()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task

    def __enter__(self) -> ChargerThread:
        self.thread.start()
        assert self.ready.wait(15), "the simulated charger did not connect"
        return self

    def run(self, coro: Any, timeout: float = 10) -> Any:
        """Run a coroutine on the charger's loop (e.g. the charger sending a message)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __exit__(self, *exc: Any) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(15)
        self.loop.close()


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    return check()


def test_a_reset_reaches_a_simulated_charger_and_its_answer_shows(app, database_url, demo):
    client = as_user(app, "engineer@demo.test")
    with running_bridge(database_url) as bridge, ChargerThread(bridge.url, CP) as sim:
        assert wait_for(
            lambda: owner(database_url, "SELECT online FROM charger WHERE ocpp_id = %s", CP)[0][0]
        )
        response = post(client, "Reset", {"type": "Hard", "confirmed": "1"}, HX)
        assert response.status_code == 200
        assert wait_for(lambda: commands(database_url)[-1][3] == "accepted")
        assert sim.charger.received == [("Reset", {"type": "Hard"})]
        live = client.get(f"/chargers/{CP}?part=live", headers=HX).get_data(as_text=True)
        ident = commands(database_url)[-1][0]
        assert f'<tr id="command-{ident}" data-status="accepted">' in live
        assert '<span class="badge cmd-accepted">accepted</span>' in live
        assert '<span class="badge ok">online</span>' in live
