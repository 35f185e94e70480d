"""The chargers area in real Chromium, with a real bridge and simulated OCPP 1.6 chargers: an
agent finds a charger by its serial and watches a status change arrive live; an engineer
resets a charger and sees its answer. No console error or CSP violation along the way.

The simulated chargers run on their own threads and event loops (ChargerThread): Playwright's
sync API keeps an asyncio loop running in the test thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from flask import Flask
from ocpp.v16 import call
from playwright.sync_api import Page, expect

from cass.live import EXTENSION_KEY
from tests.e2e.conftest import Console, settled, sign_in
from tests.ocpp_support import RunningBridge, running_bridge
from tests.test_charger_operations import ChargerThread

pytestmark = pytest.mark.e2e

LIVE_SECONDS = 2.0  # issue 5, point 3: the page shows a charger's change within this


@pytest.fixture(autouse=True)
def stop_live_broker(app: Flask) -> Iterator[None]:
    """After each test, stop the app's live broker, so no event stream outlives the test."""
    yield
    broker = app.extensions.get(EXTENSION_KEY)
    if broker is not None:
        broker.stop()


@contextmanager
def bridge_thread(database_url: str) -> Iterator[RunningBridge]:
    """Run tests.ocpp_support.running_bridge from a thread of its own: it sets up its event
    loop with run_until_complete, which this thread (Playwright's) may not do."""
    ready: queue.Queue[RunningBridge | BaseException] = queue.Queue()
    stop = threading.Event()

    def main() -> None:
        try:
            with running_bridge(database_url) as bridge:
                ready.put(bridge)
                stop.wait()
        except BaseException as exc:  # handed to the test thread
            ready.put(exc)

    thread = threading.Thread(target=main, name="bridge-owner", daemon=True)
    thread.start()
    bridge = ready.get(timeout=30)
    if isinstance(bridge, BaseException):
        raise bridge
    try:
        yield bridge
    finally:
        stop.set()
        thread.join(20)


def online(database_url: str, ocpp_id: str, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT online FROM charger WHERE ocpp_id = %s", (ocpp_id,)
            ).fetchone()
        if row[0]:
            return True
        time.sleep(0.1)
    return False


def expect_live(page: Page) -> None:
    """Wait until the page's event stream is open (its indicator says so)."""
    expect(page.locator("[data-live-indicator]").first).to_have_attribute("data-live-state", "live")


def test_agent_finds_a_charger_by_serial_and_sees_its_status_change_live(
    page: Page, console: Console, live_server: str, app: Flask, demo, database_url: str
):
    ocpp_id, serial = "DEMO-CP-0005", "DE2024005"
    with bridge_thread(database_url) as bridge, ChargerThread(bridge.url, ocpp_id) as sim:
        assert online(database_url, ocpp_id)
        sign_in(page, live_server, "agent@demo.test")
        page.get_by_role("link", name="Chargers", exact=True).click()
        expect(page.get_by_role("heading", name="Chargers")).to_be_visible()
        page.get_by_label("Search").fill(serial.lower())
        rows = page.locator("#charger-rows [data-list-row]")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(serial)
        expect(page).to_have_url(f"{live_server}/chargers?q={serial.lower()}")
        rows.first.get_by_role("link", name=ocpp_id).click()

        expect(page.get_by_role("heading", name=ocpp_id)).to_be_visible()
        expect(page.locator("#charger-state")).to_contain_text("online")
        expect(page.locator("#charger-state")).to_contain_text(serial)
        expect_live(page)
        page.evaluate("() => { window.__sameDocument = true; }")
        connector = page.locator("#connector-1")
        expect(connector).not_to_have_attribute("data-status", "Charging")

        sim.run(
            sim.charger.call(
                call.StatusNotification(connector_id=1, error_code="NoError", status="Charging")
            )
        )
        deadline_ms = LIVE_SECONDS * 1000
        expect(connector).to_have_attribute("data-status", "Charging", timeout=deadline_ms)
        expect(connector).to_contain_text("Charging")
        # The timeline got the event too, and a fault shows as one.
        sim.run(
            sim.charger.call(
                call.StatusNotification(
                    connector_id=2, error_code="GroundFailure", status="Faulted", info="RCD"
                )
            )
        )
        expect(page.locator("#connector-2")).to_have_attribute(
            "data-status", "Faulted", timeout=deadline_ms
        )
        expect(page.locator("#timeline-items li.tl-fault").first).to_contain_text(
            "GroundFailure", timeout=deadline_ms
        )
        assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded"
    assert console.errors == []


def test_engineer_resets_a_charger_and_sees_the_answer(
    page: Page, console: Console, live_server: str, app: Flask, demo, database_url: str
):
    ocpp_id = "DEMO-CP-0006"
    with bridge_thread(database_url) as bridge, ChargerThread(bridge.url, ocpp_id) as sim:
        assert online(database_url, ocpp_id)
        sign_in(page, live_server, "engineer@demo.test")
        page.goto(f"{live_server}/chargers/{ocpp_id}")
        expect_live(page)
        page.evaluate("() => { window.__sameDocument = true; }")

        page.locator(".operations").get_by_role("link", name="Reset").click()
        settled(page, "#command-slot form")
        form = page.locator("#command-slot form")
        expect(form).to_contain_text("Restart the charger")
        form.get_by_label("Type").select_option("Hard")
        form.get_by_role("button", name="Review…").click()
        confirm = page.locator("#command-confirm")
        expect(confirm).to_contain_text(f"Send Reset to {ocpp_id}?")
        expect(confirm).to_contain_text("Hard: reboot the unit")
        confirm.get_by_role("button", name="Confirm: Reset").click()

        expect(page.locator("#command-slot")).to_contain_text(f"Reset queued for {ocpp_id}")
        row = page.locator("#charger-commands tbody tr").first
        expect(row).to_contain_text("Reset")
        expect(row).to_contain_text("Erin Engineer")
        # The charger's answer arrives on the page by itself.
        expect(row.locator(".badge")).to_have_text("accepted", timeout=10_000)
        assert sim.charger.received == [("Reset", {"type": "Hard"})]
        assert page.evaluate("() => window.__sameDocument === true"), "the page reloaded"
    assert console.errors == []
