"""Tariffs per site under /admin/tariffs: a list with inline (htmx) create, edit and delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.admin.forms import ConfirmForm
from cass.bounds import parse_id
from cass.models import Site, Tariff
from cass.permissions import can, requires
from cass.rendering import render, wants_fragment
from cass.services import tariffs as tariff_service
from cass.tariffs.forms import TariffForm
from cass.tenancy import get_or_404

bp = Blueprint("tariffs", __name__, url_prefix="/admin/tariffs")


def _site_filter() -> int | None:
    try:
        return parse_id(request.args["site"])
    except (KeyError, ValueError):
        return None


def _context(sites: list[Site], **extra: Any) -> dict[str, Any]:
    """Return what every tariff template needs: sites by id and the site-time formatter."""

    def site_time(value: datetime | None, site_id: int) -> str:
        local = tariff_service.to_site_time(value, by_id[site_id])
        return f"{local:%Y-%m-%d %H:%M}" if local else ""

    by_id = {site.id: site for site in sites}
    return {"sites": sites, "site_by_id": by_id, "site_time": site_time, **extra}


def _new_form(sites: list[Site], formdata: Any = None) -> TariffForm:
    form = TariffForm(formdata=formdata)
    form.set_site_choices(sites)
    if formdata is None and _site_filter() is not None:
        form.site_id.data = _site_filter()
    return form


def _list(status: int = 200, form: TariffForm | None = None, **extra: Any) -> Response:
    """Render the list page, or for htmx the list with its new-tariff form."""
    sites = tariff_service.list_sites()
    site_id = _site_filter()
    context = _context(
        sites,
        tariffs=tariff_service.list_tariffs(site_id),
        site_filter=site_id,
        form=form or (_new_form(sites) if can(current_user.role, "tariffs.manage") else None),
        **extra,
    )
    return render("tariffs/index.html", "tariffs/_list.html", status, **context)


def _save(form: TariffForm, tariff: Tariff | None) -> Tariff:
    """Save the form's values (raises TariffError when a rule is broken)."""
    site = get_or_404(Site, form.site_id.data)  # a foreign or bogus site id is a 404
    return tariff_service.save_tariff(
        tariff,
        current_user.id,
        site,
        form.name.data,
        form.currency.data,
        form.per_kwh.data,
        form.per_minute.data,
        form.per_session.data,
        form.valid_from.data,
        form.valid_to.data,
    )


@bp.get("")
@requires("tariffs.view")
def index() -> Response:
    """List the tenant's tariffs (of one site with ?site=ID), times in each site's zone."""
    return _list()


@bp.post("")
@requires("tariffs.manage")
def create() -> Response:
    """Create a tariff; periods of one site may not overlap."""
    sites = tariff_service.list_sites()
    form = _new_form(sites, request.form)
    error = None
    if form.validate_on_submit():
        try:
            tariff = _save(form, None)
        except tariff_service.TariffError as exc:
            error = str(exc)
        else:
            if wants_fragment():
                return _list(created=tariff)
            flash(f"Tariff {tariff.name} created.", "success")
            return redirect(url_for("tariffs.index"), 303)
    return _list(422, form=form, error=error)


def _row(tariff: Tariff, status: int = 200, **extra: Any) -> Response:
    """Render one tariff's row (htmx) or its page."""
    sites = tariff_service.list_sites()
    return render(
        "tariffs/tariff.html",
        "tariffs/_row.html",
        status,
        **_context(sites, t=tariff, **extra),
    )


@bp.get("/<int:tariff_id>")
@requires("tariffs.view")
def tariff(tariff_id: int) -> Response:
    """Show one tariff (its row for htmx, e.g. when an inline edit is cancelled)."""
    return _row(get_or_404(Tariff, tariff_id))


@bp.route("/<int:tariff_id>/edit", methods=["GET", "POST"])
@requires("tariffs.manage")
def edit(tariff_id: int) -> Response:
    """Edit a tariff (inline in the list with htmx); it does not reprice stopped sessions."""
    tariff = get_or_404(Tariff, tariff_id)
    sites = tariff_service.list_sites()
    site = next(s for s in sites if s.id == tariff.site_id)
    form = TariffForm(
        data={
            "site_id": tariff.site_id,
            "name": tariff.name,
            "currency": tariff.currency,
            "per_kwh": tariff.per_kwh.normalize(),
            "per_minute": tariff.per_minute.normalize(),
            "per_session": tariff.per_session.normalize(),
            "valid_from": tariff_service.to_site_time(tariff.valid_from, site),
            "valid_to": tariff_service.to_site_time(tariff.valid_to, site),
        }
    )
    form.set_site_choices(sites)
    error = None
    if form.validate_on_submit():
        try:
            _save(form, tariff)
        except tariff_service.TariffError as exc:
            error = str(exc)
        else:
            if wants_fragment():
                return _row(tariff)
            flash(f"Tariff {tariff.name} saved.", "success")
            return redirect(url_for("tariffs.index"), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "tariffs/edit.html",
        "tariffs/_edit_row.html",
        status,
        **_context(sites, form=form, t=tariff, error=error),
    )


@bp.post("/<int:tariff_id>/delete")
@requires("tariffs.manage")
def delete(tariff_id: int) -> Response:
    """Delete a tariff that priced no session."""
    tariff = get_or_404(Tariff, tariff_id)
    form = ConfirmForm()
    error = "The form expired; reload the page." if not form.validate_on_submit() else None
    if error is None:
        try:
            tariff_service.delete_tariff(tariff, current_user.id)
        except tariff_service.TariffError as exc:
            error = str(exc)
    if error is not None:
        if wants_fragment():
            return _row(tariff, 422, error=error)
        flash(error, "error")
        return redirect(url_for("tariffs.index"), 303)
    if wants_fragment():
        return Response("", 200)  # htmx swaps the row away
    flash(f"Tariff {tariff.name} deleted.", "success")
    return redirect(url_for("tariffs.index"), 303)
