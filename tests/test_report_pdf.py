"""Report PDFs (issue 7, point 6): each report as an A4 document that a real PDF parser reads
back, with the hand-counted figures of tests/test_reports.py, its chart, the header repeated on
every page, filters by name, the tenant in the footer; who may download it; bad filters.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from tests import test_reports
from tests.conftest import as_user
from tests.ocpp_support import execute, query
from tests.test_reports import MARCH, at

# The fixtures of the reports' tests: the demo tenant counting New York's days, its manager.
desk = test_reports.desk
manager = test_reports.manager

SLUGS = ["tickets-by", "sla", "resolution", "workload", "chargers", "sessions"]
A4 = (595.28, 841.89)  # points
# The first colour of the charts' palette (#0072b2) as a PDF fill colour operator.
SERIES_0_FILL = re.compile(rb"\b0 0\.44\d* 0\.698\d* rg\b")


def pdf_of(client, slug: str, **params: str) -> PdfReader:
    """Download report `slug` as PDF for March 2025 (or `params`); return it parsed."""
    response = client.get(f"/reports/{slug}.pdf", query_string={**MARCH, **params})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/pdf"
    start, end = params.get("start", MARCH["start"]), params.get("end", MARCH["end"])
    today = datetime.now(UTC).date().isoformat()
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="{slug}-{start}-{end}-{today}.pdf"'
    )
    assert response.data.startswith(b"%PDF-")
    return PdfReader(io.BytesIO(response.data))


def text_of(reader: PdfReader) -> str:
    """Return the text of every page, each run of blanks and line breaks as one space."""
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def page_texts(reader: PdfReader) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in reader.pages]


def figures(reader: PdfReader) -> list[str]:
    """Return the alt texts of the tagged figures (the chart) in the document's structure."""
    found: list[str] = []

    def walk(node) -> None:
        node = node.get_object()
        if not hasattr(node, "get"):
            return
        if node.get("/S") == "/Figure":
            found.append(str(node.get("/Alt", "")))
        kids = node.get("/K")
        for kid in kids if isinstance(kids, list) else [kids] if kids is not None else []:
            if hasattr(kid, "get_object"):
                walk(kid)

    root = reader.trailer["/Root"]
    if "/StructTreeRoot" in root:
        walk(root["/StructTreeRoot"])
    return found


def name_of(url: str, table: str, row_id: int) -> str:
    return query(url, f"SELECT name FROM {table} WHERE id = %s", (row_id,))[0][0]


# --- what the document says -------------------------------------------------------------------


def test_the_pdf_holds_title_period_filters_figures_chart_and_footer(manager, desk):
    # The fixture of test_reports' first test: March in New York, counted by hand.
    desk.ticket(at(2), "new", "P1")
    desk.ticket(at(3), "in_progress", "P1", engineer="engineer@demo.test")
    desk.ticket(at(4), "resolved", "P2", resolved=at(5))
    desk.ticket(at(31, 23), "closed", "P2", charger="DEMO-CP-0005")  # 19:00 in New York
    desk.ticket(at(1, 3), "cancelled", "P3")  # 28 February in New York: not March
    desk.ticket(at(1, 4, month=4), "new", "P4")  # 1 April in New York: not March
    desk.ticket(at(10), "on_hold", "P4", tenant="acme", charger="ACME-CP-0001")

    reader = pdf_of(manager, "tickets-by", by="priority")
    page = reader.pages[0]
    assert [round(float(v), 2) for v in page.mediabox[2:]] == list(A4)
    text = text_of(reader)
    assert "Tickets by status, priority, category, site, vendor or engineer" in text
    assert "Period 2025-03-01 to 2025-03-31 (America/New_York)" in text
    assert "Grouped by Priority" in text and "Filters none" in text
    # The page's header, rows and totals, the values formatted as on the page.
    assert "Priority Created Still open Resolved or closed Cancelled" in text
    assert "P1 · critical 2 2 0 0" in text
    assert "P2 · high 2 0 2 0" in text
    assert "Total 4 2 2 0" in text
    assert "P3" not in text and "P4" not in text
    # The chart: a tagged figure, drawn in the palette's colours (its legend names the series).
    assert figures(reader) == [
        "Tickets by status, priority, category, site, vendor or engineer. "
        "Still open, Resolved or closed, Cancelled per priority."
    ]
    content = page.get_contents().get_data()
    assert SERIES_0_FILL.search(content[content.index(b"BDC") :])
    assert "Still open Resolved or closed Cancelled" in text
    # The footer: the tenant, when, and the page count.
    generated = re.search(r"Demo Charging Co\. · Generated (\S+ \S+) \(America/New_York\)", text)
    assert generated, text
    assert "Page 1 of 1" in text
    assert reader.metadata.title.startswith("Tickets by status")
    assert reader.metadata.author == "Demo Charging Co."


