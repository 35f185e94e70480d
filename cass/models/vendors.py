"""Outside contractors whose users work the tickets assigned to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, String, UniqueConstraint, func, true
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned


class Vendor(TenantOwned, db.Model):
    """An outside field-service company of one tenant."""

    __tablename__ = "vendor"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_vendor_tenant_id"),
        UniqueConstraint("tenant_id", "name", name="uq_vendor_tenant_name"),
    )

    name: Mapped[str] = mapped_column(String(120))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(40))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=true(), default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
