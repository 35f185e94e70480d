"""The home page's dashboard (issue 7, point 1): each role's sections and no others', every
figure against hand-counted rows, faults counted in the tenant's days, accessible SVG charts,
the section fragments with and without htmx, the live stream, and tenant isolation.

The demo tenant's tickets, clocks and charger events are cleared first, so the rows inserted
here are all there is; its day is New York's.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import event

from cass.extensions import db
from tests.conftest import as_user, serve
from tests.ocpp_support import execute, query
from tests.test_live import SSEReader, send, signed_in
from tests.test_reports import Desk

HX = {"HX-Request": "true"}
ZONE = ZoneInfo("America/New_York")
NOW = datetime.now(UTC)


def figure(html: str, ident: str) -> str:
    """Return the number a dashboard tile shows (the <strong> of the tile with this id)."""
    match = re.search(
        rf'id="{ident}">\s*<span class="muted">[^<]*</span><strong>([^<]*)</strong>', html
    )
    assert match, f"no tile {ident}"
    return match.group(1)


def chart_desc(html: str, title: str) -> str:
    """Return the <desc> of the chart titled `title` (it lists every count)."""
    match = re.search(
        rf'<svg [^>]*role="img"[^>]*><title id="[^"]+">{re.escape(title)}</title>'
        r'<desc id="[^"]+">([^<]*)</desc>',
        html,
    )
    assert match, f"no chart {title!r}"
    return match.group(1)


class Dashboard(Desk):
    """The report tests' desk, plus live SLA clocks due at a given time and connector states."""

    def live_clock(self, ticket: int, clock: str, state: str, due: datetime) -> None:
        execute(
            self.url,
            "INSERT INTO sla_clock (tenant_id, ticket_id, clock, target_minutes, started_at,"
            " state, due_at) SELECT tenant_id, id, %s, 60, %s, %s, %s FROM ticket WHERE id = %s",
            (clock, due - timedelta(hours=1), state, due, ticket),
        )

    def key(self, ticket: int) -> str:
        number = query(self.url, "SELECT number FROM ticket WHERE id = %s", (ticket,))[0][0]
        return f"DEMO-{number}"


@pytest.fixture
def desk(database_url, demo) -> Dashboard:
    execute(database_url, "UPDATE tenant SET timezone = 'America/New_York' WHERE slug = 'demo'")
    # The demo's own tickets (and their clocks, events, worklogs) and charger history go, so
    # that each figure is what the test inserts.
    execute(database_url, "TRUNCATE ticket CASCADE")
    execute(database_url, "DELETE FROM charger_event")
    execute(database_url, "UPDATE connector SET status = 'Available', error_code = 'NoError'")
    execute(database_url, "UPDATE charger SET online = false")
    return Dashboard(database_url, demo)


def fill_tickets(desk: Dashboard) -> dict[str, int]:
    """Open tickets by status and priority, some assigned, and closed ones that never count."""
    ids = {
        "new_p1": desk.ticket(NOW - timedelta(hours=2), "new", "P1"),
        "new_p3": desk.ticket(NOW - timedelta(hours=3), "new", "P3"),
        "mine": desk.ticket(
            NOW - timedelta(days=1), "in_progress", "P2", engineer="engineer@demo.test"
        ),
        "mine_held": desk.ticket(
            NOW - timedelta(days=2), "on_hold", "P3", engineer="engineer@demo.test"
        ),
        "managers": desk.ticket(
            NOW - timedelta(days=1), "assigned", "P2", engineer="manager@demo.test"
        ),
        "vendor": desk.ticket(
            NOW - timedelta(days=1), "assigned", "P4", vendor="Demo Field Services"
        ),
        "reopened": desk.ticket(NOW - timedelta(days=4), "reopened", "P1"),
        "closed": desk.ticket(NOW - timedelta(days=3), "closed", "P1", resolved=NOW),
        "cancelled": desk.ticket(NOW - timedelta(days=3), "cancelled", "P1"),
    }
    desk.ticket(NOW, "new", "P1", tenant="acme", charger="ACME-CP-0001")
    return ids


# --- the figures ------------------------------------------------------------------------------


