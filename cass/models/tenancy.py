"""Tenants (charging operators) and the mixin every tenant-owned table uses."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from sqlalchemy import BigInteger, DateTime, ForeignKey, Identity, Integer, String, func
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from cass.extensions import db


class Tenant(db.Model):
    """A charging operator; every other row belongs to exactly one."""

    __tablename__ = "tenant"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    # The prefix of ticket keys, e.g. DEMO in DEMO-1042.
    key_prefix: Mapped[str] = mapped_column(String(10))
    # The last ticket number handed out; bumped under the row lock, so keys never collide.
    last_ticket_number: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Unknown chargers whose id starts with this prefix register themselves as pending.
    ocpp_autoregister_prefix: Mapped[str | None] = mapped_column(String(40))
    # Signs events pushed by the tenant's other CSMS (HMAC-SHA256); unset, the endpoint refuses.
    csms_secret: Mapped[str | None] = mapped_column(String(128))
    # The IANA zone reports and CSV exports show times in, and whose days they count.
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")


class TenantOwned:
    """Mixin: an identity primary key and an indexed, non-null tenant_id."""

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # A table written in bulk whose composite same-tenant foreign key (tenant_id, parent) already
    # implies the tenant, and cascades from it through the parent, turns these off: a trigger
    # (and, where a composite index leads with tenant_id, an index) less for every row written.
    tenant_fk: ClassVar[bool] = True
    tenant_index: ClassVar[bool] = True

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:
        references = [ForeignKey("tenant.id", ondelete="CASCADE")] if cls.tenant_fk else []
        return mapped_column(BigInteger, *references, index=cls.tenant_index, nullable=False)
