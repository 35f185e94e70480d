"""Sites, chargers and their connectors."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cass.extensions import db
from cass.models.tenancy import TenantOwned


class Site(TenantOwned, db.Model):
    """A place with chargers: a car park, a depot, a forecourt."""

    __tablename__ = "site"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_site_tenant_id"),
        UniqueConstraint("tenant_id", "name", name="uq_site_tenant_name"),
    )

    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(300))
    lat: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    lon: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    contact_name: Mapped[str | None] = mapped_column(String(120))
    contact_phone: Mapped[str | None] = mapped_column(String(40))
    contact_email: Mapped[str | None] = mapped_column(String(254))


# Each charger's trigrams (of its lower-cased OCPP id, serial and asset tag) with a token of its
# tenant, GIN-indexed for the list's search (migration 0006; read by cass_charger_matches, which
# row-level security needs).
# Parenthesised as Postgres prints it back, so autogenerate sees the same expression.
CHARGER_SEARCH_DOCUMENT = (
    "(((ARRAY['~t' || tenant_id::text] || cass_charger_grams(lower(ocpp_id)))"
    " || cass_charger_grams(lower(serial))) || cass_charger_grams(lower(asset_tag)))"
)


class Charger(TenantOwned, db.Model):
    """A charging station, known to the bridge by its OCPP charge point id."""

    __tablename__ = "charger"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_charger_tenant_id"),
        CheckConstraint(
            "registration IN ('accepted','pending','rejected')", name="ck_charger_registration"
        ),
        # The offline sweep: online chargers by last sign of life.
        Index("ix_charger_online_last_seen", "last_seen", postgresql_where=text("online")),
        # The list: its order and cursor in a tenant, the model and firmware filters (and their
        # choices, by skip scan), the search (migration 0006).
        Index("ix_charger_tenant_ocpp", "tenant_id", "ocpp_id"),
        Index("ix_charger_tenant_model", "tenant_id", "model", "ocpp_id"),
        Index("ix_charger_tenant_firmware", "tenant_id", "firmware", "ocpp_id"),
        Index("ix_charger_search", text(CHARGER_SEARCH_DOCUMENT), postgresql_using="gin"),
        ForeignKeyConstraint(
            ["tenant_id", "site_id"], ["site.tenant_id", "site.id"], name="fk_charger_site"
        ),
        ForeignKeyConstraint(
            ["tenant_id", "vendor_id"], ["vendor.tenant_id", "vendor.id"], name="fk_charger_vendor"
        ),
    )

    # Globally unique: a charger connects with its id before anyone knows its tenant.
    ocpp_id: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[int] = mapped_column(BigInteger, index=True)
    manufacturer: Mapped[str | None] = mapped_column(String(80))
    model: Mapped[str | None] = mapped_column(String(80))
    serial: Mapped[str | None] = mapped_column(String(80), index=True)
    firmware: Mapped[str | None] = mapped_column(String(80))
    asset_tag: Mapped[str | None] = mapped_column(String(80), index=True)
    install_date: Mapped[date | None] = mapped_column(Date)
    warranty_end: Mapped[date | None] = mapped_column(Date)
    key_hash: Mapped[str | None] = mapped_column(String(255))
    # The outside vendor responsible for servicing it, if any.
    vendor_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # accepted, pending (auto-registered, waiting for an admin) or rejected: see ocpp_bridge.vocab.
    registration: Mapped[str] = mapped_column(
        String(10), default="accepted", server_default="accepted"
    )
    # The subprotocol of its last connection (ocpp1.6 or ocpp2.0.1).
    ocpp_protocol: Mapped[str | None] = mapped_column(String(12))
    # The bridge instance holding its socket; commands for it are sent by that instance.
    owner: Mapped[str | None] = mapped_column(String(64))
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    site: Mapped[Site] = relationship(
        Site, primaryjoin="Charger.site_id == Site.id", foreign_keys=[site_id], viewonly=True
    )
    connectors: Mapped[list[Connector]] = relationship(
        "Connector",
        primaryjoin="Charger.id == Connector.charger_id",
        foreign_keys="Connector.charger_id",
        order_by="Connector.connector_no",
        viewonly=True,
    )


class Connector(TenantOwned, db.Model):
    """One plug of a charger (OCPP connector id 1..n)."""

    __tablename__ = "connector"
    __table_args__ = (
        UniqueConstraint("charger_id", "connector_no", name="uq_connector_charger_no"),
        UniqueConstraint("tenant_id", "id", name="uq_connector_tenant_id"),
        # The list's counts per status and its connector-state filters (migration 0006).
        Index("ix_connector_tenant_status", "tenant_id", "status", "charger_id"),
        ForeignKeyConstraint(
            ["tenant_id", "charger_id"],
            ["charger.tenant_id", "charger.id"],
            name="fk_connector_charger",
            ondelete="CASCADE",
        ),
    )

    charger_id: Mapped[int] = mapped_column(BigInteger)
    connector_no: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(
        String(30), default="Unavailable", server_default="Unavailable"
    )
    error_code: Mapped[str] = mapped_column(String(40), default="NoError", server_default="NoError")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
