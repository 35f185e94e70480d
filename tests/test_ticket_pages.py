"""Ticket pages: quick create with charger lookup, detail, inline edit with optimistic locking,
transitions, assignment, worklogs and attachments — each with and without htmx."""

from __future__ import annotations

import io
import re

import pytest
from sqlalchemy import func, select

from cass.extensions import db
from cass.models import Attachment, Ticket, TicketEvent, Worklog
from cass.tenancy import system_context
from tests.conftest import as_user, login, page_token

HX = {"HX-Request": "true"}
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def agent(client, demo):
    assert login(client, "agent@demo.test").status_code == 303
    return client


def count(app, model, **where):
    with app.app_context(), system_context():
        stmt = select(func.count()).select_from(model)
        for name, value in where.items():
            stmt = stmt.where(getattr(model, name) == value)
        return db.session.scalar(stmt)


def ticket_row(app, number, tenant_id):
    with app.app_context(), system_context():
        t = db.session.scalar(
            select(Ticket).where(Ticket.number == number, Ticket.tenant_id == tenant_id)
        )
        return {
            c: getattr(t, c)
            for c in (
                "id",
                "status",
                "title",
                "version",
                "priority",
                "assignee_user_id",
                "assignee_vendor_id",
            )
        }


def create(client, demo, **overrides):
    token = page_token(client, "/tickets/new")
    data = {
        "csrf_token": token,
        "title": "Display flickers",
        "category": "hardware",
        "priority": "P2",
        "channel": "phone",
        "charger_id": str(demo["DEMO-CP-0003"]),
        "connector_id": "",
        "caller_name": "Sam",
        "caller_phone": "+44 1",
        "caller_email": "",
    }
    return client.post("/tickets/new", data=data | overrides)


def new_key(response) -> str:
    return response.headers["Location"].rsplit("/", 1)[-1]


# --- create --------------------------------------------------------------------------------


