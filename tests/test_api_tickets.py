"""/api/v1/tickets (issue 9, point 1): the list with the web list's filters and keyset pages,
read by id or key, create, change with optimistic locking, assign, move, worklogs, history and
attachment metadata; vendors and the other tenant see what they see in the web, no more."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qsl

from sqlalchemy import func, select

from cass.extensions import db
from cass.models import Ticket, TicketEvent, Worklog
from cass.services import tickets
from cass.services.attachments import attach
from cass.tenancy import system_context, tenant_context
from tests.api_support import all_pages, bearer, make_token
from tests.conftest import as_user
from tests.test_api import error_of

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
KEY_RE = re.compile(r"\bDEMO-\d+\b")


def tickets_of(client, headers: dict[str, str], query: str = "") -> list[dict]:
    """Every ticket of the API list for `query`, page after page."""
    token = headers["Authorization"].removeprefix("Bearer ")
    return all_pages(client, "/api/v1/tickets", token, **dict(parse_qsl(query)))


def ticket_count(app, **where) -> int:
    with app.app_context(), system_context():
        return db.session.scalar(select(func.count(Ticket.id)).filter_by(**where))


def test_the_list_is_the_web_list(app, demo, client):
    """Same filters, same tickets, in the same order as /tickets shows them; pages to the end
    give every ticket once."""
    token = bearer(make_token(app, "manager@demo.test"))
    web = as_user(app, "manager@demo.test")
    for query in ("", "status=open&priority=P1&priority=P2", "sort=priority&dir=asc", "q=charger"):
        first = client.get(f"/api/v1/tickets?{query}", headers=token).get_json()
        page = web.get(f"/tickets?{query}").get_data(as_text=True)
        shown = list(dict.fromkeys(KEY_RE.findall(page)))
        assert [item["key"] for item in first["items"]] == shown[: len(first["items"])], query
    items = tickets_of(client, token)
    assert len(items) == len({i["id"] for i in items}) == ticket_count(app, tenant_id=demo["demo"])
    # Each filter narrows to what it says.
    p1 = tickets_of(client, token, "priority=P1")
    assert p1 and all(i["priority"] == "P1" for i in p1)
    assert len(p1) == ticket_count(app, tenant_id=demo["demo"], priority="P1")
    open_ = tickets_of(client, token, "status=open")
    assert {i["status"] for i in open_} <= {"new", "assigned", "in_progress", "on_hold", "reopened"}
    charger = tickets_of(client, token, "charger=DEMO-CP-0003")
    assert charger and all(i["charger"] == "DEMO-CP-0003" for i in charger)


def test_a_ticket_by_id_or_key(app, demo, client):
    """Both name the same ticket; the answer holds its SLA clocks, version and next moves."""
    token = bearer(make_token(app, "agent@demo.test"))
    by_key = client.get("/api/v1/tickets/demo-1", headers=token)
    assert by_key.status_code == 200
    ticket = by_key.get_json()
    assert ticket["key"] == "DEMO-1" and ticket["number"] == 1
    assert by_key.headers["ETag"] == f'"{ticket["version"]}"'
    by_id = client.get(f"/api/v1/tickets/{ticket['id']}", headers=token).get_json()
    assert by_id == ticket
    with app.app_context(), tenant_context(demo["demo"]):
        row = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        assert ticket["title"] == row.title and ticket["status"] == row.status
        assert ticket["version"] == row.version
        assert len(ticket["sla"]) == len(tickets.sla.badges(row))


def test_create_then_change_with_optimistic_locking(app, demo, client):
    """201 with Location; a change at the right version goes, at an old one is 409 and changes
    nothing; history records both."""
    token = bearer(make_token(app, "agent@demo.test"))
    created = client.post(
        "/api/v1/tickets",
        json={
            "title": "  Screen dark  ",
            "category": "hardware",
            "priority": "P2",
            "charger": "DEMO-CP-0002",
            "connector": 2,
            "caller_name": "Ana",
            "caller_email": "ANA@example.com",
        },
        headers=token,
    )
    assert created.status_code == 201, created.get_json()
    ticket = created.get_json()
    assert created.headers["Location"] == f"/api/v1/tickets/{ticket['id']}"
    assert ticket["title"] == "Screen dark" and ticket["channel"] == "api"
    assert ticket["charger"]["ocpp_id"] == "DEMO-CP-0002" and ticket["connector"] == 2
    assert ticket["caller_email"] == "ana@example.com" and ticket["status"] == "new"
    assert ticket["site"] is not None and ticket["version"] == 1
    assert client.get(created.headers["Location"], headers=token).get_json() == ticket

    url = f"/api/v1/tickets/{ticket['key']}"
    changed = client.patch(url, json={"version": 1, "priority": "P1"}, headers=token)
    assert changed.status_code == 200 and changed.get_json()["priority"] == "P1"
    assert changed.get_json()["version"] == 2
    stale = client.patch(url, json={"version": 1, "title": "Lost update"}, headers=token)
    body = error_of(stale, 409, "E_VERSION_CONFLICT")
    assert body["details"] == {"version": 2}
    fresh = client.get(url, headers=token).get_json()
    assert fresh["title"] == "Screen dark" and fresh["version"] == 2
    events = client.get(f"{url}/events", headers=token).get_json()
    assert [(e["kind"], e["field"], e["to_value"]) for e in events] == [
        ("created", "status", "new"),
        ("field", "priority", "P1"),
    ]
    assert events[1]["actor"]["id"] == demo["agent@demo.test"]


def test_bad_tickets_are_refused_and_nothing_is_written(app, demo, client):
    """Unknown charger, a connector the charger lacks, a connector without a charger, another
    tenant's charger, a title of spaces: 422 in the shape, no ticket."""
    token = bearer(make_token(app, "agent@demo.test"))
    before = ticket_count(app)
    for body, code in (
        ({"charger": "NOPE-1"}, "E_UNKNOWN_CHARGER"),
        ({"charger": "ACME-CP-0001"}, "E_UNKNOWN_CHARGER"),
        ({"charger": "DEMO-CP-0001", "connector": 9}, "E_UNKNOWN_CONNECTOR"),
        ({"connector": 1}, "E_RULE"),
        ({"site": 999999}, "E_UNKNOWN_SITE"),
        ({"title": ""}, "E_VALIDATION"),
        ({"title": "x" * 201}, "E_VALIDATION"),
        ({"caller_email": "not-an-email"}, "E_VALIDATION"),
        ({"channel": "ocpp-auto"}, "E_VALIDATION"),
    ):
        answer = client.post(
            "/api/v1/tickets", json={"title": "T", "category": "other", **body}, headers=token
        )
        error_of(answer, 422, code)
    assert ticket_count(app) == before


