"""Real Chromium: a manager schedules the ticket list daily, runs it now, watches the file
appear (htmx polling the progress row) and downloads it (issue 7, point 4)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from playwright.sync_api import Page, expect
from sqlalchemy import select

from cass.extensions import db
from cass.models import ReportExport, ReportSchedule
from cass.scheduler import _jobs, add_jobs
from cass.storage import get_storage
from cass.tenancy import system_context
from tests.e2e.conftest import settled, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def scheduler(app) -> Iterator[BackgroundScheduler]:
    """The scheduler's export job, from its registry, every second in this process."""
    job, _trigger = _jobs(app)["report_exports"]
    running = BackgroundScheduler(timezone="UTC")
    add_jobs(running, app, {"report_exports": (job, {"trigger": "interval", "seconds": 1})})
    running.start()
    try:
        yield running
    finally:
        running.shutdown()


def test_manager_schedules_runs_and_downloads_the_ticket_list(
    page: Page, console, live_server, app, demo, scheduler, tmp_path
):
    app.config["CASS_STORAGE_URL"] = f"file://{tmp_path / 'files'}"
    app.extensions.pop("cass_storage", None)
    sign_in(page, live_server, "manager@demo.test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Reports").click()
    page.get_by_role("link", name="Scheduled exports").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Scheduled exports")
    page.get_by_role("link", name="New schedule").click()
    settled(page, "#name")  # a boosted page: typed before htmx has swapped it in, input is lost

    page.get_by_label("Name").fill("Open tickets every morning")
    page.get_by_label("Report").select_option("tickets")
    page.get_by_label("Filters").fill("status=open")
    page.get_by_label("Runs").select_option("daily")
    page.get_by_label("At (tenant time)").fill("06:00")
    page.get_by_role("button", name="Save schedule").click()
    expect(page.locator(".flash-success")).to_contain_text("Open tickets every morning")
    row = page.locator("#schedules tbody tr", has_text="Open tickets every morning")
    expect(row).to_contain_text("Daily at 06:00")

    row.get_by_role("button", name="Run now").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Export files")
    file_row = page.locator("#export-rows tr", has_text="Open tickets every morning")
    # The row polls itself (htmx, every second) until the scheduler has written the file.
    expect(file_row).to_have_attribute("data-status", "done", timeout=20_000)
    expect(file_row).to_contain_text("Ready")

    with page.expect_download() as info:
        file_row.get_by_role("link", name="Download").click()
    download = info.value
    assert download.suggested_filename.startswith("Open_tickets_every_morning-")
    content = Path(download.path()).read_bytes().decode()
    rows = list(csv.reader(io.StringIO(content, newline="")))
    assert rows[0][0] == "key" and len(rows) > 1

    with app.app_context(), system_context():
        schedule = db.session.scalar(select(ReportSchedule))
        export = db.session.scalar(select(ReportExport))
        assert export.schedule_id == schedule.id and export.status == "done"
        assert export.row_count == len(rows) - 1
        with get_storage(app).open(export.storage_key) as stream:
            assert stream.read().decode() == content
    assert console.errors == []
