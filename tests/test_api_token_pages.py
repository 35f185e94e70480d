"""API token pages (issue 9, point 2): a user makes a token (shown once, kept as its SHA-256),
uses it on /api/v1 with the scope and role it has, revokes it; an admin revokes anyone's in the
tenant and nobody else's."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from cass.extensions import db
from cass.models import ApiToken, AuditLog
from cass.services import api_tokens
from cass.tenancy import system_context
from tests.api_support import bearer, make_token
from tests.conftest import as_user, page_token

TOKEN_RE = re.compile(r'id="api-token-new" value="(cass_[^"]+)"')
HTMX = {"HX-Request": "true"}
PAGE = "/account/api-tokens"
ADMIN_PAGE = "/admin/api-tokens"
modes = pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])


def token_rows(app: Flask) -> list[SimpleNamespace]:
    """Every token of every tenant as stored, oldest first."""
    with app.app_context(), system_context():
        found = db.session.execute(select(ApiToken.__table__).order_by(ApiToken.id)).mappings()
        return [SimpleNamespace(**row) for row in found]


def make(client: FlaskClient, htmx: bool = False, **form: str):
    """Post the create form (a read token named "CRM sync" unless told otherwise)."""
    data = {"csrf_token": page_token(client, PAGE), "name": "CRM sync", "scope": "read"} | form
    return client.post(PAGE, data=data, headers=HTMX if htmx else {})


def made(client: FlaskClient, htmx: bool = False, **form: str) -> str:
    """Make a token through the page; return it as the page showed it."""
    response = make(client, htmx, **form)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    return TOKEN_RE.search(response.get_data(as_text=True)).group(1)


@modes
def test_the_page_lists_nothing_yet_and_offers_the_form(app, demo, htmx):
    client = as_user(app, "viewer@demo.test")
    response = client.get(PAGE, headers=HTMX if htmx else {})
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert ("<html" in html) is not htmx and 'id="api-tokens"' in html
    assert "You have no API tokens" in html and 'id="api-token-form"' in html
    # Read is the default scope.
    assert '<input checked id="scope-0" name="scope" type="radio" value="read">' in html
    assert response.headers["Cache-Control"] == "no-store"
    assert "HX-Request" in response.headers["Vary"]
    if not htmx:
        assert 'href="/api/v1/docs"' in html
        assert 'curl -H "Authorization: Bearer cass_…" http://localhost/api/v1/tickets' in html


@modes
def test_a_new_token_is_shown_once_and_stored_as_its_hash(app, demo, database_url, htmx):
    client = as_user(app, "agent@demo.test")
    response = make(client, htmx, name="CRM sync")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and ("<html" in html) is not htmx
    assert response.headers["Cache-Control"] == "no-store"
    token = TOKEN_RE.search(html).group(1)
    assert token.startswith(api_tokens.TOKEN_PREFIX) and len(token) >= 40
    assert f'curl -H "Authorization: Bearer {token}" http://localhost/api/v1/tickets' in html
    assert 'data-copy="#api-token-new"' in html
    # In the body only: no header (no cookie, no Location) carries it.
    assert all(token not in value for _, value in response.headers.items())

    with psycopg.connect(database_url) as conn:
        stored = conn.execute(
            "SELECT row_to_json(t)::text, token_hash, prefix, scope, name FROM api_token t"
        ).fetchall()
        audit = conn.execute(
            "SELECT string_agg(row_to_json(a)::text, '') FROM audit_log a"
        ).fetchone()[0]
    assert len(stored) == 1
    row, digest, prefix, scope, name = stored[0]
    assert digest == hashlib.sha256(token.encode()).hexdigest()
    assert token not in row and token not in (audit or "")
    assert (prefix, scope, name) == (token[: api_tokens.SHOWN], "read", "CRM sync")

    # Any later load lists the token by its prefix, never the token.
    again = client.get(PAGE).get_data(as_text=True)
    assert token not in again and "api-token-new" not in again
    assert f"{prefix}…" in again and "CRM sync" in again and 'badge ok">active' in again


def test_the_token_works_on_the_api_as_its_user_within_its_scope(app, demo):
    client = as_user(app, "agent@demo.test")
    read = made(client, name="Reader")
    write = made(client, name="Writer", scope="write")
    api = app.test_client()
    listed = api.get("/api/v1/tickets", headers=bearer(read))
    assert listed.status_code == 200 and "items" in listed.get_json()
    # Without the header, or with the token mangled, the API refuses.
    assert api.get("/api/v1/tickets").status_code == 401
    assert api.get("/api/v1/tickets", headers=bearer(read + "x")).status_code == 401
    refused = api.post("/api/v1/tickets", headers=bearer(read), json={"title": "From a script"})
    assert refused.status_code == 403
    assert refused.get_json()["error"] == "E_READ_ONLY_TOKEN"
    # A write token passes the scope check; the body then decides.
    assert api.post("/api/v1/tickets", headers=bearer(write), json={}).status_code != 403


def test_a_token_never_does_more_than_its_users_role(app, demo):
    """A viewer may make a write token, but their role creates no tickets in the API either."""
    token = made(as_user(app, "viewer@demo.test"), scope="write")
    api = app.test_client()
    assert api.get("/api/v1/tickets", headers=bearer(token)).status_code == 200
    body = {"title": "Viewer's ticket", "category": "other", "priority": "P3", "channel": "api"}
    assert api.post("/api/v1/tickets", headers=bearer(token), json=body).status_code == 403


def test_last_used_shows_after_a_call(app, demo):
    client = as_user(app, "agent@demo.test")
    token = made(client)
    assert ">never</td>" in client.get(PAGE).get_data(as_text=True).split("<td><code>")[1]
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    assert app.test_client().get("/api/v1/tickets", headers=bearer(token)).status_code == 200
    (row,) = token_rows(app)
    assert row.last_used_at is not None and row.last_used_at >= before
    html = client.get(PAGE).get_data(as_text=True)
    cells = html.split("<td><code>")[1]
    assert f'datetime="{row.last_used_at.isoformat()}"' in cells
    assert row.last_used_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M") in cells


@modes
def test_revoking_cuts_the_token_off(app, demo, htmx):
    client = as_user(app, "agent@demo.test")
    token = made(client)
    (row,) = token_rows(app)
    api = app.test_client()
    assert api.get("/api/v1/tickets", headers=bearer(token)).status_code == 200
    csrf = page_token(client, PAGE)
    url = f"{PAGE}/{row.id}/revoke"
    response = client.post(url, data={"csrf_token": csrf}, headers=HTMX if htmx else {})
    if htmx:
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and "<html" not in html
        assert 'badge bad">revoked' in html and f"{url}" not in html
    else:
        assert response.status_code == 303 and response.headers["Location"] == PAGE
        assert "is revoked" in client.get(PAGE).get_data(as_text=True)
    refused = api.get("/api/v1/tickets", headers=bearer(token))
    assert refused.status_code == 401 and refused.get_json()["error"] == "E_INVALID_TOKEN"
    (row,) = token_rows(app)
    assert row.revoked_at is not None
    # A second click changes nothing and is no error.
    again = client.post(url, data={"csrf_token": csrf}, headers=HTMX if htmx else {})
    assert again.status_code == (200 if htmx else 303)
    with app.app_context(), system_context():
        audited = db.session.scalars(
            select(AuditLog.action).where(
                AuditLog.entity == "api_token", AuditLog.entity_id == row.id
            )
        ).all()
    assert sorted(audited) == ["create", "revoke"]


def test_nobody_revokes_another_users_token_from_their_own_page(app, demo):
    token = made(as_user(app, "agent@demo.test"))
    (row,) = token_rows(app)
    for email in ("engineer@demo.test", "admin@demo.test", "admin@acme.test"):
        other = as_user(app, email)
        csrf = page_token(other, PAGE)
        assert other.post(f"{PAGE}/{row.id}/revoke", data={"csrf_token": csrf}).status_code == 404
        assert "CRM sync" not in other.get(PAGE).get_data(as_text=True)
    assert app.test_client().get("/api/v1/tickets", headers=bearer(token)).status_code == 200


@modes
def test_an_admin_revokes_anyones_token_in_the_tenant(app, demo, htmx):
    agent_token = made(as_user(app, "agent@demo.test"), name="Agent's script")
    acme_token = make_token(app, "agent@acme.test", name="Acme script")
    agent_row = next(r for r in token_rows(app) if r.name == "Agent's script")
    admin = as_user(app, "admin@demo.test")
    page = admin.get(ADMIN_PAGE, headers=HTMX if htmx else {})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and ("<html" in html) is not htmx
    assert page.headers["Cache-Control"] == "no-store"
    assert "Agent&#39;s script" in html and "agent@demo.test" in html
    assert "Acme script" not in html and agent_token not in html

    csrf = page_token(admin, ADMIN_PAGE)
    url = f"{ADMIN_PAGE}/{agent_row.id}/revoke"
    response = admin.post(url, data={"csrf_token": csrf}, headers=HTMX if htmx else {})
    if htmx:
        html = response.get_data(as_text=True)
        assert response.status_code == 200 and "<html" not in html
        assert "Agent&#39;s script" not in html and "Nobody in your tenant" in html
    else:
        assert response.status_code == 303 and response.headers["Location"] == ADMIN_PAGE
        assert "is revoked" in admin.get(ADMIN_PAGE).get_data(as_text=True)
    api = app.test_client()
    assert api.get("/api/v1/tickets", headers=bearer(agent_token)).status_code == 401
    assert api.get("/api/v1/tickets", headers=bearer(acme_token)).status_code == 200
    with app.app_context(), system_context():
        entry = db.session.scalar(
            select(AuditLog).where(
                AuditLog.entity == "api_token",
                AuditLog.entity_id == agent_row.id,
                AuditLog.action == "revoke",
            )
        )
        assert entry.actor_id == demo["admin@demo.test"]
    # The agent's own page shows it revoked.
    agent_page = as_user(app, "agent@demo.test").get(PAGE).get_data(as_text=True)
    assert 'badge bad">revoked' in agent_page
    # Revoked already: the admin's second click changes nothing.
    assert admin.post(url, data={"csrf_token": csrf}).status_code == 303


def test_another_tenants_admin_neither_sees_nor_revokes_it(app, demo):
    token = made(as_user(app, "agent@demo.test"), name="Agent's script")
    (row,) = token_rows(app)
    acme = as_user(app, "admin@acme.test")
    html = acme.get(ADMIN_PAGE).get_data(as_text=True)
    assert "Agent&#39;s script" not in html and "Nobody in your tenant" in html
    csrf = page_token(acme, ADMIN_PAGE)
    for headers in ({}, HTMX):
        url = f"{ADMIN_PAGE}/{row.id}/revoke"
        response = acme.post(url, data={"csrf_token": csrf}, headers=headers)
        assert response.status_code == 404
    assert acme.post(f"{ADMIN_PAGE}/999999/revoke", data={"csrf_token": csrf}).status_code == 404
    assert app.test_client().get("/api/v1/tickets", headers=bearer(token)).status_code == 200
    (row,) = token_rows(app)
    assert row.revoked_at is None


def test_only_admins_have_the_admin_view(app, demo):
    for email in ("manager@demo.test", "agent@demo.test", "viewer@demo.test"):
        client = as_user(app, email)
        assert client.get(ADMIN_PAGE).status_code == 403
        html = client.get(PAGE).get_data(as_text=True)
        assert 'href="/account/api-tokens"' in html and 'href="/admin/api-tokens"' not in html
    html = as_user(app, "admin@demo.test").get(PAGE).get_data(as_text=True)
    assert 'href="/account/api-tokens"' in html and 'href="/admin/api-tokens"' in html


YESTERDAY = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


@modes
@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"name": ""}, "Name the token."),
        ({"name": "   "}, "Name the token."),
        ({"name": "x" * 81}, "Field cannot be longer than 80 characters."),
        ({"scope": "admin"}, "Not a valid choice."),
        ({"scope": ""}, "Not a valid choice."),
        ({"expires_on": YESTERDAY}, "Choose today or a later day."),
        ({"expires_on": "31/12/2030"}, "Not a valid date value."),
    ],
    ids=["empty", "blank", "long", "scope", "no-scope", "past", "bad-date"],
)
def test_bad_input_is_the_form_again_with_422_and_nothing_saved(app, demo, htmx, form, message):
    client = as_user(app, "agent@demo.test")
    response = make(client, htmx, **form)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in html and "cass_" not in html.replace("cass_…", "")
    assert response.headers["Cache-Control"] == "no-store"
    if htmx:
        assert html.lstrip().startswith('<form id="api-token-form"')
        assert response.headers["HX-Retarget"] == "#api-token-form"
        assert response.headers["HX-Reswap"] == "outerHTML"
    else:
        assert "<html" in html and 'id="api-tokens"' in html
    assert token_rows(app) == []


@modes
def test_the_live_token_cap_is_the_form_again(app, demo, htmx):
    for n in range(api_tokens.MAX_LIVE):
        make_token(app, "agent@demo.test", name=f"t{n}")
    client = as_user(app, "agent@demo.test")
    response = make(client, htmx)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f"You have {api_tokens.MAX_LIVE} live tokens" in html
    assert len(token_rows(app)) == api_tokens.MAX_LIVE
    # Revoking one makes room again.
    first = token_rows(app)[0]
    csrf = page_token(client, PAGE)
    assert client.post(f"{PAGE}/{first.id}/revoke", data={"csrf_token": csrf}).status_code == 303
    made(client, htmx)


def test_an_expiry_date_ends_the_token_after_that_day(app, demo):
    client = as_user(app, "agent@demo.test")
    last_day = date.today() + timedelta(days=30)
    token = made(client, expires_on=last_day.isoformat(), scope="write")
    (row,) = token_rows(app)
    assert row.expires_at == datetime.combine(
        last_day + timedelta(days=1), datetime.min.time(), UTC
    )
    assert row.scope == "write"
    today = made(client, name="Today only", expires_on=datetime.now(UTC).date().isoformat())
    api = app.test_client()
    assert api.get("/api/v1/tickets", headers=bearer(today)).status_code == 200
    # Once the day is over, the API refuses it and the page says it expired.
    with app.app_context(), system_context():
        db.session.execute(
            text("UPDATE api_token SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": row.id},
        )
        db.session.commit()
    assert api.get("/api/v1/tickets", headers=bearer(token)).status_code == 401
    html = client.get(PAGE).get_data(as_text=True)
    assert '<span class="badge">expired</span>' in html
    # The admin's view lists live tokens only.
    admin_html = as_user(app, "admin@demo.test").get(ADMIN_PAGE).get_data(as_text=True)
    assert "Today only" in admin_html and "CRM sync" not in admin_html


def test_every_post_needs_the_csrf_token(app, demo):
    token = make_token(app, "agent@demo.test", name="Agent's script")
    (row,) = token_rows(app)
    agent = as_user(app, "agent@demo.test")
    admin = as_user(app, "admin@demo.test")
    assert agent.post(PAGE, data={"name": "No token", "scope": "read"}).status_code == 400
    forged = {"HX-Request": "true", "X-CSRFToken": "forged"}
    assert agent.post(PAGE, data={"name": "No", "scope": "read"}, headers=forged).status_code == 400
    assert agent.post(f"{PAGE}/{row.id}/revoke").status_code == 400
    assert admin.post(f"{ADMIN_PAGE}/{row.id}/revoke", headers=forged).status_code == 400
    assert [r.name for r in token_rows(app)] == ["Agent's script"]
    assert token_rows(app)[0].revoked_at is None
    assert app.test_client().get("/api/v1/tickets", headers=bearer(token)).status_code == 200


def test_signed_out_visitors_are_sent_to_sign_in(client, demo):
    for path in (PAGE, ADMIN_PAGE):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login")
