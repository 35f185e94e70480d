"""Helpers of the API tests: a real token for a demo user, and headers that carry it."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select

from cass.extensions import db
from cass.models import User
from cass.services import api_tokens
from cass.tenancy import system_context, tenant_context


def make_token(app: Flask, email: str, scope: str = "write", name: str = "test") -> str:
    """Create an API token for the user `email` through the service; return it."""
    with app.app_context():
        with system_context():
            user = db.session.scalar(select(User).where(User.email == email))
            tenant_id = user.tenant_id
        with tenant_context(tenant_id):
            user = db.session.get(User, user.id)
            return api_tokens.create(user, name, scope)


def bearer(token: str) -> dict[str, str]:
    """Return the Authorization header of a token."""
    return {"Authorization": f"Bearer {token}"}


def all_pages(client, path: str, token: str, **params: object) -> list[dict]:
    """Follow an API list's next_after to the end; return every item, checking each page's
    shape on the way."""
    items: list[dict] = []
    after = None
    while True:
        extra = {"after": after} if after else {}
        answer = client.get(path, headers=bearer(token), query_string={**params, **extra})
        assert answer.status_code == 200, answer.get_json()
        page = answer.get_json()
        assert set(page) == {"items", "next_after"}
        items += page["items"]
        after = page["next_after"]
        if after is None:
            return items
