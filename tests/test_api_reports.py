"""/api/v1/reports (issue 9, point 1): the reports offered and each report's table as JSON
(numbers as numbers, the totals row), with the page's range, grouping and filters; compared
with the page's CSV; roles and tenants; bad parameters in the one error shape."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from cass.services import reports
from tests.api_support import bearer, make_token
from tests.conftest import as_user
from tests.ocpp_support import query
from tests.test_sessions_page import add_session

SLUGS = list(reports.REPORTS)


@pytest.fixture
def token(app, demo) -> str:
    return make_token(app, "manager@demo.test", "read")


def csv_of(client, slug: str, **params: str) -> list[list[str]]:
    response = client.get(f"/reports/{slug}.csv", query_string=params)
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def same_cell(api: object, text: str) -> bool:
    """Tell whether a JSON cell says what the CSV cell says."""
    if api is None:
        return text == ""
    if isinstance(api, bool) or not isinstance(api, int | float):
        return str(api) == text.removeprefix("'")
    return abs(float(text) - api) < 1e-6


def assert_same_table(body: dict, rows: list[list[str]]) -> None:
    assert [c["label"] for c in body["columns"]] == rows[0]
    shown = body["rows"] + ([body["totals"]] if body["totals"] is not None else [])
    assert len(shown) == len(rows) - 1
    for api_row, csv_row in zip(shown, rows[1:], strict=True):
        assert len(api_row) == len(body["columns"])
        assert all(same_cell(a, c) for a, c in zip(api_row, csv_row, strict=True)), (
            api_row,
            csv_row,
        )


def test_the_index_lists_every_report_with_filters_and_groupings(client, token):
    response = client.get("/api/v1/reports", headers=bearer(token))
    assert response.status_code == 200
    body = response.get_json()
    assert [r["slug"] for r in body] == SLUGS
    for entry in body:
        report = reports.REPORTS[entry["slug"]]
        assert entry["title"] == report.title and entry["summary"] == report.summary
        assert entry["filters"] == list(report.filters)
        assert [g["by"] for g in entry["groupings"]] == list(report.groupings)


@pytest.mark.parametrize("slug", SLUGS)
def test_each_report_is_the_pages_table(app, client, token, database_url, slug, demo):
    add_session(database_url, "DEMO-CP-0001", _today(database_url), 60, 12345, cost="4.5")
    response = client.get(f"/api/v1/reports/{slug}", headers=bearer(token))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["slug"] == slug and body["title"] == reports.REPORTS[slug].title
    assert body["parameters"]["by"] == reports.REPORTS[slug].default_by
    assert body["parameters"]["zone"]
    manager = as_user(app, "manager@demo.test")
    assert_same_table(body, csv_of(manager, slug))
    numeric = [n for n, c in enumerate(body["columns"]) if c["kind"] not in ("text", "period")]
    for row in body["rows"]:
        assert all(row[n] is None or isinstance(row[n], int | float) for n in numeric)


def _today(database_url):
    return query(database_url, "SELECT now() - interval '2 hours'")[0][0]


@pytest.mark.parametrize(
    "params",
    [
        {"by": "priority"},
        {"by": "category", "priority": "P2"},
        {"by": "status", "category": "hardware"},
        {"by": "site", "days": "7"},
        {"by": "engineer"},
        {"by": "vendor"},
        {"by": "channel"},
    ],
)
def test_the_ticket_report_takes_the_pages_groupings_and_filters(app, client, token, params):
    response = client.get("/api/v1/reports/tickets-by", headers=bearer(token), query_string=params)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["parameters"]["by"] == params["by"]
    assert_same_table(body, csv_of(as_user(app, "manager@demo.test"), "tickets-by", **params))


def test_the_range_and_a_site_filter(app, client, token, database_url, demo):
    (site,) = query(
        database_url, "SELECT site_id FROM charger WHERE ocpp_id = %s", ("DEMO-CP-0003",)
    )[0]
    params = {"by": "status", "site": str(site), "start": "2026-01-01", "end": "2026-01-31"}
    body = client.get(
        "/api/v1/reports/tickets-by", headers=bearer(token), query_string=params
    ).get_json()
    assert body["parameters"]["start"] == "2026-01-01" and body["parameters"]["end"] == "2026-01-31"
    assert body["parameters"]["site"] == site
    assert_same_table(body, csv_of(as_user(app, "manager@demo.test"), "tickets-by", **params))
    # Every demo ticket was created today: none in January 2026.
    created = next(n for n, c in enumerate(body["columns"]) if c["kind"] == "int")
    assert body["totals"][created] == 0


def test_the_totals_count_the_tenants_tickets_only(app, client, demo, database_url):
    for email, slug in (("manager@demo.test", "demo"), ("admin@acme.test", "acme")):
        token = make_token(app, email, "read")
        body = client.get("/api/v1/reports/tickets-by?by=status", headers=bearer(token)).get_json()
        ((count,),) = query(
            database_url,
            "SELECT count(*) FROM ticket WHERE tenant_id = %s",
            (demo[slug],),
        )
        created = next(n for n, c in enumerate(body["columns"]) if c["kind"] == "int")
        assert body["totals"][created] == count


def test_a_demo_site_filters_the_other_tenants_report_to_nothing(app, client, demo, database_url):
    (site,) = query(
        database_url, "SELECT site_id FROM charger WHERE ocpp_id = %s", ("DEMO-CP-0001",)
    )[0]
    token = make_token(app, "admin@acme.test", "read")
    body = client.get(
        "/api/v1/reports/tickets-by", headers=bearer(token), query_string={"site": str(site)}
    ).get_json()
    assert all(not value for row in body["rows"] for value in row[1:] if value is not None)


@pytest.mark.parametrize(
    ("email", "status"),
    [
        ("admin", 200),
        ("manager", 200),
        ("viewer", 200),
        ("agent", 403),
        ("engineer", 403),
        ("vendor", 403),
    ],
)
def test_roles(app, client, demo, email, status):
    token = make_token(app, f"{email}@demo.test", "read")
    for url in ("/api/v1/reports", "/api/v1/reports/tickets-by"):
        response = client.get(url, headers=bearer(token))
        assert response.status_code == status
        if status == 403:
            assert response.get_json()["error"] == "E_FORBIDDEN"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-02-30"}, "start"),
        ({"start": "1999-12-31"}, "start"),
        ({"end": "9999-12-31"}, "end"),
        ({"start": "2026-03-01", "end": "2026-02-01"}, "end"),
        ({"start": "2010-01-01", "end": "2026-02-01"}, "start"),
        ({"days": "0"}, "days"),
        ({"days": "99999"}, "days"),
        ({"days": "x"}, "days"),
        ({"by": "nope"}, "by"),
        ({"by": "person"}, "by"),  # another report's grouping
        ({"by": "status\x00"}, "by"),
        ({"site": "0"}, "site"),
        ({"site": str(2**63)}, "site"),
        ({"engineer": "me"}, "engineer"),
        ({"priority": "P9"}, "priority"),
        ({"category": "x\x00"}, "category"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(client, token, params, field):
    response = client.get("/api/v1/reports/tickets-by", headers=bearer(token), query_string=params)
    assert response.status_code == 422, params
    body = response.get_json()
    assert body["error"] == "E_VALIDATION" and set(body) == {"error", "message", "details"}
    assert field in body["details"]["fields"]["query"]


@pytest.mark.parametrize("slug", ["nope", "tickets-by.csv", "x" * 300, "a%00b"])
def test_an_unknown_report_is_404(client, token, slug):
    response = client.get(f"/api/v1/reports/{slug}", headers=bearer(token))
    assert response.status_code == 404 and response.get_json()["error"] == "E_NOT_FOUND"


def test_sessions_report_counts_energy_as_numbers(client, token, database_url, demo):
    start = _today(database_url) - timedelta(days=1)
    add_session(database_url, "DEMO-CP-0001", start, 60, 12345, cost="4.5")
    body = client.get("/api/v1/reports/sessions", headers=bearer(token)).get_json()
    kinds = {c["kind"] for c in body["columns"]}
    assert "kwh" in kinds
    energy = next(n for n, c in enumerate(body["columns"]) if c["kind"] == "kwh")
    assert body["totals"][energy] == pytest.approx(12.345, abs=0.05)


def test_the_spec_documents_the_endpoints(client, demo):
    spec = client.get("/api/v1/openapi.json").get_json()
    one = spec["paths"]["/api/v1/reports/{slug}"]["get"]
    assert {p["name"] for p in one["parameters"]} >= {"start", "end", "days", "by", "site"}
    assert spec["paths"]["/api/v1/reports"]["get"]["summary"].startswith("List the reports")
