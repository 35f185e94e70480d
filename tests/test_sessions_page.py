"""The charging-session list at /sessions and its CSV (issue 5, point 6): filters, keyset
"load more", kWh, duration and cost, htmx fragments, tenants."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import as_user
from tests.ocpp_support import execute, query

HX = {"HX-Request": "true"}
BASE = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def add_session(
    database_url,
    ocpp_id,
    started,
    minutes=None,
    wh=None,
    tag="DEMO-TAG-0001",
    cost=None,
    connector=1,
    reason=None,
):
    """Insert a session as the bridge would leave it; return its id."""
    stopped = started + timedelta(minutes=minutes) if minutes is not None else None
    execute(
        database_url,
        "INSERT INTO charging_session (tenant_id, charger_id, connector_no, id_tag, started_at, "
        "meter_start, stopped_at, meter_stop, energy_wh, cost, currency, stop_reason) "
        "SELECT tenant_id, id, %s, %s, %s, 0, %s, %s, %s, %s, %s, %s FROM charger "
        "WHERE ocpp_id = %s",
        (
            connector,
            tag,
            started,
            stopped,
            wh,
            wh,
            cost,
            "EUR" if cost is not None else None,
            reason,
            ocpp_id,
        ),
    )
    return query(database_url, "SELECT max(id) FROM charging_session")[0][0]


@pytest.fixture
def agent(app, demo):
    return as_user(app, "agent@demo.test")


@pytest.fixture
def sessions(database_url, demo):
    """A few sessions across chargers, tags, days and states, and one of the other tenant."""
    return {
        "closed": add_session(
            database_url, "DEMO-CP-0001", BASE, 95, 12345, cost="5.1234", reason="EVDisconnected"
        ),
        "open": add_session(database_url, "DEMO-CP-0002", BASE + timedelta(days=1)),
        "other_tag": add_session(
            database_url, "DEMO-CP-0001", BASE + timedelta(days=2), 30, 2000, tag="=cmd|calc"
        ),
        "acme": add_session(database_url, "ACME-CP-0001", BASE, 10, 500, tag="ACME-TAG-0001"),
    }


def rows_of(html: str) -> list[str]:
    return [part.split('"')[0] for part in html.split('<tr id="session-')[1:]]


def test_the_list_shows_kwh_duration_and_cost_newest_first(agent, sessions):
    page = agent.get("/sessions")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert rows_of(html) == [str(sessions[k]) for k in ("other_tag", "open", "closed")]
    assert "12.345" in html and "1 h 35 min" in html and "5.12 EUR" in html
    assert "charging" in html  # the open one
    assert "ACME" not in html


def test_filters(app, agent, sessions, demo):
    def ids(**params):
        response = agent.get("/sessions", query_string=params)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
        return {int(i) for i in rows_of(response.get_data(as_text=True))}

    assert ids(state="open") == {sessions["open"]}
    assert ids(state="closed") == {sessions["closed"], sessions["other_tag"]}
    assert ids(charger="demo-cp-0001") == {sessions["closed"], sessions["other_tag"]}
    assert ids(charger="DEMO-CP-%") == set()  # no wildcards
    assert ids(id_tag="=cmd|calc") == {sessions["other_tag"]}
    assert ids(since="2026-11-02") == {sessions["open"], sessions["other_tag"]}
    assert ids(until="2026-11-02") == {sessions["closed"], sessions["open"]}
    assert ids(since="2026-11-02", until="2026-11-02") == {sessions["open"]}
    first, second = _site_of(app, demo["DEMO-CP-0001"]), _site_of(app, demo["DEMO-CP-0002"])
    assert first != second
    assert ids(site=str(second)) == {sessions["open"]}
    assert ids(site=str(first), state="closed") == {sessions["closed"], sessions["other_tag"]}
    # The other tenant's charger or site finds nothing here.
    assert ids(charger="ACME-CP-0001") == set()
    assert ids(site=str(_site_of(app, demo["ACME-CP-0001"]))) == set()


def _site_of(app, charger_id):
    from cass.extensions import db
    from cass.models import Charger
    from cass.tenancy import system_context

    with app.app_context(), system_context():
        return db.session.get(Charger, charger_id).site_id


def test_filters_not_understood_are_422_with_a_message(agent, sessions):
    response = agent.get("/sessions?since=yesterday&state=maybe&site=x")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "is not a date" in html and "Unknown state" in html and "Unknown site." in html
    reversed_period = agent.get("/sessions?since=2026-11-03&until=2026-11-01")
    assert reversed_period.status_code == 422
    assert "“To” is before “From”." in reversed_period.get_data(as_text=True)


def test_keyset_pages_with_htmx_load_more(agent, database_url, demo):
    made = [
        add_session(database_url, "DEMO-CP-0003", BASE + timedelta(minutes=n), 5, 100)
        for n in range(57)
    ]
    # Two sessions starting at the same instant are told apart by id.
    made.append(add_session(database_url, "DEMO-CP-0004", BASE + timedelta(minutes=56), 5, 100))
    starts = dict(
        query(
            database_url, "SELECT id, started_at FROM charging_session WHERE id = ANY(%s)", (made,)
        )
    )
    expected = sorted(made, key=lambda i: (starts[i], i), reverse=True)

    first = agent.get("/sessions")
    html = first.get_data(as_text=True)
    assert [int(i) for i in rows_of(html)] == expected[:50]
    assert "Load more" in html
    more = html.split('hx-get="')[-1].split('"')[0].replace("&amp;", "&")
    assert "after=" in more
    rest = agent.get(more, headers=HX)
    assert rest.status_code == 200
    fragment = rest.get_data(as_text=True)
    assert "<html" not in fragment and "<table" not in fragment
    assert [int(i) for i in rows_of(fragment)] == expected[50:]
    assert "Load more" not in fragment
    # Without htmx, the same link is a whole page of the remaining rows.
    assert "<html" in agent.get(more).get_data(as_text=True)


def test_htmx_filter_change_gets_the_table_only(agent, sessions):
    response = agent.get("/sessions?state=open", headers=HX)
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="session-list">') and "<html" not in html
    assert response.headers["Vary"] and "HX-Request" in response.headers["Vary"]


def test_csv_export_streams_every_matching_session(app, agent, sessions):
    # Agents read the list; downloading it is for managers and admins.
    assert agent.get("/sessions.csv").status_code == 403
    assert "Download CSV" not in agent.get("/sessions").get_data(as_text=True)
    manager = as_user(app, "manager@demo.test")
    assert "Download CSV" in manager.get("/sessions").get_data(as_text=True)
    response = manager.get("/sessions.csv?charger=DEMO-CP-0001")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:4] == ["session", "charger", "connector", "site"]
    by_id = {row[0]: row for row in rows[1:]}
    assert set(by_id) == {str(sessions["closed"]), str(sessions["other_tag"])}
    closed = dict(zip(rows[0], by_id[str(sessions["closed"])], strict=True))
    assert closed["duration_s"] == str(95 * 60)
    assert closed["energy_kwh"] == "12.345"
    assert closed["cost"] == "5.1234" and closed["currency"] == "EUR"
    assert closed["started_at"] == "2026-11-01T08:00:00+00:00"
    # A tag that a spreadsheet would run as a formula is defused.
    assert by_id[str(sessions["other_tag"])][4] == "'=cmd|calc"


def test_vendors_cannot_see_sessions(app, demo):
    vendor = as_user(app, "vendor@demo.test")
    assert vendor.get("/sessions").status_code == 403
    assert vendor.get("/sessions.csv").status_code == 403


def test_the_other_tenant_sees_only_its_own(app, demo, sessions):
    acme = as_user(app, "agent@acme.test")
    html = acme.get("/sessions").get_data(as_text=True)
    assert rows_of(html) == [str(sessions["acme"])]
    body = as_user(app, "admin@acme.test").get("/sessions.csv").get_data(as_text=True)
    assert "DEMO-CP" not in body and "ACME-CP-0001" in body
