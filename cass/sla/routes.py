"""SLA admin under /admin/sla (calendars, holidays, policies, a preview) and /admin/jobs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from cass.admin.forms import ConfirmForm
from cass.extensions import db
from cass.models import CLOCKS, BusinessCalendar, CalendarHoliday, JobRun, SlaPolicy
from cass.permissions import requires
from cass.rendering import render
from cass.services import sla_admin
from cass.services.sites import site_choices
from cass.sla.forms import CalendarForm, HolidayForm, IcalForm, PolicyForm, PreviewForm
from cass.tenancy import get_or_404

T = TypeVar("T")
bp = Blueprint("sla", __name__, url_prefix="/admin/sla")
jobs_bp = Blueprint("jobs", __name__, url_prefix="/admin/jobs")


@bp.app_template_filter("business_minutes")
def business_minutes(minutes: int) -> str:
    """Write a target as "45 min", "10 h" or "2 h 30 min"."""
    hours, rest = divmod(int(minutes), 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")


@bp.app_template_filter("calendar_hours")
def calendar_hours(calendar: BusinessCalendar) -> str:
    """Write a calendar's open hours as its form takes them."""
    return sla_admin.format_hours_of(calendar)


def _preview_context() -> dict[str, Any]:
    form = PreviewForm(request.args)
    form.site_id.choices = [(None, "— no site —"), *site_choices()]
    if not form.validate():
        return {"preview_form": form, "preview": None, "preview_policy": None}
    policy, lines = sla_admin.preview(form.priority.data, form.site_id.data, form.category.data)
    return {
        "preview_form": form,
        "preview": lines,
        "preview_policy": policy,
        "preview_at": datetime.now(UTC),
    }


def _overview(fragment: str | None) -> Response:
    preview = _preview_context()
    return render(
        "sla/index.html",
        fragment,
        422 if preview["preview_form"].errors else 200,
        calendars=sla_admin.calendars(),
        usage=sla_admin.calendar_usage(),
        policies=sla_admin.policies(),
        clocks=CLOCKS,
        sites=dict(site_choices()),
        **preview,
    )


@bp.get("")
@requires("sla.view")
def index() -> Response:
    """Show the calendars, the policies and what a new ticket would be promised."""
    return _overview(None)


@bp.get("/preview")
@requires("sla.view")
def preview() -> Response:
    """Say what a would-be ticket is promised (htmx swaps it in as the form changes)."""
    return _overview("sla/_preview.html")


def _submitted(form: Any, save: Callable[[], T]) -> tuple[T | None, str | None]:
    """Validate the form and save: (what was saved, None), (None, the rule broken), or
    (None, None) when the form was not submitted or its fields are invalid."""
    if not form.validate_on_submit():
        return None, None
    try:
        return save(), None
    except sla_admin.SlaAdminError as exc:
        db.session.rollback()
        return None, str(exc)


def _calendar_form(formdata: Any = None, **data: Any) -> CalendarForm:
    form = CalendarForm(formdata=formdata, data=data or None)
    form.set_site_choices(site_choices())
    return form


def _save_calendar(form: CalendarForm, calendar: BusinessCalendar | None) -> BusinessCalendar:
    site_id = form.site_id.data
    if site_id is not None:
        from cass.models import Site

        site_id = get_or_404(Site, site_id).id  # a foreign or bogus site id is a 404
    return sla_admin.save_calendar(
        calendar,
        current_user.id,
        name=form.name.data,
        timezone=form.timezone.data.strip(),
        hours_text=form.hours.data,
        always_open=form.always_open.data,
        is_default=form.is_default.data,
        site_id=site_id,
    )


@bp.route("/calendars/new", methods=["GET", "POST"])
@requires("sla.manage")
def new_calendar() -> Response:
    """Create a business calendar."""
    form = _calendar_form(request.form if request.method == "POST" else None)
    calendar, error = _submitted(form, lambda: _save_calendar(form, None))
    if calendar is not None:
        flash(f"Calendar {calendar.name} created.", "success")
        return redirect(url_for("sla.calendar", calendar_id=calendar.id), 303)
    status = 422 if form.is_submitted() else 200
    return render("sla/calendar_form.html", None, status, form=form, calendar=None, error=error)


def _calendar_page(calendar: BusinessCalendar, status: int = 200, **extra: Any) -> Response:
    return render(
        "sla/calendar.html",
        None,
        status,
        calendar=calendar,
        hours_text=sla_admin.format_hours_of(calendar),
        holidays=sla_admin.holidays(calendar),
        holiday_form=extra.pop("holiday_form", None) or HolidayForm(formdata=None),
        ical_form=extra.pop("ical_form", None) or IcalForm(formdata=None),
        confirm=ConfirmForm(formdata=None),
        sites=dict(site_choices()),
        **extra,
    )


