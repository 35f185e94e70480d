"""/api/v1/sessions (issue 9, point 1): charging sessions with the web list's filters and keyset
pages, one session by id; compared with /sessions, roles and tenants, bad input."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests import test_sessions_page
from tests.api_support import all_pages, bearer, make_token
from tests.conftest import as_user
from tests.ocpp_support import query
from tests.test_sessions_page import BASE, add_session, rows_of

# The page tests' sessions: the same rows back the web list and the API list compared here.
sessions = test_sessions_page.sessions

FIELDS = {
    "id",
    "charger",
    "connector_no",
    "site",
    "id_tag",
    "started_at",
    "stopped_at",
    "stop_reason",
    "duration_s",
    "energy_wh",
    "energy_kwh",
    "cost",
    "currency",
    "tariff",
}


@pytest.fixture
def token(app, demo) -> str:
    return make_token(app, "agent@demo.test", "read")


@pytest.fixture
def web(app, demo):
    return as_user(app, "agent@demo.test")


def api_ids(client, token: str, **params: str) -> list[int]:
    """Return the ids of every page of the API list, following next_after to the end."""
    return [row["id"] for row in all_pages(client, "/api/v1/sessions", token, **params)]


def web_ids(client, **params: str) -> list[int]:
    response = client.get("/sessions", query_string=params)
    assert response.status_code == 200
    return [int(i) for i in rows_of(response.get_data(as_text=True))]


def test_the_list_shows_what_the_web_list_shows(client, token, web, sessions, database_url):
    body = client.get("/api/v1/sessions", headers=bearer(token)).get_json()
    assert [r["id"] for r in body["items"]] == web_ids(web)
    assert [r["id"] for r in body["items"]] == [
        sessions[k] for k in ("other_tag", "open", "closed")
    ]
    closed = next(r for r in body["items"] if r["id"] == sessions["closed"])
    assert set(closed) == FIELDS
    assert closed == {
        "id": sessions["closed"],
        "charger": "DEMO-CP-0001",
        "connector_no": 1,
        "site": closed["site"],
        "id_tag": "DEMO-TAG-0001",
        "started_at": "2026-11-01T08:00:00+00:00",
        "stopped_at": "2026-11-01T09:35:00+00:00",
        "stop_reason": "EVDisconnected",
        "duration_s": 95 * 60,
        "energy_wh": 12345,
        "energy_kwh": 12.345,
        "cost": 5.1234,
        "currency": "EUR",
        "tariff": None,
    }
    (site,) = query(
        database_url,
        "SELECT s.name FROM site s JOIN charger c ON c.site_id = s.id WHERE c.ocpp_id = %s",
        ("DEMO-CP-0001",),
    )
    assert closed["site"] == site[0]
    running = next(r for r in body["items"] if r["id"] == sessions["open"])
    assert running["stopped_at"] is None and running["duration_s"] is None
    assert running["energy_kwh"] is None and running["cost"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"state": "open"},
        {"state": "closed"},
        {"charger": "demo-cp-0001"},
        {"charger": "DEMO-CP-%"},
        {"id_tag": "=cmd|calc"},
        {"since": "2026-11-02"},
        {"until": "2026-11-02"},
        {"since": "2026-11-02", "until": "2026-11-02"},
        {"charger": "ACME-CP-0001"},
    ],
)
def test_filters_give_the_web_lists_rows(client, token, web, sessions, params):
    assert api_ids(client, token, **params) == web_ids(web, **params)


def test_the_site_filter(client, token, web, sessions, database_url):
    ((site,),) = query(
        database_url, "SELECT site_id FROM charger WHERE ocpp_id = %s", ("DEMO-CP-0002",)
    )
    assert api_ids(client, token, site=str(site)) == [sessions["open"]]
    assert web_ids(web, site=str(site)) == [sessions["open"]]
    ((acme,),) = query(
        database_url, "SELECT site_id FROM charger WHERE ocpp_id = %s", ("ACME-CP-0001",)
    )
    assert api_ids(client, token, site=str(acme)) == []


def test_pages_to_the_end_with_no_row_twice(client, token, database_url, demo):
    made = [
        add_session(database_url, "DEMO-CP-0003", BASE + timedelta(minutes=n), 5, 100)
        for n in range(117)
    ]
    # Sessions starting at the same instant are told apart by id, across a page boundary too.
    made += [
        add_session(database_url, f"DEMO-CP-00{n:02d}", BASE + timedelta(minutes=67), 5, 100)
        for n in (4, 5, 6)
    ]
    starts = dict(
        query(
            database_url, "SELECT id, started_at FROM charging_session WHERE id = ANY(%s)", (made,)
        )
    )
    expected = sorted(made, key=lambda i: (starts[i], i), reverse=True)
    first = client.get("/api/v1/sessions", headers=bearer(token)).get_json()
    assert len(first["items"]) == 50 and first["next_after"]
    got = api_ids(client, token)
    assert got == expected and len(set(got)) == len(got) == 120
    assert api_ids(client, token, charger="DEMO-CP-0003") == [
        i for i in expected if i in made[:117]
    ]


def test_one_session_by_id(client, token, sessions):
    body = client.get(f"/api/v1/sessions/{sessions['closed']}", headers=bearer(token)).get_json()
    listed = client.get("/api/v1/sessions?state=closed", headers=bearer(token)).get_json()
    assert body == next(r for r in listed["items"] if r["id"] == sessions["closed"])


def test_another_tenants_sessions_are_never_seen(app, client, sessions):
    acme = make_token(app, "agent@acme.test", "read")
    assert api_ids(client, acme) == [sessions["acme"]]
    response = client.get(f"/api/v1/sessions/{sessions['closed']}", headers=bearer(acme))
    assert response.status_code == 404 and response.get_json()["error"] == "E_NOT_FOUND"
    mine = make_token(app, "agent@demo.test", "read")
    response = client.get(f"/api/v1/sessions/{sessions['acme']}", headers=bearer(mine))
    assert response.status_code == 404


def test_vendors_may_not_read_sessions(app, client, sessions):
    token = make_token(app, "vendor@demo.test", "write")
    for url in ("/api/v1/sessions", f"/api/v1/sessions/{sessions['closed']}"):
        response = client.get(url, headers=bearer(token))
        assert response.status_code == 403 and response.get_json()["error"] == "E_FORBIDDEN"


@pytest.mark.parametrize("email", ["admin", "manager", "engineer", "viewer", "agent"])
def test_the_desk_may_read_sessions(app, client, sessions, email):
    token = make_token(app, f"{email}@demo.test", "read")
    assert client.get("/api/v1/sessions", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "params",
    [
        {"site": "0"},
        {"site": "x"},
        {"site": str(2**63)},
        {"charger": ""},
        {"charger": "c" * 65},
        {"charger": "DEMO\x00"},
        {"id_tag": "t" * 37},
        {"id_tag": "a\x00"},
        {"since": "yesterday"},
        {"since": "2026-02-30"},
        {"until": "9999-12-31"},
        {"since": "0001-01-01"},
        {"since": "2026-11-03", "until": "2026-11-01"},
        {"state": "maybe"},
        {"after": "a" * 501},
        {"after": "2026\x00"},
    ],
)
def test_bad_parameters_are_422_in_the_error_shape(client, token, sessions, params):
    response = client.get("/api/v1/sessions", headers=bearer(token), query_string=params)
    assert response.status_code == 422, params
    body = response.get_json()
    assert body["error"] == "E_VALIDATION" and set(body) == {"error", "message", "details"}
    assert body["details"]["fields"]["query"]


@pytest.mark.parametrize(
    "cursor",
    [
        "broken",
        "2026-11-01T08:00:00+00:00|x",
        f"2026-11-01T08:00:00+00:00|{2**63}",
        "2026-11-01T08:00:00+00:00|0",
        "|12",
    ],
)
def test_a_cursor_the_list_did_not_hand_out_is_422(client, token, sessions, cursor):
    response = client.get("/api/v1/sessions", headers=bearer(token), query_string={"after": cursor})
    assert response.status_code == 422
    assert response.get_json()["error"] == "E_BAD_CURSOR"


@pytest.mark.parametrize("ident", ["0", str(2**63), str(10**30), "abc", "-1", "999999"])
def test_an_unknown_session_is_404(client, token, sessions, ident):
    response = client.get(f"/api/v1/sessions/{ident}", headers=bearer(token))
    assert response.status_code == 404
    assert response.get_json()["error"] == "E_NOT_FOUND"


def test_the_spec_documents_the_endpoints(client, demo):
    spec = client.get("/api/v1/openapi.json").get_json()
    listing = spec["paths"]["/api/v1/sessions"]["get"]
    assert listing["summary"].startswith("List the charging sessions")
    names = {p["name"] for p in listing["parameters"]}
    assert {"site", "charger", "id_tag", "since", "until", "state", "after"} <= names
    assert spec["paths"]["/api/v1/sessions/{session_id}"]["get"]["summary"] == (
        "Read one charging session by id."
    )
