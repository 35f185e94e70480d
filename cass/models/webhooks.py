"""Outbound webhooks: a tenant's endpoints, and the queue and log of deliveries to them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned
from cass.models.tickets import _same_tenant_fk

# The events an endpoint can subscribe to, with the label the admin page shows.
WEBHOOK_EVENTS = {
    "ticket.created": "Ticket created",
    "ticket.changed": "Ticket changed (status, fields, assignment)",
    "charger.faulted": "Charger connector faulted",
    "charger.recovered": "Charger connector recovered",
    "sla.warning": "SLA warning (at risk)",
    "sla.breached": "SLA breached",
}
# Sent only by the "Send test" button, to every endpoint whatever it subscribes to.
PING_EVENT = "ping"
DELIVERY_STATUSES = ("pending", "delivered", "failed")


def _events_check() -> str:
    names = ", ".join(f"'{name}'" for name in WEBHOOK_EVENTS)
    return f"events <@ ARRAY[{names}]::text[]"


class WebhookEndpoint(TenantOwned, db.Model):
    """A URL of the tenant's that receives the events it subscribes to, signed with its secret."""

    __tablename__ = "webhook_endpoint"
    tenant_index = False  # ix_webhook_endpoint_active leads with tenant_id
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_webhook_endpoint_tenant_id"),
        CheckConstraint(_events_check(), name="ck_webhook_endpoint_events"),
        CheckConstraint("url ~ '^https?://'", name="ck_webhook_endpoint_url"),
        # The triggers ask "does this tenant have an active endpoint for these events?" on
        # every write to a hot table: a tiny partial index answers it.
        Index(
            "ix_webhook_endpoint_active",
            "tenant_id",
            postgresql_include=["events"],
            postgresql_where=text("active"),
        ),
    )

    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(200), default="", server_default="")
    # The HMAC key: kept as is, since signing needs it; shown to the admin once, when made.
    secret: Mapped[str] = mapped_column(String(100))
    events: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class WebhookDelivery(TenantOwned, db.Model):
    """One event for one endpoint: queued (pending), then delivered or, after retries, failed.

    Rows are written by triggers on the tables the events come from (migration 0021), in the
    writer's transaction, so the web, the scheduler and the bridge all enqueue the same way.
    """

    __tablename__ = "webhook_delivery"
    # The endpoint's composite foreign key implies the tenant and cascades from it.
    tenant_fk = tenant_index = False
    __table_args__ = (
        _same_tenant_fk(
            "endpoint_id", "webhook_endpoint", "fk_webhook_delivery_endpoint", "CASCADE"
        ),
        UniqueConstraint("event_id", name="uq_webhook_delivery_event_id"),
        CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="ck_webhook_delivery_status"
        ),
        # The delivery job's queue: due pending deliveries, oldest first.
        Index(
            "ix_webhook_delivery_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
        # An endpoint's log, newest first, paged by id (keyset).
        Index("ix_webhook_delivery_endpoint", "tenant_id", "endpoint_id", "id"),
        # Retention: finished deliveries by age.
        Index(
            "ix_webhook_delivery_finished",
            "created_at",
            postgresql_where=text("status <> 'pending'"),
        ),
    )

    endpoint_id: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(40))
    # Sent as X-CASS-Delivery and as the payload's "id"; a redelivery keeps it, so a receiver
    # can tell a retry from a new event.
    event_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), server_default=text("gen_random_uuid()")
    )
    payload: Mapped[dict] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(10), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))
    response_ms: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
