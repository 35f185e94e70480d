"""Bulk actions on many tickets: a transition, an assignment or a priority, in one transaction.

Set-based: one UPDATE … RETURNING changes every eligible ticket, and one INSERT … SELECT each
writes their history and audit rows. Tickets that cannot take the change are reported one by
one and left untouched; nothing is half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from cass import lifecycle, live
from cass.extensions import db
from cass.models import Ticket, User, Vendor
from cass.services import sla
from cass.services.tickets import NotAllowed, TicketError
from cass.tenancy import current_tenant_id

MAX_BULK = 1000
# The previous assignee as the single-ticket service writes it: user:ID:name or vendor:ID:name.
OLD_ASSIGNEE = """CASE
    WHEN old.assignee_user_id IS NOT NULL THEN 'user:' || old.assignee_user_id || ':'
         || (SELECT name FROM app_user WHERE id = old.assignee_user_id)
    WHEN old.assignee_vendor_id IS NOT NULL THEN 'vendor:' || old.assignee_vendor_id || ':'
         || (SELECT name FROM vendor WHERE id = old.assignee_vendor_id)
    END"""


@dataclass
class BulkResult:
    """How many tickets changed, and why each other one did not."""

    changed: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def _sql(
    set_clause: str, where: str, event_kind: str, event_field: str, before: str, after: str
) -> str:
    """Return the one statement that updates, records history and audits, by CTEs."""
    return f"""
    WITH old AS (
        SELECT id, status, priority, assignee_user_id, assignee_vendor_id
        FROM ticket WHERE tenant_id = :tenant AND id = ANY(:ids) {{vendor}}
        FOR UPDATE
    ), changed AS (
        UPDATE ticket t SET {set_clause}, version = t.version + 1, updated_at = now()
        FROM old WHERE t.id = old.id AND {where}
        RETURNING t.id, {before} AS before, {after} AS after, old.status AS old_status,
                  old.assignee_vendor_id AS old_vendor
    ), events AS (
        INSERT INTO ticket_event (tenant_id, ticket_id, actor_id, kind, field, from_value,
                                  to_value, note)
        SELECT :tenant, id, :actor, '{event_kind}', '{event_field}', before::text, after::text,
               :note
        FROM changed
    ), audits AS (
        INSERT INTO audit_log (tenant_id, actor_id, entity, entity_id, action, before, after)
        SELECT :tenant, :actor, 'ticket', id, :action,
               jsonb_build_object('{event_field}', before),
               jsonb_build_object('{event_field}', after)
        FROM changed
    )
    SELECT id, old_status, old_vendor FROM changed
    """  # noqa: S608 (only fixed fragments are interpolated; values are bound)


def _run(actor: User, ids: list[int], sql: str, params: dict[str, Any]) -> BulkResult:
    """Run one bulk statement, move the changed tickets' SLA clocks, notify and commit."""
    vendor = "AND assignee_vendor_id = :vendor_id" if actor.role == "vendor" else ""
    rows = db.session.execute(
        text(sql.replace("{vendor}", vendor)),
        {
            "tenant": current_tenant_id(),
            "ids": ids,
            "actor": actor.id,
            "vendor_id": actor.vendor_id,
            **params,
        },
    )
    previous = {r.id: (r.old_status, r.old_vendor) for r in rows}
    changed = set(previous)
    result = BulkResult(changed=sorted(changed))
    _update_clocks(previous, params["action"])
    if changed:
        live.notify(db.session, current_tenant_id(), "ticket", "bulk", count=len(changed))
    db.session.commit()
    return result


def _update_clocks(previous: dict[int, tuple[str, int | None]], action: str) -> None:
    """Move the SLA clocks of the changed tickets, in the bulk change's transaction."""
    if not previous:
        return
    now = datetime.now(UTC)
    changed = db.session.scalars(
        select(Ticket).where(Ticket.id.in_(previous)).execution_options(populate_existing=True)
    )
    for ticket in changed:
        old_status, old_vendor = previous[ticket.id]
        if action == "priority":
            sla.recompute(ticket, now, reason="priority changed")
            continue
        if old_status != ticket.status:
            sla.on_status(ticket, old_status, ticket.status, now)
        sla.on_assignment(ticket, old_vendor, now)


def _explain_failures(result: BulkResult, ids: list[int], why: dict[int, str]) -> BulkResult:
    for ident in ids:
        if ident not in result.changed:
            result.failed[ident] = why.get(ident, "Not found.")
    return result


def _states(actor: User, ids: list[int]) -> dict[int, str]:
    """Return the current status of each requested ticket the actor may see."""
    vendor = "AND assignee_vendor_id = :vendor_id" if actor.role == "vendor" else ""
    rows = db.session.execute(
        text(f"SELECT id, status FROM ticket WHERE tenant_id = :t AND id = ANY(:ids) {vendor}"),  # noqa: S608
        {"t": current_tenant_id(), "ids": ids, "vendor_id": actor.vendor_id},
    )
    return dict(rows.all())


