"""The JSON API's frame (issue 9, points 2 and 3): bearer tokens, the one error shape, the rate
limit, and that a session cookie never stands in for a token."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import select, update

from cass.extensions import db
from cass.models import ApiToken, Ticket, User
from cass.services import api_tokens
from cass.tenancy import system_context, tenant_context
from tests.api_support import bearer, make_token
from tests.conftest import as_user, serve

ERROR_KEYS = {"error", "message", "details"}


def error_of(response, status: int, code: str | None = None) -> dict:
    """Assert the answer is an error in the one shape; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == ERROR_KEYS
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    if code is not None:
        assert body["error"] == code
    return body


def token_row(app, token: str) -> ApiToken:
    with app.app_context(), system_context():
        row = db.session.scalar(
            select(ApiToken).where(
                ApiToken.token_hash == hashlib.sha256(token.encode()).hexdigest()
            )
        )
        db.session.expunge(row)
        return row


# --- tokens ------------------------------------------------------------------------------


def test_a_token_is_stored_as_its_hash_and_stamps_its_last_use(app, demo, client):
    """Only the SHA-256 is kept, the shown prefix tells tokens apart, each call stamps its use."""
    token = make_token(app, "agent@demo.test", scope="read", name="CRM")
    assert token.startswith("cass_") and len(token) == 48
    row = token_row(app, token)
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.prefix == token[:13] and row.scope == "read" and row.name == "CRM"
    assert row.last_used_at is None
    with app.app_context(), system_context():
        stored = db.session.execute(select(ApiToken.__table__)).all()
        assert all(token not in str(tuple(r)) for r in stored)
    before = datetime.now(UTC)
    assert client.get("/api/v1/tickets", headers=bearer(token)).status_code == 200
    assert token_row(app, token).last_used_at >= before - timedelta(seconds=1)


