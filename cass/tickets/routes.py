"""Ticket detail, quick create with charger lookup, inline edit, transitions, assignment,
worklogs."""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, request, send_file, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass import lifecycle
from cass.extensions import db
from cass.models import Charger, Connector, Ticket, User, Vendor
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import attachments, fleet, sla, tickets
from cass.services import bulk as bulk_service
from cass.services.tickets import NewTicket, NotAllowed, StaleTicket, TicketError
from cass.services.worklogs import add_worklog
from cass.storage import get_storage
from cass.tenancy import get_or_404
from cass.tickets.blueprint import bp
from cass.tickets.forms import (
    AssignForm,
    AttachmentForm,
    BulkForm,
    TicketCreateForm,
    TicketEditForm,
    TransitionForm,
    WorklogForm,
)
from cass.visits import panel as visit_panel


def ticket_or_404(key: str) -> Ticket:
    """Return the ticket with this key that the user may see, or abort 404."""
    ticket = tickets.by_key(current_user, key)
    if ticket is None:
        abort(404)
    return ticket


def _key(ticket: Ticket) -> str:
    return tickets.format_key(tickets.tenant_prefix(), ticket.number)


def _parse_assignee(value: str | None) -> tuple[User | None, Vendor | None]:
    """Resolve `user:ID` / `vendor:ID` in the tenant (a foreign or bogus id is a 404)."""
    if not value:
        return None, None
    kind, _, ident = value.partition(":")
    if kind == "user":
        return get_or_404(User, ident), None
    if kind == "vendor":
        return None, get_or_404(Vendor, ident)
    abort(404)


def _version(form: Any) -> int | None:
    try:
        return int(form.version.data)
    except (TypeError, ValueError):
        return None


def live_context(ticket: Ticket) -> dict[str, Any]:
    """Return what the live parts of the detail page render: fields, moves and timeline."""
    return {
        "ticket": ticket,
        "key": _key(ticket),
        "charger": db.session.get(Charger, ticket.charger_id) if ticket.charger_id else None,
        "connector": db.session.get(Connector, ticket.connector_id)
        if ticket.connector_id
        else None,
        "assignee_user": db.session.get(User, ticket.assignee_user_id)
        if ticket.assignee_user_id
        else None,
        "assignee_vendor": db.session.get(Vendor, ticket.assignee_vendor_id)
        if ticket.assignee_vendor_id
        else None,
        "moves": lifecycle.allowed(ticket.status, current_user.role),
        "timeline": tickets.timeline(ticket),
        "sla_badges": sla.badges(ticket),
        "lifecycle": lifecycle,
    }


def detail_context(ticket: Ticket, **extra: Any) -> dict[str, Any]:
    """Return everything the detail page and its fragments render: the live parts and forms."""
    context = live_context(ticket)
    context.update(
        worklog_form=WorklogForm(formdata=None),
        attach_form=AttachmentForm(formdata=None),
        assign_form=_assign_form(ticket),
    )
    context.update(visit_panel.ticket_panel(ticket))
    context.update(extra)
    return context


def _assign_form(ticket: Ticket, formdata: Any = None) -> AssignForm:
    form = AssignForm(formdata=formdata)
    form.assignee.choices = [("", "— nobody —"), *tickets.assignee_choices()]
    if formdata is None:
        form.version.data = str(ticket.version)
        if ticket.assignee_user_id:
            form.assignee.data = f"user:{ticket.assignee_user_id}"
        elif ticket.assignee_vendor_id:
            form.assignee.data = f"vendor:{ticket.assignee_vendor_id}"
    return form


@bp.route("/new", methods=["GET", "POST"])
@requires("tickets.create")
def new() -> Response:
    """Show the quick-create form (pre-filled from ?charger=) and create the ticket."""
    form = TicketCreateForm()
    charger = None
    if form.is_submitted():
        charger_id = form.charger_id.data
        charger = get_or_404(Charger, charger_id) if charger_id is not None else None
    elif request.args.get("charger"):
        charger = fleet.charger_by_ocpp_id(request.args["charger"])
    _connector_choices(form, charger)
    error = None
    if form.validate_on_submit():
        connector = (
            get_or_404(Connector, form.connector_id.data) if form.connector_id.data else None
        )
        try:
            ticket = tickets.create(
                current_user,
                NewTicket(
                    title=form.title.data,
                    description=form.description.data or "",
                    category=form.category.data,
                    priority=form.priority.data,
                    channel=form.channel.data,
                    charger=charger,
                    connector=connector,
                    caller_name=form.caller_name.data,
                    caller_phone=form.caller_phone.data,
                    caller_email=form.caller_email.data,
                ),
            )
        except TicketError as exc:
            error = str(exc)
        else:
            flash(f"Ticket {_key(ticket)} created.", "success")
            return redirect(url_for("tickets.detail", key=_key(ticket)), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "tickets/new.html",
        "tickets/_new_form.html",
        status,
        form=form,
        charger=charger,
        duplicates=tickets.open_tickets_for_charger(charger.id) if charger else [],
        error=error,
        prefix=tickets.tenant_prefix(),
    )


