"""Visit pages: booking on the ticket, the dispatcher's week, the engineer's day, status steps."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from flask import Blueprint, abort, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.csv_download import tenant_zone
from cass.extensions import db
from cass.models import Visit
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import tickets, visits
from cass.services.visits import VisitProblem
from cass.tickets.routes import _parse_assignee, detail_context, ticket_or_404
from cass.visits import panel
from cass.visits.forms import MoveForm, StatusForm

bp = Blueprint("visits", __name__)


@bp.post("/tickets/<key>/visits")
@requires("visits.book")
def book(key: str) -> Response:
    """Book a visit for the ticket; a bad form or a double booking is a 422 with free slots."""
    ticket = ticket_or_404(key)
    form = panel.visit_form(request.form)
    problem: VisitProblem | None = None
    if form.validate_on_submit():
        engineer, vendor = _parse_assignee(form.assignee.data)
        start = _aware(form.starts_at.data)
        try:
            visits.book(
                ticket,
                current_user,
                starts_at=start,
                ends_at=start + timedelta(minutes=int(form.minutes.data)),
                engineer_id=engineer.id if engineer else None,
                vendor_id=vendor.id if vendor else None,
                notes=form.notes.data or "",
                override=bool(form.override.data),
            )
        except VisitProblem as exc:
            problem = exc
            _attach_errors(form, exc, {"engineer_id": "assignee", "vendor_id": "assignee"})
        else:
            db.session.commit()
            if not wants_fragment():
                flash("Visit booked.", "success")
                return redirect(url_for("tickets.detail", key=key), 303)
            return render("visits/_panel.html", **_panel(ticket, key))
    extra = {"visit_form": form, "visit_problem": problem}
    if wants_fragment():
        return render("visits/_panel.html", status=422, **_panel(ticket, key, **extra))
    return render("tickets/detail.html", status=422, **detail_context(ticket, **extra))


@bp.get("/visits/week")
@requires("visits.book")
def week() -> Response:
    """Show the dispatcher's week: each engineer's visits, day by day, each movable."""
    return render("visits/week.html", "visits/_week.html", **_week(request.args.get("start")))


@bp.post("/visits/<int:visit_id>/move")
@requires("visits.book")
def move(visit_id: int) -> Response:
    """Move a visit to another start, keeping its length (422 with free slots if taken)."""
    visit = _visit_or_404(visit_id)
    form = MoveForm(request.form)
    problem: VisitProblem | None = None
    if form.validate_on_submit():
        start = _aware(form.starts_at.data)
        try:
            visits.reschedule(
                visit,
                current_user,
                starts_at=start,
                ends_at=start + (visit.ends_at - visit.starts_at),
                override=bool(form.override.data),
            )
        except VisitProblem as exc:
            problem = exc
        else:
            db.session.commit()
            if not wants_fragment():
                flash("Visit moved.", "success")
                return redirect(url_for("visits.week", start=form.week.data or None), 303)
            return render("visits/_week.html", **_week(form.week.data))
    else:
        problem = VisitProblem({"starts_at": "Give the new start as a date and time."})
    context = _week(form.week.data, moved=visit.id, move_problem=problem)
    return render("visits/week.html", "visits/_week.html", status=422, **context)


@bp.get("/visits/day")
@requires("visits.view")
def day() -> Response:
    """Show the signed-in engineer's (or vendor's) visits of a day, with directions."""
    when, notice = panel.local_day(request.args.get("date"))
    start, end = panel.day_bounds(when, 1)
    mine = (
        Visit.vendor_id == current_user.vendor_id
        if current_user.role == "vendor"
        else Visit.engineer_id == current_user.id
    )
    query = panel.visible().where(mine, *panel.overlapping(start, end))
    return render(
        "visits/day.html",
        rows=panel.rows(query),
        day=when,
        previous=when - timedelta(days=1),
        following=when + timedelta(days=1),
        step_form=StatusForm(formdata=None),
        notice=notice,
    )


@bp.post("/visits/<int:visit_id>/status")
@requires("visits.work")
def status(visit_id: int) -> Response:
    """Take one step of a visit: confirm, en route, check in, check out, no access, cancel."""
    visit = _visit_or_404(visit_id)
    if not panel.may_work(visit):
        abort(403)
    form = StatusForm(request.form)
    row = panel.rows(panel.visible().where(Visit.id == visit.id))[0]
    if not form.validate_on_submit() or form.status.data not in dict(row.steps):
        return render(
            "visits/_card.html",
            status=422,
            row=row,
            step_form=form,
            error=("That step is not open to this visit now."),
        )
    visits.set_status(visit, current_user, form.status.data)
    db.session.commit()
    if not wants_fragment():
        flash(f"Visit: {panel.STEP_LABELS[form.status.data]}.", "success")
        local = visit.starts_at.astimezone(tenant_zone()).date()
        return redirect(url_for("visits.day", date=local.isoformat()), 303)
    row = panel.rows(panel.visible().where(Visit.id == visit.id))[0]
    return render("visits/_card.html", row=row, step_form=StatusForm(formdata=None), error=None)


# --- helpers -----------------------------------------------------------------------------------


def _aware(local: datetime) -> datetime:
    """Return a time the form gave in the tenant's zone as an aware instant."""
    return local.replace(tzinfo=tenant_zone())


def _attach_errors(form: Any, problem: VisitProblem, fields: dict[str, str]) -> None:
    for name, message in problem.errors.items():
        field = getattr(form, fields.get(name, name), None)
        if field is not None:
            field.errors = [*field.errors, message]


def _visit_or_404(visit_id: int) -> Visit:
    visit = db.session.scalar(panel.visible().where(Visit.id == visit_id))
    if visit is None:
        abort(404)
    return visit


def _panel(ticket: Any, key: str, **extra: Any) -> dict[str, Any]:
    context = {"ticket": ticket, "key": key, **panel.ticket_panel(ticket)}
    context.update(extra)
    return context


def _week(start: str | None, **extra: Any) -> dict[str, Any]:
    """Return the week grid from the Monday of `start`'s week: engineers by day, and vendors."""
    first, notice = panel.local_day(start)
    first -= timedelta(days=first.weekday())
    since, until = panel.day_bounds(first, 7)
    engineers = tickets.workers()
    days = [first + timedelta(days=n) for n in range(7)]
    cells: dict[tuple[Any, date], list[panel.VisitRow]] = {}
    query = panel.visible().where(*panel.overlapping(since, until))
    for row in panel.rows(query):
        who = row.visit.engineer_id if row.visit.engineer_id is not None else "vendors"
        cells.setdefault((who, row.starts.date()), []).append(row)
    return {
        "days": days,
        "engineers": engineers,
        "cells": cells,
        "first": first,
        "previous": first - timedelta(days=7),
        "following": first + timedelta(days=7),
        "move_form": MoveForm(formdata=None),
        "moved": None,
        "move_problem": None,
        "tz": tenant_zone(),
        "notice": notice,
        **extra,
    }
