"""Real Chromium against the real app: sign-in, htmx active search and inline edit, sign-out,
and the Content-Security-Policy holding while htmx works."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from cass.models.users import ROLE_LABELS
from tests.conftest import DEMO_PASSWORD
from tests.e2e.conftest import settled

pytestmark = pytest.mark.e2e

SCREENSHOT = "/tmp/cass-home.png"


def path_of(page: Page) -> str:
    return urlsplit(page.url).path


def mark_document(page: Page) -> None:
    """Tag the current document; a full page load would drop the tag."""
    page.evaluate("() => { window.__sameDocument = true; }")


def still_same_document(page: Page) -> bool:
    return page.evaluate("() => window.__sameDocument === true")


def sign_in(page: Page, base: str, email: str, password: str = DEMO_PASSWORD) -> None:
    """Fill the sign-in form by its labels and submit it."""
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def expect_home(page: Page) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"^Good to see you"))
    assert path_of(page) == "/"


def test_admin_searches_edits_a_user_inline_and_signs_out(page: Page, console, live_server, demo):
    base = live_server
    sign_in(page, base, "admin@demo.test")
    expect_home(page)
    results = page.locator("#charger-results")
    expect(results).to_contain_text("DEMO-CP-0001")  # the unfiltered list first
    page.screenshot(path=SCREENSHOT, full_page=True)

    # Active search: typing asks htmx for the results fragment; the document stays.
    mark_document(page)
    search = page.get_by_label("OCPP id, serial, asset tag, site or address")
    with page.expect_response(
        lambda r: "q=0003" in r.url and r.request.headers.get("hx-request") == "true"
    ) as searched:
        search.press_sequentially("0003", delay=40)
    assert searched.value.status == 200
    expect(results).to_contain_text("DEMO-CP-0003")
    expect(results).not_to_contain_text("DEMO-CP-0001")
    expect(results.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/\?q=0003$"))  # hx-push-url
    assert still_same_document(page), "the search reloaded the whole page"

    # To Users through the main navigation.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Users")
    assert path_of(page) == "/admin/users"

    # Inline edit of the agent's row: the row turns into a form, and back into a row.
    row = page.locator(f"#user-{demo['agent@demo.test']}")
    expect(row).to_contain_text("agent@demo.test")
    expect(row).to_contain_text(ROLE_LABELS["call_center"])
    mark_document(page)
    row.get_by_role("link", name="Edit").click()
    settled(page)  # the row's form, bound by htmx
    role = row.get_by_label("Role")
    expect(role).to_be_visible()
    role.select_option(label="After-service manager")
    with page.expect_response(lambda r: r.url.endswith("/edit") and r.request.method == "POST"):
        row.get_by_role("button", name="Save").click()
    expect(row).not_to_have_class(re.compile("editing"))
    expect(row).to_contain_text("agent@demo.test")
    expect(row).to_contain_text("After-service manager")
    expect(row.get_by_label("Role")).to_have_count(0)
    assert still_same_document(page), "saving the row reloaded the whole page"
    assert path_of(page) == "/admin/users"
    expect(page.locator("#users tbody tr")).to_have_count(6)  # no row lost or duplicated

    page.reload()  # the change is stored, not only shown
    expect(page.locator(f"#user-{demo['agent@demo.test']}")).to_contain_text(
        "After-service manager"
    )

    # Sign out, and the home page is closed again.
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to CASS")).to_be_visible()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    assert path_of(page) == "/login"
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Sign in to CASS")).to_be_visible()
    assert path_of(page) == "/login"

    # (c) The whole flow ran without a CSP violation or a JS error.
    assert console.errors == []


def test_wrong_password_is_refused_and_the_form_still_works(page: Page, live_server, demo):
    sign_in(page, live_server, "admin@demo.test", "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Invalid email or password.")
    assert path_of(page) == "/login"
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to CASS")

    page.get_by_label("Email").fill("admin@demo.test")
    page.get_by_label("Password", exact=True).fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect_home(page)
    expect(page.get_by_text("Invalid email or password.")).to_have_count(0)


def test_htmx_runs_under_the_csp_and_violations_would_be_seen(
    page: Page, console, live_server, demo
):
    statics: dict[str, int] = {}
    page.on(
        "response",
        lambda r: (
            statics.__setitem__(urlsplit(r.url).path, r.status) if "/static/" in r.url else None
        ),
    )
    first = page.goto(f"{live_server}/login")
    assert first is not None
    csp = first.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp

    sign_in(page, live_server, "agent@demo.test")
    expect_home(page)
    # htmx (and its settings from the meta tag) came from our own /static, under the CSP.
    assert page.evaluate("() => typeof window.htmx") == "object"
    assert page.evaluate("() => htmx.config.allowEval") is False
    htmx_files = {path: status for path, status in statics.items() if "/js/htmx-" in path}
    assert htmx_files and set(htmx_files.values()) <= {200, 304}, statics

    # An htmx request really runs (no eval, no inline script needed).
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true"):
        page.get_by_label("OCPP id, serial, asset tag, site or address").fill("0007")
    expect(page.locator("#charger-results")).to_contain_text("DEMO-CP-0007")
    assert console.errors == []

    # Control: an inline script is blocked and the violation reaches the console we watch.
    with page.expect_console_message(lambda m: "Content Security Policy" in m.text):
        page.evaluate(
            """() => {
                const s = document.createElement("script");
                s.textContent = "window.__inlineRan = true";
                document.body.appendChild(s);
            }"""
        )
    assert page.evaluate("() => window.__inlineRan === undefined")
    assert any("Content Security Policy" in error for error in console.errors), console.errors
