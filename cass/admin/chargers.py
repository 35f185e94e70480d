"""The admin's charger registry under /admin/chargers: list, create, inline edit, key,
registration, CSV import and export. The public charger pages belong to the chargers area."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    request,
    url_for,
)
from flask_login import current_user
from werkzeug.wrappers import Response as BaseResponse

from cass.admin.charger_forms import (
    ChargerCreateForm,
    ChargerForm,
    ImportForm,
    RegistrationForm,
)
from cass.bounds import parse_id
from cass.csv_download import csv_download
from cass.models import Charger, Site, Vendor
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import charger_admin as service
from cass.services import charger_import
from cass.services import sites as site_service
from cass.services import vendors as vendor_service
from cass.tenancy import get_or_404
from ocpp_bridge.vocab import REGISTRATIONS

bp = Blueprint("charger_admin", __name__, url_prefix="/admin")

# The chargers area's page of one charger (by OCPP id), under whichever name it has.
PUBLIC_PAGES = ("chargers.detail", "chargers.page")
ERRORS_SHOWN = 200


@bp.app_template_global()
def charger_public_url(ocpp_id: str) -> str | None:
    """Return the chargers area's page of a charger, when that area is installed."""
    for endpoint in PUBLIC_PAGES:
        if endpoint in current_app.view_functions:
            return url_for(endpoint, ocpp_id=ocpp_id)
    return None


def _filters(args: Any) -> service.ChargerFilters:
    """Read the list's filters from the query string (what is not understood is ignored)."""
    registration = args.get("registration") or None
    try:
        site_id = parse_id(args["site"]) if args.get("site") else None
    except ValueError:
        site_id = None
    return service.ChargerFilters(
        q=args.get("q", ""),
        registration=registration if registration in REGISTRATIONS else None,
        site_id=site_id,
    )


def _row(charger: Charger, status: int = 200, error: str | None = None) -> BaseResponse:
    """Render one charger's row (htmx) or the charger's page."""
    return render(
        "admin/charger.html",
        "admin/_charger_row.html",
        status,
        row=service.row_of(charger),
        error=error,
    )


def _form_choices(form: ChargerForm, charger: Charger | None = None) -> None:
    vendors = vendor_service.list_vendors(active_only=True)
    if charger is not None and charger.vendor_id not in (None, *(v.id for v in vendors)):
        vendors.append(get_or_404(Vendor, charger.vendor_id))  # keep an inactive vendor shown
    form.set_choices(site_service.site_choices(), vendors)


def _data(form: ChargerForm) -> service.ChargerData:
    """Return the service's view of a validated form, with site and vendor checked as ours."""
    site = get_or_404(Site, form.site_id.data)
    vendor = None if form.vendor_id.data is None else get_or_404(Vendor, form.vendor_id.data)
    return service.ChargerData(
        ocpp_id=form.ocpp_id.data,
        site_id=site.id,
        manufacturer=form.manufacturer.data or "",
        model=form.model.data or "",
        serial=form.serial.data or "",
        asset_tag=form.asset_tag.data or "",
        firmware=form.firmware.data or "",
        install_date=form.install_date.data,
        warranty_end=form.warranty_end.data,
        vendor_id=vendor.id if vendor else None,
        registration=form.registration.data,
    )


def _refused(form: ChargerForm, exc: service.ChargerError) -> None:
    getattr(form, exc.field or "ocpp_id").errors.append(str(exc))


@bp.get("/chargers")
@requires("assets.view")
def index() -> BaseResponse:
    """List the tenant's chargers by OCPP id, filtered, 50 at a time."""
    filters = _filters(request.args)
    after = request.args.get("after") or None
    rows = service.list_chargers(filters, after)
    more = None
    if len(rows) == service.PAGE_SIZE:
        more = url_for(
            "charger_admin.index",
            **{k: v for k, v in request.args.items() if k != "after"},
            after=rows[-1].charger.ocpp_id,
        )
    fragment = "admin/_charger_rows.html" if after else "admin/_charger_table.html"
    return render(
        "admin/chargers.html",
        fragment,
        rows=rows,
        more=more,
        filters=filters,
        counts=service.registration_counts(),
        sites=site_service.site_choices(),
    )


