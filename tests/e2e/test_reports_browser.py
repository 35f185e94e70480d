"""Real Chromium: a manager opens a report, filters it in place (htmx, the URL follows) and
downloads its CSV, which holds the filtered figures (issue 7, points 2, 3 and 8)."""

from __future__ import annotations

import csv
import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Console, settled, sign_in
from tests.ocpp_support import execute
from tests.test_reports import Desk, at

pytestmark = pytest.mark.e2e


def test_manager_filters_a_report_and_downloads_its_csv(
    page: Page, console: Console, live_server, database_url, demo
):
    execute(database_url, "UPDATE tenant SET timezone = 'America/New_York' WHERE slug = 'demo'")
    desk = Desk(database_url, demo)
    desk.ticket(at(2), "new", "P1")
    desk.ticket(at(3), "resolved", "P2", resolved=at(4))
    desk.ticket(at(5), "new", "P1", category="payment")

    sign_in(page, live_server, "manager@demo.test")
    page.get_by_role("link", name="Reports").first.click()
    page.get_by_role("link", name=re.compile("^Tickets by status")).click()
    # The link is boosted (htmx swaps the body in, no page load): a change made before htmx has
    # swapped in and bound the new form sends nothing.
    page.wait_for_url(re.compile(r"/reports/tickets-by"))
    settled(page, "#report-filters")
    filters = page.locator("#report-filters")
    # Each change sends the form (htmx); wait for each answer so none is cut short by the next.
    with page.expect_response(re.compile(r"/reports/tickets-by\?")):
        filters.get_by_label("From").fill("2025-03-01")
    with page.expect_response(re.compile(r"/reports/tickets-by\?")):
        filters.get_by_label("To").fill("2025-03-31")
    filters.get_by_label("Group by").select_option("priority")
    body = page.locator("#report-body")
    expect(body.locator("tbody th")).to_have_text(["P1 · critical", "P2 · high"])
    expect(body.get_by_role("img")).to_have_count(1)
    filters.get_by_label("Category").select_option("payment")
    expect(body.locator("tbody th")).to_have_text(["P1 · critical"])
    expect(page).to_have_url(re.compile(r"category=payment"))

    with page.expect_download() as download_info:
        body.get_by_role("link", name="Download CSV").click()
    download = download_info.value
    assert download.suggested_filename.startswith("tickets-by-2025-03-01-2025-03-31")
    with open(download.path(), encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows == [
        ["Priority", "Created", "Still open", "Resolved or closed", "Cancelled"],
        ["P1 · critical", "1", "1", "0", "0"],
        ["Total", "1", "1", "0", "0"],
    ]
    assert console.errors == [], console.errors
