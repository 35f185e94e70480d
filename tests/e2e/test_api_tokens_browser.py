"""Real Chromium: a user makes an API token, sees it once, copies it, a script (requests) calls
the live API with it, and once revoked the API refuses it; the API reference renders (issue 9,
point 2)."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.e2e.conftest import sign_in

pytestmark = pytest.mark.e2e


def call(base: str, token: str) -> int:
    """GET /api/v1/tickets as a script would: the bearer token, no cookies, no browser."""
    headers = {"Authorization": f"Bearer {token}"}
    return requests.get(f"{base}/api/v1/tickets", headers=headers, timeout=10).status_code


def test_user_makes_copies_uses_and_revokes_a_token(page: Page, console, live_server, demo):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page.on("dialog", lambda dialog: dialog.accept())  # the hx-confirm before revoking
    sign_in(page, live_server, "agent@demo.test")
    page.get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("API tokens")
    panel = page.locator("#api-tokens")
    expect(panel).to_contain_text("You have no API tokens")
    expect(page.get_by_role("link", name="API reference")).to_have_attribute("href", "/api/v1/docs")

    # A refusal replaces the form alone, with its reason; nothing is made.
    page.get_by_role("button", name="Make token").click()
    expect(page.locator("#api-token-form")).to_contain_text("Name the token.")
    expect(panel).to_contain_text("You have no API tokens")

    page.get_by_label("Name").fill("Nightly ticket sync")
    expect(page.get_by_label("Read only (GET)")).to_be_checked()
    page.get_by_role("button", name="Make token").click()
    field = page.get_by_label("New API token")
    expect(field).to_be_visible()
    token = field.input_value()
    assert token.startswith("cass_") and len(token) >= 40
    expect(panel.locator("pre")).to_contain_text(f'Authorization: Bearer {token}"')

    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_text("Copied", exact=True)).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token

    assert call(live_server, token) == 200
    # The page's own fetch works with it too (same origin; the CSP allows it).
    status = page.evaluate(
        """async (token) => (await fetch("/api/v1/tickets",
            {headers: {Authorization: "Bearer " + token}, credentials: "omit"})).status""",
        token,
    )
    assert status == 200

    # Loaded afresh, the page lists the token by its prefix, with its last use, never the token.
    page.reload()
    expect(page.get_by_label("New API token")).to_have_count(0)
    row = page.locator("#api-token-list tbody tr", has_text="Nightly ticket sync")
    expect(row).to_contain_text(token[:13] + "…")
    expect(row).to_contain_text("active")
    expect(row.locator("td").nth(5)).not_to_have_text("never")
    assert token not in page.content()

    row.get_by_role("button", name="Revoke Nightly ticket sync").click()
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button")).to_have_count(0)
    assert call(live_server, token) == 401
    # Only the refused form's 422 (the browser and htmx log it).
    assert [e for e in console.errors if not ("422" in e and "/account/api-tokens" in e)] == []


def test_an_admin_cuts_off_another_users_token(open_as, live_server, demo):
    agent = open_as("agent@demo.test")
    agent.page.goto(f"{live_server}/account/api-tokens")
    agent.page.get_by_label("Name").fill("Leaky laptop script")
    agent.page.get_by_label("Read and write").check()
    agent.page.get_by_role("button", name="Make token").click()
    token = agent.page.get_by_label("New API token").input_value()
    assert call(live_server, token) == 200

    admin = open_as("admin@demo.test")
    admin.page.on("dialog", lambda dialog: dialog.accept())
    admin.page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    expect(admin.page.get_by_role("heading", level=1)).to_have_text("API tokens")
    row = admin.page.locator("#tenant-api-tokens tr", has_text="Leaky laptop script")
    expect(row).to_contain_text("agent@demo.test")
    expect(row).to_contain_text("write")
    row.get_by_role("button", name="Revoke").click()
    expect(admin.page.locator("#tenant-api-tokens")).not_to_contain_text("Leaky laptop script")
    assert call(live_server, token) == 401
    agent.page.reload()
    expect(agent.page.locator("#api-token-list")).to_contain_text("revoked")
    assert agent.console.errors == [] and admin.console.errors == []


def test_the_api_reference_renders_its_operations(page: Page, console, live_server, demo):
    page.goto(f"{live_server}/api/v1/docs")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible()
    assert operations.count() >= 3
    expect(page.locator(".opblock-summary-path", has_text="/api/v1/tickets").first).to_be_visible()
    expect(page.locator(".swagger-ui .info")).to_contain_text("Bearer")
    # Swagger UI draws from our vendored files: it offers the bearer scheme under Authorize.
    expect(page.get_by_role("button", name="Authorize")).to_be_visible()
    assert console.errors == []