def test_filters_are_named_not_numbered(manager, desk, database_url):
    site = desk.site("DEMO-CP-0001")
    execute(database_url, "UPDATE site SET name = 'Łódź — Gdańsk Północ' WHERE id = %s", (site,))
    desk.ticket(at(2), "new", "P1", engineer="engineer@demo.test")
    desk.ticket(at(3), "new", "P1", charger="DEMO-CP-0005", engineer="engineer@demo.test")
    engineer = desk.demo["engineer@demo.test"]
    text = text_of(
        pdf_of(
            manager,
            "tickets-by",
            by="site",
            site=str(site),
            engineer=str(engineer),
            priority="P1",
        )
    )
    assert "Site Łódź — Gdańsk Północ" in text
    assert f"Engineer {name_of(database_url, 'app_user', engineer)}" in text
    assert "Priority P1 · critical" in text and "Filters none" not in text
    assert "Łódź — Gdańsk Północ 1 1 0 0" in text
    assert "Total 1 1 0 0" in text


def test_percentages_hours_and_money_read_as_on_the_page(manager, desk):
    a = desk.ticket(at(2), priority="P1")
    b = desk.ticket(at(3), priority="P1")
    c = desk.ticket(at(4), priority="P2")
    desk.clock(a, "first_response", "met", at(2))
    desk.clock(a, "resolution", "breached", at(2))
    desk.clock(b, "first_response", "met", at(3))
    desk.clock(b, "resolution", "running", at(3))
    desk.clock(c, "first_response", "breached", at(4))
    text = text_of(pdf_of(manager, "sla", by="clock"))
    assert "First response 3 2 1 0 66.7 %" in text
    assert "Resolution 2 0 1 1 0.0 %" in text
    assert "Total 5 2 2 1 50.0 %" in text

    desk.session("DEMO-CP-0001", at(3, 9), 10_000, "3.5000")
    desk.session("DEMO-CP-0002", at(3, 20), 5_500, "2.2500")
    desk.session("DEMO-CP-0001", at(17, 9), 1_020_000, "1007.0000")
    text = text_of(pdf_of(manager, "sessions", by="month"))
    assert "2025-03-01 EUR 3 1,035.5 1,012.75" in text
    assert "Whole period EUR 3 1,035.5 1,012.75" in text


@pytest.mark.parametrize("slug", SLUGS)
def test_every_report_has_its_pdf_with_a_chart(manager, desk, slug):
    desk.ticket(
        at(2), "resolved", resolved=at(3), responded=at(2, 14), engineer="engineer@demo.test"
    )
    reader = pdf_of(manager, slug)
    assert len(figures(reader)) == 1
    text = text_of(reader)
    assert "2025-03-01 to 2025-03-31" in text and "Demo Charging Co." in text