def test_open_tickets_by_status_and_priority(app, desk):
    fill_tickets(desk)
    page = as_user(app, "manager@demo.test").get("/").get_data(as_text=True)
    assert figure(page, "dash-open") == "7"
    statuses = chart_desc(page, "Open tickets by status")
    assert statuses.endswith("New 2, Assigned 2, In progress 1, On hold 1, Reopened 1.")
    priorities = chart_desc(page, "Open tickets by priority")
    assert priorities.endswith("P1 · critical 2, P2 · high 2, P3 · normal 2, P4 · low 1.")


def test_at_risk_counts_tickets_and_lists_the_most_urgent_clock_of_each(app, desk):
    ids = fill_tickets(desk)
    # new_p1: first response due in an hour (its resolution, due in 10 h, is not at risk yet).
    desk.live_clock(ids["new_p1"], "first_response", "running", NOW + timedelta(hours=1))
    desk.live_clock(ids["new_p1"], "resolution", "running", NOW + timedelta(hours=10))
    desk.live_clock(ids["mine"], "resolution", "breached", NOW - timedelta(hours=2))
    desk.live_clock(ids["mine_held"], "resolution", "warning", NOW + timedelta(hours=6))
    desk.live_clock(ids["new_p3"], "resolution", "running", NOW + timedelta(hours=8))
    desk.live_clock(ids["managers"], "resolution", "paused", NOW + timedelta(hours=1))
    # A breached clock that stopped (its ticket closed) is history, not a risk.
    desk.clock(ids["closed"], "resolution", "breached", NOW - timedelta(days=3), stopped=NOW)
    page = as_user(app, "manager@demo.test").get("/").get_data(as_text=True)
    assert figure(page, "dash-at-risk") == "3"
    listed = re.findall(r'<tr class="sla-(\w+)" data-key="([^"]+)">', page)
    assert listed == [
        ("breached", desk.key(ids["mine"])),
        ("running", desk.key(ids["new_p1"])),
        ("warning", desk.key(ids["mine_held"])),
    ]
    assert 'href="/sla/at-risk"' in page


def test_sla_compliance_and_response_times_are_the_reports_totals(app, desk):
    day = timedelta(days=1)
    first = desk.ticket(
        NOW - 3 * day,
        "resolved",
        resolved=NOW - 2 * day,
        responded=NOW - 3 * day + timedelta(minutes=20),
    )
    desk.ticket(
        NOW - 5 * day,
        "closed",
        resolved=NOW - 5 * day + timedelta(hours=12),
        responded=NOW - 5 * day + timedelta(minutes=40),
    )
    desk.clock(first, "resolution", "breached", NOW - 3 * day, stopped=NOW - 2 * day)
    # Started 40 days ago: outside the 30 days.
    old = desk.ticket(NOW - 40 * day, "closed", resolved=NOW - 39 * day)
    desk.clock(old, "resolution", "breached", NOW - 40 * day, stopped=NOW - 39 * day)
    manager = as_user(app, "manager@demo.test")
    page = manager.get("/").get_data(as_text=True)
    # Two first responses met, one resolution breached: 2 of 3 decided clocks.
    assert figure(page, "dash-sla") == "66.7 %"
    assert "2 met · 1 breached" in page
    assert figure(page, "dash-mtta") == "30 min"  # (20 + 40) / 2
    assert figure(page, "dash-mttr") == "18.0 h"  # (24 + 12) / 2
    assert "mean time, 2 resolved" in page
    # Each figure links to its report, over the same days.
    sla_link = re.search(r'href="(/reports/sla\?[^"]+)"[^>]*id="dash-sla"', page).group(1)
    report = manager.get(sla_link.replace("&amp;", "&")).get_data(as_text=True)
    assert "66.7" in report
    assert re.search(r'href="/reports/resolution\?[^"]*"[^>]*id="dash-mttr"', page)


def test_the_30_day_figures_are_kept_for_a_minute_and_the_rest_is_read_each_time(app, desk):
    manager = as_user(app, "manager@demo.test")
    page = manager.get("/").get_data(as_text=True)
    assert figure(page, "dash-mttr") == "—" and figure(page, "dash-open") == "0"
    desk.ticket(NOW - timedelta(hours=5), "resolved", resolved=NOW - timedelta(hours=1))
    desk.ticket(NOW, "new")
    page = manager.get("/dashboard/tickets", headers=HX).get_data(as_text=True)
    assert figure(page, "dash-mttr") == "—"  # kept
    assert figure(page, "dash-open") == "1"  # live
    app.config["DASHBOARD_PERIOD_SECONDS"] = 0  # as if the minute were over
    page = manager.get("/dashboard/tickets", headers=HX).get_data(as_text=True)
    assert figure(page, "dash-mttr") == "4.0 h"