@bp.get("/calendars/<int:calendar_id>")
@requires("sla.view")
def calendar(calendar_id: int) -> Response:
    """Show a calendar: hours, holidays, and for admins the forms to change them."""
    return _calendar_page(get_or_404(BusinessCalendar, calendar_id))


@bp.route("/calendars/<int:calendar_id>/edit", methods=["GET", "POST"])
@requires("sla.manage")
def edit_calendar(calendar_id: int) -> Response:
    """Change a calendar; open tickets' clocks are recomputed on the new hours."""
    calendar = get_or_404(BusinessCalendar, calendar_id)
    if request.method == "POST":
        form = _calendar_form(request.form)
    else:
        form = _calendar_form(
            name=calendar.name,
            timezone=calendar.timezone,
            hours=sla_admin.format_hours_of(calendar),
            always_open=calendar.always_open,
            is_default=calendar.is_default,
            site_id=calendar.site_id,
        )
    saved, error = _submitted(form, lambda: _save_calendar(form, calendar))
    if saved is not None:
        flash(f"Calendar {saved.name} saved.", "success")
        return redirect(url_for("sla.calendar", calendar_id=saved.id), 303)
    status = 422 if form.is_submitted() else 200
    return render("sla/calendar_form.html", None, status, form=form, calendar=calendar, error=error)


@bp.post("/calendars/<int:calendar_id>/delete")
@requires("sla.manage")
def delete_calendar(calendar_id: int) -> Response:
    """Delete a calendar no policy uses."""
    calendar = get_or_404(BusinessCalendar, calendar_id)
    if not ConfirmForm().validate_on_submit():
        return _calendar_page(calendar, 422, error="The form expired; reload the page.")
    try:
        sla_admin.delete_calendar(calendar, current_user.id)
    except sla_admin.SlaAdminError as exc:
        db.session.rollback()
        return _calendar_page(calendar, 422, error=str(exc))
    flash("Calendar deleted.", "success")
    return redirect(url_for("sla.index"), 303)


@bp.post("/calendars/<int:calendar_id>/holidays")
@requires("sla.manage")
def add_holiday(calendar_id: int) -> Response:
    """Add a day off to a calendar."""
    calendar = get_or_404(BusinessCalendar, calendar_id)
    form = HolidayForm()
    if not form.validate_on_submit():
        return _calendar_page(calendar, 422, holiday_form=form)
    try:
        sla_admin.add_holiday(calendar, current_user.id, form.day.data, form.name.data or "")
    except sla_admin.SlaAdminError as exc:
        db.session.rollback()
        return _calendar_page(calendar, 422, holiday_form=form, holiday_error=str(exc))
    flash(f"{form.day.data:%Y-%m-%d} is a holiday now.", "success")
    return redirect(url_for("sla.calendar", calendar_id=calendar.id), 303)


@bp.post("/calendars/<int:calendar_id>/holidays/<int:holiday_id>/delete")
@requires("sla.manage")
def delete_holiday(calendar_id: int, holiday_id: int) -> Response:
    """Remove a day off."""
    calendar = get_or_404(BusinessCalendar, calendar_id)
    holiday = get_or_404(CalendarHoliday, holiday_id)
    if holiday.calendar_id != calendar.id:
        return Response("Not found", 404)
    if not ConfirmForm().validate_on_submit():
        return _calendar_page(calendar, 422, error="The form expired; reload the page.")
    sla_admin.delete_holiday(calendar, holiday, current_user.id)
    flash("Holiday removed.", "success")
    return redirect(url_for("sla.calendar", calendar_id=calendar.id), 303)


@bp.post("/calendars/<int:calendar_id>/import")
@requires("sla.manage")
def import_holidays(calendar_id: int) -> Response:
    """Import the all-day events of an iCal file as holidays."""
    calendar = get_or_404(BusinessCalendar, calendar_id)
    form = IcalForm()
    if not form.validate_on_submit():
        return _calendar_page(calendar, 422, ical_form=form)
    try:
        added = sla_admin.import_ical(calendar, current_user.id, form.file.data.read())
    except sla_admin.SlaAdminError as exc:
        db.session.rollback()
        return _calendar_page(calendar, 422, ical_form=form, ical_error=str(exc))
    flash(f"{added} holidays imported.", "success")
    return redirect(url_for("sla.calendar", calendar_id=calendar.id), 303)