def test_assign_move_and_work_a_ticket(app, demo, client):
    """The manager assigns, the engineer starts, logs work and resolves; a move missing its
    field or not the role's is refused with the lifecycle's message."""
    manager = bearer(make_token(app, "manager@demo.test"))
    engineer = bearer(make_token(app, "engineer@demo.test"))
    ticket = client.post(
        "/api/v1/tickets", json={"title": "Cable", "category": "damage"}, headers=manager
    ).get_json()
    url = f"/api/v1/tickets/{ticket['id']}"
    assigned = client.post(
        f"{url}/transitions",
        json={"name": "assign", "version": 1, "user": demo["engineer@demo.test"]},
        headers=manager,
    )
    assert assigned.status_code == 200
    assert assigned.get_json()["status"] == "assigned"
    assert assigned.get_json()["assignee"]["id"] == demo["engineer@demo.test"]
    version = assigned.get_json()["version"]
    # Assigning is the managers'; the permission table says so before anything is read.
    error_of(
        client.post(f"{url}/assign", json={"version": version, "user": None}, headers=engineer),
        403,
        "E_FORBIDDEN",
    )
    error_of(
        client.post(f"{url}/assign", json={"version": version, "user": 999999}, headers=manager),
        422,
        "E_UNKNOWN_USER",
    )
    # Reassigning to a vendor and back keeps the status and records both.
    vendor = demo["vendor:Demo Field Services"]
    moved = client.post(
        f"{url}/assign", json={"version": version, "vendor": vendor}, headers=manager
    )
    assert moved.status_code == 200 and moved.get_json()["vendor"]["id"] == vendor
    assert moved.get_json()["assignee"] is None and moved.get_json()["status"] == "assigned"
    back = client.post(
        f"{url}/assign",
        json={"version": moved.get_json()["version"], "user": demo["engineer@demo.test"]},
        headers=manager,
    )
    assert back.status_code == 200
    version = back.get_json()["version"]
    started = client.post(
        f"{url}/transitions", json={"name": "start", "version": version}, headers=engineer
    )
    assert started.status_code == 200 and started.get_json()["status"] == "in_progress"
    version = started.get_json()["version"]
    assert "resolve" in started.get_json()["transitions"]
    body = error_of(
        client.post(
            f"{url}/transitions", json={"name": "resolve", "version": version}, headers=engineer
        ),
        422,
        "E_RULE",
    )
    assert "resolution note" in body["message"]
    error_of(
        client.post(
            f"{url}/transitions",
            json={"name": "cancel", "version": version, "cancel_reason": "x"},
            headers=engineer,
        ),
        403,
        "E_MOVE_NOT_ALLOWED",
    )
    logged = client.post(
        f"{url}/worklogs", json={"body": "Replaced the cable", "minutes": 45}, headers=engineer
    )
    assert logged.status_code == 201
    assert logged.get_json()["author"]["id"] == demo["engineer@demo.test"]
    error_of(client.post(f"{url}/worklogs", json={"body": ""}, headers=engineer), 422)
    error_of(
        client.post(f"{url}/worklogs", json={"body": "x", "minutes": 2000}, headers=engineer), 422
    )
    version = client.get(url, headers=engineer).get_json()["version"]
    resolved = client.post(
        f"{url}/transitions",
        json={"name": "resolve", "version": version, "resolution_note": "Cable replaced"},
        headers=engineer,
    )
    assert resolved.status_code == 200
    assert resolved.get_json()["status"] == "resolved"
    assert resolved.get_json()["resolution_note"] == "Cable replaced"
    worklogs = client.get(f"{url}/worklogs", headers=engineer).get_json()
    assert [(w["body"], w["minutes"]) for w in worklogs] == [("Replaced the cable", 45)]
    with app.app_context(), system_context():
        assert (
            db.session.scalar(
                select(func.count(Worklog.id)).where(Worklog.ticket_id == ticket["id"])
            )
            == 1
        )
        kinds = db.session.scalars(
            select(TicketEvent.to_value)
            .where(TicketEvent.ticket_id == ticket["id"], TicketEvent.kind == "status")
            .order_by(TicketEvent.id)
        ).all()
        assert kinds == ["assigned", "in_progress", "resolved"]


