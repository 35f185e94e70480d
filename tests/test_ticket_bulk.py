"""Bulk actions: one transaction, a history row per ticket, per-ticket failures, nothing
half-applied."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cass.extensions import db
from cass.models import AuditLog, Ticket, TicketEvent
from cass.tenancy import system_context
from tests.conftest import as_user, page_token

HX = {"HX-Request": "true"}


def tickets_in(app, tenant_id, status=None):
    with app.app_context(), system_context():
        stmt = select(Ticket).where(Ticket.tenant_id == tenant_id).order_by(Ticket.id)
        if status:
            stmt = stmt.where(Ticket.status == status)
        return [(t.id, t.number, t.status, t.priority, t.version) for t in db.session.scalars(stmt)]


def post(client, headers=None, **data):
    tickets = data.pop("tickets")
    form = {"csrf_token": page_token(client), **data, "ticket": [str(t) for t in tickets]}
    return client.post("/tickets/bulk", data=form, headers=headers or {})


def test_bulk_priority_changes_each_and_records_history(app, demo):
    manager = as_user(app, "manager@demo.test")
    chosen = [t for t in tickets_in(app, demo["demo"]) if t[3] != "P1"][:5]
    response = post(manager, HX, action="priority", priority="P1", tickets=[t[0] for t in chosen])
    assert response.status_code == 200 and "5 tickets changed" in response.get_data(as_text=True)
    assert response.headers["HX-Trigger"] == "tickets-changed"
    after = {t[0]: t for t in tickets_in(app, demo["demo"])}
    for ident, _, _, _, version in chosen:
        assert after[ident][3] == "P1" and after[ident][4] == version + 1
    with app.app_context(), system_context():
        events = db.session.scalar(
            select(func.count())
            .select_from(TicketEvent)
            .where(
                TicketEvent.ticket_id.in_([t[0] for t in chosen]), TicketEvent.field == "priority"
            )
        )
        audits = db.session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action == "priority")
        )
    assert events == 5 and audits == 5


def test_bulk_transition_reports_tickets_in_the_wrong_state(app, demo):
    manager = as_user(app, "manager@demo.test")
    new = tickets_in(app, demo["demo"], "new")[:3]
    closed = tickets_in(app, demo["demo"], "closed")[:1]
    chosen = [t[0] for t in new + closed]
    response = post(
        manager, HX, action="transition:cancel", cancel_reason="Duplicate calls", tickets=chosen
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "3 tickets changed, 1 not." in body
    assert f"DEMO-{closed[0][1]}</a>: A ticket that is closed cannot take “Cancel”." in body
    statuses = {t[0]: t[2] for t in tickets_in(app, demo["demo"])}
    assert all(statuses[t[0]] == "cancelled" for t in new)
    assert statuses[closed[0][0]] == "closed"


def test_bulk_assign_by_manager(app, demo):
    manager = as_user(app, "manager@demo.test")
    chosen = [t[0] for t in tickets_in(app, demo["demo"], "new")[:4]]
    response = post(
        manager,
        HX,
        action="assign",
        assignee=f"vendor:{demo['vendor:Demo Field Services']}",
        tickets=chosen,
    )
    assert response.status_code == 200
    with app.app_context(), system_context():
        vendors = set(
            db.session.scalars(select(Ticket.assignee_vendor_id).where(Ticket.id.in_(chosen)))
        )
        labels = set(
            db.session.scalars(
                select(TicketEvent.to_value).where(
                    TicketEvent.ticket_id.in_(chosen), TicketEvent.kind == "assignment"
                )
            )
        )
    assert vendors == {demo["vendor:Demo Field Services"]}
    assert f"vendor:{demo['vendor:Demo Field Services']}:Demo Field Services" in labels


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        (
            {"action": "transition:cancel", "cancel_reason": ""},
            422,
            "A reason to cancel is required",
        ),
        ({"action": "transition:hold", "hold_reason": "bored"}, 422, "Choose why"),
        ({"action": "priority", "priority": "P9"}, 422, None),
        ({"action": "explode"}, 422, "Choose an action."),
        ({"action": "transition:resolve", "resolution_note": "x"}, 200, "0 tickets changed"),
        ({"action": "assign", "assignee": "vendor:999999"}, 404, None),
    ],
)
def test_bulk_bad_input_changes_nothing(app, demo, data, status, message):
    manager = as_user(app, "manager@demo.test")
    before = tickets_in(app, demo["demo"])
    new = [t[0] for t in before if t[2] == "new"][:6]
    response = post(manager, HX, tickets=new, **data)
    assert response.status_code == status
    if message:
        assert message in response.get_data(as_text=True)
    if status != 200 or "0 tickets" in (message or ""):
        assert tickets_in(app, demo["demo"]) == before


def test_bulk_foreign_tenant_ids_are_reported_not_touched(app, demo):
    manager = as_user(app, "manager@demo.test")
    acme = tickets_in(app, demo["acme"])
    response = post(manager, HX, action="priority", priority="P1", tickets=[t[0] for t in acme[:2]])
    assert response.status_code == 200 and "0 tickets changed, 2 not." in response.get_data(
        as_text=True
    )
    assert tickets_in(app, demo["acme"]) == acme


def test_bulk_needs_a_selection_and_a_manager(app, demo):
    manager = as_user(app, "manager@demo.test")
    empty = post(manager, HX, action="priority", priority="P1", tickets=[])
    assert empty.status_code == 422 and "Select at least one ticket." in empty.get_data(
        as_text=True
    )
    agent = as_user(app, "agent@demo.test")
    ids = [t[0] for t in tickets_in(app, demo["demo"])[:2]]
    assert post(agent, HX, action="priority", priority="P1", tickets=ids).status_code == 403


def test_bulk_without_htmx_redirects_with_a_summary(app, demo):
    manager = as_user(app, "manager@demo.test")
    ids = [t[0] for t in tickets_in(app, demo["demo"])[:2]]
    response = post(manager, action="priority", priority="P4", tickets=ids)
    assert response.status_code == 303 and response.headers["Location"] == "/tickets"


def test_list_offers_bulk_selection_to_managers_only(app, demo):
    page = as_user(app, "manager@demo.test").get("/tickets").get_data(as_text=True)
    assert '<form id="bulk-form"' in page and 'form="bulk-form"' in page
    assert '<option value="transition:assign">Assign</option>' in page
    agent_page = as_user(app, "agent@demo.test").get("/tickets").get_data(as_text=True)
    assert "bulk-form" not in agent_page