def _connector_choices(form: TicketCreateForm, charger: Charger | None) -> None:
    form.connector_id.choices = [("", "— whole charger —")] + (
        [(c.id, f"Connector {c.connector_no} · {c.status}") for c in charger.connectors]
        if charger
        else []
    )
    if charger is not None:
        form.charger_id.data = charger.id


@bp.get("/lookup")
@requires("tickets.create")
def lookup() -> Response:
    """Find chargers as the agent types (htmx active search), or pick one (?pick=ID)."""
    if request.args.get("pick"):
        charger = get_or_404(Charger, request.args["pick"])
        form = TicketCreateForm(formdata=None)
        _connector_choices(form, charger)
        return render(
            "tickets/new.html",
            "tickets/_charger_pick.html",
            form=form,
            charger=charger,
            duplicates=tickets.open_tickets_for_charger(charger.id),
            error=None,
            prefix=tickets.tenant_prefix(),
        )
    query = request.args.get("q", "")
    results = fleet.search_chargers(query, limit=8) if query.strip() else []
    if not wants_fragment():
        form = TicketCreateForm(formdata=None)
        _connector_choices(form, None)
        return render(
            "tickets/new.html",
            form=form,
            charger=None,
            duplicates=[],
            error=None,
            results=results,
            query=query,
            prefix=tickets.tenant_prefix(),
        )
    return render("tickets/_lookup_results.html", results=results, query=query)


@bp.get("/<key>")
@requires("tickets.view")
def detail(key: str) -> Response:
    """Show a ticket: fields, allowed transitions, assignment and its timeline."""
    ticket = ticket_or_404(key)
    if request.args.get("part") == "live" and wants_fragment():
        # A live refresh: fields, moves and timeline swap out of band; open forms stay as typed.
        # Every open page refreshes on each change: render no forms it would throw away.
        return render("tickets/_detail_live.html", **live_context(ticket))
    return render("tickets/detail.html", "tickets/_detail.html", **detail_context(ticket))


@bp.route("/<key>/edit", methods=["GET", "POST"])
@requires("tickets.edit")
def edit(key: str) -> Response:
    """Edit the ticket's fields inline; a stale version gets a 409 with the fresh values."""
    ticket = ticket_or_404(key)
    form = TicketEditForm(obj=ticket if request.method == "GET" else None)
    if request.method == "GET":
        form.version.data = str(ticket.version)
    error, status = None, 200
    if form.validate_on_submit():
        changes = {name: getattr(form, name).data for name in tickets.EDITABLE}
        try:
            tickets.update_fields(ticket, current_user, _version(form), changes)
        except StaleTicket as exc:
            fresh = TicketEditForm(formdata=None, obj=exc.ticket)
            fresh.version.data = str(exc.ticket.version)
            return render(
                "tickets/edit.html",
                "tickets/_edit_form.html",
                409,
                **detail_context(
                    exc.ticket,
                    form=fresh,
                    mine=changes,
                    error=(
                        "Someone else changed this ticket while you were editing. Nothing of yours "
                        "was saved; the form now shows the current values and yours are listed "
                        "below."
                    ),
                ),
            )
        except TicketError as exc:
            error, status = str(exc), 422
        else:
            if wants_fragment():
                return render("tickets/_detail.html", **detail_context(ticket))
            flash("Ticket saved.", "success")
            return redirect(url_for("tickets.detail", key=key), 303)
    elif form.is_submitted():
        status = 422
    return render(
        "tickets/edit.html",
        "tickets/_edit_form.html",
        status,
        **detail_context(ticket, form=form, error=error, mine=None),
    )