def test_chargers_online_offline_and_faulted_now(app, desk):
    execute(
        desk.url,
        "UPDATE charger SET online = true WHERE ocpp_id IN"
        " ('DEMO-CP-0001', 'DEMO-CP-0002', 'DEMO-CP-0003', 'ACME-CP-0001')",
    )
    execute(
        desk.url,
        "UPDATE connector SET status = 'Faulted' WHERE charger_id IN (SELECT id FROM charger"
        " WHERE ocpp_id IN ('DEMO-CP-0002', 'DEMO-CP-0009', 'ACME-CP-0002'))",
    )
    # A second Faulted connector on one charger still makes one faulted charger.
    page = as_user(app, "agent@demo.test").get("/").get_data(as_text=True)
    assert [figure(page, f"dash-{k}") for k in ("chargers", "online", "offline", "faulted")] == [
        "12",
        "3",
        "9",
        "2",
    ]
    assert 'href="/chargers?faulted=1"' in page and 'href="/chargers?online=no"' in page


def test_faults_per_day_are_counted_in_the_tenants_days(app, desk):
    today = NOW.astimezone(ZONE).date()
    first = today - timedelta(days=13)

    def local(day, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), ZONE)

    cp = "DEMO-CP-0001"
    desk.charger_event(cp, local(today, 0, 30), "status", status="Faulted", error_code="NoError")
    # 23:30 yesterday in New York is already today in UTC: it belongs to yesterday.
    yesterday = today - timedelta(days=1)
    desk.charger_event(cp, local(yesterday, 23, 30), "status", status="Charging", error_code="E1")
    desk.charger_event(cp, local(first, 0, 0), "status", status="Faulted")
    # Just before the first day, a recovery, a presence change and another tenant: none count.
    desk.charger_event(cp, local(first, 0, 0) - timedelta(minutes=1), "status", status="Faulted")
    desk.charger_event(cp, local(today, 1), "status", status="Available", error_code="NoError")
    desk.charger_event(cp, local(today, 2), "offline")
    desk.charger_event("ACME-CP-0001", local(today, 3), "status", status="Faulted")
    page = as_user(app, "manager@demo.test").get("/").get_data(as_text=True)
    desc = chart_desc(page, "Connector faults per day, last 14 days")
    days = dict(re.findall(r"(\d+ \w{3}) (\d+)", desc.split(":", 1)[1]))
    assert len(days) == 14
    label = f"{today.day} {today:%b}"
    assert days[label] == "1"
    assert days[f"{yesterday.day} {yesterday:%b}"] == "1"
    assert days[f"{first.day} {first:%b}"] == "1"
    assert sum(int(n) for n in days.values()) == 3
    assert "3 faults in 14 days, counted in America/New_York days" in page
    link = (
        f"/reports/chargers?start={first.isoformat()}&amp;end={today.isoformat()}&amp;by=error_code"
    )
    assert link in page


def test_charts_are_accessible_svg(app, desk):
    fill_tickets(desk)
    page = as_user(app, "manager@demo.test").get("/").get_data(as_text=True)
    charts = re.findall(r'<svg [^>]*role="img" aria-labelledby="([^" ]+) ([^"]+)"', page)
    assert len(charts) == 3
    for title_id, desc_id in charts:
        assert f'<title id="{title_id}">' in page and f'<desc id="{desc_id}">' in page
    assert "<script" not in page.split("<main", 1)[1]


# --- who sees what ----------------------------------------------------------------------------


@pytest.mark.parametrize("email", ["manager@demo.test", "admin@demo.test", "viewer@demo.test"])
def test_those_who_read_reports_get_the_overview(app, desk, email):
    fill_tickets(desk)
    page = as_user(app, email).get("/").get_data(as_text=True)
    for ident in ("dash-open", "dash-at-risk", "dash-sla", "dash-mtta", "dash-mttr"):
        figure(page, ident)
    for ident in ("dash-chargers", "dash-online", "dash-offline", "dash-faulted"):
        figure(page, ident)
    assert 'href="/reports/sla?' in page and 'href="/reports/chargers?' in page
    assert "My work" not in page
    # The dashboard first, the lookup after it.
    assert (
        page.index('id="dash-tickets"')
        < page.index('id="dash-fleet"')
        < page.index("Find a charger")
    )


