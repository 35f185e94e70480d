"""Append-only audit records: who changed what, before and after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import tuple_

from cass.extensions import db
from cass.models import AuditLog
from cass.tenancy import current_tenant_id, scoped


def audit(
    actor_id: int | None,
    entity: str,
    entity_id: int,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Add an audit row to the caller's transaction (it commits with the change it records)."""
    db.session.add(
        AuditLog(
            tenant_id=current_tenant_id(),
            actor_id=actor_id,
            entity=entity,
            entity_id=entity_id,
            action=action,
            before=before,
            after=after,
        )
    )


@dataclass(frozen=True)
class AuditFilters:
    """What the admin filters the audit log by."""

    entity: str | None = None
    action: str | None = None
    actor_id: int | None = None
    entity_id: int | None = None
    since: date | None = None
    until: date | None = None


def changes(row: AuditLog) -> list[tuple[str, Any, Any]]:
    """Return (field, before, after) for each field that differs between before and after."""
    before, after = row.before or {}, row.after or {}
    return [
        (key, before.get(key), after.get(key))
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    ]


def list_audit(
    filters: AuditFilters, after: tuple[datetime, int] | None = None, limit: int = 50
) -> list[AuditLog]:
    """Return audit rows, newest first, keyset-paginated by (at, id)."""
    stmt = scoped(AuditLog)
    if filters.entity:
        stmt = stmt.where(AuditLog.entity == filters.entity)
    if filters.action:
        stmt = stmt.where(AuditLog.action == filters.action)
    if filters.actor_id is not None:
        stmt = stmt.where(AuditLog.actor_id == filters.actor_id)
    if filters.entity_id is not None:
        stmt = stmt.where(AuditLog.entity_id == filters.entity_id)
    if filters.since:
        stmt = stmt.where(AuditLog.at >= datetime.combine(filters.since, time.min, UTC))
    if filters.until:
        stmt = stmt.where(
            AuditLog.at < datetime.combine(filters.until, time.min, UTC) + timedelta(days=1)
        )
    if after is not None:
        stmt = stmt.where(tuple_(AuditLog.at, AuditLog.id) < tuple_(*after))
    stmt = stmt.order_by(AuditLog.at.desc(), AuditLog.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))


def audit_actions() -> list[str]:
    """Return the actions present in the tenant's audit log (for the filter)."""
    stmt = scoped(AuditLog).with_only_columns(AuditLog.action).distinct().order_by(AuditLog.action)
    return list(db.session.scalars(stmt))