def test_calls_without_a_valid_token_get_401(app, demo, client):
    """No header, another scheme, an unknown, revoked or expired token, a deactivated user."""
    error_of(client.get("/api/v1/tickets"), 401, "E_UNAUTHORIZED")
    answer = client.get("/api/v1/tickets")
    assert answer.headers["WWW-Authenticate"] == 'Bearer realm="cass"'
    error_of(
        client.get("/api/v1/tickets", headers={"Authorization": "Basic YTpi"}),
        401,
        "E_UNAUTHORIZED",
    )
    for bogus in ("cass_" + "x" * 43, "nope", "cass_" + "é" * 10, "cass_" + "a" * 200):
        error_of(client.get("/api/v1/tickets", headers=bearer(bogus)), 401, "E_INVALID_TOKEN")

    revoked = make_token(app, "agent@demo.test")
    with app.app_context(), tenant_context(demo["demo"]):
        agent = db.session.get(User, demo["agent@demo.test"])
        assert api_tokens.revoke(agent, token_row(app, revoked).id)
        assert not api_tokens.revoke(agent, token_row(app, revoked).id)  # once
    error_of(client.get("/api/v1/tickets", headers=bearer(revoked)), 401, "E_INVALID_TOKEN")

    expired = make_token(app, "agent@demo.test")
    with app.app_context(), system_context():
        db.session.execute(
            update(ApiToken)
            .where(ApiToken.id == token_row(app, expired).id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        db.session.commit()
    error_of(client.get("/api/v1/tickets", headers=bearer(expired)), 401, "E_INVALID_TOKEN")

    leaver = make_token(app, "engineer@demo.test")
    assert client.get("/api/v1/tickets", headers=bearer(leaver)).status_code == 200
    with app.app_context(), system_context():
        db.session.execute(
            update(User).where(User.id == demo["engineer@demo.test"]).values(is_active_flag=False)
        )
        db.session.commit()
    error_of(client.get("/api/v1/tickets", headers=bearer(leaver)), 401, "E_INVALID_TOKEN")


def test_a_session_cookie_is_no_token(app, demo):
    """A signed-in browser calling the API gets 401: cookies never authenticate an API call,
    so no other site can make a visitor's browser call it (no CSRF token is asked there)."""
    browser = as_user(app, "admin@demo.test")
    assert browser.get("/tickets").status_code == 200
    error_of(browser.get("/api/v1/tickets"), 401, "E_UNAUTHORIZED")
    answer = browser.post("/api/v1/tickets", json={"title": "Forged", "category": "other"})
    error_of(answer, 401, "E_UNAUTHORIZED")
    assert "Set-Cookie" not in answer.headers


def test_making_a_token_refuses_bad_input(app, demo):
    """No name, a long name, an unknown scope, a past expiry, more than MAX_LIVE: nothing made."""
    with app.app_context(), tenant_context(demo["demo"]):
        agent = db.session.get(User, demo["agent@demo.test"])
        for name, scope, expires, message in (
            ("  ", "read", None, "Name the token"),
            ("x" * 81, "read", None, "at most 80"),
            ("CRM", "admin", None, "read or write"),
            ("CRM", "read", datetime.now(UTC) - timedelta(days=1), "has passed"),
        ):
            with pytest.raises(api_tokens.TokenError, match=message):
                api_tokens.create(agent, name, scope, expires)
        assert api_tokens.tokens_of(agent) == []
        for i in range(api_tokens.MAX_LIVE):
            api_tokens.create(agent, f"t{i}", "read")
        with pytest.raises(api_tokens.TokenError, match="live tokens"):
            api_tokens.create(agent, "one more", "read")
        assert len(api_tokens.tokens_of(agent)) == api_tokens.MAX_LIVE


# --- the error shape -----------------------------------------------------------------------


def test_bad_requests_get_the_one_error_shape_and_change_nothing(app, demo, client):
    """Broken JSON, unknown fields and parameters, wrong types, a wrong method, no such path."""
    token = bearer(make_token(app, "manager@demo.test"))
    with app.app_context(), system_context():
        tickets_before = db.session.scalar(select(db.func.count(Ticket.id)))
    error_of(
        client.post("/api/v1/tickets", data="{bad", content_type="application/json", headers=token),
        400,
        "E_INVALID_JSON",
    )
    body = error_of(
        client.post(
            "/api/v1/tickets",
            json={"title": "x", "category": "hardware", "colour": "red"},
            headers=token,
        ),
        422,
        "E_VALIDATION",
    )
    assert body["details"]["fields"]["json"] == {"colour": ["Unknown field."]}
    body = error_of(
        client.post("/api/v1/tickets", json={"category": "bogus", "priority": 1}, headers=token),
        422,
        "E_VALIDATION",
    )
    assert set(body["details"]["fields"]["json"]) == {"title", "category", "priority"}
    # A form post is not JSON: the body's fields are missing.
    error_of(
        client.post("/api/v1/tickets", data={"title": "x"}, headers=token), 422, "E_VALIDATION"
    )
    # A misspelt filter is an error, not the whole list.
    body = error_of(client.get("/api/v1/tickets?priorty=P1", headers=token), 422, "E_VALIDATION")
    assert body["details"]["fields"]["query"] == {"priorty": ["Unknown field."]}
    for query in (
        "status=bogus",
        "site=abc",
        "site=99999999999999999999",
        "created_from=2025-13-01",
    ):
        error_of(client.get(f"/api/v1/tickets?{query}", headers=token), 422, "E_VALIDATION")
    error_of(client.get("/api/v1/tickets?after=garbage", headers=token), 422, "E_BAD_CURSOR")
    answer = client.delete("/api/v1/tickets", headers=token)
    error_of(answer, 405, "E_METHOD_NOT_ALLOWED")
    assert set(answer.headers["Allow"].split(", ")) >= {"GET", "POST"}
    error_of(client.get("/api/v1/nothing-here", headers=token), 404, "E_NOT_FOUND")
    error_of(client.get("/api/v1/tickets/DEMO-999999", headers=token), 404, "E_NOT_FOUND")
    error_of(client.get("/api/v1/tickets/99999999999999999999", headers=token), 404, "E_NOT_FOUND")
    with app.app_context(), system_context():
        assert db.session.scalar(select(db.func.count(Ticket.id))) == tickets_before


def test_a_body_over_the_limit_is_413_in_the_shape(app, demo):
    """The request size cap answers in JSON too."""
    app.config["MAX_CONTENT_LENGTH"] = 1000  # read per request
    token = bearer(make_token(app, "manager@demo.test"))
    answer = app.test_client().post(
        "/api/v1/tickets", json={"title": "x" * 5000, "category": "other"}, headers=token
    )
    error_of(answer, 413, "E_TOO_LARGE")


def test_an_unexpected_failure_is_a_500_in_the_shape(app, demo, monkeypatch):
    """Even our own bug answers JSON (and rolls back): no HTML error page on the API."""
    app.config["TESTING"] = False
    app.config["PROPAGATE_EXCEPTIONS"] = False
    token = bearer(make_token(app, "manager@demo.test"))
    from cass.api.v1 import tickets as api_tickets

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(api_tickets, "list_page", broken)
    error_of(app.test_client().get("/api/v1/tickets", headers=token), 500, "E_INTERNAL")


# --- the rate limit ------------------------------------------------------------------------


def test_the_rate_limit_counts_per_token_and_says_when_to_retry(app, demo):
    """Beyond the limit: 429 with Retry-After; another token is not affected; a new window
    lets the token in again."""
    app.config.update(CASS_API_RATE_LIMIT=3, CASS_API_RATE_WINDOW=2)
    client = app.test_client()
    first, second = make_token(app, "agent@demo.test"), make_token(app, "agent@demo.test")
    answers = [client.get("/api/v1/tickets", headers=bearer(first)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    body = error_of(answers[3], 429, "E_RATE_LIMITED")
    retry = int(answers[3].headers["Retry-After"])
    assert 1 <= retry <= 2 and body["details"]["retry_after"] == retry
    assert client.get("/api/v1/tickets", headers=bearer(second)).status_code == 200
    time.sleep(retry + 0.1)
    assert client.get("/api/v1/tickets", headers=bearer(first)).status_code == 200


def test_the_rate_limit_holds_across_concurrent_workers(app, demo):
    """Twenty calls at once from threads of a real server: exactly the limit get through."""
    app.config.update(CASS_API_RATE_LIMIT=7, CASS_API_RATE_WINDOW=60)
    token = make_token(app, "agent@demo.test")
    statuses: list[int] = []
    with serve(app) as base:
        barrier = threading.Barrier(20)

        def call() -> None:
            barrier.wait()
            answer = requests.get(f"{base}/api/v1/tickets", headers=bearer(token), timeout=30)
            statuses.append(answer.status_code)

        threads = [threading.Thread(target=call) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200] * 7 + [429] * 13
