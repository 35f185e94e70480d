"""Sites: the list at /sites, a site's page, and the admin's create and inline edit."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.chargers import message_export
from cass.models import Site
from cass.permissions import can, requires
from cass.rendering import render, wants_fragment
from cass.reports.usage import peak_load_panel, utilization_panel
from cass.services import message_log
from cass.services import sites as site_service
from cass.services.charger_page import MESSAGE_ACTIONS
from cass.sites.forms import SiteForm
from cass.tenancy import get_or_404

bp = Blueprint("sites", __name__, url_prefix="/sites")


def _data(form: SiteForm) -> site_service.SiteData:
    """Return the service's view of a validated form."""
    return site_service.SiteData(
        name=form.name.data,
        address=form.address.data or "",
        lat=form.lat.data,
        lon=form.lon.data,
        timezone=form.timezone.data,
        contact_name=form.contact_name.data or "",
        contact_phone=form.contact_phone.data or "",
        contact_email=form.contact_email.data or "",
    )


def _save(form: SiteForm, site: Site | None) -> Site | None:
    """Save a submitted form; return the site, or None when the form or the service refused."""
    if not form.validate_on_submit():
        return None
    try:
        return site_service.save_site(site, current_user.id, _data(form))
    except site_service.SiteError as exc:
        getattr(form, exc.field or "name").errors.append(str(exc))
        return None


def _row(site: Site) -> Response:
    """Render one site's list row."""
    return render("sites/_row.html", site=site, chargers_count=site_service.count_chargers(site))


@bp.get("")
@requires("sites.view")
def index() -> Response:
    """List the tenant's sites with their number of chargers."""
    return render(
        "sites/index.html", sites=site_service.list_sites(), timezones=site_service.timezones()
    )


@bp.route("/new", methods=["GET", "POST"])
@requires("sites.manage")
def new() -> Response:
    """Create a site."""
    form = SiteForm()
    site = _save(form, None)
    if site is not None:
        flash(f"Site {site.name} created.", "success")
        return redirect(url_for("sites.index"), 303)
    status = 422 if form.is_submitted() else 200
    return render("sites/new.html", status=status, form=form, timezones=site_service.timezones())


@bp.get("/<int:site_id>")
@requires("sites.view")
def site(site_id: int) -> Response:
    """Show a site and its chargers (its list row for htmx, e.g. when an edit is cancelled)."""
    site = get_or_404(Site, site_id)
    if wants_fragment():
        return _row(site)
    chargers = site_service.site_chargers(site)
    return render(
        "sites/site.html",
        site=site,
        chargers=chargers,
        chargers_count=len(chargers),
        message_actions=MESSAGE_ACTIONS,
        site_max_days=message_log.SITE_MAX_DAYS,
    )


@bp.get("/<int:site_id>/messages.csv", defaults={"fmt": "csv"})
@bp.get("/<int:site_id>/messages.jsonl", defaults={"fmt": "jsonl"})
@requires("messages.export")
def messages_export(site_id: int, fmt: str) -> Response:
    """Download the OCPP frames of every charger of the site over a range of at most 31 days
    (the last day without one), oldest first, as CSV or JSON Lines; bad filters are a 422."""
    # A site holds chargers of every vendor: the site-wide file is for those who see sites.
    if not can(current_user.role, "sites.view"):
        abort(403)
    site = get_or_404(Site, site_id)
    try:
        flt = message_log.parse_export_filter(request.args, site=True)
    except message_log.BadExport as bad:
        return message_export.refuse(bad)
    return message_export.download(site, flt, site.name, fmt)


@bp.route("/<int:site_id>/edit", methods=["GET", "POST"])
@requires("sites.manage")
def edit(site_id: int) -> Response:
    """Edit a site (inline in the list with htmx)."""
    site = get_or_404(Site, site_id)
    form = SiteForm(obj=site)
    if _save(form, site) is not None:
        if wants_fragment():
            return _row(site)
        flash(f"Site {site.name} saved.", "success")
        return redirect(url_for("sites.site", site_id=site.id), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "sites/edit.html",
        "sites/_edit_row.html",
        status,
        form=form,
        site=site,
        timezones=site_service.timezones(),
    )


@bp.get("/<int:site_id>/utilization")
@requires("sites.view")
def utilization(site_id: int) -> Response:
    """Show a site's utilization per charger over a period (the page's panel for htmx)."""
    site = get_or_404(Site, site_id)
    return utilization_panel(
        url_for("sites.utilization", site_id=site.id),
        site.name,
        url_for("sites.site", site_id=site.id),
        "charger",
        site_id=site.id,
    )


@bp.get("/<int:site_id>/peak-load")
@requires("sites.view")
def peak_load(site_id: int) -> Response:
    """Show a site's peak load and energy over a period (the page's panel for htmx)."""
    site = get_or_404(Site, site_id)
    return peak_load_panel(
        url_for("sites.peak_load", site_id=site.id),
        site.name,
        url_for("sites.site", site_id=site.id),
        site.id,
    )