def test_a_long_report_spans_pages_with_the_header_on_each(manager, desk):
    desk.ticket(at(3, 8), responded=at(3, 10), resolved=at(3, 18), status="resolved")
    reader = pdf_of(manager, "resolution", by="day", start="2025-01-01", end="2025-06-30")
    pages = page_texts(reader)
    assert len(pages) >= 3
    header = "Day Created First responses Mean time to first response (h) Resolved"
    days = []
    for number, text in enumerate(pages, 1):
        assert header in text, f"page {number} lacks the table header"
        assert f"Page {number} of {len(pages)}" in text
        # A row: its day, then the counts (the chart's axis labels follow each other).
        days += re.findall(r"\b(2025-\d\d-\d\d) \d+ \d+ ", text)
    # Every day once, in order, none lost at a page break; then the totals.
    assert len(days) == 181 and days == sorted(days) and len(set(days)) == 181
    assert any("2025-03-03 1 1 2.00 1 10.00" in text for text in pages)
    assert "Whole period 1 1 2.00 1 10.00" in pages[-1]
    # Pages after the first carry a running head instead of the whole heading.
    assert pages[1].startswith("Response and resolution times (MTTA, MTTR) · 2025-01-01")
    assert "Period" not in pages[1]


def test_an_empty_period_says_so(manager, desk):
    reader = pdf_of(manager, "tickets-by", start="2025-03-01", end="2025-03-01")
    text = text_of(reader)
    assert "Status Created Still open Resolved or closed Cancelled" in text
    assert "Nothing in this period." in text and "Total" not in text
    assert len(reader.pages) == 1


# --- who gets it --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "status"),
    [
        ("admin@demo.test", 200),
        ("manager@demo.test", 200),
        ("viewer@demo.test", 403),
        ("agent@demo.test", 403),
        ("engineer@demo.test", 403),
        ("vendor@demo.test", 403),
    ],
)
def test_only_managers_and_admins_download_the_pdf(app, desk, email, status):
    client = as_user(app, email)
    response = client.get("/reports/sla.pdf", query_string=MARCH)
    assert response.status_code == status
    assert (response.mimetype == "application/pdf") is (status == 200)


def test_anonymous_is_sent_to_the_login(app, desk):
    response = app.test_client().get("/reports/sla.pdf", query_string=MARCH)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_the_other_tenant_gets_only_its_own_numbers(app, desk, database_url):
    desk.ticket(at(2), "new", "P1")
    desk.ticket(at(3), "new", "P1")
    desk.session("DEMO-CP-0001", at(3, 9), 10_000, "3.5000")
    acme = as_user(app, "admin@acme.test")
    text = text_of(pdf_of(acme, "tickets-by", by="priority"))
    assert "Acme Charge · Generated" in text and "Demo Charging Co." not in text
    assert "P1 · critical" not in text
    text = text_of(pdf_of(acme, "sessions", by="month"))
    assert "Whole period 0 0.0 0.00" in text
    chargers = text_of(pdf_of(acme, "chargers", by="charger"))
    assert "ACME-CP-0001" in chargers and "DEMO-CP-" not in chargers
    # Another tenant's site id as a filter names nothing of theirs (and counts nothing).
    site = desk.site("DEMO-CP-0001")
    text = text_of(pdf_of(acme, "tickets-by", by="priority", site=str(site)))
    assert f"Site #{site}" in text and name_of(database_url, "site", site) not in text


# --- bad requests -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2025-13-01"}, "start"),
        ({"start": "2025-03-10", "end": "2025-03-01"}, "end"),
        ({"by": "weather"}, "by"),
        ({"priority": "P9"}, "priority"),
        ({"site": "abc"}, "site"),
    ],
)
def test_bad_filters_get_422_naming_the_field(manager, desk, params, field):
    response = manager.get("/reports/tickets-by.pdf", query_string=params)
    assert response.status_code == 422
    assert response.mimetype == "text/plain"
    assert f"{field}: " in response.get_data(as_text=True)


def test_an_unknown_report_is_404(manager):
    assert manager.get("/reports/nothing.pdf").status_code == 404


def test_the_report_page_links_its_pdf_for_exporters_only(app, desk):
    html = as_user(app, "manager@demo.test").get("/reports/sla", query_string=MARCH).text
    assert 'href="/reports/sla.pdf?start=2025-03-01&amp;end=2025-03-31' in html
    viewer = as_user(app, "viewer@demo.test").get("/reports/sla", query_string=MARCH).text
    assert "/reports/sla.pdf" not in viewer
