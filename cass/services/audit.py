"""Append-only audit records: who changed what, before and after."""

from __future__ import annotations

from typing import Any

from cass.extensions import db
from cass.models import AuditLog
from cass.tenancy import current_tenant_id


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
