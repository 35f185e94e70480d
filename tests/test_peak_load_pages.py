"""Peak load on the pages (issue 10, points 2, 3 and 6): the report per top quarter hour, day,
week and site against hand-computed figures and its CSV, the site panel with htmx and without,
bad periods, and tenants. The meter values are those of tests/test_peak_load.py."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest

from tests.conftest import as_user
from tests.ocpp_support import execute
from tests.test_peak_load import (  # noqa: F401 (site: a fixture)
    ENERGY,
    POWER,
    WED,
    at,
    meter,
    site,
    steady_4_kw_over_the_25_hour_day,
)

PERIOD = {"start": WED.isoformat(), "end": WED.isoformat()}
HX = {"HX-Request": "true"}


@pytest.fixture
def berlin(database_url, demo):
    """Put the demo tenant in Berlin, the zone the fixtures' hours are local to."""
    execute(database_url, "UPDATE tenant SET timezone = 'Europe/Berlin' WHERE slug = 'demo'")
    return demo


@pytest.fixture
def loads(berlin, site, meter):  # noqa: F811 (the imported fixtures)
    """Write test_peak_load's first fixture: 24 kW at 10:15, 21 kW at 10:00, 12.25 kWh."""
    _, one, energy_only = site
    meter(one, 1, at(10), POWER, 7000, "W")
    meter(one, 1, at(10 + 5 / 60), POWER, 11000, "W")
    meter(one, 1, at(10.25), POWER, 11, "kW")
    for phase in ("L1", "L2", "L3"):
        meter(one, 2, at(10.25), POWER, 3000, "W", phase)
    meter(energy_only, 1, at(9.75), ENERGY, 1000, "Wh")
    meter(energy_only, 1, at(10), ENERGY, 1000, "Wh")
    meter(energy_only, 1, at(10.25), ENERGY, 4, "kWh")
    meter(energy_only, 1, at(10.5), ENERGY, 5000, "Wh")
    meter(energy_only, 1, at(11), ENERGY, 6000, "Wh")
    meter(energy_only, 1, at(11.25), ENERGY, 10, "Wh")
    return site


def rows_of(answer) -> list[list[str]]:
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    return list(csv.reader(io.StringIO(answer.get_data(as_text=True).lstrip("\ufeff"))))


def test_top_quarter_hours_name_their_connectors_in_the_csv(app, loads):
    site_id, one, other = loads
    manager = as_user(app, "manager@demo.test")
    rows = rows_of(
        manager.get(
            "/reports/peak-load.csv", query_string={**PERIOD, "site": site_id, "by": "peak"}
        )
    )
    assert rows[0] == ["Quarter hour begins", "Load kW", "Energy kWh", "Connectors drawing power"]
    assert rows[1:3] == [
        # 11 + 9 kW from power; the register's 1 kWh in the quarter (4 kW), 2.75 + 2.25 + 1 kWh.
        [
            "2026-01-14 10:15+01:00",
            "24.0",
            "6.0",
            f"{one} #1: 11.0 kW, {one} #2: 9.0 kW, {other} #1: 4.0 kW",
        ],
        ["2026-01-14 10:00+01:00", "21.0", "5.25", f"{other} #1: 12.0 kW, {one} #1: 9.0 kW"],
    ]
    # 1 kWh spread over 10:30-11:00; then the quarters with a register but no energy.
    assert [r[:3] for r in rows[3:]] == [
        ["2026-01-14 10:30+01:00", "2.0", "0.5"],
        ["2026-01-14 10:45+01:00", "2.0", "0.5"],
        ["2026-01-14 09:45+01:00", "0.0", "0.0"],
        ["2026-01-14 11:00+01:00", "0.0", "0.0"],
    ]
    assert all(r[3] == "" for r in rows[5:])


