"""/api/v1/visits: site visits in a range, one visit, booking one for a ticket, its steps."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from flask import url_for
from flask_login import current_user
from sqlalchemy import select, tuple_
from sqlalchemy.exc import IntegrityError

from cass.api.v1.auth import allowed, api_blueprint
from cass.api.v1.errors import ApiError, bad_cursor
from cass.api.v1.schemas import MAX_ID
from cass.api.v1.tickets import _ticket
from cass.api.v1.visit_schemas import (
    VisitBookSchema,
    VisitListArgs,
    VisitPageSchema,
    VisitSchema,
    VisitStepSchema,
)
from cass.csv_download import tenant_zone
from cass.extensions import db
from cass.models import User, Vendor, Visit
from cass.services import visits
from cass.services.visits import VisitProblem
from cass.visits import panel
from cass.visits.panel import VisitRow

bp = api_blueprint("api_visits", "Site visits: booking, the dispatcher's range, their steps.")

PAGE_SIZE = 50
DEFAULT_DAYS = 7


def _names(model: type[User] | type[Vendor], ids: Iterable[int | None]) -> dict[int, str]:
    """Return the names of these users or vendors, in one select."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(wanted))).all())


def _present(rows: list[VisitRow]) -> list[dict[str, Any]]:
    """Return the visits as the API shows them (the people's names in one select each)."""
    people = _names(User, (r.visit.engineer_id for r in rows))
    vendors = _names(Vendor, (r.visit.vendor_id for r in rows))

    def ref(names: dict[int, str], ident: int | None) -> dict[str, Any] | None:
        return None if ident is None else {"id": ident, "name": names.get(ident, "")}

    return [
        {
            "id": r.visit.id,
            "ticket": {"id": r.visit.ticket_id, "key": r.ticket_key, "title": r.ticket_title},
            "engineer": ref(people, r.visit.engineer_id),
            "vendor": ref(vendors, r.visit.vendor_id),
            "site": (
                None
                if r.visit.site_id is None
                else {
                    "id": r.visit.site_id,
                    "name": r.site,
                    "address": r.address,
                    "directions": r.directions,
                }
            ),
            "charger": r.charger or None,
            "starts_at": r.starts,
            "ends_at": r.ends,
            "status": r.visit.status,
            "notes": r.visit.notes,
            "outside_hours": r.visit.outside_hours,
            "checked_in_at": r.visit.checked_in_at,
            "checked_out_at": r.visit.checked_out_at,
            "steps": [status for status, _ in r.steps],
            "created_at": r.visit.created_at,
            "updated_at": r.visit.updated_at,
        }
        for r in rows
    ]


def _row(visit_id: int) -> VisitRow:
    """Return the visit with this id that the caller may see, or raise 404."""
    found = panel.rows(panel.visible().where(Visit.id == visit_id)) if visit_id <= MAX_ID else []
    if not found:
        raise ApiError(404, "E_NOT_FOUND", f"There is no visit {visit_id} for you to see.")
    return found[0]


def _cursor(raw: str) -> tuple[datetime, int]:
    """Return the (start, id) a cursor names; raise a 422 for one this list did not hand out."""
    at, _, ident = raw.partition("|")
    try:
        moment, number = datetime.fromisoformat(at), int(ident)
    except ValueError:
        moment, number = None, 0
    if moment is None or moment.tzinfo is None or not 0 < number <= MAX_ID:
        raise bad_cursor()
    return moment, number


@bp.get("/visits")
@allowed("visits.view")
@bp.arguments(VisitListArgs, location="query", as_kwargs=True)
@bp.response(200, VisitPageSchema)
def list_visits(**args: Any) -> dict[str, Any]:
    """List the visits overlapping a range of days, by start; 50 a page."""
    since = args.get("since") or datetime.now(tenant_zone()).date()
    until = args.get("until") or since + timedelta(days=DEFAULT_DAYS - 1)
    start, end = panel.day_bounds(since, (until - since).days + 1)
    # The range as the week view reads it: every visit overlapping it, a vendor's own only.
    query = panel.visible().where(*panel.overlapping(start, end))
    if args.get("engineer") is not None:
        query = query.where(Visit.engineer_id == args["engineer"])
    if args.get("vendor") is not None:
        query = query.where(Visit.vendor_id == args["vendor"])
    if args.get("status"):
        query = query.where(Visit.status == args["status"])
    if args.get("after"):
        query = query.where(tuple_(Visit.starts_at, Visit.id) > tuple_(*_cursor(args["after"])))
    rows = panel.rows(query.order_by(Visit.starts_at, Visit.id).limit(PAGE_SIZE + 1))
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    last = rows[-1].visit if more else None
    return {
        "items": _present(rows),
        "next_after": None if last is None else f"{last.starts_at.isoformat()}|{last.id}",
    }


@bp.get("/visits/<int:visit_id>")
@allowed("visits.view")
@bp.response(200, VisitSchema)
def get_visit(visit_id: int) -> dict[str, Any]:
    """Read one visit."""
    return _present([_row(visit_id)])[0]


def _problem(problem: VisitProblem) -> ApiError:
    """Return the API error of a visit the service refused: 409 when the engineer is booked
    then (the database's exclusion constraint), else 422; both with the next free starts."""
    details = {
        "fields": {"json": {name: [message] for name, message in problem.errors.items()}},
        "free_slots": [slot.isoformat() for slot in problem.slots],
    }
    if isinstance(problem.__cause__, IntegrityError):
        return ApiError(409, "E_VISIT_CONFLICT", str(problem), details)
    return ApiError(422, "E_RULE", str(problem), details)


@bp.post("/tickets/<ref>/visits")
@allowed("visits.book")
@bp.arguments(VisitBookSchema)
@bp.response(201, VisitSchema)
def book_visit(data: dict[str, Any], ref: str) -> Any:
    """Book a visit for the ticket (409 when the engineer is booked then, with free slots)."""
    ticket = _ticket(ref)
    try:
        visit = visits.book(
            ticket,
            current_user,
            starts_at=data["starts_at"],
            ends_at=data["ends_at"],
            engineer_id=data["engineer"],
            vendor_id=data["vendor"],
            notes=data["notes"],
            override=data["override"],
        )
    except VisitProblem as problem:
        raise _problem(problem) from problem
    db.session.commit()
    location = url_for("api_visits.get_visit", visit_id=visit.id)
    return _present([_row(visit.id)])[0], 201, {"Location": location}


@bp.post("/visits/<int:visit_id>/status")
@allowed("visits.work")
@bp.arguments(VisitStepSchema)
@bp.response(200, VisitSchema)
def step_visit(data: dict[str, Any], visit_id: int) -> dict[str, Any]:
    """Take one step of a visit: confirm, en route, check in, check out, no access, cancel."""
    row = _row(visit_id)
    if not panel.may_work(row.visit):
        raise ApiError(403, "E_FORBIDDEN", "This visit is not yours to work.")
    steps = [status for status, _ in row.steps]
    if data["status"] not in steps:
        raise ApiError(
            422,
            "E_RULE",
            "That step is not open to this visit now.",
            {"status": row.visit.status, "steps": steps},
        )
    try:
        visits.set_status(row.visit, current_user, data["status"])
    except VisitProblem as problem:
        raise _problem(problem) from problem
    db.session.commit()
    return _present([_row(visit_id)])[0]
