"""/api/v1/chargers (issue 9, point 1): the list with the web list's filters and keyset pages,
one charger with its connectors' live states and faults; compared with the web pages, vendors
and tenants, bad input in the one error shape."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.api_support import bearer, make_token
from tests.conftest import as_user

ROW_RE = re.compile(r'<tr id="charger-\d+" data-list-row[^>]*>\s*<td><a href="/chargers/([^"]+)">')
NOW = datetime.now(UTC).replace(microsecond=0)
CP = "DEMO-CP-0001"


def owner(database_url: str, sql: str, *args):
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchall()


def execute(database_url: str, sql: str, *args) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(sql, args)


def web_ids(client, params: str = "") -> list[str]:
    """Return the OCPP ids of every page of the web list for these parameters."""
    found: list[str] = []
    url = f"/chargers?{params}"
    while True:
        page = client.get(url).get_data(as_text=True)
        rows = ROW_RE.findall(page)
        found += rows
        if len(rows) < 50:
            return found
        url = f"/chargers?{params}&after={rows[-1]}"


def api_ids(client, token: str, params: str = "") -> list[str]:
    """Return the OCPP ids of every page of the API list, following next_after to the end."""
    found: list[str] = []
    url = f"/api/v1/chargers?{params}"
    while True:
        response = client.get(url, headers=bearer(token))
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert set(body) == {"items", "next_after"}
        found += [row["ocpp_id"] for row in body["items"]]
        if body["next_after"] is None:
            return found
        assert body["next_after"] == body["items"][-1]["ocpp_id"]
        url = f"/api/v1/chargers?{params}&after={body['next_after']}"


@pytest.fixture
def token(app, demo) -> str:
    return make_token(app, "agent@demo.test", "read")


@pytest.fixture
def web(app, demo):
    return as_user(app, "agent@demo.test")


def fault(database_url: str, ocpp_id: str, connector: int = 2) -> None:
    """Fault one connector of a charger, as the bridge records it."""
    execute(
        database_url,
        "UPDATE connector SET status = 'Faulted', error_code = 'GroundFailure', updated_at = %s"
        " WHERE connector_no = %s AND charger_id = (SELECT id FROM charger WHERE ocpp_id = %s)",
        NOW,
        connector,
        ocpp_id,
    )


def test_the_list_is_the_web_lists_rows_with_their_cells(client, token, web, demo, database_url):
    fault(database_url, CP)
    body = client.get("/api/v1/chargers", headers=bearer(token)).get_json()
    assert [r["ocpp_id"] for r in body["items"]] == web_ids(web)
    assert body["next_after"] is None
    row = body["items"][0]
    assert row["ocpp_id"] == CP and row["id"] == demo[CP]
    assert row["connectors"] == [
        {"connector_no": n, "status": status, "error_code": error}
        for n, status, error in owner(
            database_url,
            "SELECT connector_no, status, error_code FROM connector WHERE charger_id = %s"
            " ORDER BY connector_no",
            demo[CP],
        )
    ]
    assert row["connectors"][1]["status"] == "Faulted" and row["faulted"] is True
    assert row["online"] is False and row["last_seen"] is None
    assert row["registration"] == "accepted" and row["firmware"] == "1.4.2"
    assert set(row["site"]) == {"id", "name"}


def test_each_row_holds_what_the_database_holds(client, token, database_url):
    body = client.get("/api/v1/chargers?q=0001", headers=bearer(token)).get_json()
    (row,) = [r for r in body["items"] if r["ocpp_id"] == CP]
    (db_row,) = owner(
        database_url,
        "SELECT c.id, c.serial, c.asset_tag, c.model, c.manufacturer, c.warranty_end, s.id,"
        " s.name FROM charger c JOIN site s ON s.id = c.site_id WHERE c.ocpp_id = %s",
        CP,
    )
    assert (
        row["id"],
        row["serial"],
        row["asset_tag"],
        row["model"],
        row["manufacturer"],
        row["warranty_end"],
        row["site"]["id"],
        row["site"]["name"],
    ) == (*db_row[:5], db_row[5].isoformat(), *db_row[6:])


@pytest.mark.parametrize(
    "params",
    [
        "q=cp-000",
        "q=0003",
        "online=yes",
        "online=no",
        "connector=Faulted",
        "faulted=1",
        "faulted=true&online=no",
        "warranty=expired",
        "warranty=active",
        "connector=Charging",
    ],
)
def test_filters_give_the_web_lists_rows(client, token, web, database_url, params):
    fault(database_url, "DEMO-CP-0004")
    execute(database_url, "UPDATE charger SET online = true WHERE ocpp_id = 'DEMO-CP-0002'")
    execute(
        database_url,
        "UPDATE charger SET warranty_end = '2020-01-01' WHERE ocpp_id = 'DEMO-CP-0005'",
    )
    expected = web_ids(web, params)
    assert api_ids(client, token, params) == expected


def test_site_model_and_firmware_filters(client, token, web, database_url, demo):
    site, model = owner(database_url, "SELECT site_id, model FROM charger WHERE ocpp_id = %s", CP)[
        0
    ]
    execute(database_url, "UPDATE charger SET firmware = '2.0.0' WHERE ocpp_id = 'DEMO-CP-0007'")
    for params in (f"site={site}", f"model={model}", "firmware=2.0.0"):
        got = api_ids(client, token, params)
        assert got and got == web_ids(web, params), params
    assert api_ids(client, token, "firmware=2.0.0") == ["DEMO-CP-0007"]


def test_pages_to_the_end_with_no_row_twice(client, token, database_url, demo):
    tenant = demo["demo"]
    execute(
        database_url,
        "INSERT INTO charger (tenant_id, ocpp_id, site_id, firmware)"
        " SELECT %s, 'BULK-' || lpad(g::text, 4, '0'), (SELECT min(id) FROM site"
        " WHERE tenant_id = %s), '1.0' FROM generate_series(1, 120) g",
        tenant,
        tenant,
    )
    expected = [
        r[0]
        for r in owner(
            database_url,
            "SELECT ocpp_id FROM charger WHERE tenant_id = %s ORDER BY ocpp_id",
            tenant,
        )
    ]
    first = client.get("/api/v1/chargers", headers=bearer(token)).get_json()
    assert len(first["items"]) == 50 and first["next_after"] == first["items"][-1]["ocpp_id"]
    got = api_ids(client, token)
    assert got == expected and len(set(got)) == len(got) == 132
    # A filter pages the same way: every BULK charger, once.
    assert api_ids(client, token, "firmware=1.0") == [e for e in expected if e[:5] == "BULK-"]


def test_one_charger_with_site_connectors_faults_and_tickets(client, token, database_url, web):
    ident = owner(database_url, "SELECT id, tenant_id FROM charger WHERE ocpp_id = %s", CP)[0]
    fault(database_url, CP)
    execute(
        database_url,
        "UPDATE charger SET online = true, last_seen = %s, ocpp_protocol = 'ocpp1.6'"
        " WHERE ocpp_id = %s",
        NOW,
        CP,
    )
    events = [
        (NOW - timedelta(minutes=5), "status", 1, "Available", "NoError", None),
        (NOW - timedelta(minutes=3), "status", 2, "Faulted", "GroundFailure", "RCD tripped"),
        (NOW - timedelta(minutes=2), "status", 0, "Unavailable", "NoError", None),
        (NOW - timedelta(minutes=1), "status", 1, "Available", "OtherError", "Fan"),
    ]
    for row in events:
        execute(
            database_url,
            "INSERT INTO charger_event (tenant_id, charger_id, at, kind, connector_no, status,"
            " error_code, info) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            ident[1],
            ident[0],
            *row,
        )
    response = client.get(f"/api/v1/chargers/{CP}", headers=bearer(token))
    assert response.status_code == 200
    body = response.get_json()
    (site,) = owner(
        database_url,
        "SELECT s.id, s.name, s.address, s.lat::float, s.lon::float FROM site s"
        " JOIN charger c ON c.site_id = s.id WHERE c.ocpp_id = %s",
        CP,
    )
    assert [body["site"][k] for k in ("id", "name", "address", "lat", "lon")] == list(site)
    assert body["online"] is True and body["protocol"] == "ocpp1.6"
    assert datetime.fromisoformat(body["last_seen"]) == NOW
    assert [(c["connector_no"], c["status"], c["error_code"]) for c in body["connectors"]] == [
        (0, "Unavailable", "NoError"),
        *owner(
            database_url,
            "SELECT connector_no, status, error_code FROM connector WHERE charger_id = %s"
            " ORDER BY connector_no",
            ident[0],
        ),
    ]
    assert body["connectors"][2]["status"] == "Faulted"
    assert datetime.fromisoformat(body["connectors"][2]["since"]) == NOW
    assert [(f["connector_no"], f["error_code"], f["info"]) for f in body["recent_faults"]] == [
        (1, "OtherError", "Fan"),
        (2, "GroundFailure", "RCD tripped"),
    ]
    # The web page shows the same connector states and tickets.
    page = web.get(f"/chargers/{CP}").get_data(as_text=True)
    assert '<tr id="connector-0" data-status="Unavailable">' in page
    assert '<tr id="connector-2" data-status="Faulted">' in page
    keys = [t["key"] for t in body["tickets"]]
    tickets = owner(
        database_url,
        "SELECT count(*) FROM ticket WHERE charger_id = %s",
        ident[0],
    )[0][0]
    assert len(keys) == min(tickets, 10)
    for key in keys:
        assert f"/tickets/{key}" in page


def test_a_vendor_sees_the_chargers_it_services_and_those_of_its_tickets(
    app, client, database_url, demo
):
    vendor = demo["vendor:Demo Field Services"]
    execute(database_url, "UPDATE charger SET vendor_id = %s WHERE ocpp_id = %s", vendor, CP)
    token = make_token(app, "vendor@demo.test", "read")
    web = as_user(app, "vendor@demo.test")
    expected = [
        r[0]
        for r in owner(
            database_url,
            "SELECT ocpp_id FROM charger c WHERE c.vendor_id = %s OR c.id IN (SELECT charger_id"
            " FROM ticket WHERE assignee_vendor_id = %s) ORDER BY ocpp_id",
            vendor,
            vendor,
        )
    ]
    assert CP in expected and len(expected) < 12
    assert api_ids(client, token) == expected == web_ids(web)
    hidden = next(f"DEMO-CP-{n:04d}" for n in range(1, 13) if f"DEMO-CP-{n:04d}" not in expected)
    response = client.get(f"/api/v1/chargers/{hidden}", headers=bearer(token))
    assert response.status_code == 404 and response.get_json()["error"] == "E_NOT_FOUND"
    body = client.get(f"/api/v1/chargers/{CP}", headers=bearer(token)).get_json()
    assert body["vendor"] == {"id": vendor, "name": "Demo Field Services"}
    # The open-ticket counts are the vendor's tickets only, as on the web.
    counts = {
        r["ocpp_id"]: r["open_tickets"]
        for r in client.get("/api/v1/chargers", headers=bearer(token)).get_json()["items"]
    }
    open_of_vendor = dict(
        owner(
            database_url,
            "SELECT c.ocpp_id, count(t.id) FROM charger c LEFT JOIN ticket t ON t.charger_id ="
            " c.id AND t.assignee_vendor_id = %s AND t.status NOT IN ('resolved', 'closed',"
            " 'cancelled') WHERE c.ocpp_id = ANY(%s) GROUP BY c.ocpp_id",
            vendor,
            expected,
        )
    )
    assert counts == open_of_vendor


def test_another_tenants_chargers_are_never_seen(app, client, demo):
    token = make_token(app, "agent@acme.test", "read")
    assert api_ids(client, token) == [f"ACME-CP-{n:04d}" for n in range(1, 5)]
    assert api_ids(client, token, "q=DEMO") == []
    response = client.get(f"/api/v1/chargers/{CP}", headers=bearer(token))
    assert response.status_code == 404
    assert set(response.get_json()) == {"error", "message", "details"}
    mine = make_token(app, "agent@demo.test", "read")
    assert client.get("/api/v1/chargers/ACME-CP-0001", headers=bearer(mine)).status_code == 404


@pytest.mark.parametrize("email", ["admin", "manager", "engineer", "viewer", "agent", "vendor"])
def test_every_role_may_read_chargers(app, client, demo, email):
    token = make_token(app, f"{email}@demo.test", "read")
    assert client.get("/api/v1/chargers", headers=bearer(token)).status_code == 200


def test_without_a_token_it_is_401(client, demo):
    response = client.get("/api/v1/chargers")
    assert response.status_code == 401 and response.get_json()["error"] == "E_UNAUTHORIZED"
    response = client.get(f"/api/v1/chargers/{CP}", headers=bearer("cass_nope"))
    assert response.status_code == 401 and response.get_json()["error"] == "E_INVALID_TOKEN"


def test_a_read_token_may_not_post(client, token):
    response = client.post("/api/v1/chargers", headers=bearer(token), json={})
    assert response.status_code == 405


@pytest.mark.parametrize(
    "params",
    [
        "site=0",
        "site=abc",
        f"site={2**63}",
        "site=99999999999999999999999999",
        "online=maybe",
        "connector=Nope",
        "connector=faulted%00",
        "faulted=perhaps",
        "model=",
        f"model={'m' * 81}",
        "firmware=a%00b",
        f"q={'q' * 101}",
        "q=DEMO%00",
        "warranty=soon",
        f"after={'a' * 501}",
    ],
)
def test_bad_parameters_are_422_in_the_error_shape(client, token, params):
    response = client.get(f"/api/v1/chargers?{params}", headers=bearer(token))
    assert response.status_code == 422, params
    body = response.get_json()
    assert body["error"] == "E_VALIDATION"
    assert set(body) == {"error", "message", "details"} and "fields" in body["details"]


@pytest.mark.parametrize("cursor", ["not a cursor", "DEMO%00", "x" * 65, "a/b"])
def test_a_cursor_the_list_did_not_hand_out_is_422(client, token, cursor):
    response = client.get(f"/api/v1/chargers?after={cursor}", headers=bearer(token))
    assert response.status_code == 422
    assert response.get_json()["error"] in ("E_BAD_CURSOR", "E_VALIDATION")


@pytest.mark.parametrize("ocpp_id", ["NOPE-CP-1", "a%20b", "x" * 70, "DEMO%00", "%E2%98%83"])
def test_an_unknown_charger_is_404(client, token, ocpp_id):
    response = client.get(f"/api/v1/chargers/{ocpp_id}", headers=bearer(token))
    assert response.status_code == 404
    assert response.get_json()["error"] == "E_NOT_FOUND"


def test_the_spec_documents_the_endpoints(client, demo):
    spec = client.get("/api/v1/openapi.json").get_json()
    listing = spec["paths"]["/api/v1/chargers"]["get"]
    assert listing["summary"].startswith("List the chargers")
    names = {p["name"] for p in listing["parameters"]}
    assert {"q", "site", "online", "connector", "faulted", "model", "firmware", "warranty"} <= names
    assert "after" in names
    assert spec["paths"]["/api/v1/chargers/{ocpp_id}"]["get"]["summary"].startswith("Read one")
