"""Tickets: create, change fields, assign, move through the lifecycle, and read them back.

Every change appends ticket_event rows and an audit row in the same transaction, bumps the
ticket's version (optimistic locking) and notifies live pages on commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import g
from sqlalchemy import Select, select, update
from sqlalchemy.orm.exc import StaleDataError

from cass import lifecycle, live
from cass.extensions import db
from cass.models import Charger, Connector, Site, Tenant, Ticket, TicketEvent, User, Vendor
from cass.services import sla
from cass.services.audit import audit
from cass.tenancy import current_tenant_id, scoped

KEY_RE = re.compile(r"^([A-Z][A-Z0-9]{1,9})-(\d{1,9})$")
AUDITED = (
    "title",
    "description",
    "category",
    "priority",
    "status",
    "channel",
    "charger_id",
    "connector_id",
    "site_id",
    "caller_name",
    "caller_phone",
    "caller_email",
    "assignee_user_id",
    "assignee_vendor_id",
    "hold_reason",
    "resolution_note",
    "cancel_reason",
)
# A change to these re-applies the SLA policy (policies match by priority and category).
SLA_FIELDS = ("priority", "category")
EDITABLE = (
    "title",
    "description",
    "category",
    "priority",
    "caller_name",
    "caller_phone",
    "caller_email",
)


class TicketError(ValueError):
    """The change breaks a rule; the message is shown to the user (422)."""


class NotAllowed(PermissionError):
    """The user's role may not make this change (403)."""


class StaleTicket(Exception):
    """Someone else changed the ticket first (409); `ticket` holds the fresh values."""

    def __init__(self, ticket: Ticket) -> None:
        super().__init__("This ticket was changed by someone else.")
        self.ticket = ticket


def format_key(prefix: str, number: int) -> str:
    """Return the ticket key, e.g. DEMO-1042."""
    return f"{prefix}-{number}"


def tenant_prefix() -> str:
    """Return the current tenant's ticket-key prefix (read once per request or command)."""
    # One request asks several times (key lookup, page keys, links); the prefix cannot change
    # under it, so keep it in `g`, per tenant.
    cache = g.setdefault("ticket_prefixes", {})
    tenant = current_tenant_id()
    if tenant not in cache:
        cache[tenant] = db.session.scalar(select(Tenant.key_prefix).where(Tenant.id == tenant))
    return cache[tenant]


def visible(actor: User) -> Select[tuple[Ticket]]:
    """Return a select of the tickets `actor` may see: the tenant's, or their vendor's."""
    stmt = scoped(Ticket)
    if actor.role == "vendor":
        stmt = stmt.where(Ticket.assignee_vendor_id == actor.vendor_id)
    return stmt


def by_key(actor: User, key: str) -> Ticket | None:
    """Return the visible ticket with this key (e.g. DEMO-1042), or None."""
    match = KEY_RE.match(key.strip().upper())
    if not match or match.group(1) != tenant_prefix():
        return None
    number = int(match.group(2))
    # Its SLA clocks come in the same round trip: a change or the ticket's page reads them next.
    with sla.clocks_alongside(current_tenant_id(), number):
        return db.session.scalars(visible(actor).where(Ticket.number == number)).first()


def snapshot(ticket: Ticket) -> dict[str, Any]:
    """Return the audited fields of a ticket as plain values."""
    return {name: getattr(ticket, name) for name in AUDITED}


def _event(
    ticket: Ticket,
    actor: User | None,
    kind: str,
    field: str | None = None,
    old: Any = None,
    new: Any = None,
    note: str | None = None,
) -> None:
    db.session.add(
        TicketEvent(
            tenant_id=ticket.tenant_id,
            ticket_id=ticket.id,
            actor_id=actor.id if actor else None,
            kind=kind,
            field=field,
            from_value=None if old is None else str(old),
            to_value=None if new is None else str(new),
            note=note,
        )
    )


def _notify(ticket: Ticket) -> None:
    """Tell live pages of this tenant that the ticket changed (delivered on commit)."""
    # Lists and boards listen for "ticket"; a ticket's own page for "ticket-<id>".
    live.notify(db.session, ticket.tenant_id, "ticket", ticket.id)
    live.notify(db.session, ticket.tenant_id, f"ticket-{ticket.id}", ticket.id)


