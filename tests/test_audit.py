"""The append-only audit log and its admin viewer (issue 3, point 11)."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from cass.extensions import db
from cass.models import AuditLog, Ticket
from cass.tenancy import system_context, tenant_context
from tests.conftest import as_user, page_token

HX = {"HX-Request": "true"}


def test_app_role_cannot_change_or_delete_audit_rows(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        for sql in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
            with pytest.raises(DBAPIError, match="permission denied"):
                db.session.execute(text(sql))
            db.session.rollback()


def test_even_the_owner_cannot_rewrite_history(app, demo):
    with app.app_context(), system_context():
        with pytest.raises(DBAPIError, match="append-only"):
            db.session.execute(text("UPDATE audit_log SET action = 'x'"))
        db.session.rollback()


def test_a_change_lands_in_the_audit_log_with_before_and_after(app, demo):
    manager = as_user(app, "manager@demo.test")
    with app.app_context(), system_context():
        ticket = db.session.scalar(
            select(Ticket).where(Ticket.tenant_id == demo["demo"], Ticket.status == "new")
        )
        key, version, ticket_id = f"DEMO-{ticket.number}", ticket.version, ticket.id
    manager.post(
        f"/tickets/{key}/transition/cancel",
        data={"csrf_token": page_token(manager), "version": version, "cancel_reason": "Duplicate"},
    )
    with app.app_context(), system_context():
        row = db.session.scalar(
            select(AuditLog).where(AuditLog.entity_id == ticket_id, AuditLog.action == "cancel")
        )
        assert row.actor_id == demo["manager@demo.test"]
        assert row.before["status"] == "new" and row.after["status"] == "cancelled"
    page = as_user(app, "admin@demo.test").get(f"/admin/audit?ticket={key}").get_data(as_text=True)
    assert "cancel ticket" in page and "<code>status</code>: new → cancelled" in page
    assert "Mona Manager" in page


def test_audit_filters_and_fragment(app, demo):
    admin = as_user(app, "admin@demo.test")
    page = admin.get("/admin/audit?action=resolve")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    body = page.get_data(as_text=True)
    assert "resolve ticket" in body and "cancel ticket" not in body
    fragment = admin.get("/admin/audit?action=resolve", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="audit"')
    assert "ACME" not in admin.get("/admin/audit").get_data(as_text=True)


def test_audit_pages_by_keyset(app, demo):
    admin = as_user(app, "admin@demo.test")
    first = admin.get("/admin/audit").get_data(as_text=True)
    assert first.count("<tr>") - 1 == 50 and 'id="audit-more"' in first
    import html
    import re

    more = html.unescape(re.search(r'hx-get="([^"]+after=[^"]+)"', first).group(1))
    second = admin.get(more, headers=HX).get_data(as_text=True)
    assert second.lstrip().startswith("<tr>") and "<table" not in second
    with app.app_context(), system_context():
        total = len(
            db.session.scalars(select(AuditLog.id).where(AuditLog.tenant_id == demo["demo"])).all()
        )
    assert first.count("<time") + second.count("<time") == min(total, 100)


@pytest.mark.parametrize("query", ["since=yesterday", "actor=abc", "ticket=NOPE-1"])
def test_audit_bad_filters_are_explained(app, demo, query):
    response = as_user(app, "admin@demo.test").get(f"/admin/audit?{query}")
    assert response.status_code == 422
    assert 'class="error form-error"' in response.get_data(as_text=True)


def test_only_admins_see_the_audit_log(app, demo):
    assert as_user(app, "manager@demo.test").get("/admin/audit").status_code == 403
