"""The charger page (issue 5, point 3): state and boot data, connectors, the status and fault
timeline, the OCPP message log, sessions, tickets, firmware and diagnostics jobs — each part
with and without HX-Request, keyset paging and its live refresh, windowed filters, tenants and
vendors, bad input — and the page's live streams (filtered to its charger, coalesced)."""

from __future__ import annotations

import asyncio
import contextlib
import html as htmllib
import json
import queue
import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest
import requests
from markupsafe import escape
from ocpp.v16 import call
from sqlalchemy import event

from cass.extensions import db
from cass.services import charger_page
from tests.conftest import as_user, serve
from tests.ocpp_support import Charger16, open_socket, query, running_bridge, serving
from tests.test_live import SSEReader, send, signed_in

HX = {"HX-Request": "true"}
CP = "DEMO-CP-0001"
EVENT_RE = re.compile(r'data-event="(\d+)"')
MESSAGE_RE = re.compile(r'<tr id="message-(\d+)"')
SESSION_RE = re.compile(r'<tr id="session-(\d+)"')
NOW = datetime.now(UTC).replace(microsecond=0)


def owner(database_url: str, sql: str, *args):
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchall()


def execute(database_url: str, sql: str, *args) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql, args)


def charger_id(database_url: str, ocpp_id: str = CP) -> tuple[int, int]:
    return owner(database_url, "SELECT id, tenant_id FROM charger WHERE ocpp_id = %s", ocpp_id)[0]


def add_events(database_url: str, rows: list[tuple], ocpp_id: str = CP) -> list[int]:
    """Insert charger events (at, kind, connector_no, status, error_code, info); return ids."""
    ident, tenant = charger_id(database_url, ocpp_id)
    with psycopg.connect(database_url) as conn:
        return [
            conn.execute(
                "INSERT INTO charger_event (tenant_id, charger_id, at, kind, connector_no, status,"
                " error_code, info) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (tenant, ident, *row),
            ).fetchone()[0]
            for row in rows
        ]


def bulk_events(database_url: str, n: int, start: datetime, ocpp_id: str = CP) -> None:
    """Insert n status events (Available, no fault), one a second going back from `start`."""
    ident, tenant = charger_id(database_url, ocpp_id)
    execute(
        database_url,
        "INSERT INTO charger_event (tenant_id, charger_id, at, kind, connector_no, status,"
        " error_code) SELECT %s, %s, %s - make_interval(secs => g), 'status', 1, 'Available',"
        " 'NoError' FROM generate_series(0, %s - 1) g",
        tenant,
        ident,
        start,
        n,
    )


def add_messages(database_url: str, rows: list[tuple], ocpp_id: str = CP) -> list[int]:
    """Insert frames (at, direction, type, action, payload); return their ids."""
    ident, tenant = charger_id(database_url, ocpp_id)
    with psycopg.connect(database_url) as conn:
        return [
            conn.execute(
                "INSERT INTO ocpp_message (at, tenant_id, charger_id, direction, message_type,"
                " message_id, action, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " RETURNING id",
                (at, tenant, ident, direction, kind, f"m{i}", action, json.dumps(payload)),
            ).fetchone()[0]
            for i, (at, direction, kind, action, payload) in enumerate(rows)
        ]


@pytest.fixture
def agent(app, demo):
    return as_user(app, "agent@demo.test")


# --- the page -------------------------------------------------------------------------------


