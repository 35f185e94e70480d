"""Real Chromium: an admin adds a webhook endpoint pointing at a local receiver, sends a test
event, and watches it arrive in the delivery log (issue 9, point 5)."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from cass.services import webhooks
from cass.tenancy import system_context
from tests.e2e.conftest import settled, sign_in

pytestmark = pytest.mark.e2e


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local HTTP receiver that answers 204 and keeps what it got."""
    got: list[tuple[dict[str, str], bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            got.append((dict(self.headers.items()), body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/cass-events", got
    finally:
        server.shutdown()
        server.server_close()


def test_admin_adds_an_endpoint_sends_a_test_and_sees_it_delivered(
    page: Page, console, live_server, app, demo, receiver
):
    url, got = receiver
    app.config["CASS_WEBHOOK_ALLOW_PRIVATE"] = True
    sign_in(page, live_server, "admin@demo.test")
    page.goto(f"{live_server}/admin/webhooks")
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks")
    page.get_by_role("link", name="New endpoint").click()
    settled(page, "#main form")  # a boosted page: typed before it is swapped in, input is lost
    page.get_by_label("URL").fill(url)
    page.get_by_label("Description").fill("Ops chat bridge")
    page.get_by_label("Ticket created").check()
    page.get_by_label("SLA breached").check()
    page.get_by_role("button", name="Add endpoint").click()

    secret_field = page.get_by_label("Secret")
    expect(secret_field).to_be_visible()
    secret = secret_field.input_value()
    assert secret.startswith("whsec_")
    expect(page.locator("#webhook-endpoint")).to_contain_text(url)
    expect(page).to_have_url(f"{live_server}/admin/webhooks/1")

    page.get_by_role("button", name="Send test").click()
    log = page.locator("#webhook-deliveries")
    expect(log.locator("tbody tr")).to_have_count(1)
    expect(log).to_contain_text("ping")
    expect(log).to_contain_text("pending")

    # The scheduler's job, run once here; the log polls and shows the result by itself.
    with app.app_context(), system_context():
        assert webhooks.deliver_due() == 1
    expect(log).to_contain_text("delivered", timeout=8000)
    expect(log).to_contain_text("204")
    [(headers, body)] = got
    assert headers["X-CASS-Event"] == "ping"
    timestamp = headers["X-CASS-Timestamp"]
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["X-CASS-Signature"] == "sha256=" + mac.hexdigest()

    # A reload shows the endpoint without its secret.
    page.reload()
    expect(page.locator("#webhook-endpoint")).to_contain_text("Ops chat bridge")
    expect(page.get_by_label("Secret")).to_have_count(0)
    assert console.errors == []
