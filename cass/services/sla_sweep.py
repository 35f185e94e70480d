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
from cass.models import Ticket, User, WorkflowRule
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
), looked AS (
    -- Each changed clock's ticket looked up by key (OFFSET 0 keeps the lookups apart: the
    -- planner, guessing far more changed clocks than a sweep meets, would rather hash every
    -- ticket of the tenants), once for the notifications and the report snapshots' marks.
    SELECT c.*, t.assignee_user_id, t.assignee_vendor_id, t.number, t.title, t.created_at
    FROM changed c
    JOIN LATERAL (SELECT * FROM ticket t WHERE t.id = c.ticket_id OFFSET 0) t ON true
), marked AS (
    -- A breach changes the SLA report of its ticket's day of creation (a warning changes
    -- nothing it counts); the clock trigger skips this statement (cass.sweep_marked).
    SELECT cass_snapshot_mark(array_agg(tenant_id), array_agg(created_at)) AS days
    FROM looked WHERE news = 'breached'
), recipients AS (
    -- Each ticket's people looked up by key; the tenant joins on the clock's tenant, so its
    -- 20-odd rows are hashed once, not once per changed clock.
    SELECT c.id, c.tenant_id, c.ticket_id, c.clock, c.news, c.due_at, u.user_id,
           tn.key_prefix || '-' || c.number AS ticket_key, c.title
    FROM looked c
    JOIN tenant tn ON tn.id = c.tenant_id
    JOIN LATERAL (
        SELECT u.id AS user_id FROM app_user u
        WHERE u.id = c.assignee_user_id AND u.tenant_id = c.tenant_id AND u.is_active
        UNION
        SELECT u.id FROM app_user u
        WHERE u.vendor_id = c.assignee_vendor_id AND u.tenant_id = c.tenant_id AND u.is_active
    ) u ON true
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
    RETURNING tenant_id, user_id, channel
)
SELECT tenant_id, ticket_id, clock, news, NULL AS notified, NULL AS bells, NULL AS marked
FROM changed
UNION ALL
-- The totals once, in a last row of their own: on every row, the bells (thousands of pairs in
-- a catch-up) would be sent and parsed once per changed clock.
SELECT NULL, NULL, NULL, 'totals', (SELECT count(*) FROM queued),
       (SELECT array_agg(DISTINCT ARRAY[q.tenant_id, q.user_id]) FROM queued q
        WHERE q.channel = 'in_app'),
       (SELECT days FROM marked)
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
    # The statement marks its breaches' days for the report snapshots itself (it has their
    # tickets in hand); the clock trigger, seeing the setting, skips it.
    db.session.execute(text("SELECT set_config('cass.sweep_marked', 'on', true)"))
    rows = db.session.execute(text(SWEEP_SQL), {"now": now}).all()
    db.session.execute(text("SELECT set_config('cass.sweep_marked', 'off', true)"))
    (totals,) = [r for r in rows if r.news == "totals"]
    rows = [r for r in rows if r.news != "totals"]
    result = SweepResult(changed=[(r.tenant_id, r.ticket_id, r.clock, r.news) for r in rows])
    result.breaches = sum(1 for r in rows if r.news == "breached")
    result.warnings = len(rows) - result.breaches
    result.notifications = totals.notified
    live_notify_all({(r.tenant_id, r.ticket_id) for r in rows})
    ring_bells(totals.bells)
    db.session.commit()
    result.escalations = escalate(now)
    if run_rules:
        _run_rules(result.changed)
    return result


def live_notify_all(tickets: set[tuple[int, int]]) -> None:
    """Tell live pages that these (tenant, ticket)s changed, in one statement: each ticket's own
    event (its detail page), and one `ticket` event per tenant (lists, board and at-risk view
    redraw whole on it, whichever ticket it names), not one per ticket as single writes send."""
    from cass import live

    ordered = sorted(tickets)
    first: dict[int, int] = {}
    for tenant_id, ticket_id in ordered:
        first.setdefault(tenant_id, ticket_id)
    live.notify_many(
        db.session,
        [(tenant_id, "ticket", ticket_id) for tenant_id, ticket_id in first.items()]
        + [(tenant_id, f"ticket-{ticket_id}", ticket_id) for tenant_id, ticket_id in ordered],
    )


def ring_bells(pairs: Any) -> None:
    """Tell each (tenant, user) whose in-app news was queued to refresh their bell."""
    from cass import live

    if pairs:
        live.notify_many(db.session, ((t, f"bell-{u}", u) for t, u in sorted(map(tuple, pairs))))