def save_change(ticket: Ticket, changed: bool = True) -> None:
    """Flush, notify live pages and commit; a lost race on the version becomes StaleTicket."""
    with _stale_as_error(ticket):
        db.session.flush()
        if changed:
            _notify(ticket)
        db.session.commit()


@contextmanager
def _stale_as_error(ticket: Ticket) -> Iterator[None]:
    """Turn a lost race on the ticket's version into StaleTicket (with the fresh ticket)."""
    try:
        yield
    except StaleDataError as exc:
        db.session.rollback()
        fresh = db.session.get(Ticket, ticket.id, populate_existing=True)
        raise StaleTicket(fresh or ticket) from exc


def _check_version(ticket: Ticket, version: int | None) -> None:
    if version is not None and version != ticket.version:
        raise StaleTicket(ticket)


def _allocate_number() -> int:
    """Take the next ticket number of the tenant; the row lock serializes concurrent creators."""
    return db.session.execute(
        update(Tenant)
        .where(Tenant.id == current_tenant_id())
        .values(last_ticket_number=Tenant.last_ticket_number + 1)
        .returning(Tenant.last_ticket_number)
    ).scalar_one()


@dataclass
class NewTicket:
    """What a new ticket needs; charger, connector and site are already tenant-checked rows."""

    title: str
    category: str
    priority: str
    channel: str
    description: str = ""
    charger: Charger | None = None
    connector: Connector | None = None
    site: Site | None = None
    caller_name: str | None = None
    caller_phone: str | None = None
    caller_email: str | None = None
    # Set by workflow rules: one open ticket per key (a unique index), e.g. "fault:12:1:…".
    dedup_key: str | None = None


def create(actor: User | None, new: NewTicket) -> Ticket:
    """Create a ticket with the next key of the tenant."""
    if new.connector is not None and (
        new.charger is None or new.connector.charger_id != new.charger.id
    ):
        raise TicketError("The connector does not belong to that charger.")
    site_id = new.site.id if new.site else (new.charger.site_id if new.charger else None)
    if new.site and new.charger and new.charger.site_id != new.site.id:
        raise TicketError("The charger is not at that site.")
    ticket = Ticket(
        tenant_id=current_tenant_id(),
        number=_allocate_number(),
        title=new.title.strip(),
        description=(new.description or "").strip(),
        category=new.category,
        priority=new.priority,
        channel=new.channel,
        status="new",
        charger_id=new.charger.id if new.charger else None,
        connector_id=new.connector.id if new.connector else None,
        site_id=site_id,
        caller_name=(new.caller_name or "").strip() or None,
        caller_phone=(new.caller_phone or "").strip() or None,
        caller_email=(new.caller_email or "").strip().lower() or None,
        created_by_id=actor.id if actor else None,
        dedup_key=new.dedup_key,
    )
    db.session.add(ticket)
    with sla.plan_alongside(ticket):  # its SLA policy comes in the INSERT's round trip
        db.session.flush()
    sla.on_created(ticket, datetime.now(UTC))
    _event(ticket, actor, "created", "status", None, "new")
    audit(actor.id if actor else None, "ticket", ticket.id, "create", None, snapshot(ticket))
    save_change(ticket)
    _run_rules(ticket, "ticket_created")
    return ticket


def _run_rules(ticket: Ticket, event: str, previous_status: str | None = None) -> None:
    """Let the tenant's workflow rules act on a committed change (they never raise)."""
    from cass.services import workflow

    workflow.ticket_event(ticket, event, previous_status)


def open_tickets_for_charger(charger_id: int, exclude_id: int = 0) -> list[Ticket]:
    """Return the charger's open tickets (for the duplicate warning)."""
    return list(
        db.session.scalars(
            scoped(
                Ticket,
                Ticket.charger_id == charger_id,
                Ticket.status.in_(lifecycle.OPEN_STATUSES),
                Ticket.id != exclude_id,
            )
            .order_by(Ticket.id.desc())
            .limit(5)
        )
    )


def _touch(ticket: Ticket) -> None:
    ticket.updated_at = datetime.now(UTC)


