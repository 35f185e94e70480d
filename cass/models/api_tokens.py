"""API tokens: a user's bearer credentials for the JSON API (/api/v1)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned
from cass.models.tickets import _same_tenant_fk

TOKEN_SCOPES = {"read": "Read only (GET)", "write": "Read and write"}


class ApiToken(TenantOwned, db.Model):
    """One bearer token of one user; only the SHA-256 of the secret is kept.

    The rate limit's window lives on the row too: the request's one UPDATE finds the token,
    counts the call and stamps its last use, so authenticating costs one round trip.
    """

    __tablename__ = "api_token"
    # ix_api_token_user leads with tenant_id.
    tenant_index = False
    __table_args__ = (
        _same_tenant_fk("user_id", "app_user", "fk_api_token_user", "CASCADE"),
        # A request has nothing but the token: it is looked up by its hash alone.
        UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
        CheckConstraint("scope IN ('read', 'write')", name="ck_api_token_scope"),
        # A user's page lists their tokens, newest first.
        Index("ix_api_token_user", "tenant_id", "user_id", "id"),
    )

    user_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(80))
    scope: Mapped[str] = mapped_column(String(10))
    # The first characters of the token ("cass_" and 8 more), shown to tell tokens apart.
    prefix: Mapped[str] = mapped_column(String(16))
    # Hex SHA-256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Fixed-window rate limit: the window's start and the calls counted in it.
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_calls: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
