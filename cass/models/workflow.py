"""Workflow rules (WHEN an event AND conditions THEN actions) and the record of every run."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned

# What a rule can be triggered by.
RULE_EVENTS = {
    "connector_faulted": "A connector reports a fault",
    "connector_recovered": "A faulted connector recovers",
    "charger_offline": "A charger is offline longer than N minutes",
    "firmware_failed": "A firmware update fails",
    "ticket_created": "A ticket is created",
    "ticket_status_changed": "A ticket's status changes",
    "sla_warning": "An SLA clock nears its due time",
    "sla_breach": "An SLA clock is breached",
}


def _in(column: str, values: object) -> str:
    return f"{column} IN (" + ",".join(f"'{v}'" for v in values) + ")"  # type: ignore[attr-defined]


class WorkflowRule(TenantOwned, db.Model):
    """WHEN `event` AND every condition holds THEN the actions run, in order."""

    __tablename__ = "workflow_rule"
    __table_args__ = (
        CheckConstraint(_in("event", RULE_EVENTS), name="ck_workflow_rule_event"),
        Index("ix_workflow_rule_tenant_event", "tenant_id", "event", "position"),
        db.UniqueConstraint("tenant_id", "id", name="uq_workflow_rule_tenant_id"),
    )

    name: Mapped[str] = mapped_column(String(120))
    event: Mapped[str] = mapped_column(String(30))
    # {"site_ids": [...], "models": [...], "error_codes": [...], "priorities": [...],
    #  "categories": [...], "offline_minutes": N}: every key present must match.
    conditions: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    # [{"do": "create_ticket", "category": ..., "priority": ...}, {"do": "assign", ...}, ...]
    actions: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RuleRun(TenantOwned, db.Model):
    """One evaluation of a rule against an event: whether it matched and what its actions did."""

    __tablename__ = "rule_run"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "rule_id"],
            ["workflow_rule.tenant_id", "workflow_rule.id"],
            name="fk_rule_run_rule",
            ondelete="CASCADE",
        ),
        Index("ix_rule_run_tenant_at", "tenant_id", text("at DESC")),
        Index("ix_rule_run_rule_at", "rule_id", text("at DESC")),
    )

    rule_id: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    event: Mapped[str] = mapped_column(String(30))
    # What the event was about: a charger event, a CSMS event or a ticket.
    charger_event_id: Mapped[int | None] = mapped_column(BigInteger)
    csms_event_id: Mapped[int | None] = mapped_column(BigInteger)
    charger_id: Mapped[int | None] = mapped_column(BigInteger)
    ticket_id: Mapped[int | None] = mapped_column(BigInteger)
    matched: Mapped[bool] = mapped_column(Boolean)
    # [{"do": ..., "result": ...}] for each action run.
    outcome: Mapped[list | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
