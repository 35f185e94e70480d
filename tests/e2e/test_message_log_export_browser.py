"""The message log's download in real Chromium: an engineer filters a charger's OCPP messages
and downloads the CSV; the file holds the filtered frames, oldest first (issue 10, point 4)."""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Console, sign_in
from tests.test_message_log_export import copy_frames

pytestmark = pytest.mark.e2e

CP = "DEMO-CP-0001"


def test_an_engineer_downloads_the_filtered_log(
    page: Page, console: Console, live_server: str, demo, database_url
):
    now = datetime.now(UTC).replace(microsecond=0)
    frames = []
    for i in range(9):
        direction, kind = ("in", 2) if i % 2 == 0 else ("out", 3)
        action = "Heartbeat" if i % 3 == 0 else "StatusNotification"
        payload = {"n": i, "t": 'a,"b"'}
        at = now - timedelta(minutes=9 - i)
        frames.append((at, direction, kind, f"u{i}", action, payload, None, None))
    copy_frames(database_url, CP, frames)
    wanted = [f for f in frames if f[4] == "Heartbeat" and f[1] == "in"]
    assert len(wanted) >= 2

    sign_in(page, live_server, "engineer@demo.test")
    page.goto(f"{live_server}/chargers/{CP}")
    page.wait_for_load_state("load")  # htmx binds the filter form once the page has loaded
    filters = page.locator("#message-filters")
    with page.expect_response(re.compile(r"part=messages")):
        filters.get_by_label("Action").select_option("Heartbeat")
    with page.expect_response(re.compile(r"msg_dir=in")):
        filters.get_by_label("Direction").select_option("in")
    log = page.locator("#messages-log")
    expect(log.locator("tbody tr")).to_have_count(len(wanted))

    with page.expect_download() as info:
        log.get_by_role("link", name="Download CSV").click()
    download = info.value
    assert download.suggested_filename.startswith(f"messages-{CP}-all-")
    assert download.suggested_filename.endswith(".csv")
    with open(download.path(), encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0][:6] == ["time", "charger", "direction", "message_type", "unique_id", "action"]
    assert [r[4] for r in rows[1:]] == [f[3] for f in wanted]  # oldest first
    assert {(r[1], r[2], r[5]) for r in rows[1:]} == {(CP, "in", "Heartbeat")}
    assert [json.loads(r[-1]) for r in rows[1:]] == [f[5] for f in wanted]
    assert console.errors == [], console.errors