@bp.route("/chargers/new", methods=["GET", "POST"])
@requires("assets.manage")
def new() -> BaseResponse:
    """Register a charger with its key and connectors."""
    form = ChargerCreateForm()
    _form_choices(form)
    if form.validate_on_submit():
        try:
            charger = service.create_charger(
                current_user.id, _data(form), form.key.data, form.connectors.data
            )
        except service.ChargerError as exc:
            _refused(form, exc)
        else:
            flash(f"Charger {charger.ocpp_id} registered.", "success")
            return redirect(url_for("charger_admin.charger", charger_id=charger.id), 303)
    status = 422 if form.is_submitted() else 200
    return render("admin/charger_new.html", status=status, form=form)


@bp.get("/chargers/<int:charger_id>")
@requires("assets.view")
def charger(charger_id: int) -> BaseResponse:
    """Show one charger's registry data (its row for htmx, e.g. when an edit is cancelled)."""
    return _row(get_or_404(Charger, charger_id))


@bp.route("/chargers/<int:charger_id>/edit", methods=["GET", "POST"])
@requires("assets.manage")
def edit(charger_id: int) -> BaseResponse:
    """Edit a charger and optionally replace its key (inline in the list with htmx)."""
    charger = get_or_404(Charger, charger_id)
    form = ChargerForm(obj=charger)
    _form_choices(form, charger)
    if form.validate_on_submit():
        try:
            service.update_charger(charger, current_user.id, _data(form), form.key.data or None)
        except service.ChargerError as exc:
            _refused(form, exc)
        else:
            if wants_fragment():
                return _row(charger)
            flash(f"Charger {charger.ocpp_id} saved.", "success")
            return redirect(url_for("charger_admin.charger", charger_id=charger.id), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "admin/charger_edit.html",
        "admin/_charger_edit_row.html",
        status,
        form=form,
        charger=charger,
    )


@bp.post("/chargers/<int:charger_id>/registration")
@requires("assets.manage")
def registration(charger_id: int) -> BaseResponse:
    """Accept, hold or reject a charger (e.g. one that registered itself and is pending)."""
    charger = get_or_404(Charger, charger_id)
    form = RegistrationForm()
    if not form.validate_on_submit():
        return _row(charger, 422, "Choose accepted, pending or rejected.")
    service.set_registration(charger, current_user.id, form.registration.data)
    if wants_fragment():
        return _row(charger)
    flash(f"Charger {charger.ocpp_id} is now {charger.registration}.", "success")
    return redirect(url_for("charger_admin.index"), 303)


@bp.route("/chargers/import", methods=["GET", "POST"])
@requires("assets.manage")
def import_csv() -> BaseResponse:
    """Import chargers from a CSV file: all rows, or none and every bad line listed."""
    form = ImportForm()
    result = None
    if form.validate_on_submit():
        result = charger_import.import_chargers(form.file.data.read(), current_user.id)
        if result.ok:
            sites = (
                f" New sites: {', '.join(result.sites_created)}." if result.sites_created else ""
            )
            flash(f"Imported {result.chargers} chargers.{sites}", "success")
            return redirect(url_for("charger_admin.index"), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "admin/charger_import.html",
        status=status,
        form=form,
        result=result,
        shown=ERRORS_SHOWN,
        columns=charger_import.COLUMNS,
    )


@bp.get("/chargers.csv")
@requires("assets.view")
def export_csv() -> Response:
    """Stream every charger of the tenant as CSV (the import's columns, without the key)."""
    rows = service.export_rows()

    return csv_download(rows, "chargers")
