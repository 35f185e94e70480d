"""Tenant administration: users and vendors, with htmx inline edit."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.admin.forms import ConfirmForm, UserCreateForm, UserEditForm, VendorForm
from cass.bounds import DAY_RANGE, parse_day, parse_id, parse_moment
from cass.models import User, Vendor
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import audit as audit_service
from cass.services import tickets
from cass.services import users as user_service
from cass.services import vendors as vendor_service
from cass.tenancy import get_or_404

bp = Blueprint("admin", __name__, url_prefix="/admin")


def _vendor_or_404(vendor_id: int | None) -> Vendor | None:
    """Resolve a posted vendor id in the current tenant (a foreign or bogus id is a 404)."""
    return None if vendor_id is None else get_or_404(Vendor, vendor_id)


def _user_row(user: User, status: int = 200) -> Response:
    """Render one user's row (htmx) or the user's page."""
    return render("admin/user.html", "admin/_user_row.html", status, user=user)


@bp.get("/users")
@requires("users.view")
def users() -> Response:
    """List the tenant's users."""
    return render("admin/users.html", users=user_service.list_users(), confirm=ConfirmForm())


@bp.route("/users/new", methods=["GET", "POST"])
@requires("users.manage")
def user_new() -> Response:
    """Create a user."""
    form = UserCreateForm()
    form.set_vendor_choices(vendor_service.list_vendors(active_only=True))
    error = None
    if form.validate_on_submit():
        vendor = _vendor_or_404(form.vendor_id.data)
        try:
            user = user_service.create_user(
                form.email.data, form.name.data, form.role.data, form.password.data, vendor
            )
        except user_service.UserError as exc:
            error = str(exc)
        else:
            flash(f"User {user.email} created.", "success")
            return redirect(url_for("admin.users"), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "admin/user_new.html", "admin/_user_new_form.html", status, form=form, error=error
    )


@bp.get("/users/<int:user_id>")
@requires("users.view")
def user(user_id: int) -> Response:
    """Show one user (its row for htmx, e.g. when an inline edit is cancelled)."""
    return _user_row(get_or_404(User, user_id))


@bp.route("/users/<int:user_id>/edit", methods=["GET", "POST"])
@requires("users.manage")
def user_edit(user_id: int) -> Response:
    """Edit a user's name, role and vendor (inline in the list with htmx)."""
    user = get_or_404(User, user_id)
    form = UserEditForm(obj=user)
    form.set_vendor_choices(vendor_service.list_vendors(active_only=True))
    error = None
    if form.validate_on_submit():
        vendor = _vendor_or_404(form.vendor_id.data)
        try:
            user_service.update_user(user, current_user, form.name.data, form.role.data, vendor)
        except user_service.UserError as exc:
            error = str(exc)
        else:
            if wants_fragment():
                return _user_row(user)
            flash(f"User {user.email} saved.", "success")
            return redirect(url_for("admin.users"), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "admin/user_edit.html",
        "admin/_user_edit_row.html",
        status,
        form=form,
        user=user,
        error=error,
    )


def _set_active(user_id: int, active: bool) -> Response:
    """Deactivate or reactivate a user and answer with the row or a redirect."""
    user = get_or_404(User, user_id)
    form = ConfirmForm()
    error = None
    if form.validate_on_submit():
        try:
            user_service.set_active(user, current_user, active)
        except user_service.UserError as exc:
            error = str(exc)
    if error is not None:
        if wants_fragment():
            return render("admin/_user_row.html", status=422, user=user, error=error)
        flash(error, "error")
        return redirect(url_for("admin.users"), 303)
    if wants_fragment():
        return _user_row(user)
    flash(f"User {user.email} {'reactivated' if active else 'deactivated'}.", "success")
    return redirect(url_for("admin.users"), 303)


@bp.post("/users/<int:user_id>/deactivate")
@requires("users.manage")
def user_deactivate(user_id: int) -> Response:
    """Deactivate a user: they cannot sign in and their sessions end."""
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/activate")
@requires("users.manage")
def user_activate(user_id: int) -> Response:
    """Reactivate a deactivated user."""
    return _set_active(user_id, True)


@bp.get("/vendors")
@requires("vendors.view")
def vendors() -> Response:
    """List the tenant's vendors."""
    return render("admin/vendors.html", vendors=vendor_service.list_vendors(), form=VendorForm())


