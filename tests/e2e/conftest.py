"""Browser fixtures: the app served on a real socket, and real Chromium driven by Playwright."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect, sync_playwright

from tests.conftest import DEMO_PASSWORD, serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """Serve `app` from a background thread; return its base URL."""
    with serve(app) as url:
        yield url


# Module scope, not session: while Playwright's sync API is active it keeps an asyncio loop
# running in this thread, so a later test module calling asyncio.run() would fail.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium per test module (a missing binary fails, it never skips)."""
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is required for the e2e tests but {CHROMIUM} does not exist")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Console:
    """What the page reported: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        url = message.location.get("url", "")
        if message.type == "error":
            self.errors.append(f"console: {message.text} ({url})")

    def on_page_error(self, error: Error) -> None:
        self.errors.append(f"uncaught: {error}")


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context and page for each test."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def console(page: Page) -> Console:
    """Collect the page's console errors and uncaught JS errors from the start of the test."""
    watch = Console()
    page.on("console", watch.on_console)
    page.on("pageerror", watch.on_page_error)
    return watch


def settled(page: Page, selector: str = "#main") -> None:
    """Wait until `selector` is on the page, htmx has answered every request and settled every
    swap: a click returns before its answer is in, and until htmx has swapped the answer in and
    settled it (bound its forms, focused its autofocus field) input is lost or lands in the old
    page. The pages settle at once (`defaultSettleDelay: 0`); the settle classes are checked
    too, for a swap that asks for a delay."""
    page.wait_for_function(
        """(selector) => document.querySelector(selector) !== null
            && document.querySelector(".htmx-added, .htmx-settling, .htmx-request") === null""",
        arg=selector,
    )


def sign_in(page: Page, base: str, email: str, password: str = DEMO_PASSWORD) -> None:
    """Sign in through the real form and wait until the signed-in layout shows."""
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


@dataclass
class UserPage:
    """A signed-in page in its own browser context (own cookies), and what its console said."""

    page: Page
    console: Console


@pytest.fixture
def open_as(browser: Browser, live_server: str) -> Iterator[Callable[[str], UserPage]]:
    """Return a function that opens a page signed in as `email`, in a new browser context;
    several users can be open at once (e.g. one watching a ticket while another changes it)."""
    contexts = []

    def open_page(email: str) -> UserPage:
        context = browser.new_context()
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        watch = Console()
        page.on("console", watch.on_console)
        page.on("pageerror", watch.on_page_error)
        sign_in(page, live_server, email)
        return UserPage(page, watch)

    try:
        yield open_page
    finally:
        for context in contexts:
            context.close()