def _policy_form(policy: SlaPolicy | None) -> PolicyForm:
    if request.method == "POST":
        form = PolicyForm()
    elif policy is None:
        form = PolicyForm(formdata=None)
    else:
        data: dict[str, Any] = {
            "name": policy.name,
            "priority": policy.priority,
            "site_id": policy.site_id,
            "category": policy.category or "",
            "charger_model": policy.charger_model or "",
            "active": policy.active,
        }
        for clock, target in sla_admin.targets_of(policy).items():
            data |= {
                f"{clock}_minutes": target.target_minutes,
                f"{clock}_calendar": target.calendar_id,
                f"{clock}_pause": list(target.pause_statuses),
                f"{clock}_warn": target.warn_percent,
                f"{clock}_escalations": sla_admin.format_escalations(target.escalations),
            }
        form = PolicyForm(formdata=None, data=data)
    form.set_choices(site_choices(), sla_admin.calendars())
    return form


def _save_policy(form: PolicyForm, policy: SlaPolicy | None) -> SlaPolicy:
    from cass.models import Site

    site_id = form.site_id.data
    if site_id is not None:
        site_id = get_or_404(Site, site_id).id
    targets = []
    for clock in CLOCKS:
        calendar_id = form[f"{clock}_calendar"].data
        if calendar_id is not None:
            calendar_id = get_or_404(BusinessCalendar, calendar_id).id
        targets.append(
            sla_admin.TargetInput(
                clock=clock,
                minutes=form[f"{clock}_minutes"].data,
                calendar_id=calendar_id,
                pause_statuses=tuple(form[f"{clock}_pause"].data or ()),
                warn_percent=form[f"{clock}_warn"].data or 80,
                escalations=sla_admin.parse_escalations(form[f"{clock}_escalations"].data),
            )
        )
    return sla_admin.save_policy(
        policy,
        current_user.id,
        name=form.name.data,
        priority=form.priority.data,
        site_id=site_id,
        category=form.category.data or None,
        charger_model=form.charger_model.data,
        active=form.active.data,
        targets=targets,
    )


def _policy_page(form: PolicyForm, policy: SlaPolicy | None) -> Response:
    saved, error = _submitted(form, lambda: _save_policy(form, policy))
    if saved is not None:
        flash(f"Policy {saved.name} saved; open tickets were recomputed.", "success")
        return redirect(url_for("sla.index"), 303)
    status = 422 if form.is_submitted() else 200
    return render(
        "sla/policy_form.html",
        None,
        status,
        form=form,
        policy=policy,
        clocks=CLOCKS,
        error=error,
        confirm=ConfirmForm(formdata=None),
    )


@bp.route("/policies/new", methods=["GET", "POST"])
@requires("sla.manage")
def new_policy() -> Response:
    """Create a policy with its clocks."""
    return _policy_page(_policy_form(None), None)


@bp.route("/policies/<int:policy_id>/edit", methods=["GET", "POST"])
@requires("sla.manage")
def edit_policy(policy_id: int) -> Response:
    """Change a policy; open tickets' clocks are recomputed, keeping paused time earned."""
    policy = get_or_404(SlaPolicy, policy_id)
    return _policy_page(_policy_form(policy), policy)


@bp.post("/policies/<int:policy_id>/delete")
@requires("sla.manage")
def delete_policy(policy_id: int) -> Response:
    """Delete a policy."""
    policy = get_or_404(SlaPolicy, policy_id)
    if not ConfirmForm().validate_on_submit():
        flash("The form expired; reload the page.", "error")
        return redirect(url_for("sla.edit_policy", policy_id=policy.id), 303)
    sla_admin.delete_policy(policy, current_user.id)
    flash("Policy deleted.", "success")
    return redirect(url_for("sla.index"), 303)


@jobs_bp.get("", endpoint="index")
@requires("jobs.view")
def job_runs() -> Response:
    """List the scheduler's latest job runs: when, how long, rows touched, errors."""
    job = request.args.get("job") or None
    names = db.session.scalars(select(JobRun.job).distinct().order_by(JobRun.job)).all()
    notice = None
    # Only a job that has run can be picked; anything else (NUL included, which Postgres cannot
    # compare) is ignored.
    if job is not None and job not in names:
        notice = f"Ignored job “{job[:40].replace(chr(0), '')}”: no such job has run."
        job = None
    query = select(JobRun).order_by(JobRun.started_at.desc()).limit(200)
    if job:
        query = query.where(JobRun.job == job)
    runs = db.session.scalars(query).all()
    return render("sla/jobs.html", None, runs=runs, names=names, job=job, notice=notice)