def update_fields(
    ticket: Ticket, actor: User, version: int | None, changes: dict[str, Any]
) -> Ticket:
    """Change editable fields; one event per changed field."""
    _check_version(ticket, version)
    before = snapshot(ticket)
    changed = False
    for name, value in changes.items():
        if name not in EDITABLE:
            raise TicketError(f"{name} cannot be edited here.")
        if isinstance(value, str) or value is None:
            # Caller fields may be empty (NULL); text fields are never NULL.
            value = (value or "").strip() or (None if name.startswith("caller_") else "")
        if getattr(ticket, name) != value:
            _event(ticket, actor, "field", name, getattr(ticket, name), value)
            setattr(ticket, name, value)
            changed = True
    if changed:
        _touch(ticket)
        if any(before[name] != getattr(ticket, name) for name in SLA_FIELDS):
            # The ticket's UPDATE goes now, with its new SLA policy in the same round trip.
            with _stale_as_error(ticket), sla.plan_alongside(ticket):
                db.session.flush()
            sla.recompute(ticket, reason="priority or category changed")
        audit(actor.id, "ticket", ticket.id, "update", before, snapshot(ticket))
        save_change(ticket)
    return ticket


def _assignee_label(user: User | None, vendor: Vendor | None) -> str | None:
    if user is not None:
        return f"user:{user.id}:{user.name}"
    if vendor is not None:
        return f"vendor:{vendor.id}:{vendor.name}"
    return None


def _set_assignee(
    ticket: Ticket, actor: User, user: User | None, vendor: Vendor | None, note: str | None = None
) -> bool:
    if user is not None and vendor is not None:
        raise TicketError("Assign to a user or to a vendor, not both.")
    if user is not None and (not user.is_active or user.role == "viewer"):
        raise TicketError("That user cannot work tickets.")
    if vendor is not None and not vendor.is_active:
        raise TicketError("That vendor is inactive.")
    old_user = db.session.get(User, ticket.assignee_user_id) if ticket.assignee_user_id else None
    old_vendor = (
        db.session.get(Vendor, ticket.assignee_vendor_id) if ticket.assignee_vendor_id else None
    )
    old, new = _assignee_label(old_user, old_vendor), _assignee_label(user, vendor)
    if old == new:
        return False
    ticket.assignee_user_id = user.id if user else None
    ticket.assignee_vendor_id = vendor.id if vendor else None
    _event(ticket, actor, "assignment", "assignee", old, new, note)
    return True


def assign(
    ticket: Ticket, actor: User, version: int | None, user: User | None, vendor: Vendor | None
) -> Ticket:
    """Change who works the ticket (a user or a vendor), keeping the history."""
    if actor.role not in lifecycle.MANAGE:
        raise NotAllowed("Only managers and admins assign tickets.")
    _check_version(ticket, version)
    before = snapshot(ticket)
    old_vendor_id = ticket.assignee_vendor_id
    if _set_assignee(ticket, actor, user, vendor):
        _touch(ticket)
        sla.on_assignment(ticket, old_vendor_id)
        audit(actor.id, "ticket", ticket.id, "assign", before, snapshot(ticket))
        save_change(ticket)
    return ticket


def _require_text(fields: dict[str, Any], name: str, label: str) -> str:
    value = (fields.get(name) or "").strip()
    if not value:
        raise TicketError(f"{label} is required.")
    if len(value) > 5000:
        raise TicketError(f"{label} is too long (5,000 characters at most).")
    return value


