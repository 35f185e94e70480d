"""Tariffs per site, and events pushed by an operator's other CSMS."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Numeric,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned


class Tariff(TenantOwned, db.Model):
    """What charging costs at a site from `valid_from` (until `valid_to`, if set)."""

    __tablename__ = "tariff"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "site_id"], ["site.tenant_id", "site.id"], name="fk_tariff_site"
        ),
        CheckConstraint("valid_to IS NULL OR valid_to > valid_from", name="ck_tariff_period"),
        CheckConstraint(
            "per_kwh >= 0 AND per_minute >= 0 AND per_session >= 0", name="ck_tariff_prices"
        ),
        # The session's tariff: the site's, in force when it started.
        Index("ix_tariff_site_from", "site_id", text("valid_from DESC")),
        UniqueConstraint("tenant_id", "id", name="uq_tariff_tenant_id"),
    )

    site_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(120))
    currency: Mapped[str] = mapped_column(String(3), default="EUR", server_default="EUR")
    per_kwh: Mapped[Decimal] = mapped_column(Numeric(10, 4), default=0, server_default="0")
    per_minute: Mapped[Decimal] = mapped_column(Numeric(10, 4), default=0, server_default="0")
    per_session: Mapped[Decimal] = mapped_column(Numeric(10, 4), default=0, server_default="0")
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class CsmsEvent(TenantOwned, db.Model):
    """An event pushed by another CSMS (POST /api/v1/csms/events), once per event id."""

    __tablename__ = "csms_event"
    __table_args__ = (
        UniqueConstraint("tenant_id", "event_id", name="uq_csms_event_tenant_event"),
        Index("ix_csms_event_tenant_received", "tenant_id", text("received_at DESC")),
        # The workflow worker's queue: events not yet fed to the rules.
        Index("ix_csms_event_unhandled", "id", postgresql_where=text("handled_at IS NULL")),
    )

    event_id: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    ocpp_id: Mapped[str | None] = mapped_column(String(64))
    charger_id: Mapped[int | None] = mapped_column(BigInteger)
    occurred_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    payload: Mapped[dict] = mapped_column(JSONB)
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
