"""/api/v1/tickets: list, read, create, change, assign, move, worklogs, history, attachments."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import request, url_for
from flask_login import current_user
from sqlalchemy import select

from cass import lifecycle
from cass.api.v1.auth import allowed, api_blueprint
from cass.api.v1.errors import ApiError, bad_cursor
from cass.api.v1.ticket_schemas import (
    AssignSchema,
    AttachmentSchema,
    EventSchema,
    TicketCreateSchema,
    TicketListArgs,
    TicketPageSchema,
    TicketSchema,
    TicketUpdateSchema,
    TransitionSchema,
    WorklogCreateSchema,
    WorklogSchema,
)
from cass.extensions import db
from cass.models import Attachment, Charger, Connector, Site, Ticket, User, Vendor, Worklog
from cass.services import fleet, sla, tickets
from cass.services.ticket_queries import BadCursor, list_page, parse_list_query
from cass.services.tickets import NewTicket, NotAllowed, StaleTicket, TicketError
from cass.services.worklogs import add_worklog
from cass.tenancy import scoped

bp = api_blueprint("api_tickets", "Tickets and their work.")

# A list row's fields, as ListRow holds them; its SLA badge is shaped apart.
ROW_FIELDS = (
    "id",
    "key",
    "number",
    "title",
    "status",
    "priority",
    "category",
    "created_at",
    "updated_at",
    "site",
    "charger",
    "assignee",
    "vendor",
)


def _ticket(ref: str) -> Ticket:
    """Return the ticket with this id or key that the caller may see, or raise 404."""
    ticket = None
    if ref.isascii() and ref.isdigit():
        if 0 < int(ref) < 2**63:
            ticket = db.session.scalars(
                tickets.visible(current_user).where(Ticket.id == int(ref))
            ).first()
    elif len(ref) <= 30:
        ticket = tickets.by_key(current_user, ref)
    if ticket is None:
        raise ApiError(404, "E_NOT_FOUND", f"There is no ticket {ref[:30]!r} for you to see.")
    return ticket


def _ref(model: type[Any], ident: int | None) -> dict[str, Any] | None:
    row = db.session.get(model, ident) if ident is not None else None
    return None if row is None else {"id": row.id, "name": row.name}


def _badge(badge: sla.Badge) -> dict[str, Any]:
    return {
        "clock": badge.clock,
        "label": badge.label,
        "state": badge.state,
        "due_at": badge.due_at,
    }


def present(ticket: Ticket) -> dict[str, Any]:
    """Return the ticket as the API shows it."""
    charger = db.session.get(Charger, ticket.charger_id) if ticket.charger_id else None
    connector = db.session.get(Connector, ticket.connector_id) if ticket.connector_id else None
    return {
        **{
            name: getattr(ticket, name)
            for name in (
                "id",
                "number",
                "version",
                "title",
                "description",
                "status",
                "priority",
                "category",
                "channel",
                "caller_name",
                "caller_phone",
                "caller_email",
                "hold_reason",
                "resolution_note",
                "cancel_reason",
                "created_at",
                "updated_at",
                "resolved_at",
                "closed_at",
            )
        },
        "key": tickets.format_key(tickets.tenant_prefix(), ticket.number),
        "site": _ref(Site, ticket.site_id),
        "charger": None if charger is None else {"id": charger.id, "ocpp_id": charger.ocpp_id},
        "connector": None if connector is None else connector.connector_no,
        "assignee": _ref(User, ticket.assignee_user_id),
        "vendor": _ref(Vendor, ticket.assignee_vendor_id),
        "sla": [_badge(b) for b in sla.badges(ticket)],
        "transitions": [t.name for t in lifecycle.allowed(ticket.status, current_user.role)],
    }


def _people() -> dict[int, dict[str, Any]]:
    return {
        ident: {"id": ident, "name": name}
        for ident, name in db.session.execute(scoped(User).with_only_columns(User.id, User.name))
    }


@contextmanager
def _service_errors() -> Iterator[None]:
    """Turn the ticket services' refusals into API errors."""
    try:
        yield
    except StaleTicket as exc:
        raise ApiError(
            409,
            "E_VERSION_CONFLICT",
            "Someone else changed the ticket first; read it again and retry.",
            {"version": exc.ticket.version},
        ) from exc
    except NotAllowed as exc:
        # The lifecycle's own rule (who may make which move), finer than the permission table.
        raise ApiError(403, "E_MOVE_NOT_ALLOWED", str(exc)) from exc
    except TicketError as exc:
        raise ApiError(422, "E_RULE", str(exc)) from exc


