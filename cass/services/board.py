"""The board: open tickets by status, a capped number of cards per column, in one query."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import func, select, true

from cass.extensions import db
from cass.models import Charger, Ticket, User, Vendor
from cass.services import sla
from cass.services.tickets import visible

BOARD_STATUSES = ("new", "assigned", "in_progress", "on_hold", "reopened", "resolved")
CARDS_PER_COLUMN = 50


@dataclass
class Card:
    """What a board card shows."""

    ticket: Ticket
    charger: str | None
    assignee: str | None
    sla: sla.Badge | None = None


@dataclass
class Column:
    """One status column: its total and the first cards (most urgent, then most recent)."""

    status: str
    total: int = 0
    cards: list[Card] = field(default_factory=list)


def board(actor: User, limit: int = CARDS_PER_COLUMN) -> list[Column]:
    """Return the board's columns for the tickets `actor` may see."""
    base = visible(actor).where(Ticket.status.in_(BOARD_STATUSES)).subquery()
    ranked = (
        select(
            base.c.id,
            func.row_number()
            .over(partition_by=base.c.status, order_by=(base.c.priority, base.c.updated_at.desc()))
            .label("rank"),
            func.count().over(partition_by=base.c.status).label("total"),
        )
    ).subquery()
    urgent = sla.urgent_clock()
    rows = db.session.execute(
        select(Ticket, ranked.c.total, Charger.ocpp_id, User.name, Vendor.name, urgent)
        .join(ranked, ranked.c.id == Ticket.id)
        .outerjoin(urgent, true())
        .outerjoin(Charger, Charger.id == Ticket.charger_id)
        .outerjoin(User, User.id == Ticket.assignee_user_id)
        .outerjoin(Vendor, Vendor.id == Ticket.assignee_vendor_id)
        .where(ranked.c.rank <= limit)
        .order_by(ranked.c.rank)
    )
    columns = {status: Column(status) for status in BOARD_STATUSES}
    now = datetime.now(UTC)
    for row in rows:
        ticket, total, charger, user_name, vendor_name = row[:5]
        column = columns[ticket.status]
        column.total = total
        column.cards.append(Card(ticket, charger, user_name or vendor_name, sla.badge_of(row, now)))
    return list(columns.values())
