"""The charger-analytics panels in real Chromium (issue 10, points 2, 3 and 6).

With meter values and status changes of known figures on Wednesday 2026-01-14 in Europe/Berlin:

- the site page loads its Utilization and Peak load panels by htmx; changing a panel's period
  re-renders that panel alone, in place (the page's URL stays), with the day's figures — the
  heat map, the energy bar chart, "peak 16.0 kW, 6.0 kWh" and the top quarter hours — and an end
  before the start shows the period's error inside the panel, the page still there;
- the charger page's two panels show the charger's own figures (its 12 kW, not the site's 16),
  and the panel's route opened without htmx is a page holding the panel;
- the peak-load report names the connectors behind each quarter hour and the utilization report
  lists the site's chargers, and each one's CSV download holds the same figures;
- no page logs a console error, but for the refused period's 422 (the browser and htmx log it).

The loads are whole kW with one sample per quarter hour, so every energy is a whole or a half
kWh and the pages' one-decimal figures involve no rounding.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from playwright.sync_api import Locator, Page, Response, expect

from tests.e2e.conftest import Console, settled, sign_in
from tests.ocpp_support import execute

pytestmark = pytest.mark.e2e

DAY = date(2026, 1, 14)  # a Wednesday in winter (CET, UTC+1), long before "the last 30 days"
ISO = DAY.isoformat()
CP = "DEMO-CP-0001"
POWER = "Power.Active.Import"


def local(hours: float) -> datetime:
    """Return the instant `hours` after midnight of DAY in Berlin."""
    midnight = datetime(DAY.year, DAY.month, DAY.day, tzinfo=ZoneInfo("Europe/Berlin"))
    return midnight.astimezone(UTC) + timedelta(hours=hours)


@pytest.fixture
def usage(database_url: str, demo) -> tuple[int, str]:
    """Write DAY's figures; return (the site of DEMO-CP-0001, another charger there).

    Power (one sample per quarter hour, so each is that quarter's mean): DEMO-CP-0001 #1 draws
    8 kW at 10:00 and 12 kW at 10:15, the other charger's #1 4 kW at 10:15. The site: 8 then
    16 kW, 2 + 4 = 6 kWh; DEMO-CP-0001 alone: 8 then 12 kW, 2 + 3 = 5 kWh.
    Status: DEMO-CP-0001 #1 is Available from the evening before, Charging 06:00-12:00, a session
    of 12 kWh: 6 of its 24 hours (25 %), 6 of the charger's 48 connector-hours (12.5 %).
    """
    execute(database_url, "UPDATE tenant SET timezone = 'Europe/Berlin' WHERE slug = 'demo'")
    with psycopg.connect(database_url) as conn:
        site_id, other = conn.execute(
            "SELECT c.site_id, o.ocpp_id FROM charger c JOIN charger o ON o.site_id = c.site_id "
            "AND o.id <> c.id WHERE c.ocpp_id = %s ORDER BY o.ocpp_id LIMIT 1",
            (CP,),
        ).fetchone()
        for ocpp_id, hour, watts in ((CP, 10, 8000), (CP, 10.25, 12000), (other, 10.25, 4000)):
            conn.execute(
                "INSERT INTO meter_value (tenant_id, charger_id, connector_no, at, measurand, "
                "unit, context, value) SELECT tenant_id, id, 1, %s, %s, 'W', 'Sample.Periodic', "
                "%s FROM charger WHERE ocpp_id = %s",
                (local(hour), POWER, watts, ocpp_id),
            )
        events = [
            (None, local(-48), "online", None),
            (1, local(-2), "status", "Available"),
            (1, local(6), "status", "Charging"),
            (1, local(12), "status", "Available"),
        ]
        for connector, at, kind, status in events:
            conn.execute(
                "INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, "
                "status) SELECT tenant_id, id, %s, %s, %s, %s FROM charger WHERE ocpp_id = %s",
                (connector, at, kind, status, CP),
            )
        conn.execute(
            "INSERT INTO charging_session (tenant_id, charger_id, connector_no, started_at, "
            "stopped_at, energy_wh) SELECT tenant_id, id, 1, %s, %s, 12000 FROM charger "
            "WHERE ocpp_id = %s",
            (local(6), local(12), CP),
        )
    return int(site_id), str(other)


def answer_to(path: str, **params: str) -> Callable[[Response], bool]:
    """Match the answer to a GET of `path` whose query holds `params`."""

    def match(response: Response) -> bool:
        url = response.url.split("#")[0]
        base, _, query = url.partition("?")
        pairs = set(query.split("&")) if query else set()
        return base.endswith(path) and all(f"{k}={v}" in pairs for k, v in params.items())

    return match


def open_with_panels(page: Page, url: str) -> tuple[Locator, Locator]:
    """Open a page with both panels, wait until htmx has loaded and settled them (each with its
    period filled in), and return (utilization panel, peak-load panel)."""
    page.goto(url)
    panels = []
    for panel_id in ("utilization-panel", "peak_load-panel"):
        settled(page, f"#{panel_id} form")  # loaded by htmx, its period form bound
        panel = page.locator(f"#{panel_id}")
        expect(panel.get_by_label("From", exact=True)).not_to_have_value("")
        panels.append(panel)
    return panels[0], panels[1]


@dataclass
class Swap:
    """The answer that replaced a panel (set when the block of `re_rendered` is done)."""

    response: Response | None = None

    @property
    def status(self) -> int:
        assert self.response is not None
        return self.response.status


@contextmanager
def re_rendered(page: Page, panel_id: str, path: str, **params: str) -> Iterator[Swap]:
    """Expect the action in the block to be answered from `path` with `params`, and the panel
    to be replaced by that answer (the old element gone, the new one settled)."""
    swap = Swap()
    old = page.locator(f"#{panel_id}").element_handle()
    with page.expect_response(answer_to(path, **params)) as answer:
        yield swap
    swap.response = answer.value
    page.wait_for_function("old => !old.isConnected", arg=old)
    settled(page, f"#{panel_id} form")


def show_day(page: Page, panel_id: str, path: str) -> None:
    """Pick DAY as the panel's period the way a person does: each date input sends the form on
    its change (htmx), then the Show button sends it once more."""
    panel = page.locator(f"#{panel_id}")
    with re_rendered(page, panel_id, path, start=ISO):
        panel.get_by_label("From", exact=True).fill(ISO)
    with re_rendered(page, panel_id, path, start=ISO, end=ISO):
        panel.get_by_label("To", exact=True).fill(ISO)
    with re_rendered(page, panel_id, path, start=ISO, end=ISO) as shown:
        panel.get_by_role("button", name="Show").click()
    assert shown.status == 200 and shown.response is not None
    assert shown.response.request.headers.get("hx-request") == "true"  # htmx, not a page load


def read_csv(path: str) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as file:
        return list(csv.reader(file))


def test_site_and_charger_panels_show_the_days_figures_and_change_period_in_place(
    page: Page, console: Console, live_server: str, usage
):
    site_id, other = usage
    sign_in(page, live_server, "manager@demo.test")
    site_url = f"{live_server}/sites/{site_id}"
    util, peak = open_with_panels(page, site_url)
    # Loaded by htmx: the no-JavaScript link gave way to the panel (its period form, the last
    # 30 days, which hold none of DAY's figures).
    for panel in (util, peak):
        expect(panel).to_contain_text("(Europe/Berlin), up to now")
        expect(panel).not_to_contain_text(ISO)
    expect(page.get_by_role("link", name=re.compile("over the last 30 days"))).to_have_count(0)
    site_name = page.get_by_role("heading", level=1).inner_text().strip()
    # A mark on this document and the utilization panel's element: a reload or a swap of the
    # other panel would lose them.
    page.evaluate("window.stayed = true")
    util_before = util.element_handle()

    # Peak load: the day's figures, in place.
    show_day(page, "peak_load-panel", f"/sites/{site_id}/peak-load")
    expect(peak).to_contain_text(
        f"{ISO} to {ISO} (Europe/Berlin), up to now: peak 16.0 kW, 6.0 kWh."
    )
    expect(peak.locator("tbody th")).to_have_text(
        ["2026-01-14 10:15+01:00", "2026-01-14 10:00+01:00"]
    )
    expect(peak.locator("tbody td")).to_have_text(["16.0", "8.0"])
    chart = peak.get_by_role("img", name=re.compile(r"^Energy per day, "))
    expect(chart).to_be_visible()
    expect(chart.locator("rect.bar title")).to_have_text(["2026-01-14 — Energy kWh: 6 kWh"])
    expect(peak.get_by_role("link", name="The peak-load report")).to_be_visible()
    assert page.url == site_url and page.evaluate("window.stayed") is True
    assert util_before.evaluate("el => el.isConnected")  # only the peak panel changed
    expect(util).not_to_contain_text(ISO)

    # Utilization: the charger's share of connector-time charging and the heat map.
    show_day(page, "utilization-panel", f"/sites/{site_id}/utilization")
    # The site's 4 chargers, 8 connectors; DEMO-CP-0001 charged 6 and stood available 18 of
    # its 48 connector-hours (its connector 2 has no status: unknown).
    expect(util).to_contain_text(f"{ISO} to {ISO} (Europe/Berlin), up to now; 8 connectors.")
    row = util.get_by_role("row", name=re.compile(rf"^{CP}\b"))
    # Charging, occupied, available; sessions per day, mean kWh, mean hours.
    expect(row.locator("td")).to_have_text(["12.5 %", "0.0 %", "37.5 %", "1.00", "12.0", "6.00"])
    expect(util.locator("tfoot tr")).to_contain_text(re.compile(r"^\s*Total\s*3\.1 %"))
    heat = util.get_by_role(
        "img",
        name=re.compile(rf"^Share of connector-time charging by weekday and hour, {site_name}\b"),
    )
    expect(heat).to_be_visible()
    # One cell per hour of the Wednesday; 1 of 8 connectors charging 06:00-12:00.
    cells = heat.locator("rect.bar title")
    expect(cells).to_have_count(24)
    expect(cells.nth(5)).to_have_text(re.compile(r"^Wed 05 — .*: 0 %$"))
    expect(cells.nth(6)).to_have_text(re.compile(r"^Wed 06 — .*: 12\.5 %$"))
    expect(heat.locator("desc")).to_contain_text("Highest: 12.5 % (Wed 11).")
    assert page.url == site_url and page.evaluate("window.stayed") is True
    expect(peak).to_contain_text("peak 16.0 kW, 6.0 kWh.")  # untouched by the other panel

    # An end before the start: the error inside the panel, the page and the other panel stay.
    path = f"/sites/{site_id}/peak-load"
    with re_rendered(page, "peak_load-panel", path, start=ISO, end="2026-01-13") as refused:
        peak.get_by_label("To", exact=True).fill("2026-01-13")
    assert refused.status == 422
    alert = peak.get_by_role("alert")
    expect(alert).to_contain_text("Pick another period:")
    expect(alert).to_contain_text("end: The end is before the start.")
    expect(peak.locator("table")).to_have_count(0)
    # What was typed stays, to be corrected.
    expect(peak.get_by_label("To", exact=True)).to_have_value("2026-01-13")
    assert page.url == site_url and page.evaluate("window.stayed") is True
    expect(page.get_by_role("heading", level=1)).to_have_text(site_name)
    expect(util.get_by_role("row", name=re.compile(rf"^{CP}\b"))).to_be_visible()
    # Corrected, the figures come back.
    with re_rendered(page, "peak_load-panel", path, start=ISO, end=ISO):
        peak.get_by_label("To", exact=True).fill(ISO)
    expect(peak.get_by_role("alert")).to_have_count(0)
    expect(peak).to_contain_text("peak 16.0 kW, 6.0 kWh.")
    assert [e for e in console.errors if not ("422" in e and path in e)] == [], console.errors
    console.errors.clear()

    # The charger page: the same panels, the charger's own figures (not the other charger's).
    charger_url = f"{live_server}/chargers/{CP}"
    util, peak = open_with_panels(page, charger_url)
    show_day(page, "peak_load-panel", f"/chargers/{CP}/peak-load")
    expect(peak).to_contain_text(
        f"{ISO} to {ISO} (Europe/Berlin), up to now: peak 12.0 kW, 5.0 kWh."
    )
    expect(peak.get_by_role("table")).to_contain_text(f"Highest quarter hours of {CP}")
    expect(peak.locator("tbody th")).to_have_text(
        ["2026-01-14 10:15+01:00", "2026-01-14 10:00+01:00"]
    )
    expect(peak.locator("tbody td")).to_have_text(["12.0", "8.0"])
    chart = peak.get_by_role("img", name=re.compile(rf"^Energy per day, {CP}\b"))
    expect(chart.locator("rect.bar title")).to_have_text(["2026-01-14 — Energy kWh: 5 kWh"])
    show_day(page, "utilization-panel", f"/chargers/{CP}/utilization")
    expect(util).to_contain_text(f"{ISO} to {ISO} (Europe/Berlin), up to now; 2 connectors.")
    one = util.get_by_role("row", name=re.compile(r"^Connector 1\b"))
    # Charging 6 of its 24 hours, available 18; its session.
    expect(one.locator("td")).to_have_text(["25.0 %", "0.0 %", "75.0 %", "1.00", "12.0", "6.00"])
    heat = util.get_by_role("img", name=re.compile(rf"^Share of connector-time .* hour, {CP}\b"))
    expect(heat.locator("rect.bar title")).to_have_count(24)
    expect(heat.locator("desc")).to_contain_text("Highest: 50 % (Wed 11).")  # 1 of 2 connectors
    expect(page.locator("body")).not_to_contain_text(other)  # nothing of the other charger
    assert page.url == charger_url

    # Without htmx (a link opened as a page): a page holding the panel, the period from the URL.
    page.goto(f"{charger_url}/peak-load?start={ISO}&end={ISO}")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"{CP}: peak load")
    expect(page.locator("#peak_load-panel")).to_contain_text("peak 12.0 kW, 5.0 kWh.")
    assert console.errors == [], console.errors


def test_the_reports_name_the_connectors_and_download_the_same_figures(
    page: Page, console: Console, live_server: str, usage
):
    site_id, other = usage
    sign_in(page, live_server, "manager@demo.test")

    # Peak load: the top quarter hours of the site with the connectors behind them.
    page.goto(f"{live_server}/reports/peak-load?by=peak&site={site_id}&start={ISO}&end={ISO}")
    body = page.locator("#report-body")
    expect(body.locator("tbody th")).to_have_text(
        ["2026-01-14 10:15+01:00", "2026-01-14 10:00+01:00"]
    )
    top = body.locator("tbody tr")
    expect(top.nth(0).locator("td")).to_have_text(
        ["16.0", "4.0", f"{CP} #1: 12.0 kW, {other} #1: 4.0 kW"]
    )
    expect(top.nth(1).locator("td")).to_have_text(["8.0", "2.0", f"{CP} #1: 8.0 kW"])
    expect(body.get_by_role("img")).to_have_count(1)
    with page.expect_download() as info:
        body.get_by_role("link", name="Download CSV").click()
    assert info.value.suggested_filename.endswith(".csv")
    assert read_csv(info.value.path()) == [
        ["Quarter hour begins", "Load kW", "Energy kWh", "Connectors drawing power"],
        ["2026-01-14 10:15+01:00", "16.0", "4.0", f"{CP} #1: 12.0 kW, {other} #1: 4.0 kW"],
        ["2026-01-14 10:00+01:00", "8.0", "2.0", f"{CP} #1: 8.0 kW"],
    ]

    # Utilization per charger of the site: DEMO-CP-0001 charged, first.
    page.goto(f"{live_server}/reports/utilization?by=charger&site={site_id}&start={ISO}&end={ISO}")
    body = page.locator("#report-body")
    first = body.locator("tbody tr").first
    expect(first.locator("th")).to_have_text(CP)
    # Connectors, then charging 12.5 % of its connector-time; 1 session of 12 kWh, 6 hours.
    expect(first.locator("td").nth(0)).to_have_text("2")
    expect(first.locator("td").nth(1)).to_have_text("12.5 %")
    expect(first.locator("td").nth(-3)).to_have_text("1.00")
    expect(first.locator("td").nth(-2)).to_have_text("12.0")
    expect(first.locator("td").nth(-1)).to_have_text("6.00")
    expect(body.get_by_role("row", name=re.compile(rf"^{other}\b"))).to_be_visible()
    expect(body.locator("tfoot th")).to_have_text("Total")
    with page.expect_download() as info:
        body.get_by_role("link", name="Download CSV").click()
    rows = read_csv(info.value.path())
    assert rows[0][:3] == ["Charger", "Connectors", "Charging (%)"]
    assert rows[1][:3] == [CP, "2", "12.5"]
    assert rows[1][-4:] == ["1", "1.0", "12.0", "6.0"]  # sessions, per day, mean kWh, hours
    assert other in {r[0] for r in rows[2:-1]}
    assert rows[-1][0] == "Total"
    assert console.errors == [], console.errors