def _located(ticket: Ticket, status: int = 200) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Return the ticket with its version as ETag (and Location for a new one)."""
    headers = {"ETag": f'"{ticket.version}"'}
    if status == 201:
        headers["Location"] = url_for("api_tickets.get_ticket", ref=str(ticket.id))
    return present(ticket), status, headers


@bp.get("/tickets")
@allowed("tickets.view")
@bp.arguments(TicketListArgs, location="query", as_kwargs=True)
@bp.response(200, TicketPageSchema)
def list_tickets(**_: Any) -> dict[str, Any]:
    """List the tickets the caller may see, with the web list's filters; 50 a page."""
    query = parse_list_query(request.args)
    try:
        page = list_page(current_user, query)
    except BadCursor as exc:
        raise bad_cursor() from exc
    items = []
    for row in page.rows:
        item = {name: getattr(row, name) for name in ROW_FIELDS}
        item["sla"] = None if row.sla is None else _badge(row.sla)
        items.append(item)
    return {"items": items, "next_after": page.next_after}


@bp.post("/tickets")
@allowed("tickets.create")
@bp.arguments(TicketCreateSchema)
@bp.response(201, TicketSchema)
def create_ticket(data: dict[str, Any]) -> Any:
    """Open a ticket; its channel is `api` unless said otherwise."""
    charger = connector = site = None
    if data.get("charger"):
        charger = fleet.charger_by_ocpp_id(data["charger"])
        if charger is None:
            raise ApiError(422, "E_UNKNOWN_CHARGER", "There is no charger with that OCPP id.")
    if data.get("connector") is not None:
        if charger is None:
            raise ApiError(422, "E_RULE", "Name the charger of the connector.")
        connector = db.session.scalars(
            scoped(
                Connector,
                Connector.charger_id == charger.id,
                Connector.connector_no == data["connector"],
            )
        ).first()
        if connector is None:
            raise ApiError(422, "E_UNKNOWN_CONNECTOR", "The charger has no such connector.")
    if data.get("site") is not None:
        site = db.session.scalars(scoped(Site, Site.id == data["site"])).first()
        if site is None:
            raise ApiError(422, "E_UNKNOWN_SITE", "There is no such site.")
    with _service_errors():
        ticket = tickets.create(
            current_user,
            NewTicket(
                title=data["title"],
                description=data.get("description") or "",
                category=data["category"],
                priority=data["priority"],
                channel=data["channel"],
                charger=charger,
                connector=connector,
                site=site,
                caller_name=data.get("caller_name"),
                caller_phone=data.get("caller_phone"),
                caller_email=data.get("caller_email"),
            ),
        )
    return _located(ticket, 201)


@bp.get("/tickets/<ref>")
@allowed("tickets.view")
@bp.response(200, TicketSchema)
def get_ticket(ref: str) -> Any:
    """Read one ticket by id or key, with its SLA clocks and the moves open to the caller."""
    return _located(_ticket(ref))


@bp.patch("/tickets/<ref>")
@allowed("tickets.edit")
@bp.arguments(TicketUpdateSchema)
@bp.response(200, TicketSchema)
def update_ticket(data: dict[str, Any], ref: str) -> Any:
    """Change fields, only if the ticket is still at `version` (else 409)."""
    ticket = _ticket(ref)
    version = data.pop("version")
    with _service_errors():
        tickets.update_fields(ticket, current_user, version, data)
    return _located(ticket)


def _assignee(user_id: int | None, vendor_id: int | None) -> tuple[User | None, Vendor | None]:
    """Return the tenant's user and vendor named by id (422 for one that does not exist)."""
    user = vendor = None
    if user_id is not None:
        user = db.session.scalars(scoped(User, User.id == user_id)).first()
        if user is None:
            raise ApiError(422, "E_UNKNOWN_USER", "There is no such user.")
    if vendor_id is not None:
        vendor = db.session.scalars(scoped(Vendor, Vendor.id == vendor_id)).first()
        if vendor is None:
            raise ApiError(422, "E_UNKNOWN_VENDOR", "There is no such vendor.")
    return user, vendor