def test_an_agent_gets_the_lookup_first_and_no_report_figures(app, desk):
    fill_tickets(desk)
    page = as_user(app, "agent@demo.test").get("/").get_data(as_text=True)
    assert (
        page.index("Find a charger")
        < page.index('id="dash-fleet"')
        < page.index('id="dash-tickets"')
    )
    assert figure(page, "dash-open") == "7"
    chart_desc(page, "Open tickets by priority")
    chart_desc(page, "Connector faults per day, last 14 days")
    assert "Open tickets by status" not in page
    for absent in ("dash-sla", "dash-mtta", "dash-mttr", "/reports/", "SLA compliance"):
        assert absent not in page


def test_an_engineer_sees_only_their_own_work(app, desk):
    ids = fill_tickets(desk)
    desk.live_clock(ids["mine"], "resolution", "breached", NOW - timedelta(hours=1))
    desk.live_clock(ids["mine_held"], "resolution", "running", NOW + timedelta(hours=3))
    desk.live_clock(ids["new_p1"], "first_response", "breached", NOW - timedelta(hours=5))
    desk.live_clock(ids["managers"], "resolution", "warning", NOW + timedelta(hours=2))
    page = as_user(app, "engineer@demo.test").get("/").get_data(as_text=True)
    assert "My work" in page and 'href="/tickets?assignee=me"' in page
    assert figure(page, "dash-open") == "2"
    assert figure(page, "dash-at-risk") == "2"
    assert chart_desc(page, "My open tickets by status").endswith(
        "New 0, Assigned 0, In progress 1, On hold 1, Reopened 0."
    )
    listed = re.findall(r'data-key="([^"]+)"', page)
    assert listed == [desk.key(ids["mine"]), desk.key(ids["mine_held"])]  # due soonest first
    assert "dash-sla" not in page and "/reports/" not in page
    assert page.index('id="dash-tickets"') < page.index("Find a charger")


def test_a_vendor_sees_the_vendors_open_tickets_only(app, desk):
    ids = fill_tickets(desk)
    desk.ticket(NOW, "in_progress", "P2", vendor="Demo Field Services")
    desk.live_clock(ids["new_p1"], "first_response", "breached", NOW - timedelta(hours=5))
    page = as_user(app, "vendor@demo.test").get("/").get_data(as_text=True)
    assert "Demo Field Services" in page
    assert figure(page, "dash-open") == "2"
    assert chart_desc(page, "Open tickets by status").endswith(
        "New 0, Assigned 1, In progress 1, On hold 0, Reopened 0."
    )
    for absent in ("Find a charger", "dash-fleet", "dash-at-risk", "dash-sla", "data-key="):
        assert absent not in page
    fragment = as_user(app, "vendor@demo.test").get("/dashboard/tickets", headers=HX)
    assert figure(fragment.get_data(as_text=True), "dash-open") == "2"


def test_the_other_tenant_sees_none_of_it(app, desk):
    ids = fill_tickets(desk)
    desk.live_clock(ids["new_p1"], "first_response", "breached", NOW - timedelta(hours=5))
    desk.charger_event("DEMO-CP-0001", NOW, "status", status="Faulted")
    execute(desk.url, "UPDATE charger SET online = true WHERE ocpp_id = 'DEMO-CP-0001'")
    page = as_user(app, "admin@acme.test").get("/").get_data(as_text=True)
    assert figure(page, "dash-open") == "1"  # acme's own ticket
    assert figure(page, "dash-at-risk") == "0"
    assert figure(page, "dash-chargers") == "4" and figure(page, "dash-online") == "0"
    assert "DEMO-" not in page
    assert figure(page, "dash-faulted") == "0" and "0 faults in 14 days" in page


