"""Real Chromium: an admin imports chargers from CSV (issue 5, point 10, "bad CSV import").
A bad file is refused with every bad line listed and nothing imported; a good one then lands
the admin on the registry with the new chargers."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import func, select

from cass.extensions import db
from cass.models import Charger, Site
from cass.tenancy import system_context
from tests.e2e.conftest import Console, sign_in

pytestmark = pytest.mark.e2e

HEADER = "ocpp_id,site,manufacturer,model,serial,asset_tag,install_date,warranty_end,key\n"
KEY = "browser-import-key-01"
BAD = HEADER + (
    f"DEMO-WEB-0001,Harbour Car Park,ABB,Terra 54,SN-W1,AT-W1,2025-01-10,2030-01-09,{KEY}\n"
    f"DEMO WEB 2,Harbour Car Park,ABB,Terra 54,SN-W2,,,,{KEY}\n"
    f"DEMO-WEB-0003,Quayside,ABB,Terra 54,SN-W3,,10/01/2025,,{KEY}\n"
    f"DEMO-WEB-0001,Quayside,ABB,Terra 54,SN-W4,,,,short\n"
)
GOOD = HEADER + (
    f"DEMO-WEB-0001,Harbour Car Park,ABB,Terra 54,SN-W1,AT-W1,2025-01-10,2030-01-09,{KEY}\n"
    f"DEMO-WEB-0002,Quayside,Kempower,S-Series,SN-W2,,,,{KEY}-2\n"
)


def counts(app) -> tuple[int, int]:
    with app.app_context(), system_context():
        return (
            db.session.scalar(select(func.count()).select_from(Charger)),
            db.session.scalar(select(func.count()).select_from(Site)),
        )


def only_refusals(console: Console, path: str) -> None:
    """Allow console errors only for 422 answers from `path` (the browser logs them)."""
    assert [e for e in console.errors if not ("422" in e and path in e)] == []
    console.errors.clear()


def test_admin_imports_a_bad_then_a_good_csv(page: Page, console, live_server, app, demo):
    sign_in(page, live_server, "admin@demo.test")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Charger registry").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Charger registry")
    page.get_by_role("link", name="Import CSV").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import chargers")
    before = counts(app)

    # The bad file: refused, each bad line reported with its column, nothing imported.
    page.get_by_label("CSV file").set_input_files(
        {"name": "bad.csv", "mimeType": "text/csv", "buffer": BAD.encode()}
    )
    with page.expect_response(
        lambda r: urlsplit(r.url).path == "/admin/chargers/import" and r.request.method == "POST"
    ) as refused:
        page.get_by_role("button", name="Import").click()
    assert refused.value.status == 422
    report = page.locator("#import-errors")
    expect(report.get_by_role("heading")).to_have_text(
        "Nothing was imported: 4 problems in the file"
    )
    rows = report.locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0)).to_contain_text(re.compile(r"^\s*3\s*ocpp_id\s*Use 1-64 letters"))
    expect(rows.nth(1)).to_contain_text(re.compile(r"^\s*4\s*install_date\s*“10/01/2025”"))
    expect(rows.nth(2)).to_contain_text("DEMO-WEB-0001 is also on line 2.")
    expect(rows.nth(3)).to_contain_text("at least 16 characters")
    expect(page.get_by_text(KEY)).to_have_count(0)
    assert counts(app) == before
    only_refusals(console, "/admin/chargers/import")

    # The good file: the admin lands on the registry and sees the new chargers.
    page.get_by_label("CSV file").set_input_files(
        {"name": "good.csv", "mimeType": "text/csv", "buffer": GOOD.encode()}
    )
    page.get_by_role("button", name="Import").click()
    expect(page).to_have_url(re.compile(r"/admin/chargers$"))
    expect(page.get_by_role("status")).to_contain_text("Imported 2 chargers. New sites: Quayside.")
    table = page.locator("#chargers")
    expect(table.get_by_role("row", name=re.compile("DEMO-WEB-0001"))).to_contain_text(
        "Harbour Car Park"
    )
    expect(table.get_by_role("row", name=re.compile("DEMO-WEB-0002"))).to_contain_text("Quayside")
    assert counts(app) == (before[0] + 2, before[1] + 1)

    # The search narrows the registry to them, in place.
    page.get_by_label("OCPP id, serial, asset tag, model or site").fill("DEMO-WEB")
    expect(table.locator("tbody tr")).to_have_count(2)
    assert console.errors == []