@bp.route("/<key>/transition/<name>", methods=["GET", "POST"])
@requires("tickets.transition")
def transition(key: str, name: str) -> Response:
    """Ask for a transition's required fields, then make it."""
    ticket = ticket_or_404(key)
    move = lifecycle.BY_NAME.get(name)
    if move is None:
        abort(404)
    # From the board, the form opens inside the card and success redraws the board.
    on_board = request.values.get("board") == "1"
    form = TransitionForm()
    form.assignee.choices = [("", "— choose —"), *tickets.assignee_choices()]
    if request.method == "GET":
        form.version.data = str(ticket.version)
    error, status = None, 200
    if form.validate_on_submit():
        user, vendor = (
            _parse_assignee(form.assignee.data) if "assignee" in move.requires else (None, None)
        )
        fields = {
            "user": user,
            "vendor": vendor,
            "hold_reason": form.hold_reason.data,
            "resolution_note": form.resolution_note.data,
            "cancel_reason": form.cancel_reason.data,
            "note": form.note.data,
        }
        try:
            tickets.transition(ticket, current_user, name, _version(form), fields)
        except NotAllowed:
            abort(403)
        except StaleTicket as exc:
            ticket = exc.ticket
            form.version.data = str(ticket.version)
            error, status = (
                "Someone else changed this ticket first; check its state and try again.",
                409,
            )
        except TicketError as exc:
            error, status = str(exc), 422
        else:
            if on_board and wants_fragment():
                from cass.tickets.board_routes import board_context

                response = render("tickets/_board.html", **board_context())
                response.headers["HX-Retarget"] = "#board"
                response.headers["HX-Reswap"] = "outerHTML"
                return response
            if wants_fragment():
                return render("tickets/_detail.html", **detail_context(ticket))
            flash(f"{move.label}: done.", "success")
            return redirect(url_for("tickets.detail", key=key), 303)
    elif form.is_submitted():
        status = 422
    elif current_user.role not in move.roles:
        abort(403)
    if on_board and wants_fragment():
        return render(
            "tickets/_board_move_form.html",
            status=status,
            form=form,
            move=move,
            error=error,
            key=_key(ticket),
        )
    return render(
        "tickets/transition.html",
        "tickets/_transition_form.html",
        status,
        **detail_context(ticket, form=form, move=move, error=error),
    )


def _after_side_form(ticket: Ticket, key: str, status: int, done: str, **extra: Any) -> Response:
    """Answer a detail-page form: redirect with a flash when done without htmx, else re-render."""
    if status == 200 and not wants_fragment():
        flash(done, "success")
        return redirect(url_for("tickets.detail", key=key), 303)
    return render(
        "tickets/detail.html", "tickets/_detail.html", status, **detail_context(ticket, **extra)
    )


@bp.post("/<key>/assign")
@requires("tickets.assign")
def assign(key: str) -> Response:
    """Assign the ticket to a user or a vendor (history kept)."""
    ticket = ticket_or_404(key)
    form = _assign_form(ticket, request.form)
    error, status = None, 200
    if form.validate_on_submit():
        user, vendor = _parse_assignee(form.assignee.data)
        try:
            tickets.assign(ticket, current_user, _version(form), user, vendor)
        except StaleTicket as exc:
            ticket = exc.ticket
            error, status = "Someone else changed this ticket first; check and try again.", 409
        except TicketError as exc:
            error, status = str(exc), 422
    else:
        status = 422
    return _after_side_form(ticket, key, status, "Assignment saved.", assign_error=error)


@bp.post("/<key>/worklogs")
@requires("tickets.worklog")
def worklog(key: str) -> Response:
    """Add a worklog (and optionally a file) to the ticket."""
    ticket = ticket_or_404(key)
    form = WorklogForm()
    error, status = None, 200
    if form.validate_on_submit():
        upload = form.photo.data if form.photo.data and form.photo.data.filename else None
        try:
            if upload is not None:  # checked first, so a bad file adds no worklog either
                attachments.check_upload(upload.stream, upload.filename)
            entry = add_worklog(
                ticket,
                current_user,
                form.body.data,
                form.minutes.data or 0,
                form.customer_visible.data,
            )
            if upload is not None:
                attachments.attach(ticket, current_user, upload.stream, upload.filename, entry)
        except TicketError as exc:
            error, status = str(exc), 422
        else:
            form = WorklogForm(formdata=None)
    else:
        status = 422
    return _after_side_form(
        ticket, key, status, "Worklog added.", worklog_form=form, worklog_error=error
    )