def test_whole_page_without_htmx(agent, database_url):
    execute(
        database_url,
        "UPDATE charger SET online = true, last_seen = now(), connected_at = now(),"
        " ocpp_protocol = 'ocpp1.6', firmware = '1.5.0' WHERE ocpp_id = %s",
        CP,
    )
    response = agent.get(f"/chargers/{CP}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and page.startswith("<!doctype html>")
    assert "HX-Request" in response.headers["Vary"]
    (manufacturer, model, serial, asset_tag, site, address, lat, lon) = owner(
        database_url,
        "SELECT c.manufacturer, c.model, c.serial, c.asset_tag, s.name, s.address, s.lat, s.lon"
        " FROM charger c JOIN site s ON s.id = c.site_id WHERE c.ocpp_id = %s",
        CP,
    )[0]
    for value in (manufacturer, model, serial, asset_tag, "1.5.0", "ocpp1.6", "accepted"):
        assert f"<dd>{htmllib.escape(value)}</dd>" in page
    assert site in page and address in page
    # The site, its coordinates on a map, and its other chargers.
    assert f"https://www.openstreetmap.org/?mlat={lat}&amp;mlon={lon}" in page
    assert '<span class="badge ok">online</span>' in page
    # The live stream is this charger's own.
    assert f'sse-connect="/events/chargers/{CP}"' in page
    # A ticket for this charger, prefilled.
    assert f'href="/tickets/new?charger={CP}"' in page


def test_the_prefilled_new_ticket_link_picks_the_charger(agent):
    page = agent.get(f"/tickets/new?charger={CP}").get_data(as_text=True)
    assert CP in page and 'name="charger_id"' in page


@pytest.mark.parametrize("ocpp_id", ["NOPE-CP-1", "ACME-CP-0001", "a%20b", "x" * 70])
def test_unknown_or_other_tenants_charger_is_404(agent, ocpp_id):
    for headers in ({}, HX):
        assert agent.get(f"/chargers/{ocpp_id}", headers=headers).status_code == 404
        assert agent.get(f"/chargers/{ocpp_id}?part=live", headers=headers).status_code == 404
    assert agent.get(f"/events/chargers/{ocpp_id}").status_code == 404


def test_the_other_tenant_sees_its_own_chargers_only(app, demo):
    acme = as_user(app, "admin@acme.test")
    assert acme.get("/chargers/ACME-CP-0001").status_code == 200
    assert acme.get(f"/chargers/{CP}").status_code == 404
    assert acme.get(f"/chargers/{CP}/commands/Reset").status_code == 404


def test_live_part_with_htmx_is_the_out_of_band_parts_only(agent, database_url):
    response = agent.get(f"/chargers/{CP}?part=live", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "<html" not in html
    for part in ("charger-state", "charger-connectors", "charger-commands", "charger-tickets"):
        assert re.search(rf'id="{part}"[^>]*hx-swap-oob="true"', html), part
    assert "charger-jobs" in html
    assert 'id="command-slot"' not in html  # an open operation form is never replaced
    # Without htmx the part is ignored: the whole page.
    assert agent.get(f"/chargers/{CP}?part=live").get_data(as_text=True).startswith("<!doctype")


def test_connectors_and_the_charger_wide_status(agent, database_url):
    ident, _ = charger_id(database_url)
    execute(
        database_url,
        "UPDATE connector SET status = 'Faulted', error_code = 'GroundFailure'"
        " WHERE charger_id = %s AND connector_no = 2",
        ident,
    )
    add_events(database_url, [(NOW, "status", 0, "Unavailable", "NoError", None)])
    html = agent.get(f"/chargers/{CP}?part=live", headers=HX).get_data(as_text=True)
    assert re.search(r'<tr id="connector-0" data-status="Unavailable">', html)
    assert re.search(r'<tr id="connector-2" data-status="Faulted">', html)
    assert "Faulted · GroundFailure" in html


# --- timeline -------------------------------------------------------------------------------


def test_timeline_newest_first_with_faults_and_presence(agent, database_url):
    ids = add_events(
        database_url,
        [
            (NOW - timedelta(minutes=5), "boot", None, "Accepted", None, None),
            (NOW - timedelta(minutes=4), "online", None, None, None, None),
            (NOW - timedelta(minutes=3), "status", 1, "Faulted", "GroundFailure", "RCD tripped"),
            (NOW - timedelta(minutes=2), "offline", None, None, None, None),
        ],
    )
    html = agent.get(f"/chargers/{CP}").get_data(as_text=True)
    assert EVENT_RE.findall(html) == [str(i) for i in reversed(ids)]
    assert 'class="tl-status tl-fault"' in html and "RCD tripped" in html
    assert "Faulted · GroundFailure" in html


def test_timeline_pages_with_and_without_htmx_and_refreshes_what_was_loaded(agent, database_url):
    bulk_events(database_url, 60, NOW)
    expected = [
        str(r[0])
        for r in owner(
            database_url,
            "SELECT id FROM charger_event WHERE charger_id = %s ORDER BY at DESC, id DESC",
            charger_id(database_url)[0],
        )
    ]
    page = agent.get(f"/chargers/{CP}").get_data(as_text=True)
    assert EVENT_RE.findall(page) == expected[:25]
    older = re.search(r'hx-get="(/chargers/[^"]*part=timeline[^"]*tl_after=[^"]+)"', page)
    rows = agent.get(htmllib.unescape(older.group(1)), headers=HX).get_data(as_text=True)
    assert "<section" not in rows and EVENT_RE.findall(rows) == expected[25:50]
    # The live refresh now reads everything loaded: 50 events, then Load older again.
    live = re.search(r'<li id="timeline-live" hidden hx-swap-oob="true"\s+hx-get="([^"]+)"', rows)
    refresh = agent.get(htmllib.unescape(live.group(1)), headers=HX).get_data(as_text=True)
    assert refresh.lstrip().startswith('<div id="timeline-log">')
    assert EVENT_RE.findall(refresh) == expected[:50]
    assert "Load older" in refresh
    # Without htmx, the cursor gives the whole page at that point.
    link = re.search(r'<a class="button" href="([^"]*tl_after=[^"]+)"', page).group(1)
    whole = agent.get(htmllib.unescape(link)).get_data(as_text=True)
    assert whole.startswith("<!doctype") and EVENT_RE.findall(whole) == expected[25:50]


def test_timeline_filter_with_htmx_pushes_a_clean_url(agent, database_url):
    add_events(database_url, [(NOW, "status", 1, "Faulted", "OtherError", None)])
    response = agent.get(f"/chargers/{CP}?part=timeline&tl=faults", headers=HX)
    assert response.status_code == 200
    assert response.headers["HX-Push-Url"] == f"/chargers/{CP}?tl=faults"
    assert response.get_data(as_text=True).lstrip().startswith('<div id="timeline-log">')


def test_faults_only_searches_a_window_then_offers_to_search_older(
    agent, database_url, monkeypatch
):
    monkeypatch.setattr(charger_page, "WINDOW", 40)
    (fault,) = add_events(
        database_url,
        [(NOW - timedelta(hours=2), "status", 1, "Faulted", "HighTemperature", None)],
    )
    (recent,) = add_events(
        database_url, [(NOW + timedelta(seconds=1), "status", 2, "Available", "NoError", "x")]
    )
    bulk_events(database_url, 100, NOW)  # 100 non-faults between them
    html = agent.get(f"/chargers/{CP}?part=timeline&tl=faults", headers=HX).get_data(as_text=True)
    assert EVENT_RE.findall(html) == []
    assert "Search older" in html and "No more matches among the 40 events searched" in html
    seen: list[str] = []
    for _ in range(5):
        match = re.search(r'hx-get="([^"]*tl_after=[^"]+)"', html)
        if not match:
            break
        html = agent.get(htmllib.unescape(match.group(1)), headers=HX).get_data(as_text=True)
        seen += EVENT_RE.findall(html)
    assert seen == [str(fault)]
    # Status and presence: the status events, without the window's limit hiding them.
    html = agent.get(f"/chargers/{CP}?part=timeline&tl=status", headers=HX).get_data(as_text=True)
    assert EVENT_RE.findall(html)[0] == str(recent)


@pytest.mark.parametrize("key", ["tl_after", "tl_through", "ss_after", "msg_after"])
@pytest.mark.parametrize(
    "cursor", ["garbage", "20261128T101500.000000Z", "99999999T999999.999999Z1"]
)
def test_a_bad_panel_cursor_is_422(agent, key, cursor):
    part = {"tl": "timeline", "ss": "sessions", "ms": "messages"}[key[:2]]
    response = agent.get(f"/chargers/{CP}?part={part}&{key}={cursor}", headers=HX)
    assert response.status_code == 422
    assert "does not fit" in response.get_data(as_text=True)
    whole = agent.get(f"/chargers/{CP}?{key}={cursor}")
    assert whole.status_code == 422 and "<!doctype" in whole.get_data(as_text=True)


def test_ignored_parameters_are_named(agent):
    html = agent.get(f"/chargers/{CP}?tl=weird&msg_action=Nope&msg_dir=up&msg_from=soon").get_data(
        as_text=True
    )
    for notice in ("Ignored timeline filter", "OCPP has no such action", "use in or out", "soon"):
        assert notice in html


# --- OCPP message log -----------------------------------------------------------------------


def messages_fixture(database_url: str) -> list[int]:
    base = NOW - timedelta(minutes=30)
    return add_messages(
        database_url,
        [
            (base, "in", 2, "BootNotification", [2, "m0", "BootNotification", {"vendor": "ABB"}]),
            (base + timedelta(minutes=1), "out", 3, "BootNotification", {"status": "Accepted"}),
            (base + timedelta(minutes=10), "in", 2, "Heartbeat", {}),
            (base + timedelta(minutes=20), "in", 2, "StatusNotification", {"connectorId": 1}),
            (base + timedelta(minutes=21), "out", 3, "StatusNotification", {}),
        ],
    )


def test_message_log_pretty_prints_newest_first(agent, database_url):
    ids = messages_fixture(database_url)
    html = agent.get(f"/chargers/{CP}").get_data(as_text=True)
    assert MESSAGE_RE.findall(html) == [str(i) for i in reversed(ids)]
    pretty = escape(json.dumps({"connectorId": 1}, indent=4))  # as jsonb_pretty writes it
    assert f'<pre class="json">{pretty}</pre>' in html
    assert "⇠ in" in html and "⇢ out" in html


@pytest.mark.parametrize(
    ("params", "picked"),
    [
        ("msg_action=BootNotification", [1, 0]),
        ("msg_action=heartbeat", [2]),  # any case
        ("msg_dir=out", [4, 1]),
        ("msg_dir=in&msg_action=StatusNotification", [3]),
        ("msg_from={from}", [4, 3, 2]),
        ("msg_from={from}&msg_to={to}", [2]),
    ],
)
def test_message_log_filters(agent, database_url, params, picked):
    ids = messages_fixture(database_url)
    since = (NOW - timedelta(minutes=25)).strftime("%Y-%m-%dT%H:%M")
    until = (NOW - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M")
    params = params.format(**{"from": since, "to": until})
    expected = [str(ids[i]) for i in picked]
    response = agent.get(f"/chargers/{CP}?part=messages&{params}", headers=HX)
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="messages-log"')
    assert MESSAGE_RE.findall(html) == expected
    assert "part=" not in response.headers["HX-Push-Url"]
    assert MESSAGE_RE.findall(agent.get(f"/chargers/{CP}?{params}").get_data(as_text=True)) == (
        expected
    )


def test_message_log_pages_and_windows_a_rare_action(agent, database_url, monkeypatch):
    monkeypatch.setattr(charger_page, "WINDOW", 30)
    rows = [(NOW - timedelta(seconds=100 - i), "in", 2, "Heartbeat", {"n": i}) for i in range(60)]
    rows.insert(0, (NOW - timedelta(seconds=500), "in", 2, "Authorize", {"idTag": "T"}))
    ids = add_messages(database_url, rows)
    newest = [str(i) for i in reversed(ids)]
    html = agent.get(f"/chargers/{CP}?part=messages", headers=HX).get_data(as_text=True)
    assert MESSAGE_RE.findall(html) == newest[:25]
    more = re.search(r'hx-get="([^"]*msg_after=[^"]+)"', html).group(1)
    rows_html = agent.get(htmllib.unescape(more), headers=HX).get_data(as_text=True)
    assert "<table" not in rows_html and MESSAGE_RE.findall(rows_html) == newest[25:50]
    # A rare action: the first window has none; "Search older" finds it.
    html = agent.get(f"/chargers/{CP}?part=messages&msg_action=Authorize", headers=HX).get_data(
        as_text=True
    )
    assert MESSAGE_RE.findall(html) == [] and "Search older" in html
    found: list[str] = []
    for _ in range(4):
        match = re.search(r'hx-get="([^"]*msg_after=[^"]+)"', html)
        if not match:
            break
        html = agent.get(htmllib.unescape(match.group(1)), headers=HX).get_data(as_text=True)
        found += MESSAGE_RE.findall(html)
    assert found == [str(ids[0])]


def test_a_huge_payload_is_cut(agent, database_url):
    add_messages(database_url, [(NOW, "in", 2, "DataTransfer", {"data": "x" * 30_000})])
    html = agent.get(f"/chargers/{CP}?part=messages", headers=HX).get_data(as_text=True)
    assert "(cut: the payload is longer)" in html and len(html) < 25_000


# --- sessions -------------------------------------------------------------------------------


def add_session(database_url: str, n: int, **values) -> int:
    ident, tenant = charger_id(database_url)
    row = {
        "connector_no": 1,
        "id_tag": "DEMO-TAG-0001",
        "started_at": NOW - timedelta(hours=n + 1),
        "stopped_at": NOW - timedelta(hours=n + 1) + timedelta(minutes=90),
        "meter_start": 1000,
        "meter_stop": 23_500,
        "energy_wh": None,
        "cost": None,
        "currency": None,
        "stop_reason": "Local",
    } | values
    columns = ", ".join(row)
    marks = ", ".join(["%s"] * len(row))
    return owner(
        database_url,
        f"INSERT INTO charging_session (tenant_id, charger_id, {columns})"
        f" VALUES (%s, %s, {marks}) RETURNING id",
        tenant,
        ident,
        *row.values(),
    )[0][0]


def test_sessions_show_energy_duration_cost_and_running_ones(agent, database_url):
    done = add_session(database_url, 1, energy_wh=22_500, cost=Decimal("7.8750"), currency="EUR")
    running = add_session(database_url, 0, stopped_at=None, meter_stop=None, started_at=NOW)
    html = agent.get(f"/chargers/{CP}?part=sessions", headers=HX).get_data(as_text=True)
    assert SESSION_RE.findall(html) == [str(running), str(done)]
    row = html[html.index(f'id="session-{done}"') :]
    row = row[: row.index("</tr>")]
    for text in ("22.50", "1 h 30 min", "7.88 EUR", "DEMO-TAG-0001", "Local"):
        assert text in row, text
    assert '<span class="badge cs-busy">charging</span>' in html


def test_sessions_page_and_vendors_do_not_see_id_tags(app, database_url, demo):
    ids = [add_session(database_url, n) for n in range(15)]
    vendor_charger = owner(
        database_url,
        "SELECT c.ocpp_id FROM ticket t JOIN charger c ON c.id = t.charger_id WHERE t.number = 1"
        " AND t.tenant_id = %s",
        demo["demo"],
    )[0][0]
    execute(
        database_url,
        "UPDATE charger SET vendor_id = %s WHERE ocpp_id = %s",
        demo["vendor:Demo Field Services"],
        CP,
    )
    vendor = as_user(app, "vendor@demo.test")
    html = vendor.get(f"/chargers/{CP}?part=sessions", headers=HX).get_data(as_text=True)
    assert SESSION_RE.findall(html) == [str(i) for i in ids[:10]]
    assert "DEMO-TAG-0001" not in html and "Id tag" not in html
    more = re.search(r'hx-get="([^"]*ss_after=[^"]+)"', html).group(1)
    rows = vendor.get(htmllib.unescape(more), headers=HX).get_data(as_text=True)
    assert SESSION_RE.findall(rows) == [str(i) for i in ids[10:]]
    assert 'id="sessions-live" hidden hx-swap-oob="true"' in rows
    assert vendor.get(f"/chargers/{vendor_charger}").status_code == 200


# --- tickets, jobs, commands ----------------------------------------------------------------


def test_tickets_panel_lists_the_chargers_tickets_the_user_may_see(app, database_url, demo):
    ident, _tenant = charger_id(database_url)
    keys = [
        f"DEMO-{n}"
        for (n,) in owner(
            database_url,
            "SELECT number FROM ticket WHERE charger_id = %s ORDER BY updated_at DESC, id DESC",
            ident,
        )
    ]
    assert keys
    html = as_user(app, "agent@demo.test").get(f"/chargers/{CP}").get_data(as_text=True)
    section = html[html.index('id="charger-tickets"') :]
    assert (
        re.findall(r'<a href="/tickets/(DEMO-\d+)">', section[: section.index("</section>")])
        == (keys[:10])
    )
    vendor_keys = {
        f"DEMO-{n}"
        for (n,) in owner(
            database_url,
            "SELECT number FROM ticket WHERE charger_id = %s AND assignee_vendor_id = %s",
            ident,
            demo["vendor:Demo Field Services"],
        )
    }
    execute(
        database_url,
        "UPDATE charger SET vendor_id = %s WHERE id = %s",
        demo["vendor:Demo Field Services"],
        ident,
    )
    html = as_user(app, "vendor@demo.test").get(f"/chargers/{CP}").get_data(as_text=True)
    section = html[html.index('id="charger-tickets"') :]
    shown = set(
        re.findall(r'<a href="/tickets/(DEMO-\d+)">', section[: section.index("</section>")])
    )
    assert shown == vendor_keys
    assert "Remote operations" in html and 'id="command-slot"' not in html  # no operations


def test_firmware_jobs_diagnostics_and_configuration_results_show(app, database_url, demo):
    from cass.models import Charger
    from cass.services import charger_commands
    from cass.tenancy import scoped, tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        charger = db.session.scalars(scoped(Charger, Charger.ocpp_id == CP)).one()
        charger_commands.queue_command(
            charger,
            "UpdateFirmware",
            {"location": "https://fw.example.com/2.1.bin", "retrieveDate": "2026-12-01T02:00:00Z"},
        )
        charger_commands.queue_command(
            charger, "GetDiagnostics", {"location": "ftp://up.example.com/d/"}
        )
        config = charger_commands.queue_command(charger, "GetConfiguration", {})
        config_id = config.id
    execute(
        database_url,
        "UPDATE charger_command SET status = 'accepted', result = %s WHERE id = %s",
        json.dumps(
            {
                "configurationKey": [
                    {"key": "HeartbeatInterval", "readonly": False, "value": "60"},
                    {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
                ],
                "unknownKey": ["Foo"],
            }
        ),
        config_id,
    )
    execute(database_url, "UPDATE firmware_job SET status = 'Downloading'")
    html = as_user(app, "engineer@demo.test").get(f"/chargers/{CP}").get_data(as_text=True)
    jobs = html[html.index('id="charger-jobs"') :]
    assert "Downloading" in jobs and "https://fw.example.com/2.1.bin" in jobs
    assert "ftp://up.example.com/d/" in jobs and "pending" in jobs
    commands = html[html.index('id="charger-commands"') :]
    assert "<code>HeartbeatInterval</code></td><td>60</td><td>no</td>" in commands
    assert "<code>NumberOfConnectors</code></td><td>2</td><td>yes</td>" in commands
    assert "Unknown to the charger: Foo" in commands


def test_the_number_of_queries_does_not_grow_with_the_history(app, agent, database_url):
    def count() -> int:
        statements: list[str] = []
        with app.app_context():
            engine = db.engine

        def _count(conn, cursor, statement, *args):
            if "set_config" not in statement:
                statements.append(statement)

        event.listen(engine, "before_cursor_execute", _count)
        try:
            assert agent.get(f"/chargers/{CP}").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", _count)
        return len(statements)

    few = count()
    bulk_events(database_url, 300, NOW)
    for n in range(30):
        add_session(database_url, n)
    add_messages(
        database_url, [(NOW - timedelta(seconds=i), "in", 2, "Heartbeat", {}) for i in range(60)]
    )
    assert count() == few


# --- live streams ---------------------------------------------------------------------------


@pytest.fixture
def live_server(app):
    from cass.live import get_broker

    broker = get_broker(app)
    app.config["LIVE_HEARTBEAT_SECONDS"] = 0.5
    app.config["CHARGERS_LIVE_INTERVAL"] = 0.3
    app.config["CHARGERS_WATCH_SECONDS"] = 0.3
    try:
        with serve(app) as url:
            yield url
    finally:
        broker.stop()


def open_charger_stream(session: requests.Session, url: str, readers: list) -> SSEReader:
    response = session.get(url, stream=True, timeout=(5, 10))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    reader = SSEReader(response)
    readers.append(reader)
    opening = reader.next(5)
    assert opening is not None and opening.get("comment") == "connected"
    return reader


@pytest.fixture
def readers():
    opened: list[SSEReader] = []
    yield opened
    for reader in opened:
        reader.close()


def test_the_charger_stream_carries_its_charger_and_command_events_only(
    app, demo, database_url, live_server, readers
):
    session = signed_in(live_server, "agent@demo.test")
    reader = open_charger_stream(session, f"{live_server}/events/chargers/{CP}", readers)
    send(database_url, demo["demo"], "charger", "DEMO-CP-0002", status="Faulted")
    send(database_url, demo["acme"], "charger", CP, status="Faulted")  # another tenant
    send(database_url, demo["demo"], "ticket", 1)
    send(database_url, demo["demo"], "charger", CP, connector=1, status="Charging")
    message = reader.next_event(3)
    assert message["event"] == "charger"
    assert json.loads(message["data"])["status"] == "Charging"
    send(database_url, demo["demo"], "command", "42")
    message = reader.next_event(3)
    assert message["event"] == "command" and json.loads(message["data"])["id"] == "42"


def test_a_burst_is_coalesced_and_its_last_event_always_arrives(
    app, demo, database_url, live_server, readers
):
    session = signed_in(live_server, "agent@demo.test")
    reader = open_charger_stream(session, f"{live_server}/events/chargers/{CP}", readers)
    for n in range(8):
        send(database_url, demo["demo"], "charger", CP, connector=1, status=f"S{n}")
    got = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        message = reader.next(3)
        if message and message.get("event") == "charger":
            got.append(json.loads(message["data"])["status"])
            if got[-1] == "S7":
                break
    assert got[-1] == "S7"  # the final state is never lost
    assert len(got) < 8  # and the burst made fewer refreshes than events


def test_a_heartbeat_reaches_the_charger_page_within_two_seconds(
    app, demo, database_url, live_server, readers
):
    """The bridge sends no event for a Heartbeat; the page's stream sees last_seen move."""
    session = signed_in(live_server, "agent@demo.test")
    reader = open_charger_stream(session, f"{live_server}/events/chargers/{CP}", readers)

    async def boot(url: str) -> tuple[Charger16, Any, asyncio.Task[None]]:
        ws = await open_socket(url, CP)
        charger = Charger16(CP, ws)
        task = await serving(charger)
        await charger.call(call.BootNotification("V", "M"))
        return charger, ws, task

    def quiet() -> None:
        """Skip what came before until no event has come for a second (pings aside)."""
        deadline = time.monotonic() + 10
        last = time.monotonic()
        while (now := time.monotonic()) - last < 1.0:
            assert now < deadline, "the stream never went quiet"
            with contextlib.suppress(queue.Empty):
                message = reader.messages.get(timeout=0.2)
                assert message is not None, "the stream ended"
                if "event" in message:
                    last = time.monotonic()

    # The bridge's own presence touches (every 0.2 s in tests) would move last_seen too.
    with running_bridge(database_url, touch_interval=60.0, offline_after=120.0) as bridge:
        charger, ws, task = bridge.call(boot(bridge.url))
        try:
            quiet()
            for _ in range(2):
                sent = time.monotonic()
                bridge.call(charger.call(call.Heartbeat()))
                sql = "SELECT last_seen FROM charger WHERE ocpp_id = %s"
                ((seen,),) = query(database_url, sql, (CP,))
                message = reader.next_event(2.0)
                took = time.monotonic() - sent
                assert message["event"] == "charger" and took <= 2.0, (message, took)
                data = json.loads(message["data"])
                assert datetime.fromisoformat(data["last_seen"]) == seen and data["online"] is True
                quiet()  # one event per move, not one a second
        finally:
            task.cancel()
            bridge.call(ws.close())


def test_the_list_stream_carries_every_charger_event_coalesced(
    app, demo, database_url, live_server, readers
):
    session = signed_in(live_server, "viewer@demo.test")
    reader = open_charger_stream(session, f"{live_server}/events/chargers", readers)
    send(database_url, demo["demo"], "ticket", 1)
    send(database_url, demo["demo"], "charger", "DEMO-CP-0009", online=False)
    message = reader.next_event(3)
    assert message["event"] == "charger"
    assert json.loads(message["data"])["id"] == "DEMO-CP-0009"


def test_a_returning_client_is_told_to_resync(app, demo, live_server, readers):
    session = signed_in(live_server, "agent@demo.test")
    response = session.get(
        f"{live_server}/events/chargers/{CP}",
        stream=True,
        timeout=(5, 10),
        headers={"Last-Event-ID": "7"},
    )
    reader = SSEReader(response)
    readers.append(reader)
    assert reader.next_event(3)["event"] == "resync"


def test_streams_need_sign_in(app, demo, live_server):
    response = requests.get(f"{live_server}/events/chargers/{CP}", allow_redirects=False, timeout=5)
    assert response.status_code == 302
