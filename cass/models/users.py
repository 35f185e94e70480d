"""People who sign in, their roles, and the record of sign-in attempts."""

from __future__ import annotations

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    String,
    UniqueConstraint,
    func,
    true,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cass.extensions import db
from cass.models.tenancy import TenantOwned
from cass.models.vendors import Vendor

ROLES = ("admin", "as_manager", "call_center", "as_engineer", "vendor", "viewer")
ROLE_LABELS = {
    "admin": "Admin",
    "as_manager": "After-service manager",
    "call_center": "Call-center agent",
    "as_engineer": "After-service engineer",
    "vendor": "Vendor",
    "viewer": "Viewer",
}


def new_session_token() -> str:
    """Return a fresh token; changing it signs out every session of the user."""
    return secrets.token_urlsafe(16)


class User(UserMixin, TenantOwned, db.Model):
    """A person of one tenant with one role."""

    __tablename__ = "app_user"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_app_user_tenant_id"),
        # A vendor user always belongs to a vendor of the same tenant.
        ForeignKeyConstraint(
            ["tenant_id", "vendor_id"],
            ["vendor.tenant_id", "vendor.id"],
            name="fk_user_vendor_same_tenant",
        ),
        CheckConstraint(
            "role IN ('admin','as_manager','call_center','as_engineer','vendor','viewer')",
            name="ck_user_role",
        ),
        CheckConstraint("role <> 'vendor' OR vendor_id IS NOT NULL", name="ck_user_vendor_role"),
        CheckConstraint("email = lower(email)", name="ck_user_email_lower"),
    )

    # E-mail is unique across tenants: people sign in with it alone.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    vendor_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_active_flag: Mapped[bool] = mapped_column(
        "is_active", Boolean, server_default=true(), default=True
    )
    session_token: Mapped[str] = mapped_column(String(64), default=new_session_token)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The hours in which non-urgent notifications reach this person; None: the tenant's default.
    calendar_id: Mapped[int | None] = mapped_column(
        BigInteger,
        ForeignKey("business_calendar.id", ondelete="SET NULL", name="fk_app_user_calendar"),
    )

    vendor: Mapped[Vendor | None] = relationship(
        Vendor, foreign_keys=[vendor_id], primaryjoin="User.vendor_id == Vendor.id", viewonly=True
    )

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return self.is_active_flag

    def get_id(self) -> str:
        # The tenant rides along so the request can bind it before loading the user.
        return f"{self.tenant_id}:{self.id}:{self.session_token}"


class LoginAttempt(db.Model):
    """One sign-in attempt; counted for lockout per account and per client address."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_email_at", "email", "at"),
        Index("ix_login_attempt_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    ip: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