@bp.post("/<key>/attachments")
@requires("tickets.attach")
def upload(key: str) -> Response:
    """Attach a file to the ticket (size limit and type allow-list checked on the bytes)."""
    ticket = ticket_or_404(key)
    form = AttachmentForm()
    error, status = None, 200
    if form.validate_on_submit():
        try:
            attachments.attach(ticket, current_user, form.file.data.stream, form.file.data.filename)
        except TicketError as exc:
            error, status = str(exc), 422
    else:
        error, status = "Choose a file to attach.", 422
    return _after_side_form(ticket, key, status, "File attached.", attach_error=error)


@bp.get("/<key>/attachments/<int:attachment_id>")
@requires("tickets.view")
def attachment(key: str, attachment_id: int) -> Response:
    """Send an attachment to whoever may see the ticket (inline only for images)."""
    ticket = ticket_or_404(key)
    item = attachments.attachment_of(ticket, attachment_id)
    if item is None:
        abort(404)
    storage = get_storage(current_app)
    inline = request.args.get("inline") == "1" and item.content_type.startswith("image/")
    if not inline:
        url = storage.download_url(item.storage_key, item.filename, item.content_type)
        if url is not None:
            return redirect(url, 302)
    try:
        stream = storage.open(item.storage_key)
    except FileNotFoundError:
        abort(404)
    response = send_file(
        stream,
        mimetype=item.content_type,
        as_attachment=not inline,
        download_name=item.filename,
        max_age=0,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


def bulk_actions() -> list[tuple[str, str]]:
    """Return the bulk actions the user's role may take, as form choices."""
    role = current_user.role
    actions = [(f"transition:{t.name}", t.label) for t in lifecycle.TRANSITIONS if role in t.roles]
    if role in lifecycle.MANAGE:
        actions += [("assign", "Assign to…"), ("priority", "Set priority")]
    return actions


@bp.post("/bulk")
@requires("tickets.bulk")
def bulk() -> Response:
    """Apply one action to the selected tickets in one transaction; report each failure."""
    form = BulkForm()
    ids = []
    for raw in request.form.getlist("ticket"):
        try:
            ids.append(int(raw))
        except ValueError:
            abort(404)
    result, error, status = None, None, 200
    if form.validate_on_submit():
        action = form.action.data or ""
        try:
            if action.startswith("transition:"):
                name = action.split(":", 1)[1]
                user, vendor = (
                    _parse_assignee(form.assignee.data)
                    if name == "assign" and form.assignee.data
                    else (None, None)
                )
                result = bulk_service.bulk_transition(
                    current_user,
                    ids,
                    name,
                    {
                        "user": user,
                        "vendor": vendor,
                        "hold_reason": form.hold_reason.data,
                        "resolution_note": form.resolution_note.data,
                        "cancel_reason": form.cancel_reason.data,
                        "note": form.note.data,
                    },
                )
            elif action == "assign":
                user, vendor = _parse_assignee(form.assignee.data)
                result = bulk_service.bulk_assign(current_user, ids, user, vendor)
            elif action == "priority":
                result = bulk_service.bulk_priority(current_user, ids, form.priority.data or "")
            else:
                raise TicketError("Choose an action.")
        except NotAllowed:
            abort(403)
        except TicketError as exc:
            error, status = str(exc), 422
    else:
        error, status = "The form was incomplete.", 422
    numbers = bulk_service.numbers(list(result.failed) if result else [])
    prefix = tickets.tenant_prefix()
    if not wants_fragment():
        if result is not None:
            flash(f"{len(result.changed)} tickets changed, {len(result.failed)} not.", "success")
            for ident, reason in result.failed.items():
                flash(f"{prefix}-{numbers.get(ident, '?')}: {reason}", "error")
        else:
            flash(error or "Nothing changed.", "error")
        return redirect(url_for("tickets.index"), 303)
    response = render(
        "tickets/_bulk_result.html",
        status=status,
        result=result,
        error=error,
        numbers=numbers,
        prefix=prefix,
    )
    if result is not None and result.changed:
        response.headers["HX-Trigger"] = "tickets-changed"
    return response


def new_bulk_form(assignees: list[tuple[str, str]]) -> BulkForm:
    """Return an empty bulk form with the actions the user may choose and `assignees`."""
    form = BulkForm(formdata=None)
    form.action.choices = [("", "— choose —"), *bulk_actions()]
    form.assignee.choices = [("", "— nobody —"), *assignees]
    return form