# --- fragments, htmx and the stream -----------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "path", "section"),
    [
        ("manager@demo.test", "/dashboard/tickets", "dash-tickets"),
        ("manager@demo.test", "/dashboard/fleet", "dash-fleet"),
        ("agent@demo.test", "/dashboard/tickets", "dash-tickets"),
        ("engineer@demo.test", "/dashboard/tickets", "dash-tickets"),
        ("vendor@demo.test", "/dashboard/tickets", "dash-tickets"),
    ],
)
def test_sections_are_fragments_for_htmx_and_the_page_otherwise(app, desk, email, path, section):
    fill_tickets(desk)
    client = as_user(app, email)
    fragment = client.get(path, headers=HX)
    body = fragment.get_data(as_text=True)
    assert fragment.status_code == 200 and "HX-Request" in fragment.headers["Vary"]
    assert body.lstrip().startswith(f'<section id="{section}"') and "<html" not in body
    whole = client.get(path)
    page = whole.get_data(as_text=True)
    assert whole.status_code == 200 and "HX-Request" in whole.headers["Vary"]
    assert "<html" in page and f'id="{section}"' in page
    # A history restore gets the page too.
    restored = client.get(path, headers={**HX, "HX-History-Restore-Request": "true"})
    assert "<html" in restored.get_data(as_text=True)


def test_the_lookup_alone_answers_htmx_on_the_home_page(app, desk):
    client = as_user(app, "agent@demo.test")
    response = client.get("/", query_string={"q": "0003"}, headers=HX)
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="charger-results"') and "DEMO-CP-0003" in body
    assert "dash-" not in body and "HX-Request" in response.headers["Vary"]


def test_sections_refresh_on_their_events_and_poll_as_a_fallback(app, desk):
    page = as_user(app, "manager@demo.test").get("/").get_data(as_text=True)
    assert 'sse-connect="/events/dashboard"' in page and 'hx-ext="sse"' in page
    assert 'hx-get="/dashboard/tickets" hx-trigger="sse:ticket, sse:resync, every 30s"' in page
    assert 'hx-get="/dashboard/fleet" hx-trigger="sse:charger, sse:resync, every 30s"' in page


def test_the_page_costs_the_same_queries_whatever_the_data(app, desk):
    def count() -> int:
        statements: list[str] = []

        def _count(conn, cursor, statement, *args):
            statements.append(statement)

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", _count)
        try:
            assert client.get("/").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", _count)
        return len(statements)

    app.config["DASHBOARD_PERIOD_SECONDS"] = 0  # the 30-day figures read on every request too
    client = as_user(app, "manager@demo.test")
    count()  # the first request registers the reports' snapshot variants (two writes)
    few = count()
    ids = fill_tickets(desk)
    for name in ("new_p1", "mine", "mine_held", "reopened"):
        desk.live_clock(ids[name], "resolution", "breached", NOW - timedelta(hours=1))
    for n in range(20):
        desk.charger_event("DEMO-CP-0002", NOW - timedelta(hours=n), "status", status="Faulted")
    assert count() == few


@pytest.fixture
def live_server(app):
    from cass.live import get_broker

    broker = get_broker(app)
    app.config["LIVE_HEARTBEAT_SECONDS"] = 0.5
    app.config["DASHBOARD_LIVE_INTERVAL"] = 0.3
    try:
        with serve(app) as url:
            yield url
    finally:
        broker.stop()


def test_the_stream_carries_ticket_and_charger_events_only(app, demo, database_url, live_server):
    session = signed_in(live_server, "agent@demo.test")
    response = session.get(f"{live_server}/events/dashboard", stream=True, timeout=(5, 10))
    assert response.headers["Content-Type"].startswith("text/event-stream")
    reader = SSEReader(response)
    try:
        assert reader.next(5).get("comment") == "connected"
        send(database_url, demo["demo"], "command", "7")
        send(database_url, demo["demo"], "ticket-5", 5)
        send(database_url, demo["acme"], "ticket", 9)  # another tenant
        send(database_url, demo["demo"], "ticket", 5)
        message = reader.next_event(3)
        assert message["event"] == "ticket" and json.loads(message["data"])["id"] == 5
        send(database_url, demo["demo"], "charger", "DEMO-CP-0004")
        message = reader.next_event(3)
        assert message["event"] == "charger"
        # A burst costs one refresh now and one when it is over, whatever its size.
        for n in range(10):
            send(database_url, demo["demo"], "ticket", 100 + n)
        got = [json.loads(reader.next_event(3)["data"])["id"]]
        while got[-1] != 109:
            got.append(json.loads(reader.next_event(3)["data"])["id"])
        assert len(got) < 10
    finally:
        reader.close()


def test_the_stream_needs_sign_in(app, demo, live_server):
    response = requests.get(f"{live_server}/events/dashboard", allow_redirects=False, timeout=5)
    assert response.status_code == 302
