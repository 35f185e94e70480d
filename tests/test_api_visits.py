"""/api/v1/visits (issue 9, point 1): visits in a range with filters and keyset pages, one
visit, booking for a ticket (409 on a double booking, 422 on a rule, free slots), the visit's
steps; compared with the week and day pages, roles, vendors and tenants, bad input."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from cass.extensions import db
from cass.models import Ticket, User, Visit
from cass.services import visits
from cass.tenancy import tenant_context
from tests.api_support import all_pages, bearer, make_token
from tests.conftest import as_user
from tests.ocpp_support import execute, query

# A Monday in the demo tenant's working hours (Mon-Fri 08:00-18:00 UTC).
MONDAY = datetime(2027, 1, 4, tzinfo=UTC)
WEEK = {"since": "2027-01-04", "until": "2027-01-10"}
WEEK_RE = re.compile(r'data-visit-id="(\d+)"')
CARD_RE = re.compile(r'id="visit-(\d+)"')


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour, minutes=minute)


def book(app, demo, start: datetime, hours: float = 1, number: int = 1, **who) -> int:
    """Book a visit for demo ticket `number` through the service; return its id."""
    if not who:
        who = {"engineer_id": demo["engineer@demo.test"]}
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == number))
        visit = visits.book(
            ticket,
            db.session.get(User, demo["manager@demo.test"]),
            starts_at=start,
            ends_at=start + timedelta(hours=hours),
            **who,
        )
        db.session.commit()
        return visit.id


def count_visits(app, demo) -> int:
    with app.app_context(), tenant_context(demo["demo"]):
        return db.session.scalar(select(func.count()).select_from(Visit))


def ticket_key(app, demo, number: int = 1) -> str:
    with app.app_context(), tenant_context(demo["demo"]):
        from cass.services.tickets import format_key, tenant_prefix

        return format_key(tenant_prefix(), number)


@pytest.fixture
def planned(app, demo) -> dict[str, int]:
    vendor = demo["vendor:Demo Field Services"]
    return {
        "monday": book(app, demo, at(0, 9)),
        "tuesday": book(app, demo, at(1, 14), 2, number=2),
        "vendor": book(app, demo, at(2, 10), vendor_id=vendor),
        "next_week": book(app, demo, at(7, 9)),
    }


@pytest.fixture
def manager(app, demo) -> str:
    return make_token(app, "manager@demo.test", "write")


def api_ids(client, token: str, **params: str) -> list[int]:
    """Return the ids of every page of the API list, following next_after to the end."""
    return [row["id"] for row in all_pages(client, "/api/v1/visits", token, **params)]


def test_the_range_holds_the_weeks_visits_in_start_order(app, client, demo, planned, manager):
    got = api_ids(client, manager, **WEEK)
    assert got == [planned[k] for k in ("monday", "tuesday", "vendor")]
    week = as_user(app, "manager@demo.test").get("/visits/week?start=2027-01-04")
    assert set(map(int, WEEK_RE.findall(week.get_data(as_text=True)))) == set(got)
    assert api_ids(client, manager, since="2027-01-11", until="2027-01-11") == [
        planned["next_week"]
    ]


def test_a_visit_reads_as_the_pages_show_it(app, client, demo, planned, manager, database_url):
    body = client.get(f"/api/v1/visits/{planned['monday']}", headers=bearer(manager)).get_json()
    (site_id, site_name, ocpp_id, title) = query(
        database_url,
        "SELECT s.id, s.name, c.ocpp_id, t.title FROM ticket t LEFT JOIN site s ON s.id ="
        " t.site_id LEFT JOIN charger c ON c.id = t.charger_id WHERE t.tenant_id = %s AND"
        " t.number = 1",
        (demo["demo"],),
    )[0]
    assert body["ticket"] == {
        "id": body["ticket"]["id"],
        "key": ticket_key(app, demo),
        "title": title,
    }
    assert body["engineer"] == {"id": demo["engineer@demo.test"], "name": body["engineer"]["name"]}
    assert body["engineer"]["name"] and body["vendor"] is None
    assert body["charger"] == ocpp_id
    assert body["site"]["id"] == site_id and body["site"]["name"] == site_name
    assert datetime.fromisoformat(body["starts_at"]) == at(0, 9)
    assert datetime.fromisoformat(body["ends_at"]) == at(0, 10)
    assert body["status"] == "scheduled" and body["checked_in_at"] is None
    assert body["steps"] == ["confirmed", "en_route", "on_site", "no_access", "cancelled"]
    listed = client.get("/api/v1/visits", headers=bearer(manager), query_string=WEEK)
    assert listed.get_json()["items"][0] == body


def test_filters(app, client, demo, planned, manager):
    vendor = demo["vendor:Demo Field Services"]
    engineer = demo["engineer@demo.test"]
    assert api_ids(client, manager, vendor=str(vendor), **WEEK) == [planned["vendor"]]
    assert api_ids(client, manager, engineer=str(engineer), **WEEK) == [
        planned["monday"],
        planned["tuesday"],
    ]
    assert api_ids(client, manager, status="cancelled", **WEEK) == []
    assert api_ids(client, manager, engineer=str(demo["admin@demo.test"]), **WEEK) == []


def test_the_default_range_is_the_next_seven_days(app, client, demo, manager):
    today = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    soon = book(app, demo, today + timedelta(days=3), vendor_id=demo["vendor:Demo Field Services"])
    later = book(app, demo, today + timedelta(days=9), vendor_id=demo["vendor:Demo Field Services"])
    got = api_ids(client, manager)
    assert soon in got and later not in got


def test_pages_to_the_end_with_no_row_twice(app, client, demo, manager, database_url):
    vendor = demo["vendor:Demo Field Services"]
    # 120 vendor visits (no engineer: no overlap rule), some starting at the same instant.
    execute(
        database_url,
        "INSERT INTO visit (tenant_id, ticket_id, vendor_id, starts_at, ends_at)"
        " SELECT t.tenant_id, t.id, %s, %s + make_interval(mins => (g / 3) * 15),"
        " %s + make_interval(mins => (g / 3) * 15 + 60) FROM generate_series(0, 119) g,"
        " (SELECT tenant_id, id FROM ticket WHERE tenant_id = %s AND number = 3) t",
        (vendor, at(0, 8), at(0, 8), demo["demo"]),
    )
    expected = [
        r[0]
        for r in query(
            database_url,
            "SELECT id FROM visit WHERE tenant_id = %s ORDER BY starts_at, id",
            (demo["demo"],),
        )
    ]
    first = client.get("/api/v1/visits", headers=bearer(manager), query_string=WEEK).get_json()
    assert len(first["items"]) == 50 and first["next_after"]
    got = api_ids(client, manager, **WEEK)
    assert got == expected and len(set(got)) == len(got) == 120


def test_vendors_see_only_their_vendors_visits(app, client, demo, planned):
    token = make_token(app, "vendor@demo.test", "write")
    assert api_ids(client, token, **WEEK) == [planned["vendor"]]
    day = as_user(app, "vendor@demo.test").get("/visits/day?date=2027-01-06")
    assert CARD_RE.findall(day.get_data(as_text=True)) == [str(planned["vendor"])]
    response = client.get(f"/api/v1/visits/{planned['monday']}", headers=bearer(token))
    assert response.status_code == 404
    response = client.post(
        f"/api/v1/visits/{planned['monday']}/status",
        headers=bearer(token),
        json={"status": "confirmed"},
    )
    assert response.status_code == 404
    # Their own visit: they take its steps, but cancelling is the dispatcher's.
    own = client.get(f"/api/v1/visits/{planned['vendor']}", headers=bearer(token)).get_json()
    assert "cancelled" not in own["steps"] and "on_site" in own["steps"]
    response = client.post(
        f"/api/v1/visits/{planned['vendor']}/status",
        headers=bearer(token),
        json={"status": "cancelled"},
    )
    assert response.status_code == 422 and response.get_json()["error"] == "E_RULE"
    response = client.post(
        f"/api/v1/visits/{planned['vendor']}/status",
        headers=bearer(token),
        json={"status": "en_route"},
    )
    assert response.status_code == 200 and response.get_json()["status"] == "en_route"


def test_another_tenant_never_sees_or_books_them(app, client, demo, planned):
    token = make_token(app, "admin@acme.test", "write")
    assert api_ids(client, token, **WEEK) == []
    for ident in planned.values():
        assert client.get(f"/api/v1/visits/{ident}", headers=bearer(token)).status_code == 404
    response = client.post(
        f"/api/v1/visits/{planned['monday']}/status",
        headers=bearer(token),
        json={"status": "cancelled"},
    )
    assert response.status_code == 404
    key = ticket_key(app, demo)
    body = {
        "vendor": demo["vendor:Demo Field Services"],
        "starts_at": at(3, 9).isoformat(),
        "ends_at": at(3, 10).isoformat(),
    }
    response = client.post(f"/api/v1/tickets/{key}/visits", headers=bearer(token), json=body)
    assert response.status_code == 404
    assert count_visits(app, demo) == len(planned)


def test_a_manager_books_a_visit(app, client, demo, manager):
    key = ticket_key(app, demo, 2)
    body = {
        "engineer": demo["engineer@demo.test"],
        "starts_at": "2027-01-05T10:00:00+00:00",
        "ends_at": "2027-01-05T11:30:00+00:00",
        "notes": "Bring a spare RCD",
    }
    response = client.post(f"/api/v1/tickets/{key}/visits", headers=bearer(manager), json=body)
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert made["ticket"]["key"] == key and made["notes"] == "Bring a spare RCD"
    assert made["engineer"]["id"] == demo["engineer@demo.test"] and made["status"] == "scheduled"
    assert response.headers["Location"].endswith(f"/api/v1/visits/{made['id']}")
    assert client.get(response.headers["Location"], headers=bearer(manager)).get_json() == made
    # The ticket's page lists it, as booked on the web.
    page = as_user(app, "manager@demo.test").get(f"/tickets/{key}").get_data(as_text=True)
    assert f'data-visit-id="{made["id"]}"' in page and "Bring a spare RCD" in page
    # By ticket id too, and for a vendor.
    ticket_id = made["ticket"]["id"]
    response = client.post(
        f"/api/v1/tickets/{ticket_id}/visits",
        headers=bearer(manager),
        json={
            "vendor": demo["vendor:Demo Field Services"],
            "starts_at": "2027-01-05T10:00:00+01:00",
            "ends_at": "2027-01-05T12:00:00+01:00",
        },
    )
    assert response.status_code == 201
    assert datetime.fromisoformat(response.get_json()["starts_at"]) == at(1, 9)


def test_a_double_booking_is_409_with_free_slots_and_nothing_written(
    app, client, demo, planned, manager
):
    key = ticket_key(app, demo, 3)
    body = {
        "engineer": demo["engineer@demo.test"],
        "starts_at": at(0, 9, 30).isoformat(),
        "ends_at": at(0, 10, 30).isoformat(),
    }
    response = client.post(f"/api/v1/tickets/{key}/visits", headers=bearer(manager), json=body)
    assert response.status_code == 409
    error = response.get_json()
    assert error["error"] == "E_VISIT_CONFLICT" and "booked then" in error["message"]
    assert "starts_at" in error["details"]["fields"]["json"]
    assert datetime.fromisoformat(error["details"]["free_slots"][0]) == at(0, 10)
    assert count_visits(app, demo) == len(planned)


def test_outside_working_hours_is_422_unless_overridden(app, client, demo, manager):
    key = ticket_key(app, demo)
    body = {
        "engineer": demo["engineer@demo.test"],
        "starts_at": at(0, 19).isoformat(),
        "ends_at": at(0, 20).isoformat(),
    }
    response = client.post(f"/api/v1/tickets/{key}/visits", headers=bearer(manager), json=body)
    assert response.status_code == 422
    error = response.get_json()
    assert error["error"] == "E_RULE" and error["details"]["free_slots"]
    assert count_visits(app, demo) == 0
    response = client.post(
        f"/api/v1/tickets/{key}/visits",
        headers=bearer(manager),
        json={**body, "override": True},
    )
    assert response.status_code == 201 and response.get_json()["outside_hours"] is True


GOOD = {"starts_at": "2027-01-05T10:00:00+00:00", "ends_at": "2027-01-05T11:00:00+00:00"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"starts_at": GOOD["starts_at"], "engineer": 1}, "E_VALIDATION"),
        ({**GOOD, "starts_at": "2027-01-05T10:00:00"}, "E_VALIDATION"),
        ({**GOOD, "starts_at": "tomorrow"}, "E_VALIDATION"),
        ({**GOOD, "starts_at": "0001-01-01T00:00:00+14:00"}, "E_VALIDATION"),
        ({**GOOD, "ends_at": "9999-12-31T23:59:59-14:00"}, "E_VALIDATION"),
        ({**GOOD, "engineer": 0}, "E_VALIDATION"),
        ({**GOOD, "engineer": 2**63}, "E_VALIDATION"),
        ({**GOOD, "engineer": "me"}, "E_VALIDATION"),
        ({**GOOD, "vendor": -1}, "E_VALIDATION"),
        ({**GOOD, "vendor": 1, "notes": "n" * 2001}, "E_VALIDATION"),
        ({**GOOD, "vendor": 1, "notes": "a\x00b"}, "E_VALIDATION"),
        ({**GOOD, "vendor": 1, "override": "perhaps"}, "E_VALIDATION"),
        (GOOD, "E_RULE"),  # neither an engineer nor a vendor
        ({**GOOD, "engineer": 999999}, "E_RULE"),
        ({**GOOD, "vendor": 999999}, "E_RULE"),
        ({**GOOD, "ends_at": GOOD["starts_at"], "vendor": 1}, "E_RULE"),
        ({**GOOD, "ends_at": "2027-01-06T11:00:00+00:00", "vendor": 1}, "E_RULE"),
    ],
)
def test_bad_bookings_are_422_and_change_nothing(app, client, demo, manager, body, code):
    if body.get("vendor") == 1:
        body = {**body, "vendor": demo["vendor:Demo Field Services"]}
    key = ticket_key(app, demo)
    response = client.post(f"/api/v1/tickets/{key}/visits", headers=bearer(manager), json=body)
    assert response.status_code == 422, response.get_json()
    error = response.get_json()
    assert error["error"] == code and set(error) == {"error", "message", "details"}
    assert count_visits(app, demo) == 0


def test_an_engineer_of_the_other_tenant_is_refused(app, client, demo, manager):
    body = {**GOOD, "engineer": demo["admin@acme.test"]}
    key = ticket_key(app, demo)
    response = client.post(f"/api/v1/tickets/{key}/visits", headers=bearer(manager), json=body)
    assert response.status_code == 422 and response.get_json()["error"] == "E_RULE"
    assert count_visits(app, demo) == 0


@pytest.mark.parametrize("ref", ["DEMO-999999", "999999", "x" * 40, "0", str(2**64)])
def test_booking_for_an_unknown_ticket_is_404(client, demo, manager, ref):
    response = client.post(
        f"/api/v1/tickets/{ref}/visits",
        headers=bearer(manager),
        json={**GOOD, "vendor": demo["vendor:Demo Field Services"]},
    )
    assert response.status_code == 404 and response.get_json()["error"] == "E_NOT_FOUND"


def test_the_body_must_be_json(app, client, demo, manager):
    key = ticket_key(app, demo)
    response = client.post(
        f"/api/v1/tickets/{key}/visits",
        headers={**bearer(manager), "Content-Type": "application/json"},
        data="{not json",
    )
    assert response.status_code == 400 and response.get_json()["error"] == "E_INVALID_JSON"


@pytest.mark.parametrize(
    ("email", "book_status", "step_status"),
    [
        ("agent", 403, 403),
        ("viewer", 403, 403),
        ("engineer", 403, 200),
        ("admin", 201, 200),
    ],
)
def test_roles(app, client, demo, planned, email, book_status, step_status):
    token = make_token(app, f"{email}@demo.test", "write")
    assert client.get("/api/v1/visits", headers=bearer(token)).status_code == 200
    key = ticket_key(app, demo)
    response = client.post(
        f"/api/v1/tickets/{key}/visits",
        headers=bearer(token),
        json={**GOOD, "vendor": demo["vendor:Demo Field Services"]},
    )
    assert response.status_code == book_status
    if book_status == 403:
        assert response.get_json()["error"] == "E_FORBIDDEN"
    response = client.post(
        f"/api/v1/visits/{planned['monday']}/status",
        headers=bearer(token),
        json={"status": "confirmed"},
    )
    assert response.status_code == step_status


def test_a_read_token_may_not_book_or_step(app, client, demo, planned):
    token = make_token(app, "manager@demo.test", "read")
    key = ticket_key(app, demo)
    response = client.post(
        f"/api/v1/tickets/{key}/visits",
        headers=bearer(token),
        json={**GOOD, "vendor": demo["vendor:Demo Field Services"]},
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "E_READ_ONLY_TOKEN"
    response = client.post(
        f"/api/v1/visits/{planned['monday']}/status",
        headers=bearer(token),
        json={"status": "confirmed"},
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "E_READ_ONLY_TOKEN"
    assert count_visits(app, demo) == len(planned)


def test_the_engineer_checks_in_and_out(app, client, demo, planned):
    token = make_token(app, "engineer@demo.test", "write")
    url = f"/api/v1/visits/{planned['monday']}/status"
    for step, steps in [
        ("en_route", ["on_site", "no_access"]),
        ("on_site", ["done"]),
        ("done", []),
    ]:
        response = client.post(url, headers=bearer(token), json={"status": step})
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["status"] == step and body["steps"] == steps
    assert body["checked_in_at"] and body["checked_out_at"]
    # The engineer's day shows it done.
    day = as_user(app, "engineer@demo.test").get("/visits/day?date=2027-01-04")
    assert "status-done" in day.get_data(as_text=True)
    response = client.post(url, headers=bearer(token), json={"status": "on_site"})
    assert response.status_code == 422 and response.get_json()["details"]["steps"] == []


@pytest.mark.parametrize(
    "body", [{}, {"status": "flying"}, {"status": "scheduled"}, {"status": None}, []]
)
def test_bad_steps_are_422(client, demo, planned, manager, body):
    response = client.post(
        f"/api/v1/visits/{planned['monday']}/status", headers=bearer(manager), json=body
    )
    assert response.status_code == 422 and response.get_json()["error"] == "E_VALIDATION"


@pytest.mark.parametrize("ident", ["0", "999999", str(2**63), str(10**30), "abc"])
def test_an_unknown_visit_is_404(client, demo, manager, ident):
    response = client.get(f"/api/v1/visits/{ident}", headers=bearer(manager))
    assert response.status_code == 404 and response.get_json()["error"] == "E_NOT_FOUND"
    response = client.post(
        f"/api/v1/visits/{ident}/status", headers=bearer(manager), json={"status": "confirmed"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2027-02-30"},
        {"since": "1999-12-31"},
        {"until": "9999-12-31"},
        {"since": "2027-01-10", "until": "2027-01-04"},
        {"since": "2027-01-01", "until": "2028-12-31"},
        {"engineer": "0"},
        {"engineer": str(2**63)},
        {"vendor": "x"},
        {"status": "maybe"},
        {"after": "2027\x00"},
        {"after": "a" * 501},
    ],
)
def test_bad_list_parameters_are_422(client, demo, manager, params):
    response = client.get("/api/v1/visits", headers=bearer(manager), query_string=params)
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "E_VALIDATION" and body["details"]["fields"]["query"]


@pytest.mark.parametrize(
    "cursor",
    ["broken", "2027-01-04T09:00:00|5", "2027-01-04T09:00:00+00:00|0", f"2027-01-04|{2**63}"],
)
def test_a_cursor_the_list_did_not_hand_out_is_422(client, demo, manager, cursor):
    response = client.get("/api/v1/visits", headers=bearer(manager), query_string={"after": cursor})
    assert response.status_code == 422 and response.get_json()["error"] == "E_BAD_CURSOR"


def test_the_spec_documents_the_endpoints(client, demo):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    assert paths["/api/v1/visits"]["get"]["summary"].startswith("List the visits")
    assert paths["/api/v1/visits/{visit_id}"]["get"]["summary"] == "Read one visit."
    assert "requestBody" in paths["/api/v1/tickets/{ref}/visits"]["post"]
    assert "requestBody" in paths["/api/v1/visits/{visit_id}/status"]["post"]
