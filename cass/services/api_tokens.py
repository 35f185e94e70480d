"""API tokens: create, list and revoke a user's bearer tokens; authenticate and rate-limit a call.

The token is shown once and only its SHA-256 is stored. A call names no tenant: the token is
found across tenants by its hash (as the owning role), and the call then runs inside the token's
tenant, as its user, under row-level security like any request.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    Interval,
    String,
    bindparam,
    case,
    func,
    literal_column,
    select,
    update,
)

from cass.extensions import db
from cass.models import ApiToken, User
from cass.models.api_tokens import TOKEN_SCOPES
from cass.services.audit import audit
from cass.services.passwords import token_hash
from cass.tenancy import current_tenant_id

# What a token starts with: secret scanners (and people) can tell a CASS token at a glance.
TOKEN_PREFIX = "cass_"  # noqa: S105 (a marker, not a secret)
# "cass_" + token_urlsafe(32) is 48 characters; anything much longer is not one of ours.
LONGEST_TOKEN = 100
# How many characters of the token are kept in clear to tell tokens apart on the page.
SHOWN = len(TOKEN_PREFIX) + 8
MAX_NAME = 80
# A user keeps at most this many live tokens (one per integration is plenty).
MAX_LIVE = 20


class TokenError(ValueError):
    """The token cannot be made as asked; the message is shown to the user (422)."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an authenticated API call is from, and where it stands against its rate limit."""

    token_id: int
    tenant_id: int
    user: dict[str, Any]  # the token's user's columns, by User attribute name
    scope: str
    calls: int  # in the current window, this one included
    window_ends: datetime

    def remaining(self, limit: int) -> int:
        """Return the calls left in the window."""
        return max(0, limit - self.calls)


def tokens_of(user: User) -> list[ApiToken]:
    """Return the user's tokens, live ones first, newest first."""
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.tenant_id == current_tenant_id(), ApiToken.user_id == user.id)
            .order_by(ApiToken.revoked_at.is_not(None), ApiToken.id.desc())
        )
    )


def create(user: User, name: str, scope: str, expires_at: datetime | None = None) -> str:
    """Give the user a new token; return it (it is shown once and never again)."""
    name = (name or "").strip()
    if not name:
        raise TokenError("Name the token after what will use it.")
    if len(name) > MAX_NAME:
        raise TokenError(f"A name has at most {MAX_NAME} characters.")
    if scope not in TOKEN_SCOPES:
        raise TokenError("Choose read or write.")
    if expires_at is not None and expires_at <= datetime.now(UTC):
        raise TokenError("The expiry date has passed.")
    # Two clicks at once: the user's row lock puts one after the other, so the cap holds.
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    # Expired tokens do nothing any more: they do not count against the cap.
    live = db.session.scalar(
        select(func.count()).where(
            ApiToken.tenant_id == current_tenant_id(),
            ApiToken.user_id == user.id,
            ApiToken.revoked_at.is_(None),
            ApiToken.expires_at.is_(None) | (ApiToken.expires_at > func.now()),
        )
    )
    if live >= MAX_LIVE:
        db.session.rollback()
        raise TokenError(f"You have {MAX_LIVE} live tokens; revoke one you no longer use.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        tenant_id=current_tenant_id(),
        user_id=user.id,
        name=name,
        scope=scope,
        prefix=token[:SHOWN],
        token_hash=token_hash(token),
        expires_at=expires_at,
    )
    db.session.add(row)
    db.session.flush()
    audit(user.id, "api_token", row.id, "create", None, {"name": name, "scope": scope})
    db.session.commit()
    return token


