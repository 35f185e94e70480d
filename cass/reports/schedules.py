"""Scheduled exports (/reports/schedules) and the files exports produce (/reports/files)."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, request, send_file, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.csv_download import tenant_zone
from cass.models import ReportExport, ReportSchedule
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.reports.schedule_forms import ConfirmForm, ExportForm, ScheduleForm
from cass.services import report_exports
from cass.services.report_exports import ScheduleData, ScheduleError
from cass.storage import get_storage
from cass.tenancy import get_or_404

bp = Blueprint("report_schedules", __name__, url_prefix="/reports")


def _display() -> dict[str, Any]:
    """Return what the templates need to show times (in the tenant's zone) and sizes."""
    tz = tenant_zone()

    def when(moment: datetime | None) -> str:
        return f"{moment.astimezone(tz):%Y-%m-%d %H:%M}" if moment else ""

    return {
        "when": when,
        "zone_name": tz.key,
        "size_label": size_label,
        "titles": report_exports.titles(),
        "progress_label": report_exports.progress_label,
        "is_pending": report_exports.is_pending,
    }


def size_label(size: int | None) -> str:
    """Write a byte count as "812 B", "14.2 kB" or "3.1 MB"."""
    if size is None:
        return ""
    if size < 1000:
        return f"{size} B"
    if size < 1000**2:
        return f"{size / 1000:.1f} kB"
    if size < 1000**3:
        return f"{size / 1000**2:.1f} MB"
    return f"{size / 1000**3:.1f} GB"


# --- schedules -------------------------------------------------------------------------------


@bp.get("/schedules")
@requires("reports.schedule")
def index() -> Response:
    """List the tenant's export schedules: timetable, next and last run, owner."""
    return render(
        "reports/schedules/index.html",
        rows=report_exports.list_schedules(),
        timetable_of=report_exports.timetable_of,
        may_edit=report_exports.may_edit,
        confirm=ConfirmForm(),
        **_display(),
    )


def _schedule_form(schedule: ReportSchedule | None) -> Response:
    """Show and save the schedule form (a new schedule when `schedule` is None)."""
    form = ScheduleForm()
    form.set_reports(dict(report_exports.titles()))
    form.email_to.choices = report_exports.recipients()
    if not form.is_submitted():
        if schedule is not None:
            form.load(schedule)
        else:
            # Prefilled from a report page's "Schedule" link: ?slug=tickets&query=status%3Dopen
            form.slug.data = request.args.get("slug", "tickets")
            form.query.data = request.args.get("query", "")
            form.retention_days.data = current_app.config["CASS_EXPORT_RETENTION_DAYS"]
            form.email_to.data = [current_user.id]
            form.at_time.data = time(6, 0)
    if form.validate_on_submit():
        try:
            saved = report_exports.save_schedule(
                schedule, current_user, ScheduleData(**form.data_for_service())
            )
        except ScheduleError as exc:
            getattr(form, exc.field, form.name).errors.append(str(exc))
        else:
            flash(f"Schedule “{saved.name}” saved.", "success")
            return redirect(url_for("report_schedules.index"), 303)
    return render(
        "reports/schedules/form.html",
        status=422 if form.is_submitted() else 200,
        form=form,
        schedule=schedule,
        **_display(),
    )


def _editable(schedule_id: int) -> ReportSchedule:
    """Return the tenant's schedule if the user may change it (its owner or an admin)."""
    schedule = get_or_404(ReportSchedule, schedule_id)
    if not report_exports.may_edit(schedule, current_user):
        abort(403)
    return schedule


@bp.route("/schedules/new", methods=["GET", "POST"])
@requires("reports.schedule")
def new() -> Response:
    """Create a schedule; it runs as its creator."""
    return _schedule_form(None)


@bp.route("/schedules/<int:schedule_id>/edit", methods=["GET", "POST"])
@requires("reports.schedule")
def edit(schedule_id: int) -> Response:
    """Change a schedule (its owner or an admin)."""
    return _schedule_form(_editable(schedule_id))


@bp.post("/schedules/<int:schedule_id>/delete")
@requires("reports.schedule")
def delete(schedule_id: int) -> Response:
    """Delete a schedule; the files it made stay until they expire."""
    schedule = _editable(schedule_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    name = schedule.name
    report_exports.delete_schedule(schedule, current_user)
    flash(f"Schedule “{name}” deleted.", "success")
    return redirect(url_for("report_schedules.index"), 303)


@bp.post("/schedules/<int:schedule_id>/run")
@requires("reports.schedule")
def run(schedule_id: int) -> Response:
    """Queue an export of the schedule now; its file appears on the files page."""
    schedule = _editable(schedule_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    report_exports.run_now(schedule, current_user)
    flash(f"“{schedule.name}” is queued; its file appears below when it is written.", "success")
    return redirect(url_for("report_schedules.files"), 303)


# --- files -----------------------------------------------------------------------------------


def _files_page(form: ExportForm, status: int = 200) -> Response:
    """Render the files page, or for htmx its panel (the export form and the files)."""
    return render(
        "reports/files/index.html",
        "reports/files/_panel.html",
        status,
        form=form,
        files=report_exports.list_files(),
        **_display(),
    )


def _export_form(submitted: bool) -> ExportForm:
    """Return the background-export form, filled from the request only when `submitted`."""
    form = ExportForm() if submitted else ExportForm(formdata=None)
    form.set_reports(dict(report_exports.titles()))
    return form


@bp.get("/files")
@requires("reports.export")
def files() -> Response:
    """List the tenant's export files, newest first, with a form to export in the background."""
    form = _export_form(submitted=False)
    form.slug.data = request.args.get("slug", "tickets")
    form.query.data = request.args.get("query", "")
    return _files_page(form)


@bp.post("/files")
@requires("reports.export")
def export() -> Response:
    """Queue a background export as the signed-in user; htmx gets the panel with its new row."""
    form = _export_form(submitted=True)
    if form.validate_on_submit():
        try:
            queued = report_exports.request_export(current_user, form.slug.data, form.query.data)
        except ScheduleError as exc:
            getattr(form, exc.field, form.slug).errors.append(str(exc))
        else:
            if wants_fragment():
                return _files_page(_export_form(submitted=False))
            flash(f"Export of {queued.title} queued.", "success")
            return redirect(url_for("report_schedules.files"), 303)
    return _files_page(form, 422)


@bp.get("/files/<int:export_id>")
@requires("reports.export")
def file(export_id: int) -> Response:
    """Show one export's state; htmx polls its row while it is queued or running."""
    item = get_or_404(ReportExport, export_id)
    return render("reports/files/detail.html", "reports/files/_row.html", export=item, **_display())


@bp.get("/files/<int:export_id>/download")
@requires("reports.export")
def download(export_id: int) -> Response:
    """Send a finished export's CSV file."""
    item = get_or_404(ReportExport, export_id)
    if item.status != "done" or not item.storage_key:
        abort(404)
    storage = get_storage(current_app)
    name = item.filename or "export.csv"
    url = storage.download_url(item.storage_key, name, "text/csv")
    if url is not None:
        return redirect(url, 302)
    try:
        stream = storage.open(item.storage_key)
    except FileNotFoundError:
        abort(404)
    response = send_file(
        stream, mimetype="text/csv", as_attachment=True, download_name=name, max_age=0
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response