@bp.post("/tickets/<ref>/assign")
@allowed("tickets.assign")
@bp.arguments(AssignSchema)
@bp.response(200, TicketSchema)
def assign_ticket(data: dict[str, Any], ref: str) -> Any:
    """Give the ticket to a user or a vendor (both null: to nobody)."""
    ticket = _ticket(ref)
    user, vendor = _assignee(data["user"], data["vendor"])
    with _service_errors():
        tickets.assign(ticket, current_user, data["version"], user, vendor)
    return _located(ticket)


@bp.post("/tickets/<ref>/transitions")
@allowed("tickets.transition")
@bp.arguments(TransitionSchema)
@bp.response(200, TicketSchema)
def transition_ticket(data: dict[str, Any], ref: str) -> Any:
    """Move the ticket through its lifecycle (the fields a move requires are checked)."""
    ticket = _ticket(ref)
    user, vendor = _assignee(data.get("user"), data.get("vendor"))
    fields = {k: data.get(k) for k in ("note", "hold_reason", "resolution_note", "cancel_reason")}
    with _service_errors():
        tickets.transition(
            ticket,
            current_user,
            data["name"],
            data["version"],
            {**fields, "user": user, "vendor": vendor},
        )
    return _located(ticket)


@bp.get("/tickets/<ref>/events")
@allowed("tickets.view")
@bp.response(200, EventSchema(many=True))
def ticket_events(ref: str) -> list[dict[str, Any]]:
    """Read the ticket's history: every status, field and assignment change, oldest first."""
    ticket = _ticket(ref)
    people = _people()
    return [
        {
            "id": e.id,
            "at": e.at,
            "actor": people.get(e.actor_id) if e.actor_id else None,
            "kind": e.kind,
            "field": e.field,
            "from_value": e.from_value,
            "to_value": e.to_value,
            "note": e.note,
        }
        for e in tickets.history(ticket)
    ]


def _worklog(w: Worklog, people: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": w.id,
        "author": people.get(w.author_id) if w.author_id else None,
        "body": w.body,
        "minutes": w.minutes,
        "customer_visible": w.customer_visible,
        "created_at": w.created_at,
    }


@bp.get("/tickets/<ref>/worklogs")
@allowed("tickets.view")
@bp.response(200, WorklogSchema(many=True))
def ticket_worklogs(ref: str) -> list[dict[str, Any]]:
    """Read the ticket's worklogs, oldest first."""
    ticket = _ticket(ref)
    people = _people()
    rows = db.session.scalars(scoped(Worklog, Worklog.ticket_id == ticket.id).order_by(Worklog.id))
    return [_worklog(w, people) for w in rows]


@bp.post("/tickets/<ref>/worklogs")
@allowed("tickets.worklog")
@bp.arguments(WorklogCreateSchema)
@bp.response(201, WorklogSchema)
def add_ticket_worklog(data: dict[str, Any], ref: str) -> dict[str, Any]:
    """Add a worklog (a person's first answer stops the response clock)."""
    ticket = _ticket(ref)
    with _service_errors():
        entry = add_worklog(
            ticket, current_user, data["body"], data["minutes"], data["customer_visible"]
        )
    return _worklog(entry, _people())


@bp.get("/tickets/<ref>/attachments")
@allowed("tickets.view")
@bp.response(200, AttachmentSchema(many=True))
def ticket_attachments(ref: str) -> list[dict[str, Any]]:
    """List the ticket's files: name, type, size, who and when (not the bytes)."""
    ticket = _ticket(ref)
    people = _people()
    rows = db.session.scalars(
        select(Attachment)
        .where(Attachment.tenant_id == ticket.tenant_id, Attachment.ticket_id == ticket.id)
        .order_by(Attachment.id)
    )
    return [
        {
            "id": a.id,
            "filename": a.filename,
            "content_type": a.content_type,
            "size": a.size,
            "worklog_id": a.worklog_id,
            "uploaded_by": people.get(a.uploaded_by_id) if a.uploaded_by_id else None,
            "created_at": a.created_at,
        }
        for a in rows
    ]
