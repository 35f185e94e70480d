"""The SLA sweep: mark warnings and breaches across every tenant, record them, queue
notifications, fire escalations and let the workflow rules react.

Warnings and breaches are one set-based statement against the due and warning instants the
clocks already carry (cass.services.sla computes them on every write), so the sweep's cost
grows with the clocks that change, not with the open tickets. Runs as the owning role.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, text

from cass.extensions import db
from cass.models import SlaClock, SlaTarget, Ticket, User
from cass.tenancy import tenant_context

log = logging.getLogger("cass.sla")

PRIORITY_UP = {"P4": "P3", "P3": "P2", "P2": "P1", "P1": "P1"}

# One statement: breaches and warnings (disjoint sets of rows), their events, and in-app and
# e-mail notifications to whoever works the ticket (its user, or its vendor's users). A
# notification's key names the clock, the news and the due time, so no news is queued twice.
SWEEP_SQL = """
WITH breached AS (
    UPDATE sla_clock
    SET state = 'breached', breached_at = coalesce(breached_at, due_at), updated_at = :now
    WHERE state IN ('running', 'warning') AND due_at <= :now
    RETURNING id, tenant_id, ticket_id, clock, 'breached'::text AS news, due_at
), warned AS (
    UPDATE sla_clock
    SET state = 'warning', warned_at = :now, updated_at = :now
    WHERE state = 'running' AND warn_at <= :now AND due_at > :now
    RETURNING id, tenant_id, ticket_id, clock, 'warning'::text AS news, due_at
), changed AS (
    SELECT * FROM breached UNION ALL SELECT * FROM warned
), events AS (
    INSERT INTO sla_event (tenant_id, ticket_id, clock, kind, at, detail)
    SELECT tenant_id, ticket_id, clock, news, :now, jsonb_build_object('due_at', due_at)
    FROM changed
), recipients AS (
    SELECT c.*, u.id AS user_id, tn.key_prefix || '-' || t.number AS ticket_key, t.title
    FROM changed c
    JOIN ticket t ON t.id = c.ticket_id
    JOIN tenant tn ON tn.id = t.tenant_id
    JOIN app_user u ON u.tenant_id = t.tenant_id AND u.is_active
         AND (u.id = t.assignee_user_id
              OR (t.assignee_vendor_id IS NOT NULL AND u.vendor_id = t.assignee_vendor_id))
), queued AS (
    INSERT INTO notification (tenant_id, user_id, channel, kind, subject, body, ticket_id,
                              urgent, dedup_key)
    SELECT r.tenant_id, r.user_id, ch.channel, 'sla_' || r.news,
           r.ticket_key || ': ' || replace(r.clock, '_', ' ') || ' SLA '
               || CASE r.news WHEN 'breached' THEN 'breached' ELSE 'at risk' END,
           r.title || E'\\nDue ' || to_char(r.due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI')
               || ' UTC',
           r.ticket_id, r.news = 'breached',
           'sla:' || r.id || ':' || r.news || ':' || extract(epoch FROM r.due_at)::bigint
    FROM recipients r CROSS JOIN (VALUES ('in_app'), ('email')) AS ch(channel)
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT tenant_id, ticket_id, clock, news, (SELECT count(*) FROM queued) AS notified
FROM changed
"""


@dataclass
class SweepResult:
    """What one sweep did."""

    warnings: int = 0
    breaches: int = 0
    notifications: int = 0
    escalations: int = 0
    changed: list[tuple[int, int, str, str]] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.warnings + self.breaches + self.escalations


def sweep(now: datetime | None = None, run_rules: bool = True) -> SweepResult:
    """Mark warnings and breaches due by `now`, queue their notifications, run escalations."""
    now = now or datetime.now(UTC)
    rows = db.session.execute(text(SWEEP_SQL), {"now": now}).all()
    result = SweepResult(changed=[(r.tenant_id, r.ticket_id, r.clock, r.news) for r in rows])
    result.breaches = sum(1 for r in rows if r.news == "breached")
    result.warnings = len(rows) - result.breaches
    result.notifications = rows[0].notified if rows else 0
    for tenant_id, ticket_id in {(r.tenant_id, r.ticket_id) for r in rows}:
        live_notify(tenant_id, ticket_id)
    db.session.commit()
    result.escalations = escalate(now)
    if run_rules:
        _run_rules(result.changed)
    return result


def live_notify(tenant_id: int, ticket_id: int) -> None:
    """Tell live pages that the ticket's SLA state changed (delivered on commit)."""
    from cass import live

    live.notify(db.session, tenant_id, "ticket", ticket_id)
    live.notify(db.session, tenant_id, f"ticket-{ticket_id}", ticket_id)


def _due_escalations(now: datetime, limit: int) -> list[tuple[int, int]]:
    return [
        (r.id, r.tenant_id)
        for r in db.session.execute(
            select(SlaClock.id, SlaClock.tenant_id)
            .where(
                SlaClock.next_escalation_at <= now,
                SlaClock.state.in_(("running", "warning", "breached")),
            )
            .order_by(SlaClock.next_escalation_at)
            .limit(limit)
        )
    ]


def escalate(now: datetime, limit: int = 500) -> int:
    """Fire every escalation level that is due, each once, in its tenant's context."""
    from cass.services import sla

    fired = 0
    for clock_id, tenant_id in _due_escalations(now, limit):
        with tenant_context(tenant_id):
            clock = db.session.scalar(
                select(SlaClock).where(SlaClock.id == clock_id).with_for_update(skip_locked=True)
            )
            if clock is None or clock.next_escalation_at is None or clock.next_escalation_at > now:
                continue  # taken by another scheduler, or moved meanwhile
            target = db.session.get(SlaTarget, clock.target_id) if clock.target_id else None
            levels = sorted(target.escalations if target else [], key=lambda e: e["percent"])
            level = levels[clock.escalation_level] if clock.escalation_level < len(levels) else {}
            ticket = db.session.get(Ticket, clock.ticket_id)
            clock.escalation_level += 1
            sla.reschedule(clock, now)
            db.session.add(
                sla.event_row(clock, "escalated", now, level=clock.escalation_level, **level)
            )
            if ticket is not None:
                _act(ticket, clock, level, now)
            db.session.commit()
            fired += 1
    return fired


def _act(ticket: Ticket, clock: SlaClock, level: dict[str, Any], now: datetime) -> None:
    """Carry out one escalation level: notify a role or user, raise priority, reassign."""
    from cass.services import notifications, tickets
    from cass.services.workflow import SYSTEM

    subject = f"{tickets.format_key(tickets.tenant_prefix(), ticket.number)}: "
    subject += f"{clock.clock.replace('_', ' ')} SLA escalated (level {clock.escalation_level})"
    recipients: list[int] = []
    if level.get("notify_role"):
        recipients += db.session.scalars(
            select(User.id).where(
                User.tenant_id == ticket.tenant_id,
                User.role == level["notify_role"],
                User.is_active_flag,
            )
        ).all()
    if level.get("notify_user_id"):
        recipients.append(int(level["notify_user_id"]))
    for user_id in recipients:
        notifications.queue(
            user_id,
            "sla_escalation",
            subject,
            ticket.title,
            ticket_id=ticket.id,
            urgent=True,
            dedup_key=f"sla:{clock.id}:escalation:{clock.escalation_level}",
        )
    if level.get("raise_priority") and ticket.priority != "P1":
        tickets.update_fields(
            ticket,
            SYSTEM,  # type: ignore[arg-type]
            None,
            {"priority": PRIORITY_UP[ticket.priority]},
        )
    if level.get("reassign_user_id"):
        user = db.session.get(User, int(level["reassign_user_id"]))
        if user is not None and user.tenant_id == ticket.tenant_id:
            tickets.assign(ticket, SYSTEM, None, user, None)  # type: ignore[arg-type]


def _run_rules(changed: list[tuple[int, int, str, str]]) -> None:
    """Feed warnings and breaches to the tenants' workflow rules (sla_warning, sla_breach)."""
    from cass.services import workflow

    for tenant_id, ticket_id, _clock, news in changed:
        with tenant_context(tenant_id):
            ticket = db.session.get(Ticket, ticket_id)
            if ticket is not None:
                event = "sla_breach" if news == "breached" else "sla_warning"
                workflow.ticket_event(ticket, event)