def transition(
    ticket: Ticket,
    actor: User,
    name: str,
    version: int | None,
    fields: dict[str, Any] | None = None,
) -> Ticket:
    """Move the ticket by transition `name`, checking role, state and required fields."""
    fields = fields or {}
    move = lifecycle.BY_NAME.get(name)
    if move is None:
        raise TicketError("Unknown transition.")
    if actor.role not in move.roles:
        raise NotAllowed(f"Your role may not {move.label.lower()} tickets.")
    if ticket.status not in move.sources:
        status = lifecycle.STATUS_LABELS[ticket.status].lower()
        raise TicketError(f"“{move.label}” is not possible while the ticket is {status}.")
    _check_version(ticket, version)
    before = snapshot(ticket)
    note = (fields.get("note") or "").strip() or None
    old_vendor_id = ticket.assignee_vendor_id
    if "assignee" in move.requires:
        user, vendor = fields.get("user"), fields.get("vendor")
        if user is None and vendor is None:
            raise TicketError("Choose a user or a vendor to assign to.")
        _set_assignee(ticket, actor, user, vendor)
    if "hold_reason" in move.requires:
        reason = fields.get("hold_reason")
        if reason not in lifecycle.HOLD_REASONS:
            raise TicketError("Choose why the ticket is on hold.")
        ticket.hold_reason = reason
        note = note or lifecycle.HOLD_REASONS[reason]
    if "resolution_note" in move.requires:
        ticket.resolution_note = _require_text(fields, "resolution_note", "A resolution note")
        note = ticket.resolution_note
    if "cancel_reason" in move.requires:
        ticket.cancel_reason = _require_text(fields, "cancel_reason", "A reason to cancel")
        note = ticket.cancel_reason
    if "note" in move.requires:
        note = _require_text(fields, "note", "A note")
    now = datetime.now(UTC)
    if move.target != "on_hold":
        ticket.hold_reason = None
    if move.target == "resolved":
        ticket.resolved_at = now
    if move.target == "closed":
        ticket.closed_at = now
    if move.target == "reopened":
        ticket.resolved_at = None
    _event(ticket, actor, "status", "status", ticket.status, move.target, note)
    ticket.status = move.target
    ticket.updated_at = now
    sla.on_status(ticket, before["status"], move.target, now)
    sla.on_assignment(ticket, old_vendor_id, now)
    audit(actor.id, "ticket", ticket.id, name, before, snapshot(ticket))
    save_change(ticket)
    _run_rules(ticket, "ticket_status_changed", before["status"])
    return ticket


def history(ticket: Ticket) -> list[TicketEvent]:
    """Return the ticket's events, oldest first."""
    return list(
        db.session.scalars(
            scoped(TicketEvent, TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)
        )
    )


@dataclass(frozen=True)
class TimelineItem:
    """One entry of a ticket's timeline: an event, a worklog or an attachment."""

    at: datetime
    kind: str  # event, worklog, attachment
    item: Any
    actor: User | None


def timeline(ticket: Ticket) -> list[TimelineItem]:
    """Return the ticket's events, worklogs and attachments in one list, oldest first."""
    from cass.models import Attachment, Worklog

    people = {u.id: u for u in db.session.scalars(scoped(User))}
    items = [TimelineItem(e.at, "event", e, people.get(e.actor_id)) for e in history(ticket)]
    items += [
        TimelineItem(w.created_at, "worklog", w, people.get(w.author_id))
        for w in db.session.scalars(scoped(Worklog, Worklog.ticket_id == ticket.id))
    ]
    items += [
        TimelineItem(a.created_at, "attachment", a, people.get(a.uploaded_by_id))
        for a in db.session.scalars(scoped(Attachment, Attachment.ticket_id == ticket.id))
    ]
    order = {"event": 0, "worklog": 1, "attachment": 2}
    return sorted(items, key=lambda i: (i.at, order[i.kind], i.item.id))


# Who can be given a ticket: the field roles, and any active vendor.
ASSIGNABLE_ROLES = frozenset({"as_engineer", "as_manager", "admin"})


def assignee_options(
    users: list[tuple[int, str]], vendors: list[tuple[int, str]]
) -> list[tuple[str, str]]:
    """Return active workers and vendors, as (id, name), as `user:ID` / `vendor:ID` choices."""
    return [(f"user:{ident}", name) for ident, name in users] + [
        (f"vendor:{ident}", f"{name} (vendor)") for ident, name in vendors
    ]


def workers() -> list[tuple[int, str]]:
    """Return the tenant's active people who get tickets (and visits), as (id, name) by name."""
    users = db.session.execute(
        select(User.id, User.name)
        .where(
            User.tenant_id == current_tenant_id(),
            User.is_active_flag,
            User.role.in_(ASSIGNABLE_ROLES),
        )
        .order_by(User.name, User.id)
    ).all()
    return [(ident, name) for ident, name in users]


def assignee_choices() -> list[tuple[str, str]]:
    """Return the tenant's active workers and vendors as `user:ID` / `vendor:ID` choices."""
    tenant = current_tenant_id()
    vendors = db.session.execute(
        select(Vendor.id, Vendor.name)
        .where(Vendor.tenant_id == tenant, Vendor.is_active)
        .order_by(Vendor.name, Vendor.id)
    ).all()
    return assignee_options(workers(), [tuple(v) for v in vendors])
