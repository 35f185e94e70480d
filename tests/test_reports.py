"""Reports (issue 7, point 2): every aggregate against hand-counted fixtures, the tenant's days,
filters, the page with and without htmx, bad filters, CSV, roles and tenants.

The fixtures live in March 2025, before any demo data, in a tenant whose day is New York's, so
a row just after midnight UTC on 1 March belongs to February.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import as_user
from tests.ocpp_support import execute, query

HX = {"HX-Request": "true"}
MARCH = {"start": "2025-03-01", "end": "2025-03-31"}


def at(day: int, hour: int = 12, month: int = 3) -> datetime:
    """Return an instant in 2025 (UTC)."""
    return datetime(2025, month, day, hour, tzinfo=UTC)


class Desk:
    """Insert tickets, clocks, worklogs and events straight into the tables, as the app would."""

    def __init__(self, url: str, demo: dict[str, int]) -> None:
        self.url, self.demo = url, demo
        self.tenant = demo["demo"]
        self.number = 90000

    def site(self, ocpp_id: str) -> int:
        return query(self.url, "SELECT site_id FROM charger WHERE id = %s", (self.demo[ocpp_id],))[
            0
        ][0]

    def ticket(
        self,
        created: datetime,
        status: str = "new",
        priority: str = "P3",
        category: str = "hardware",
        charger: str | None = "DEMO-CP-0001",
        engineer: str | None = None,
        vendor: str | None = None,
        resolved: datetime | None = None,
        responded: datetime | None = None,
        tenant: str = "demo",
    ) -> int:
        self.number += 1
        charger_id = self.demo[charger] if charger else None
        execute(
            self.url,
            "INSERT INTO ticket (tenant_id, number, title, category, priority, status, channel,"
            " charger_id, site_id, assignee_user_id, assignee_vendor_id, created_at, updated_at,"
            " resolved_at) VALUES (%s, %s, 'Report fixture', %s, %s, %s,"
            " 'phone', %s, (SELECT site_id FROM charger WHERE id = %s), %s, %s, %s, %s, %s)",
            (
                self.demo[tenant],
                self.number,
                category,
                priority,
                status,
                charger_id,
                charger_id,
                self.demo[engineer] if engineer else None,
                self.demo[f"vendor:{vendor}"] if vendor else None,
                created,
                created,
                resolved,
            ),
        )
        ticket = query(
            self.url,
            "SELECT id FROM ticket WHERE tenant_id = %s AND number = %s",
            (self.demo[tenant], self.number),
        )[0][0]
        if responded is not None:
            # The SLA engine records the first response by stopping this clock.
            self.clock(ticket, "first_response", "met", created, stopped=responded)
        return ticket

    def clock(
        self,
        ticket: int,
        clock: str,
        state: str,
        started: datetime,
        stopped: datetime | None = None,
    ) -> None:
        execute(
            self.url,
            "INSERT INTO sla_clock (tenant_id, ticket_id, clock, target_minutes, started_at, state,"
            " stopped_at) SELECT tenant_id, id, %s, 60, %s, %s, %s FROM ticket WHERE id = %s",
            (clock, started, state, stopped, ticket),
        )

    def worklog(self, ticket: int, author: str, when: datetime, minutes: int) -> None:
        execute(
            self.url,
            "INSERT INTO worklog (tenant_id, ticket_id, author_id, body, minutes, created_at)"
            " SELECT tenant_id, id, %s, 'fixture', %s, %s FROM ticket WHERE id = %s",
            (self.demo[author], minutes, when, ticket),
        )

    def event(self, ticket: int, actor: str, when: datetime) -> None:
        execute(
            self.url,
            "INSERT INTO ticket_event (tenant_id, ticket_id, actor_id, at, kind, field,"
            " from_value, to_value) SELECT tenant_id, id, %s, %s, 'status', 'status', 'new',"
            " 'assigned' FROM ticket WHERE id = %s",
            (self.demo[actor], when, ticket),
        )

    def charger_event(self, ocpp_id: str, when: datetime, kind: str, **values: str) -> None:
        execute(
            self.url,
            "INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status,"
            " error_code, handled_at) SELECT tenant_id, id, 1, %s, %s, %s, %s, now()"
            " FROM charger WHERE id = %s",
            (when, kind, values.get("status"), values.get("error_code"), self.demo[ocpp_id]),
        )

    def session(self, ocpp_id: str, started: datetime, wh: int, cost: str, currency="EUR") -> None:
        execute(
            self.url,
            "INSERT INTO charging_session (tenant_id, charger_id, connector_no, started_at,"
            " stopped_at, energy_wh, cost, currency) SELECT tenant_id, id, 1, %s, %s, %s, %s, %s"
            " FROM charger WHERE id = %s",
            (started, started + timedelta(hours=1), wh, cost, currency, self.demo[ocpp_id]),
        )


@pytest.fixture
def desk(database_url, demo) -> Desk:
    execute(database_url, "UPDATE tenant SET timezone = 'America/New_York' WHERE slug = 'demo'")
    return Desk(database_url, demo)


@pytest.fixture
def manager(app, demo):
    return as_user(app, "manager@demo.test")


def table_of(client, slug: str, **params: str) -> list[list[str]]:
    """Return the report's CSV as rows (the header first)."""
    response = client.get(f"/reports/{slug}.csv", query_string={**MARCH, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def by_label(rows: list[list[str]]) -> dict[str, list[str]]:
    return {row[0]: row[1:] for row in rows[1:]}


# --- the aggregates ---------------------------------------------------------------------------


def test_tickets_by_status_priority_and_site_count_the_range_in_the_tenants_days(manager, desk):
    desk.ticket(at(2), "new", "P1")
    desk.ticket(at(3), "in_progress", "P1", engineer="engineer@demo.test")
    desk.ticket(at(4), "resolved", "P2", resolved=at(5))
    desk.ticket(at(31, 23), "closed", "P2", charger="DEMO-CP-0005")  # 19:00 in New York
    desk.ticket(at(1, 3), "cancelled", "P3")  # 22:00 on 28 February in New York: not March
    desk.ticket(at(1, 4, month=4), "new", "P4")  # 0:00 on 1 April in New York: not March
    desk.ticket(at(10), "on_hold", "P4", tenant="acme", charger="ACME-CP-0001")  # other tenant

    status = table_of(manager, "tickets-by", by="status")
    assert status[0] == ["Status", "Created", "Still open", "Resolved or closed", "Cancelled"]
    assert status[1:] == [
        ["New", "1", "1", "0", "0"],
        ["In progress", "1", "1", "0", "0"],
        ["Resolved", "1", "0", "1", "0"],
        ["Closed", "1", "0", "1", "0"],
        ["Total", "4", "2", "2", "0"],
    ]
    priority = by_label(table_of(manager, "tickets-by", by="priority"))
    assert priority == {
        "P1 · critical": ["2", "2", "0", "0"],
        "P2 · high": ["2", "0", "2", "0"],
        "Total": ["4", "2", "2", "0"],
    }
    sites = table_of(manager, "tickets-by", by="site")
    first, fifth = desk.site("DEMO-CP-0001"), desk.site("DEMO-CP-0005")
    names = dict(query(desk.url, "SELECT id, name FROM site WHERE id IN (%s, %s)", (first, fifth)))
    if first != fifth:
        # Biggest first.
        assert [r[0] for r in sites[1:]] == [names[first], names[fifth], "Total"]
    engineers = by_label(table_of(manager, "tickets-by", by="engineer"))
    name = query(desk.url, "SELECT name FROM app_user WHERE email = 'engineer@demo.test'")[0][0]
    assert engineers == {
        "Unassigned": ["3", "1", "2", "0"],
        name: ["1", "1", "0", "0"],
        "Total": ["4", "2", "2", "0"],
    }


def test_days_is_the_last_n_days_up_to_the_end(manager, desk):
    desk.ticket(at(24))
    desk.ticket(at(25))
    desk.ticket(at(31))
    week = table_of(manager, "tickets-by", days="7", end="2025-03-31", start="")
    assert by_label(week)["Total"][0] == "2"
    response = manager.get("/reports/tickets-by", query_string={"days": "7", "end": "2025-03-31"})
    assert "2025-03-25 to 2025-03-31" in response.get_data(as_text=True)


def test_ticket_filters_narrow_every_figure(manager, desk):
    desk.ticket(at(2), "new", "P1", category="payment")
    desk.ticket(at(3), "new", "P1", category="hardware", engineer="engineer@demo.test")
    desk.ticket(at(4), "resolved", "P2", category="payment", resolved=at(5))
    assert by_label(table_of(manager, "tickets-by", by="status", priority="P1"))["Total"] == [
        "2",
        "2",
        "0",
        "0",
    ]
    assert by_label(table_of(manager, "tickets-by", by="priority", category="payment")) == {
        "P1 · critical": ["1", "1", "0", "0"],
        "P2 · high": ["1", "0", "1", "0"],
        "Total": ["2", "1", "1", "0"],
    }
    engineer = str(desk.demo["engineer@demo.test"])
    assert by_label(table_of(manager, "tickets-by", engineer=engineer))["Total"][0] == "1"


def test_sla_compliance_counts_met_against_decided_clocks(manager, desk):
    a = desk.ticket(at(2), priority="P1")
    b = desk.ticket(at(3), priority="P1")
    c = desk.ticket(at(4), priority="P2")
    desk.clock(a, "first_response", "met", at(2))
    desk.clock(a, "resolution", "breached", at(2))
    desk.clock(b, "first_response", "met", at(3))
    desk.clock(b, "resolution", "running", at(3))
    desk.clock(c, "first_response", "breached", at(4))
    desk.clock(c, "resolution", "cancelled", at(4))  # made no promise: left out
    april = desk.ticket(at(1, 12, month=4), priority="P2")
    desk.clock(april, "on_site", "met", at(1, 12, month=4))  # an April ticket: left out

    clocks = table_of(manager, "sla", by="clock")
    assert clocks[0] == ["Clock", "Clocks", "Met", "Breached", "Still running", "Compliance"]
    assert clocks[1:] == [
        ["First response", "3", "2", "1", "0", "66.7"],
        ["Resolution", "2", "0", "1", "1", "0.0"],
        ["Total", "5", "2", "2", "1", "50.0"],
    ]
    assert by_label(table_of(manager, "sla", by="priority")) == {
        "P1 · critical": ["4", "2", "1", "1", "66.7"],
        "P2 · high": ["1", "0", "1", "0", "0.0"],
        "Total": ["5", "2", "2", "1", "50.0"],
    }


def test_response_and_resolution_times_trend_by_week(manager, desk):
    # Week of Monday 3 March: two tickets, answered after 2 h and 4 h, one solved after 10 h.
    desk.ticket(at(3, 8), responded=at(3, 10), resolved=at(3, 18), status="resolved")
    desk.ticket(at(4, 8), responded=at(4, 12))
    # Week of 10 March: one ticket solved after 48 h (it was created in the week before).
    desk.ticket(at(9, 8), resolved=at(11, 8), status="closed")
    rows = table_of(manager, "resolution", by="week")
    assert rows[0] == [
        "Week",
        "Created",
        "First responses",
        "Mean time to first response (h)",
        "Resolved",
        "Mean time to resolve (h)",
    ]
    weeks = by_label(rows)
    # 1 March 2025 is a Saturday: the first week starts on Monday 24 February.
    assert list(weeks)[:3] == ["2025-02-24", "2025-03-03", "2025-03-10"]
    assert weeks["2025-02-24"] == ["0", "0", "", "0", ""]
    assert weeks["2025-03-03"] == ["3", "2", "3.0", "1", "10.0"]
    assert weeks["2025-03-10"] == ["0", "0", "", "1", "48.0"]
    assert weeks["Whole period"] == ["3", "2", "3.0", "2", "29.0"]
    days = by_label(table_of(manager, "resolution", by="day"))
    assert len(days) == 31 + 1 and days["2025-03-03"] == ["1", "1", "2.0", "1", "10.0"]


def test_engineer_workload_counts_open_resolved_worklogs_and_changes(manager, desk):
    engineer, boss = "engineer@demo.test", "manager@demo.test"
    open_one = desk.ticket(at(2), "in_progress", engineer=engineer)
    desk.ticket(at(3), "resolved", engineer=engineer, resolved=at(3, 18))
    desk.ticket(at(1, 12, month=2), "resolved", engineer=engineer, resolved=at(20, 12, month=2))
    desk.worklog(open_one, engineer, at(2, 13), 30)
    desk.worklog(open_one, engineer, at(5, 13), 45)
    desk.worklog(open_one, boss, at(1, 12, month=2), 15)  # February: left out
    desk.event(open_one, engineer, at(2, 14))
    desk.event(open_one, boss, at(6, 14))
    rows = by_label(table_of(manager, "workload"))
    name = query(desk.url, "SELECT name FROM app_user WHERE id = %s", (desk.demo[engineer],))[0][0]
    boss_name = query(desk.url, "SELECT name FROM app_user WHERE id = %s", (desk.demo[boss],))
    demo_open = query(
        desk.url,
        "SELECT count(*) FROM ticket WHERE assignee_user_id = %s AND number < 90000"
        " AND status IN ('new','assigned','in_progress','on_hold','reopened')",
        (desk.demo[engineer],),
    )[0][0]
    assert rows[name] == [str(1 + demo_open), "1", "6.0", "2", "75", "1"]
    assert rows[boss_name[0][0]][3:] == ["0", "0", "1"]


def test_charger_faults_by_charger_code_and_model_with_uptime(manager, desk):
    execute(desk.url, "DELETE FROM charger_event")
    desk.charger_event(
        "DEMO-CP-0001", at(2), "status", status="Faulted", error_code="GroundFailure"
    )
    desk.charger_event("DEMO-CP-0001", at(3), "status", status="Faulted", error_code="NoError")
    desk.charger_event("DEMO-CP-0001", at(4), "status", status="Available", error_code="NoError")
    desk.charger_event(
        "DEMO-CP-0002", at(5), "status", status="Available", error_code="PowerMeterFailure"
    )
    desk.charger_event("DEMO-CP-0002", at(5, 1, month=4), "status", status="Faulted")  # April
    codes = table_of(manager, "chargers", by="error_code")
    assert codes[1:] == [
        ["Faulted (no code)", "1", "1"],
        ["GroundFailure", "1", "1"],
        ["PowerMeterFailure", "1", "1"],
        ["Total", "3", "2"],
    ]
    chargers = table_of(manager, "chargers", by="charger")
    assert chargers[0] == [
        "Charger",
        "Chargers",
        "Chargers with faults",
        "Faults",
        "Uptime",
        "Offline (h)",
    ]
    assert chargers[1][:4] == ["DEMO-CP-0001", "1", "1", "2"]
    assert chargers[2][:4] == ["DEMO-CP-0002", "1", "1", "1"]
    assert chargers[-1][:4] == ["Total", "12", "2", "3"]


def test_charger_uptime_is_the_online_share_of_known_time(manager, desk):
    execute(
        desk.url, "DELETE FROM charger_event WHERE charger_id = %s", (desk.demo["DEMO-CP-0003"],)
    )
    # Online from 1 March 05:00 UTC (0:00 in New York), offline for 24 h on 11 March.
    desk.charger_event("DEMO-CP-0003", at(1, 5), "online")
    desk.charger_event("DEMO-CP-0003", at(11, 4), "offline")
    desk.charger_event("DEMO-CP-0003", at(12, 4), "online")
    rows = by_label(table_of(manager, "chargers", by="charger"))
    # March in New York has 743 hours (DST starts on 9 March); 24 of them offline.
    assert rows["DEMO-CP-0003"][3:] == [f"{100 * 719 / 743:.1f}", "24.0"]


def test_sessions_per_day_week_and_month_with_energy_and_revenue(manager, desk):
    desk.session("DEMO-CP-0001", at(3, 9), 10_000, "3.5000")
    desk.session("DEMO-CP-0002", at(3, 20), 5_500, "2.2500")
    desk.session("DEMO-CP-0001", at(17, 9), 20_000, "7.0000")
    desk.session("DEMO-CP-0001", at(1, 2), 99_000, "99.0000")  # 28 February in New York
    months = table_of(manager, "sessions", by="month")
    assert months[0] == ["Month", "Currency", "Sessions", "Energy (kWh)", "Revenue"]
    assert months[1:] == [
        ["2025-03-01", "EUR", "3", "35.500", "12.7500"],
        ["Whole period", "EUR", "3", "35.500", "12.7500"],
    ]
    days = by_label(table_of(manager, "sessions", by="day"))
    assert days["2025-03-03"] == ["EUR", "2", "15.500", "5.7500"]
    assert days["2025-03-04"] == ["", "0", "0.000", "0"]
    site = str(desk.site("DEMO-CP-0002"))
    if site != str(desk.site("DEMO-CP-0001")):
        assert by_label(table_of(manager, "sessions", by="month", site=site))["Whole period"] == [
            "EUR",
            "1",
            "5.500",
            "2.2500",
        ]


# --- the pages --------------------------------------------------------------------------------


def test_the_index_lists_every_report(manager):
    html = manager.get("/reports").get_data(as_text=True)
    for slug in ("tickets-by", "sla", "resolution", "workload", "chargers", "sessions"):
        assert f'href="/reports/{slug}"' in html


@pytest.mark.parametrize(
    "slug", ["tickets-by", "sla", "resolution", "workload", "chargers", "sessions"]
)
def test_each_report_page_has_filters_a_chart_and_a_table(manager, desk, slug):
    desk.ticket(
        at(2), "resolved", resolved=at(3), responded=at(2, 14), engineer="engineer@demo.test"
    )
    response = manager.get(f"/reports/{slug}", query_string=MARCH)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'id="report-filters"' in html and "<html" in html
    assert "<svg" in html and 'role="img"' in html
    assert '<table class="report">' in html
    assert f'href="/reports/{slug}.csv?' in html


def test_a_page_shows_the_first_rows_and_the_csv_all(manager, desk, monkeypatch, app):
    monkeypatch.setitem(app.jinja_env.globals, "page_rows", 5)
    html = manager.get("/reports/chargers", query_string={**MARCH, "by": "charger"}).get_data(
        as_text=True
    )
    assert html.count('<tr><th scope="row">DEMO-CP-') == 5
    assert "The first 5 of 12 rows; the CSV has them all." in html
    assert len(table_of(manager, "chargers", by="charger")) == 1 + 12 + 1


def test_htmx_gets_the_report_body_only(manager, desk):
    response = manager.get(
        "/reports/tickets-by", query_string={**MARCH, "by": "priority"}, headers=HX
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="report-body"') and "<html" not in html
    assert "HX-Request" in response.headers.get("Vary", "")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2025-13-01"}, "start"),
        ({"start": "2025-03-10", "end": "2025-03-01"}, "end"),
        ({"start": "2000-01-01", "end": "2025-03-01"}, "start"),
        ({"by": "weather"}, "by"),
        ({"priority": "P9"}, "priority"),
        ({"site": "abc"}, "site"),
        ({"days": "0"}, "days"),
        ({"days": "x"}, "days"),
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_bad_filters_get_422_naming_the_field(manager, desk, params, field, htmx):
    response = manager.get("/reports/tickets-by", query_string=params, headers=HX if htmx else {})
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"<strong>{field}</strong>" in html
    assert ("<html" in html) is not htmx
    assert manager.get("/reports/tickets-by.csv", query_string=params).status_code == 422


def test_an_unknown_report_is_404(manager):
    assert manager.get("/reports/nothing").status_code == 404
    assert manager.get("/reports/nothing.csv").status_code == 404


def test_report_csv_guards_formulas_in_names(manager, desk, database_url):
    execute(
        database_url,
        "UPDATE site SET name = '=HYPERLINK(\"x\")' WHERE id = %s",
        (desk.site("DEMO-CP-0001"),),
    )
    desk.ticket(at(2))
    rows = table_of(manager, "tickets-by", by="site")
    assert rows[1][0] == '\'=HYPERLINK("x")'


@pytest.mark.parametrize(
    ("email", "page", "download"),
    [
        ("admin@demo.test", 200, 200),
        ("manager@demo.test", 200, 200),
        ("viewer@demo.test", 200, 403),
        ("agent@demo.test", 403, 403),
        ("engineer@demo.test", 403, 403),
        ("vendor@demo.test", 403, 403),
    ],
)
def test_who_sees_and_downloads_reports(app, desk, email, page, download):
    client = as_user(app, email)
    assert client.get("/reports/sla", query_string=MARCH).status_code == page
    assert client.get("/reports/sla.csv", query_string=MARCH).status_code == download


def test_the_other_tenant_sees_none_of_it(app, desk):
    desk.ticket(at(2), "new", "P1")
    desk.session("DEMO-CP-0001", at(3, 9), 10_000, "3.5000")
    acme = as_user(app, "admin@acme.test")
    assert by_label(table_of(acme, "sessions", by="month"))["Whole period"][1] == "0"
    assert by_label(table_of(acme, "tickets-by"))["Total"][0] == "0"
    people = {r[0] for r in table_of(acme, "workload")[1:-1]}
    acme_people = {
        r[0]
        for r in query(
            desk.url, "SELECT name FROM app_user WHERE tenant_id = %s", (desk.demo["acme"],)
        )
    }
    assert people and people <= acme_people
    chargers = {r[0] for r in table_of(acme, "chargers", by="charger")[1:-1]}
    assert chargers == {f"ACME-CP-000{n}" for n in range(1, 5)}
