"""Tickets, their history, worklogs, attachments and saved list views."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from cass import lifecycle
from cass.extensions import db
from cass.models.tenancy import TenantOwned

CATEGORIES = {
    "hardware": "Hardware",
    "connectivity": "Connectivity",
    "payment": "Payment / RFID",
    "firmware": "Firmware / software",
    "damage": "Physical damage",
    "other": "Other",
}
PRIORITIES = {"P1": "P1 · critical", "P2": "P2 · high", "P3": "P3 · normal", "P4": "P4 · low"}
CHANNELS = {
    "phone": "Phone",
    "email": "Email",
    "web": "Web",
    "ocpp-auto": "OCPP (auto)",
    "api": "API",
}


def _in(column: str, values: object) -> str:
    return f"{column} IN (" + ",".join(f"'{v}'" for v in values) + ")"  # type: ignore[attr-defined]


def _same_tenant_fk(
    column: str, table: str, name: str, ondelete: str | None = None
) -> ForeignKeyConstraint:
    """A foreign key that also matches tenant_id, so no row points into another tenant."""
    return ForeignKeyConstraint(
        ["tenant_id", column], [f"{table}.tenant_id", f"{table}.id"], name=name, ondelete=ondelete
    )


class Ticket(TenantOwned, db.Model):
    """A customer or charger problem, worked through the lifecycle in cass.lifecycle."""

    __tablename__ = "ticket"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number", name="uq_ticket_tenant_number"),
        UniqueConstraint("tenant_id", "id", name="uq_ticket_tenant_id"),
        _same_tenant_fk("charger_id", "charger", "fk_ticket_charger"),
        _same_tenant_fk("connector_id", "connector", "fk_ticket_connector"),
        _same_tenant_fk("site_id", "site", "fk_ticket_site"),
        _same_tenant_fk("assignee_user_id", "app_user", "fk_ticket_assignee_user"),
        _same_tenant_fk("assignee_vendor_id", "vendor", "fk_ticket_assignee_vendor"),
        _same_tenant_fk("created_by_id", "app_user", "fk_ticket_created_by"),
        CheckConstraint(_in("status", lifecycle.STATUSES), name="ck_ticket_status"),
        CheckConstraint(_in("priority", PRIORITIES), name="ck_ticket_priority"),
        CheckConstraint(_in("category", CATEGORIES), name="ck_ticket_category"),
        CheckConstraint(_in("channel", CHANNELS), name="ck_ticket_channel"),
        # List filters and keyset pagination: every list is (tenant, filter..., sort key, id).
        Index("ix_ticket_tenant_status_updated", "tenant_id", "status", "updated_at", "id"),
        Index("ix_ticket_tenant_updated", "tenant_id", "updated_at", "id"),
        Index("ix_ticket_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_ticket_tenant_priority", "tenant_id", "priority", "updated_at", "id"),
        Index("ix_ticket_tenant_category", "tenant_id", "category", "updated_at", "id"),
        Index("ix_ticket_tenant_channel", "tenant_id", "channel", "updated_at", "id"),
        Index("ix_ticket_tenant_site", "tenant_id", "site_id", "updated_at", "id"),
        Index("ix_ticket_tenant_charger", "tenant_id", "charger_id", "updated_at", "id"),
        Index("ix_ticket_tenant_assignee", "tenant_id", "assignee_user_id", "updated_at", "id"),
        Index("ix_ticket_tenant_vendor", "tenant_id", "assignee_vendor_id", "updated_at", "id"),
        # Reports: tickets resolved in a date range (MTTR), and each person's open tickets.
        Index(
            "ix_ticket_tenant_resolved",
            "tenant_id",
            "resolved_at",
            postgresql_where=text("resolved_at IS NOT NULL"),
        ),
        Index(
            "ix_ticket_tenant_open_assignee",
            "tenant_id",
            "assignee_user_id",
            postgresql_where=text(_in("status", lifecycle.OPEN_STATUSES)),
        ),
        Index("ix_ticket_search", "search", postgresql_using="gin"),
        Index(
            "uq_ticket_open_dedup",
            "tenant_id",
            "dedup_key",
            unique=True,
            postgresql_where=text(
                "dedup_key IS NOT NULL AND " + _in("status", lifecycle.OPEN_STATUSES)
            ),
        ),
        # The words with a token of the tenant, so one GIN scan finds a tenant's matches
        # (migration 0003; read by cass_ticket_matches, which row-level security needs).
        Index(
            "ix_ticket_tenant_search",
            text("(search || array_to_tsvector(ARRAY['~t' || tenant_id::text]))"),
            postgresql_using="gin",
        ),
        # The dashboard: open tickets per status and priority from the index alone, the
        # tenant's or a vendor's (only open tickets, a fifth of them or fewer, are in it).
        Index(
            "ix_ticket_tenant_open",
            "tenant_id",
            "status",
            "priority",
            postgresql_include=["assignee_vendor_id"],
            postgresql_where=text(_in("status", lifecycle.OPEN_STATUSES)),
        ),
    )

    number: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    category: Mapped[str] = mapped_column(String(20))
    priority: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(20), default="new", server_default="new")
    channel: Mapped[str] = mapped_column(String(20))
    charger_id: Mapped[int | None] = mapped_column(BigInteger)
    connector_id: Mapped[int | None] = mapped_column(BigInteger)
    site_id: Mapped[int | None] = mapped_column(BigInteger)
    caller_name: Mapped[str | None] = mapped_column(String(120))
    caller_phone: Mapped[str | None] = mapped_column(String(40))
    caller_email: Mapped[str | None] = mapped_column(String(254))
    assignee_user_id: Mapped[int | None] = mapped_column(BigInteger)
    assignee_vendor_id: Mapped[int | None] = mapped_column(BigInteger)
    hold_reason: Mapped[str | None] = mapped_column(String(30))
    resolution_note: Mapped[str | None] = mapped_column(Text)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Set on tickets a workflow rule opened for a fault ("fault:<charger>:<connector>:<code>"):
    # one open ticket per key, so a fault reported again does not open another.
    dedup_key: Mapped[str | None] = mapped_column(String(120))
    # Full-text search over title and description, kept by Postgres itself.
    search: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('simple', coalesce(title, '') || ' ' || coalesce(description, ''))",
            persisted=True,
        ),
    )

    __mapper_args__ = {"version_id_col": version}


class TicketEvent(TenantOwned, db.Model):
    """One change to a ticket: who, when, what, from, to, and a note."""

    __tablename__ = "ticket_event"
    __table_args__ = (
        _same_tenant_fk("ticket_id", "ticket", "fk_ticket_event_ticket"),
        _same_tenant_fk("actor_id", "app_user", "fk_ticket_event_actor"),
        Index("ix_ticket_event_ticket", "ticket_id", "id"),
        # Reports: a tenant's changes in a date range (the workload report).
        Index("ix_ticket_event_tenant_at", "tenant_id", "at"),
    )

    ticket_id: Mapped[int] = mapped_column(BigInteger)
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(String(20))  # created, status, field, assignment
    field: Mapped[str | None] = mapped_column(String(40))
    from_value: Mapped[str | None] = mapped_column(Text)
    to_value: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)


class Worklog(TenantOwned, db.Model):
    """A note on a ticket, internal or visible to the customer, with time spent."""

    __tablename__ = "worklog"
    __table_args__ = (
        _same_tenant_fk("ticket_id", "ticket", "fk_worklog_ticket"),
        _same_tenant_fk("author_id", "app_user", "fk_worklog_author"),
        UniqueConstraint("tenant_id", "id", name="uq_worklog_tenant_id"),
        Index("ix_worklog_ticket", "ticket_id", "id"),
        # Reports: a tenant's worklogs in a date range (the workload report).
        Index("ix_worklog_tenant_created", "tenant_id", "created_at"),
        CheckConstraint("minutes >= 0 AND minutes <= 1440", name="ck_worklog_minutes"),
    )

    ticket_id: Mapped[int] = mapped_column(BigInteger)
    author_id: Mapped[int | None] = mapped_column(BigInteger)
    body: Mapped[str] = mapped_column(Text)
    customer_visible: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    minutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Attachment(TenantOwned, db.Model):
    """A file on a ticket: metadata here, bytes in storage."""

    __tablename__ = "attachment"
    __table_args__ = (
        _same_tenant_fk("ticket_id", "ticket", "fk_attachment_ticket"),
        _same_tenant_fk("worklog_id", "worklog", "fk_attachment_worklog"),
        _same_tenant_fk("uploaded_by_id", "app_user", "fk_attachment_uploaded_by"),
        Index("ix_attachment_ticket", "ticket_id", "id"),
    )

    ticket_id: Mapped[int] = mapped_column(BigInteger)
    worklog_id: Mapped[int | None] = mapped_column(BigInteger)
    uploaded_by_id: Mapped[int | None] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str] = mapped_column(String(400), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SavedView(TenantOwned, db.Model):
    """A named set of list filters and sort, personal or shared with the tenant."""

    __tablename__ = "saved_view"
    __table_args__ = (
        _same_tenant_fk("owner_id", "app_user", "fk_saved_view_owner"),
        Index("ix_saved_view_owner", "tenant_id", "owner_id"),
    )

    owner_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(80))
    shared: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    query: Mapped[str] = mapped_column(String(2000))


class AuditLog(TenantOwned, db.Model):
    """Append-only record of who changed what: before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_tenant_at", "tenant_id", "at", "id"),
        Index("ix_audit_log_entity", "tenant_id", "entity", "entity_id"),
    )

    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    entity: Mapped[str] = mapped_column(String(40))
    entity_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40))
    before: Mapped[dict | None] = mapped_column(JSONB)
    after: Mapped[dict | None] = mapped_column(JSONB)