@bp.post("/vendors")
@requires("vendors.manage")
def vendor_create() -> Response:
    """Create a vendor."""
    form = VendorForm()
    error = None
    if form.validate_on_submit():
        try:
            vendor = vendor_service.save_vendor(
                None,
                form.name.data,
                form.contact_email.data or "",
                form.phone.data or "",
                form.is_active.data,
            )
        except vendor_service.VendorError as exc:
            error = str(exc)
        else:
            flash(f"Vendor {vendor.name} created.", "success")
            return redirect(url_for("admin.vendors"), 303)
    return render(
        "admin/vendors.html",
        "admin/_vendor_new_form.html",
        422,
        vendors=vendor_service.list_vendors(),
        form=form,
        error=error,
    )


@bp.get("/vendors/<int:vendor_id>")
@requires("vendors.view")
def vendor(vendor_id: int) -> Response:
    """Show one vendor (its row for htmx)."""
    return render(
        "admin/vendor.html", "admin/_vendor_row.html", vendor=get_or_404(Vendor, vendor_id)
    )


@bp.route("/vendors/<int:vendor_id>/edit", methods=["GET", "POST"])
@requires("vendors.manage")
def vendor_edit(vendor_id: int) -> Response:
    """Edit a vendor (inline in the list with htmx)."""
    vendor = get_or_404(Vendor, vendor_id)
    form = VendorForm(obj=vendor)
    error = None
    if form.validate_on_submit():
        try:
            vendor_service.save_vendor(
                vendor,
                form.name.data,
                form.contact_email.data or "",
                form.phone.data or "",
                form.is_active.data,
            )
        except vendor_service.VendorError as exc:
            error = str(exc)
        else:
            if wants_fragment():
                return render("admin/_vendor_row.html", vendor=vendor)
            flash(f"Vendor {vendor.name} saved.", "success")
            return redirect(url_for("admin.vendors"), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "admin/vendor_edit.html",
        "admin/_vendor_edit_row.html",
        status,
        form=form,
        vendor=vendor,
        error=error,
    )


def _audit_filters(args: Any) -> tuple[audit_service.AuditFilters, list[str]]:
    """Read the audit filters from the query string; return them and what was not understood."""
    problems: list[str] = []

    def as_date(name: str) -> date | None:
        raw = args.get(name, "").strip()
        if not raw:
            return None
        try:
            return parse_day(raw)
        except ValueError:
            problems.append(f"“{raw[:20]}” is not a date (use YYYY-MM-DD, {DAY_RANGE}).")
            return None

    actor_id = None
    if args.get("actor"):
        try:
            actor_id = parse_id(args["actor"])
        except ValueError:
            problems.append("Unknown user.")
    entity_id = None
    if args.get("ticket"):
        ticket = tickets.by_key(current_user, args["ticket"])
        if ticket is None:
            problems.append(f"No ticket {args['ticket'][:20]}.")
            entity_id = -1
        else:
            entity_id = ticket.id
    filters = audit_service.AuditFilters(
        entity="ticket" if entity_id is not None else (args.get("entity") or None),
        action=(args.get("action") or None),
        actor_id=actor_id,
        entity_id=entity_id,
        since=as_date("since"),
        until=as_date("until"),
    )
    return filters, problems


def _cursor(args: Any) -> tuple[datetime, int] | None:
    raw = args.get("after", "")
    at, _, ident = raw.partition("|")
    try:
        return parse_moment(at), parse_id(ident)
    except ValueError:
        return None


@bp.get("/audit")
@requires("audit.view")
def audit() -> Response:
    """Show the append-only audit log with filters, newest first, 50 at a time."""
    filters, problems = _audit_filters(request.args)
    rows = audit_service.list_audit(filters, _cursor(request.args))
    people = {u.id: u for u in user_service.list_users()}
    more = None
    if len(rows) == 50:
        last = rows[-1]
        more = url_for(
            "admin.audit",
            **{k: v for k, v in request.args.items() if k != "after"},
            after=f"{last.at.isoformat()}|{last.id}",
        )
    fragment = "admin/_audit_rows.html" if request.args.get("after") else "admin/_audit_table.html"
    return render(
        "admin/audit.html",
        fragment,
        422 if problems else 200,
        rows=rows,
        people=people,
        problems=problems,
        more=more,
        changes=audit_service.changes,
        actions=audit_service.audit_actions(),
        args=request.args,
    )