def test_lookup_finds_chargers_as_you_type(agent):
    fragment = agent.get("/tickets/lookup?q=harbour", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="lookup-results"')
    assert "DEMO-CP-0003" in fragment and "ACME" not in fragment
    page = agent.get("/tickets/lookup?q=harbour").get_data(as_text=True)
    assert "<html" in page and "DEMO-CP-0003" in page


def test_picking_a_charger_prefills_connectors_and_warns_of_open_tickets(agent, demo):
    pick = agent.get(f"/tickets/lookup?pick={demo['DEMO-CP-0004']}", headers=HX)
    body = pick.get_data(as_text=True)
    assert body.lstrip().startswith('<div id="charger-pick"')
    assert "Connector 1" in body and "Connector 2" in body
    assert "already has open tickets" in body and "/tickets/DEMO-" in body
    page = agent.get(f"/tickets/lookup?pick={demo['DEMO-CP-0004']}").get_data(as_text=True)
    assert "<html" in page and "Connector 2" in page


def test_new_ticket_from_a_charger_row_is_prefilled(agent):
    page = agent.get("/tickets/new?charger=DEMO-CP-0007").get_data(as_text=True)
    assert "Charger <strong>DEMO-CP-0007</strong>" in page


def test_create_gives_the_next_key_and_records_history(app, agent, demo):
    before = count(app, Ticket, tenant_id=demo["demo"])
    response = create(agent, demo)
    assert response.status_code == 303
    key = new_key(response)
    assert re.fullmatch(r"DEMO-\d+", key)
    page = agent.get(f"/tickets/{key}").get_data(as_text=True)
    assert "Display flickers" in page and "created the ticket" in page and "DEMO-CP-0003" in page
    assert count(app, Ticket, tenant_id=demo["demo"]) == before + 1


@pytest.mark.parametrize(
    ("overrides", "status", "message"),
    [
        ({"title": ""}, 422, "This field is required."),
        ({"title": "x" * 201}, 422, "Field cannot be longer than 200 characters."),
        ({"priority": "P9"}, 422, "Not a valid choice."),
        ({"caller_email": "nope"}, 422, "Invalid email address."),
        ({"charger_id": "999999"}, 404, None),
        ({"charger_id": "acme"}, 404, None),
        ({"connector_id": "999999"}, 404, None),
    ],
)
def test_create_bad_input_creates_nothing(app, agent, demo, overrides, status, message):
    if overrides.get("charger_id") == "acme":
        overrides["charger_id"] = str(demo["ACME-CP-0001"])
    before = count(app, Ticket)
    response = create(agent, demo, **overrides)
    assert response.status_code == status
    if message:
        assert message in response.get_data(as_text=True)
    assert count(app, Ticket) == before


def test_create_with_a_connector_of_another_charger_is_422(app, agent, demo):
    with app.app_context(), system_context():
        from cass.models import Connector

        other = db.session.scalar(
            select(Connector.id).where(Connector.charger_id == demo["DEMO-CP-0001"])
        )
    before = count(app, Ticket)
    response = create(agent, demo, connector_id=str(other))
    assert response.status_code == 422
    assert "connector does not belong" in response.get_data(as_text=True)
    assert count(app, Ticket) == before


def test_create_form_with_htmx_is_a_fragment(agent, demo):
    response = agent.post(
        "/tickets/new",
        headers=HX,
        data={"csrf_token": page_token(agent, "/tickets/new"), "title": ""},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" not in body
    assert body.lstrip().startswith('<form id="ticket-new-form"')


# --- detail, edit, 409 ---------------------------------------------------------------------


def test_detail_page_and_fragment(agent, demo):
    key = new_key(create(agent, demo))
    assert "<html" in agent.get(f"/tickets/{key}").get_data(as_text=True)
    fragment = agent.get(f"/tickets/{key}", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<article id="ticket"')


@pytest.mark.parametrize("key", ["DEMO-999999", "ACME-1", "demo-x", "NOPE"])
def test_unknown_or_foreign_key_is_404(agent, key):
    assert agent.get(f"/tickets/{key}").status_code == 404


def test_inline_edit_saves_and_records_each_field(app, agent, demo):
    key = new_key(create(agent, demo))
    number = int(key.split("-")[1])
    row = ticket_row(app, number, demo["demo"])
    form = agent.get(f"/tickets/{key}/edit", headers=HX)
    assert form.status_code == 200 and 'id="edit-form"' in form.get_data(as_text=True)
    saved = agent.post(
        f"/tickets/{key}/edit",
        headers=HX,
        data={
            "csrf_token": page_token(agent, f"/tickets/{key}"),
            "version": row["version"],
            "title": "Display flickers at night",
            "description": "",
            "category": "hardware",
            "priority": "P1",
            "caller_name": "Sam",
            "caller_phone": "+44 1",
            "caller_email": "",
        },
    )
    assert saved.status_code == 200
    assert "Display flickers at night" in saved.get_data(as_text=True)
    after = ticket_row(app, number, demo["demo"])
    assert after["priority"] == "P1" and after["version"] == row["version"] + 1
    with app.app_context(), system_context():
        fields = set(
            db.session.scalars(
                select(TicketEvent.field).where(
                    TicketEvent.ticket_id == row["id"], TicketEvent.kind == "field"
                )
            )
        )
    assert fields == {"title", "priority"}


def test_second_save_with_a_stale_version_is_409_with_fresh_values(app, demo):
    first, second = as_user(app, "agent@demo.test"), as_user(app, "manager@demo.test")
    key = new_key(create(first, demo))
    number = int(key.split("-")[1])
    version = ticket_row(app, number, demo["demo"])["version"]
    base = {
        "description": "",
        "category": "hardware",
        "caller_name": "Sam",
        "caller_phone": "+44 1",
        "caller_email": "",
    }
    ok = first.post(
        f"/tickets/{key}/edit",
        data={
            "csrf_token": page_token(first),
            "version": version,
            "title": "Agent's title",
            "priority": "P2",
            **base,
        },
    )
    assert ok.status_code == 303
    for headers in (HX, {}):
        stale = second.post(
            f"/tickets/{key}/edit",
            headers=headers,
            data={
                "csrf_token": page_token(second),
                "version": version,
                "title": "Manager's title",
                "priority": "P4",
                **base,
            },
        )
        body = stale.get_data(as_text=True)
        assert stale.status_code == 409
        assert "Someone else changed this ticket" in body
        assert 'value="Agent&#39;s title"' in body and "Manager&#39;s title" in body
    assert ticket_row(app, number, demo["demo"])["title"] == "Agent's title"


def test_edit_bad_input_is_422(app, agent, demo):
    key = new_key(create(agent, demo))
    number = int(key.split("-")[1])
    response = agent.post(
        f"/tickets/{key}/edit",
        data={
            "csrf_token": page_token(agent),
            "version": "1",
            "title": "",
            "category": "hardware",
            "priority": "P2",
        },
    )
    assert response.status_code == 422
    assert ticket_row(app, number, demo["demo"])["title"] == "Display flickers"


# --- transitions and assignment ------------------------------------------------------------


def test_detail_offers_only_allowed_transitions(app, demo):
    agent = as_user(app, "agent@demo.test")
    key = new_key(create(agent, demo))
    agent_page = agent.get(f"/tickets/{key}").get_data(as_text=True)
    assert f"/tickets/{key}/transition/cancel" in agent_page
    assert f"/tickets/{key}/transition/assign" not in agent_page
    manager_page = as_user(app, "manager@demo.test").get(f"/tickets/{key}").get_data(as_text=True)
    assert f"/tickets/{key}/transition/assign" in manager_page
    assert f"/tickets/{key}/transition/resolve" not in manager_page


def test_manager_assigns_engineer_resolves(app, demo):
    agent, manager = as_user(app, "agent@demo.test"), as_user(app, "manager@demo.test")
    engineer = as_user(app, "engineer@demo.test")
    key = new_key(create(agent, demo))
    number = int(key.split("-")[1])

    def move(client, name, headers=None, **fields):
        version = ticket_row(app, number, demo["demo"])["version"]
        return client.post(
            f"/tickets/{key}/transition/{name}",
            headers=headers or {},
            data={"csrf_token": page_token(client), "version": version, **fields},
        )

    form = manager.get(f"/tickets/{key}/transition/assign", headers=HX).get_data(as_text=True)
    assert 'id="transition-form"' in form and "Erin Engineer" in form
    assert (
        move(manager, "assign", HX, assignee=f"user:{demo['engineer@demo.test']}").status_code
        == 200
    )
    assert move(engineer, "start").status_code == 303
    missing = move(engineer, "resolve", HX, resolution_note="  ")
    assert missing.status_code == 422 and "A resolution note is required." in missing.get_data(
        as_text=True
    )
    assert move(engineer, "resolve", resolution_note="Swapped the display").status_code == 303
    row = ticket_row(app, number, demo["demo"])
    assert row["status"] == "resolved" and row["assignee_user_id"] == demo["engineer@demo.test"]
    timeline = agent.get(f"/tickets/{key}").get_data(as_text=True)
    assert "Swapped the display" in timeline and "assigned it to <strong>Erin Engineer" in timeline


def test_transition_not_allowed_for_role_is_403_and_changes_nothing(app, demo):
    agent = as_user(app, "agent@demo.test")
    key = new_key(create(agent, demo))
    number = int(key.split("-")[1])
    before = ticket_row(app, number, demo["demo"])
    response = agent.post(
        f"/tickets/{key}/transition/assign",
        data={
            "csrf_token": page_token(agent),
            "version": before["version"],
            "assignee": f"user:{demo['engineer@demo.test']}",
        },
    )
    assert response.status_code == 403
    assert agent.get(f"/tickets/{key}/transition/assign").status_code == 403
    assert ticket_row(app, number, demo["demo"]) == before


def test_transition_from_the_wrong_state_is_422(app, demo):
    manager = as_user(app, "manager@demo.test")
    key = new_key(create(manager, demo))
    number = int(key.split("-")[1])
    response = manager.post(
        f"/tickets/{key}/transition/close",
        data={
            "csrf_token": page_token(manager),
            "version": ticket_row(app, number, demo["demo"])["version"],
        },
    )
    assert response.status_code == 422
    assert "not possible while the ticket is new" in response.get_data(as_text=True)
    assert ticket_row(app, number, demo["demo"])["status"] == "new"


def test_stale_transition_is_409(app, demo):
    manager = as_user(app, "manager@demo.test")
    key = new_key(create(manager, demo))
    response = manager.post(
        f"/tickets/{key}/transition/cancel",
        data={"csrf_token": page_token(manager), "version": "0", "cancel_reason": "dup"},
    )
    assert response.status_code == 409
    assert ticket_row(app, int(key.split("-")[1]), demo["demo"])["status"] == "new"


def test_unknown_transition_is_404(app, demo):
    manager = as_user(app, "manager@demo.test")
    key = new_key(create(manager, demo))
    assert manager.get(f"/tickets/{key}/transition/explode").status_code == 404


def test_assign_to_vendor_then_vendor_sees_it(app, demo):
    manager = as_user(app, "manager@demo.test")
    key = new_key(create(manager, demo))
    number = int(key.split("-")[1])
    vendor_client = as_user(app, "vendor@demo.test")
    assert vendor_client.get(f"/tickets/{key}").status_code == 404
    response = manager.post(
        f"/tickets/{key}/assign",
        headers=HX,
        data={
            "csrf_token": page_token(manager),
            "version": ticket_row(app, number, demo["demo"])["version"],
            "assignee": f"vendor:{demo['vendor:Demo Field Services']}",
        },
    )
    assert response.status_code == 200
    assert (
        ticket_row(app, number, demo["demo"])["assignee_vendor_id"]
        == demo["vendor:Demo Field Services"]
    )
    assert vendor_client.get(f"/tickets/{key}").status_code == 200


@pytest.mark.parametrize("assignee", ["vendor:acme", "user:999999", "robot:1"])
def test_assign_to_a_foreign_or_bogus_id_is_404(app, demo, assignee):
    if assignee == "vendor:acme":
        assignee = f"vendor:{demo['vendor:Acme Field Crew']}"
    manager = as_user(app, "manager@demo.test")
    key = new_key(create(manager, demo))
    number = int(key.split("-")[1])
    before = ticket_row(app, number, demo["demo"])
    response = manager.post(
        f"/tickets/{key}/assign",
        data={
            "csrf_token": page_token(manager),
            "version": before["version"],
            "assignee": assignee,
        },
    )
    assert response.status_code == 404
    assert ticket_row(app, number, demo["demo"]) == before


# --- worklogs and attachments --------------------------------------------------------------


def test_worklog_with_a_photo(app, demo):
    engineer = as_user(app, "engineer@demo.test")
    key = new_key(create(as_user(app, "agent@demo.test"), demo))
    response = engineer.post(
        f"/tickets/{key}/worklogs",
        headers=HX,
        data={
            "csrf_token": page_token(engineer),
            "body": "Replaced fuse F2",
            "minutes": "30",
            "customer_visible": "y",
            "photo": (io.BytesIO(PNG), "fuse.png"),
        },
        content_type="multipart/form-data",
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Replaced fuse F2" in body and "fuse.png" in body
    match = re.search(r'src="(/tickets/[^"]+inline=1)"', body)
    assert match, "no thumbnail"
    image = engineer.get(match.group(1).replace("&amp;", "&"))
    assert image.status_code == 200 and image.data == PNG and image.mimetype == "image/png"
    download = engineer.get(match.group(1).split("?")[0])
    assert download.data == PNG and "attachment" in download.headers["Content-Disposition"]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("tool.exe", b"MZ\x90\x00" + b"\x00" * 100, "This type of file is not allowed."),
        ("photo.jpg", b"MZ\x90\x00" + b"\x00" * 100, "This type of file is not allowed."),
        ("empty.png", b"", "The file is empty."),
    ],
)
def test_bad_uploads_are_422_and_store_nothing(app, demo, name, data, message):
    engineer = as_user(app, "engineer@demo.test")
    key = new_key(create(as_user(app, "agent@demo.test"), demo))
    worklogs_before = count(app, Worklog)
    response = engineer.post(
        f"/tickets/{key}/worklogs",
        data={
            "csrf_token": page_token(engineer),
            "body": "see file",
            "minutes": "0",
            "photo": (io.BytesIO(data), name),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert count(app, Worklog) == worklogs_before and count(app, Attachment) == 0


def test_upload_too_large_is_refused(app, demo):
    app.config["CASS_MAX_UPLOAD_MB"] = 1
    engineer = as_user(app, "engineer@demo.test")
    key = new_key(create(as_user(app, "agent@demo.test"), demo))
    big = PNG + b"\x00" * (1024 * 1024 + 10)
    response = engineer.post(
        f"/tickets/{key}/attachments",
        headers=HX,
        data={"csrf_token": page_token(engineer), "file": (io.BytesIO(big), "big.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "The file is too large" in response.get_data(as_text=True)
    assert count(app, Attachment) == 0


def test_attachment_download_checks_permissions(app, demo):
    engineer = as_user(app, "engineer@demo.test")
    key = new_key(create(as_user(app, "agent@demo.test"), demo))
    response = engineer.post(
        f"/tickets/{key}/attachments",
        data={"csrf_token": page_token(engineer), "file": (io.BytesIO(PNG), "a.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    with app.app_context(), system_context():
        attachment_id = db.session.scalar(select(Attachment.id))
    url = f"/tickets/{key}/attachments/{attachment_id}"
    assert engineer.get(url).status_code == 200
    assert as_user(app, "vendor@demo.test").get(url).status_code == 404
    assert as_user(app, "admin@acme.test").get(url).status_code == 404
    assert engineer.get(f"/tickets/{key}/attachments/999999").status_code == 404


def test_live_refresh_part_swaps_fields_moves_and_timeline_out_of_band(app, demo):
    agent = as_user(app, "agent@demo.test")
    key = new_key(create(agent, demo))
    part = agent.get(f"/tickets/{key}?part=live", headers=HX).get_data(as_text=True)
    assert '<div class="actions" id="transitions" hx-swap-oob="true">' in part
    assert '<dl class="fields" id="ticket-fields" hx-swap-oob="true">' in part
    assert '<ol class="timeline" id="timeline" hx-swap-oob="true">' in part
    assert "<form" not in part  # open forms on the page are left alone
    page = agent.get(f"/tickets/{key}?part=live").get_data(as_text=True)
    assert "<html" in page and "hx-swap-oob" not in page
    assert "sse:ticket-" in page and 'sse-connect="/events"' in page
