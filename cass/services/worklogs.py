"""Worklogs: notes on a ticket, internal or visible to the customer, with time spent."""

from __future__ import annotations

from datetime import UTC, datetime

from cass.extensions import db
from cass.models import Ticket, User, Worklog
from cass.services import sla
from cass.services.tickets import TicketError, save_change

MAX_BODY = 10_000


def add_worklog(
    ticket: Ticket, actor: User, body: str, minutes: int = 0, customer_visible: bool = False
) -> Worklog:
    """Add a worklog to the ticket and tell live pages."""
    body = body.strip()
    if not body:
        raise TicketError("Write something in the worklog.")
    if len(body) > MAX_BODY:
        raise TicketError("The worklog is too long (10,000 characters at most).")
    if not 0 <= minutes <= 1440:
        raise TicketError("Time spent is 0 to 1,440 minutes.")
    worklog = Worklog(
        tenant_id=ticket.tenant_id,
        ticket_id=ticket.id,
        author_id=actor.id,
        body=body,
        minutes=minutes,
        customer_visible=customer_visible,
    )
    db.session.add(worklog)
    ticket.updated_at = datetime.now(UTC)
    if actor.id is not None:
        # A person writing on the ticket is its first response; the workflow's notes are not.
        sla.on_first_answer(ticket, ticket.updated_at)
    save_change(ticket)
    return worklog
