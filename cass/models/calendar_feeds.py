"""Calendar feeds: a user's secret iCalendar URL of their site visits."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, UniqueConstraint, func, text
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned
from cass.models.tickets import _same_tenant_fk


class CalendarFeed(TenantOwned, db.Model):
    """A secret feed URL of one user; only the SHA-256 of its token is kept."""

    __tablename__ = "calendar_feed"
    __table_args__ = (
        _same_tenant_fk("user_id", "app_user", "fk_calendar_feed_user", "CASCADE"),
        # The feed request has nothing but the token: it is looked up by its hash alone.
        UniqueConstraint("token_hash", name="uq_calendar_feed_token_hash"),
        # One live feed a user: making a new one revokes the old one.
        Index(
            "uq_calendar_feed_live",
            "tenant_id",
            "user_id",
            unique=True,
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    user_id: Mapped[int] = mapped_column(BigInteger)
    # Hex SHA-256 of the token: the token itself is shown once and never stored.
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