def test_attachments_are_listed_not_sent(app, demo, client):
    """The metadata of the ticket's files; the bytes stay in the web app."""
    token = bearer(make_token(app, "viewer@demo.test"))
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 2))
        engineer = db.session.get(tickets.User, demo["engineer@demo.test"])
        item_id = attach(ticket, engineer, io.BytesIO(PNG), "cable.png").id
        engineer_name = engineer.name
    files = client.get("/api/v1/tickets/DEMO-2/attachments", headers=token).get_json()
    assert files == [
        {
            "id": item_id,
            "filename": "cable.png",
            "content_type": "image/png",
            "size": len(PNG),
            "worklog_id": None,
            "uploaded_by": {"id": demo["engineer@demo.test"], "name": engineer_name},
            "created_at": files[0]["created_at"],
        }
    ]


def test_a_vendor_sees_its_vendors_tickets_and_the_other_tenant_nothing(app, demo, client):
    """As in the web: a vendor's list holds its vendor's tickets only; every other ticket and
    every ticket of the other tenant is a 404, by id and by key."""
    vendor = bearer(make_token(app, "vendor@demo.test"))
    acme = bearer(make_token(app, "admin@acme.test"))
    with app.app_context(), system_context():
        theirs = db.session.scalars(
            select(Ticket.id).where(Ticket.assignee_vendor_id == demo["vendor:Demo Field Services"])
        ).all()
        other = db.session.scalar(
            select(Ticket.id).where(
                Ticket.tenant_id == demo["demo"], Ticket.assignee_vendor_id.is_(None)
            )
        )
    listed = tickets_of(client, vendor)
    assert theirs and sorted(i["id"] for i in listed) == sorted(theirs)
    error_of(client.get(f"/api/v1/tickets/{other}", headers=vendor), 404, "E_NOT_FOUND")
    assert tickets_of(client, acme) == [] or all(
        i["key"].startswith("ACME-") for i in tickets_of(client, acme)
    )
    for ref in (str(theirs[0]), "DEMO-1"):
        error_of(client.get(f"/api/v1/tickets/{ref}", headers=acme), 404, "E_NOT_FOUND")
        error_of(
            client.patch(f"/api/v1/tickets/{ref}", json={"version": 1, "title": "x"}, headers=acme),
            404,
        )
        error_of(client.get(f"/api/v1/tickets/{ref}/worklogs", headers=acme), 404)
