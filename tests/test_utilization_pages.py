"""Utilization on the pages (issue 10, point 3): the report and its CSV, the charger and site
panels with htmx and without, bad periods, and who sees what."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from cass.charts import heat_map
from tests.conftest import as_user
from tests.ocpp_support import execute

DAY = date(2026, 1, 14)
PERIOD = {"start": "2026-01-14", "end": "2026-01-14"}
HX = {"HX-Request": "true"}


@pytest.fixture
def charging(database_url, demo):
    """DEMO-CP-0001 online, connector 1 charging 06:00-12:00 UTC on DAY (the demo tenant's zone
    is UTC unless set), and a session of 12 kWh."""
    start = datetime(2026, 1, 14, 6, tzinfo=UTC)
    rows = [
        (None, start - timedelta(days=2), "online", None),
        (1, start - timedelta(hours=1), "status", "Available"),
        (1, start, "status", "Charging"),
        (1, start + timedelta(hours=6), "status", "Available"),
    ]
    for connector, at, kind, status in rows:
        execute(
            database_url,
            "INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status) "
            "SELECT tenant_id, id, %s, %s, %s, %s FROM charger WHERE ocpp_id = 'DEMO-CP-0001'",
            (connector, at, kind, status),
        )
    execute(
        database_url,
        "INSERT INTO charging_session (tenant_id, charger_id, connector_no, started_at, "
        "stopped_at, energy_wh) SELECT tenant_id, id, 1, %s, %s, 12000 FROM charger "
        "WHERE ocpp_id = 'DEMO-CP-0001'",
        (start, start + timedelta(hours=6)),
    )
    execute(database_url, "UPDATE tenant SET timezone = 'UTC' WHERE slug = 'demo'")
    return demo


def site_of(database_url: str, ocpp_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT site_id FROM charger WHERE ocpp_id = %s", (ocpp_id,)).fetchone()
    assert row
    return int(row[0])


def test_the_report_groups_by_connector_charger_and_site_and_downloads_as_csv(
    app, charging, database_url
):
    manager = as_user(app, "manager@demo.test")
    answer = manager.get("/reports/utilization.csv", query_string={**PERIOD, "by": "connector"})
    assert answer.status_code == 200
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["Connector", "Connectors", "Charging (%)"]
    first = rows[1]
    assert first[0] == "DEMO-CP-0001 #1"
    assert first[2] == "25.0"  # 6 of 24 hours
    assert first[8:] == ["1", "1.0", "12.0", "6.0"]  # sessions, per day, mean kWh, hours
    assert rows[-1][0] == "Total" and rows[-1][1] == "24"  # 12 chargers, 2 connectors each

    page = manager.get("/reports/utilization", query_string={**PERIOD, "by": "site"})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Utilization" in html and "<svg" in html
    assert manager.get("/reports/utilization", query_string={"by": "model"}).status_code == 422


def test_the_charger_panel_is_a_fragment_for_htmx_and_a_page_otherwise(app, charging):
    agent = as_user(app, "agent@demo.test")
    url = "/chargers/DEMO-CP-0001/utilization"
    fragment = agent.get(url, query_string=PERIOD, headers=HX)
    assert fragment.status_code == 200
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="utilization-panel"')
    assert "<html" not in html and "Connector 1" in html and "25.0 %" in html
    assert "Share of connector-time charging by weekday and hour" in html
    assert "Wed 06 — " in html  # a heat cell's tooltip

    page = agent.get(url, query_string=PERIOD)
    assert page.status_code == 200
    assert "<html" in page.get_data(as_text=True)
    assert 'id="utilization-panel"' in page.get_data(as_text=True)

    detail = agent.get("/chargers/DEMO-CP-0001").get_data(as_text=True)
    assert 'hx-get="/chargers/DEMO-CP-0001/utilization"' in detail

    bad = agent.get(url, query_string={"start": "2026-02-30"}, headers=HX)
    assert bad.status_code == 422 and "Use a date like" in bad.get_data(as_text=True)


def test_the_site_panel_shows_its_chargers(app, charging, database_url):
    site = site_of(database_url, "DEMO-CP-0001")
    manager = as_user(app, "manager@demo.test")
    html = manager.get(f"/sites/{site}/utilization", query_string=PERIOD, headers=HX).get_data(
        as_text=True
    )
    assert "DEMO-CP-0001" in html and "Total" in html
    page = manager.get(f"/sites/{site}/utilization", query_string=PERIOD)
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    assert f'hx-get="/sites/{site}/utilization"' in manager.get(f"/sites/{site}").get_data(
        as_text=True
    )


def test_other_tenants_and_vendors_get_404(app, charging, database_url):
    site = site_of(database_url, "DEMO-CP-0001")
    acme = as_user(app, "admin@acme.test")
    assert acme.get("/chargers/DEMO-CP-0001/utilization", headers=HX).status_code == 404
    assert acme.get(f"/sites/{site}/utilization", headers=HX).status_code == 404
    rows = acme.get("/reports/utilization.csv", query_string={**PERIOD, "by": "charger"})
    names = [r.split(",")[0] for r in rows.get_data(as_text=True).splitlines()[1:-1]]
    assert names and all(name.startswith("ACME-CP-") for name in names)
    vendor = as_user(app, "vendor@demo.test")
    assert vendor.get(f"/sites/{site}/utilization").status_code == 403
    assert vendor.get("/reports/utilization").status_code == 403


def test_the_heat_map_draws_cells_leaves_missing_ones_blank_and_escapes_labels():
    svg = heat_map("Load <b>", ["Mon", "Tue"], ["00", "01"], [[0, 50], [None, 100]], unit="%")
    assert svg.count('<rect class="bar"') == 3
    assert "Load &lt;b&gt;" in svg and "<b>" not in svg
    assert "Highest: 100 % (Tue 01)" in svg
    assert "No data" in heat_map("Empty", ["Mon"], ["00"], [[None]])
    with pytest.raises(ValueError):
        heat_map("Bad", ["Mon"], ["00", "01"], [[1]])