def revoke(user: User, token_id: int) -> bool:
    """Revoke one of the user's tokens: calls with it get 401 from now on."""
    revoked = db.session.scalar(
        update(ApiToken)
        .where(
            ApiToken.tenant_id == current_tenant_id(),
            ApiToken.user_id == user.id,
            ApiToken.id == token_id,
            ApiToken.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
        .returning(ApiToken.id)
    )
    if revoked is not None:
        audit(user.id, "api_token", revoked, "revoke", {"revoked": False}, {"revoked": True})
    db.session.commit()
    return revoked is not None


def authenticate(token: str, window: timedelta) -> Caller | None:
    """Return the caller behind a bearer token, its call counted; None for a token that is
    unknown, revoked or expired.

    One UPDATE, committed on its own (a refused call counts too), finds the token, counts the
    call in its fixed rate-limit window (a new window starts when the last one has ended),
    stamps its last use and returns the token's user: one round trip. Calls with the same token
    from many workers count exactly, under the row's lock. It runs as the owning role, across
    tenants: nothing names the tenant but the token.
    """
    if not token.startswith(TOKEN_PREFIX) or len(token) > LONGEST_TOKEN or not token.isascii():
        return None
    keys, sql = _authenticate_sql()
    params = {"hash": token_hash(token), "window": window}
    with db.engine.connect() as connection:
        # Autocommit, on the driver's connection: the UPDATE alone, no BEGIN and COMMIT
        # round trips around it, and no statement built anew for each call.
        raw = connection.connection.driver_connection
        raw.autocommit = True
        try:
            row = raw.execute(sql, params).fetchone()
        finally:
            raw.autocommit = False
    if row is None:
        return None
    token_id, scope, calls, window_start, *values = row
    user = dict(zip(keys, values, strict=True))
    return Caller(token_id, user["tenant_id"], user, scope, calls, window_start + window)


@cache
def _authenticate_sql() -> tuple[tuple[str, ...], str]:
    """Return the User attribute names the RETURNING ends with, and authenticate()'s UPDATE as
    psycopg takes it (%(hash)s, %(window)s)."""
    from cass.auth.session import user_attributes

    keys, columns = zip(*user_attributes(), strict=True)
    now = func.clock_timestamp()
    window = bindparam("window", type_=Interval)
    one = literal_column("1")
    fresh = ApiToken.window_start.is_(None) | (ApiToken.window_start <= now - window)
    statement = (
        update(ApiToken)
        .where(
            ApiToken.token_hash == bindparam("hash", type_=String),
            ApiToken.revoked_at.is_(None),
            (ApiToken.expires_at.is_(None)) | (ApiToken.expires_at > now),
            User.id == ApiToken.user_id,
            User.tenant_id == ApiToken.tenant_id,
        )
        .values(
            window_start=case((fresh, now), else_=ApiToken.window_start),
            # Literals, not parameters: the SQL is compiled once and sent with two of its own.
            window_calls=case((fresh, one), else_=ApiToken.window_calls + one),
            last_used_at=now,
        )
        .returning(
            ApiToken.id, ApiToken.scope, ApiToken.window_calls, ApiToken.window_start, *columns
        )
    )
    return keys, str(statement.compile(dialect=db.engine.dialect))


def tenant_tokens() -> list[tuple[ApiToken, User]]:
    """Return the tenant's live tokens (neither revoked nor expired) with their users, newest
    first."""
    return [
        (token, user)
        for token, user in db.session.execute(
            select(ApiToken, User)
            .join(User, User.id == ApiToken.user_id)
            .where(
                ApiToken.tenant_id == current_tenant_id(),
                ApiToken.revoked_at.is_(None),
                ApiToken.expires_at.is_(None) | (ApiToken.expires_at > func.now()),
            )
            .order_by(ApiToken.id.desc())
        )
    ]


def revoke_any(admin: User, token_id: int) -> ApiToken | None:
    """Revoke any user's token in the tenant (an admin cutting off a leaked one); return it, or
    None when the tenant has no such token. Revoking a revoked token changes nothing."""
    token = db.session.scalar(
        select(ApiToken)
        .where(ApiToken.tenant_id == current_tenant_id(), ApiToken.id == token_id)
        .with_for_update()
    )
    if token is None:
        db.session.rollback()
        return None
    if token.revoked_at is None:
        token.revoked_at = datetime.now(UTC)
        # The owner is in the row: the audit says whose token an admin cut off.
        audit(
            admin.id,
            "api_token",
            token.id,
            "revoke",
            {"revoked": False},
            {"revoked": True, "user_id": token.user_id},
        )
    db.session.commit()
    return token