def test_energy_and_peak_per_day_and_per_site(app, loads):
    site_id, _, _ = loads
    manager = as_user(app, "manager@demo.test")
    days = rows_of(
        manager.get("/reports/peak-load.csv", query_string={**PERIOD, "site": site_id, "by": "day"})
    )
    assert days[0] == ["Day", "Peak kW", "Peak quarter hour begins", "Energy kWh"]
    assert days[1:] == [
        ["2026-01-14", "24.0", "2026-01-14 10:15+01:00", "12.25"],
        ["Total", "24.0", "2026-01-14 10:15+01:00", "12.25"],
    ]
    sites = rows_of(manager.get("/reports/peak-load.csv", query_string={**PERIOD, "by": "site"}))
    assert sites[0][0] == "Site" and len(sites) == 3  # the one site with meter values, a total
    assert sites[1][1:] == ["24.0", "2026-01-14 10:15+01:00", "12.25"]
    assert sites[2] == ["Total", "", "", "12.25"]

    page = manager.get("/reports/peak-load", query_string={**PERIOD, "by": "peak"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "<svg" in html and "Peak load" in html
    assert "2026-01-14 10:15+01:00" in html
    assert "Peak load" in manager.get("/reports").get_data(as_text=True)
    pdf = manager.get("/reports/peak-load.pdf", query_string={**PERIOD, "by": "peak"})
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    for by in ("site", "day", "week", "month"):
        shown = manager.get("/reports/peak-load", query_string={**PERIOD, "by": by})
        assert shown.status_code == 200 and "<svg" in shown.get_data(as_text=True)
    bad = manager.get("/reports/peak-load", query_string={"by": "hour"})
    assert bad.status_code == 422


def test_days_weeks_and_months_across_the_25_hour_day(app, berlin, site, database_url):  # noqa: F811
    site_id, one, _ = site
    steady_4_kw_over_the_25_hour_day(database_url, one)
    manager = as_user(app, "manager@demo.test")
    period = {"start": "2026-10-24", "end": "2026-10-26", "site": site_id}
    days = rows_of(manager.get("/reports/peak-load.csv", query_string={**period, "by": "day"}))
    # The first quarter of each day at 4 kW is its peak (ties go to the earliest).
    assert days[1:] == [
        ["2026-10-24", "4.0", "2026-10-24 23:00+02:00", "4.0"],
        ["2026-10-25", "4.0", "2026-10-25 00:00+02:00", "100.0"],  # 25 hours
        ["2026-10-26", "4.0", "2026-10-26 00:00+01:00", "4.0"],
        ["Total", "4.0", "2026-10-24 23:00+02:00", "108.0"],
    ]
    weeks = rows_of(manager.get("/reports/peak-load.csv", query_string={**period, "by": "week"}))
    assert [r[0::3] for r in weeks[1:]] == [
        ["2026-10-19", "104.0"],
        ["2026-10-26", "4.0"],
        ["Total", "108.0"],
    ]
    months = rows_of(manager.get("/reports/peak-load.csv", query_string={**period, "by": "month"}))
    assert [r[0::3] for r in months[1:]] == [["2026-10-01", "108.0"], ["Total", "108.0"]]
    # The repeated hour of the night reads with its offset: the peak list is unambiguous.
    top = rows_of(manager.get("/reports/peak-load.csv", query_string={**period, "by": "peak"}))
    starts = [r[0] for r in top[1:]]
    assert "2026-10-25 02:15+02:00" in starts and "2026-10-25 02:15+01:00" in starts


def test_the_site_panel_is_a_fragment_for_htmx_and_a_page_otherwise(app, loads):
    site_id, _, _ = loads
    agent = as_user(app, "agent@demo.test")
    url = f"/sites/{site_id}/peak-load"
    fragment = agent.get(url, query_string=PERIOD, headers=HX)
    assert fragment.status_code == 200
    assert fragment.headers.get("Vary", "").find("HX-Request") >= 0
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="peak_load-panel"') and "<html" not in html
    assert "peak 24.0 kW, 12.2 kWh" in html or "peak 24.0 kW, 12.3 kWh" in html
    assert "2026-01-14 10:15+01:00" in html and "Energy per day" in html and "<svg" in html
    assert "peak-load report" not in html  # agents do not read reports

    page = agent.get(url, query_string=PERIOD)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<html" in html and 'id="peak_load-panel"' in html

    detail = agent.get(f"/sites/{site_id}").get_data(as_text=True)
    assert f'hx-get="/sites/{site_id}/peak-load"' in detail
    manager = as_user(app, "manager@demo.test")
    assert "peak-load report" in manager.get(url, query_string=PERIOD, headers=HX).get_data(
        as_text=True
    )
    bad = agent.get(url, query_string={"start": "2026-02-30"}, headers=HX)
    assert bad.status_code == 422 and "Use a date like" in bad.get_data(as_text=True)
    longer = agent.get(url, query_string={"start": "2025-01-01", "end": "2025-12-31"}, headers=HX)
    assert "Energy per week" in longer.get_data(as_text=True)


def test_other_tenants_see_none_of_it(app, loads):
    site_id, _, _ = loads
    acme = as_user(app, "admin@acme.test")
    assert acme.get(f"/sites/{site_id}/peak-load", headers=HX).status_code == 404
    assert acme.get(f"/sites/{site_id}/peak-load").status_code == 404
    for by in ("peak", "day", "site"):
        rows = rows_of(
            acme.get("/reports/peak-load.csv", query_string={**PERIOD, "site": site_id, "by": by})
        )
        assert all("DEMO" not in cell and "24.0" not in cell for row in rows for cell in row)
        assert len(rows) <= 3  # the header, an empty day, the totals
    vendor = as_user(app, "vendor@demo.test")
    assert vendor.get(f"/sites/{site_id}/peak-load").status_code == 403
    assert vendor.get("/reports/peak-load").status_code == 403


def test_no_data_draws_an_empty_chart(app, berlin, site):  # noqa: F811
    site_id, _, _ = site
    manager = as_user(app, "manager@demo.test")
    html = manager.get(f"/sites/{site_id}/peak-load", query_string=PERIOD, headers=HX).get_data(
        as_text=True
    )
    assert "No meter values in this period." in html and "No data" in html
    day = date(2026, 1, 14).isoformat()
    rows = rows_of(manager.get("/reports/peak-load.csv", query_string={"start": day, "end": day}))
    assert rows[1:] == [["Total", "", "", "0.0"]]


def test_the_charger_panel_shows_its_own_load(app, loads):
    _, one, energy_only = loads
    agent = as_user(app, "agent@demo.test")
    # DEMO-CP-0001 alone: 9 kW at 10:00 (two samples), 11 + 9 kW at 10:15 (phases summed).
    fragment = agent.get(f"/chargers/{one}/peak-load", query_string=PERIOD, headers=HX)
    assert fragment.status_code == 200
    html = fragment.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="peak_load-panel"') and "<html" not in html
    assert "peak 20.0 kW, 7.2 kWh" in html and "2026-01-14 10:15+01:00" in html
    # The energy-only charger: 12 kW from its register, 5.0 kWh (the reset counts as none).
    other = agent.get(f"/chargers/{energy_only}/peak-load", query_string=PERIOD).get_data(
        as_text=True
    )
    assert "<html" in other and "peak 12.0 kW, 5.0 kWh" in other
    detail = agent.get(f"/chargers/{one}").get_data(as_text=True)
    assert f'hx-get="/chargers/{one}/peak-load"' in detail
    bad = agent.get(f"/chargers/{one}/peak-load", query_string={"end": "2026-13-01"}, headers=HX)
    assert bad.status_code == 422 and "Use a date like" in bad.get_data(as_text=True)
    acme = as_user(app, "admin@acme.test")
    assert acme.get(f"/chargers/{one}/peak-load", headers=HX).status_code == 404
    assert acme.get(f"/chargers/{one}/peak-load").status_code == 404