# The escalations that only notify, all at once: for each clock's level its role's active users
# and its user, in-app and by e-mail, once per level.
ESCALATED_NOTIFICATIONS_SQL = """
INSERT INTO notification (tenant_id, user_id, channel, kind, subject, body, ticket_id,
                          urgent, dedup_key)
SELECT f.tenant_id, r.user_id, ch.channel, 'sla_escalation',
       left(tn.key_prefix || '-' || t.number || ': ' || replace(f.clock, '_', ' ')
            || ' SLA escalated (level ' || f.level || ')', 200),
       t.title, f.ticket_id, true, 'sla:' || f.clock_id || ':escalation:' || f.level
FROM unnest(CAST(:tenant_ids AS bigint[]), CAST(:ticket_ids AS bigint[]),
            CAST(:clock_ids AS bigint[]), CAST(:clocks AS text[]), CAST(:levels AS int[]),
            CAST(:roles AS text[]), CAST(:user_ids AS bigint[]))
     AS f(tenant_id, ticket_id, clock_id, clock, level, role, user_id)
JOIN tenant tn ON tn.id = f.tenant_id
JOIN ticket t ON t.id = f.ticket_id AND t.tenant_id = f.tenant_id
JOIN LATERAL (
    SELECT u.id AS user_id FROM app_user u
    WHERE f.role IS NOT NULL AND u.tenant_id = f.tenant_id AND u.role = f.role AND u.is_active
    UNION ALL
    SELECT f.user_id WHERE f.user_id IS NOT NULL
) r ON true
CROSS JOIN (VALUES ('in_app'), ('email')) AS ch(channel)
ON CONFLICT DO NOTHING
RETURNING tenant_id, user_id, channel
"""


def escalate(now: datetime, limit: int = 500) -> int:
    """Fire every escalation level that is due, each once.

    Levels that only notify (the defaults) fire together: the due clocks locked and read in one
    statement (skipping any another scheduler holds), their levels raised and rescheduled, the
    clocks and their events written in one statement, their notifications in one more, one
    commit. Levels that raise the priority or reassign go through the ticket services one clock
    at a time, in the ticket's tenant.
    """
    from cass.services import sla

    clocks = sla.due_escalations(now, limit)
    acting: list[tuple[int, int]] = []
    fired: list[tuple[sla.ClockRow, dict[str, Any]]] = []
    for clock in clocks:
        level = sla.next_level(clock)
        if level.get("raise_priority") or level.get("reassign_user_id"):
            acting.append((clock.id, clock.tenant_id))
            continue
        clock.escalation_level += 1
        sla.add_event(clock, "escalated", now, level=clock.escalation_level, **level)
        fired.append((clock, level))
    if not fired:
        db.session.rollback()  # the locks of any acting clocks, which go one by one below
    else:
        sla.escalated([clock for clock, _ in fired], now)
        queued = db.session.execute(
            text(ESCALATED_NOTIFICATIONS_SQL),
            {
                "tenant_ids": [c.tenant_id for c, _ in fired],
                "ticket_ids": [c.ticket_id for c, _ in fired],
                "clock_ids": [c.id for c, _ in fired],
                "clocks": [c.clock for c, _ in fired],
                "levels": [c.escalation_level for c, _ in fired],
                "roles": [level.get("notify_role") for _, level in fired],
                "user_ids": [
                    int(level["notify_user_id"]) if level.get("notify_user_id") else None
                    for _, level in fired
                ],
            },
        )
        ring_bells({(r.tenant_id, r.user_id) for r in queued if r.channel == "in_app"})
        db.session.commit()
    return len(fired) + sum(_escalate_one(i, t, now) for i, t in acting)


def _escalate_one(clock_id: int, tenant_id: int, now: datetime) -> int:
    """Fire one clock's due level that acts on the ticket, in its tenant's context."""
    from cass.services import sla

    with tenant_context(tenant_id):
        locked = sla.due_escalations(now, 1, clock_id)
        if not locked:
            return 0  # taken by another scheduler, or moved meanwhile
        clock = locked[0]
        level = sla.next_level(clock)
        ticket = db.session.get(Ticket, clock.ticket_id)
        clock.escalation_level += 1
        sla.add_event(clock, "escalated", now, level=clock.escalation_level, **level)
        # Written before the level acts: a raised priority recomputes from this clock.
        sla.escalated([clock], now)
        if ticket is not None:
            _act(ticket, clock, level, now)
        db.session.commit()
        return 1


def _act(ticket: Ticket, clock: Any, level: dict[str, Any], now: datetime) -> None:
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

    if not changed:
        return
    # Only where a tenant has an enabled rule for the event (one query for all): elsewhere
    # workflow.ticket_event would look and find nothing, a few round trips per clock.
    listening = {
        (r.tenant_id, r.event)
        for r in db.session.execute(
            select(WorkflowRule.tenant_id, WorkflowRule.event)
            .where(
                WorkflowRule.enabled,
                WorkflowRule.event.in_(("sla_breach", "sla_warning")),
                WorkflowRule.tenant_id.in_({tenant_id for tenant_id, *_ in changed}),
            )
            .distinct()
        )
    }
    db.session.rollback()
    for tenant_id, ticket_id, _clock, news in changed:
        if (tenant_id, "sla_breach" if news == "breached" else "sla_warning") not in listening:
            continue
        with tenant_context(tenant_id):
            ticket = db.session.get(Ticket, ticket_id)
            if ticket is not None:
                event = "sla_breach" if news == "breached" else "sla_warning"
                workflow.ticket_event(ticket, event)