def _check(ids: list[int]) -> list[int]:
    unique = sorted(set(ids))
    if not unique:
        raise TicketError("Select at least one ticket.")
    if len(unique) > MAX_BULK:
        raise TicketError(f"Select at most {MAX_BULK} tickets at once.")
    return unique


def bulk_transition(actor: User, ids: list[int], name: str, fields: dict[str, Any]) -> BulkResult:
    """Move every selected ticket that may take transition `name`; report the others."""
    ids = _check(ids)
    move = lifecycle.BY_NAME.get(name)
    if move is None:
        raise TicketError("Unknown transition.")
    if actor.role not in move.roles:
        raise NotAllowed(f"Your role may not {move.label.lower()} tickets.")
    sets = ["status = :target"]
    params: dict[str, Any] = {"target": move.target, "sources": list(move.sources), "action": name}
    note = (fields.get("note") or "").strip() or None
    if "hold_reason" in move.requires:
        if fields.get("hold_reason") not in lifecycle.HOLD_REASONS:
            raise TicketError("Choose why the tickets are on hold.")
        sets.append("hold_reason = :hold_reason")
        params["hold_reason"] = fields["hold_reason"]
        note = lifecycle.HOLD_REASONS[fields["hold_reason"]]
    else:
        sets.append("hold_reason = NULL")
    for required, column, label in (
        ("resolution_note", "resolution_note", "A resolution note"),
        ("cancel_reason", "cancel_reason", "A reason to cancel"),
        ("note", None, "A note"),
    ):
        if required in move.requires:
            value = (fields.get(required) or "").strip()
            if not value or len(value) > 5000:
                raise TicketError(f"{label} is required (5,000 characters at most).")
            note = value
            if column:
                sets.append(f"{column} = :{column}")
                params[column] = value
    if "assignee" in move.requires:
        user, vendor = fields.get("user"), fields.get("vendor")
        if (user is None) == (vendor is None):
            raise TicketError("Choose a user or a vendor to assign to.")
        sets += ["assignee_user_id = :user_id", "assignee_vendor_id = :vendor_to"]
        params |= {"user_id": user.id if user else None, "vendor_to": vendor.id if vendor else None}
    if move.target == "resolved":
        sets.append("resolved_at = now()")
    if move.target == "closed":
        sets.append("closed_at = now()")
    params["note"] = note
    sql = _sql(
        ", ".join(sets), "old.status = ANY(:sources)", "status", "status", "old.status", ":target"
    )
    before = _states(actor, ids)
    result = _run(actor, ids, sql, params)
    label = move.label
    why = {
        i: f"A ticket that is {lifecycle.STATUS_LABELS[s].lower()} cannot take “{label}”."
        for i, s in before.items()
    }
    return _explain_failures(result, ids, why)


def bulk_priority(actor: User, ids: list[int], priority: str) -> BulkResult:
    """Set the priority of every selected ticket."""
    ids = _check(ids)
    if priority not in ("P1", "P2", "P3", "P4"):
        raise TicketError("Choose a priority.")
    sql = _sql(
        "priority = :priority",
        "old.priority <> :priority",
        "field",
        "priority",
        "old.priority",
        ":priority",
    )
    result = _run(actor, ids, sql, {"priority": priority, "note": None, "action": "priority"})
    before = _states(actor, ids)
    return _explain_failures(result, ids, {i: f"Already {priority}." for i in before})


def bulk_assign(
    actor: User, ids: list[int], user: User | None, vendor: Vendor | None
) -> BulkResult:
    """Assign every selected ticket to one user or vendor."""
    ids = _check(ids)
    if actor.role not in lifecycle.MANAGE:
        raise NotAllowed("Only managers and admins assign tickets.")
    if (user is None) == (vendor is None):
        raise TicketError("Choose a user or a vendor to assign to.")
    label = f"user:{user.id}:{user.name}" if user else f"vendor:{vendor.id}:{vendor.name}"
    sql = _sql(
        "assignee_user_id = :user_id, assignee_vendor_id = :vendor_to",
        "(old.assignee_user_id IS DISTINCT FROM :user_id "
        "OR old.assignee_vendor_id IS DISTINCT FROM :vendor_to)",
        "assignment",
        "assignee",
        OLD_ASSIGNEE,
        ":label",
    )
    params = {
        "user_id": user.id if user else None,
        "vendor_to": vendor.id if vendor else None,
        "label": label,
        "note": None,
        "action": "assign",
    }
    result = _run(actor, ids, sql, params)
    before = _states(actor, ids)
    return _explain_failures(result, ids, {i: "Already assigned there." for i in before})


def numbers(ids: list[int]) -> dict[int, int]:
    """Return the ticket number of each id (for messages), within the tenant."""
    if not ids:
        return {}
    rows = db.session.execute(
        text("SELECT id, number FROM ticket WHERE tenant_id = :t AND id = ANY(:ids)"),
        {"t": current_tenant_id(), "ids": ids},
    )
    return dict(rows.all())
