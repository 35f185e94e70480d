"""/api/v1/sessions: charging sessions with the web list's filters, and one session."""

from __future__ import annotations

from datetime import date
from typing import Any

from cass.api.v1.auth import allowed, api_blueprint
from cass.api.v1.errors import ApiError, bad_cursor
from cass.api.v1.schemas import MAX_ID
from cass.api.v1.session_schemas import SessionListArgs, SessionPageSchema, SessionSchema
from cass.services import charging_sessions
from cass.services.charging_sessions import SessionQuery, SessionRow

bp = api_blueprint("api_sessions", "Charging sessions: energy, duration and cost.")


def present(row: SessionRow) -> dict[str, Any]:
    """Return a session as the API shows it."""
    duration = row.duration
    return {
        "id": row.id,
        "charger": row.ocpp_id,
        "connector_no": row.connector_no,
        "site": row.site,
        "id_tag": row.id_tag,
        "started_at": row.started_at,
        "stopped_at": row.stopped_at,
        "stop_reason": row.stop_reason,
        "duration_s": None if duration is None else int(duration.total_seconds()),
        "energy_wh": row.energy_wh,
        "energy_kwh": None if row.kwh is None else float(row.kwh),
        "cost": None if row.cost is None else float(row.cost),
        "currency": row.currency,
        "tariff": row.tariff,
    }


@bp.get("/sessions")
@allowed("sessions.view")
@bp.arguments(SessionListArgs, location="query", as_kwargs=True)
@bp.response(200, SessionPageSchema)
def list_sessions(**args: Any) -> dict[str, Any]:
    """List the charging sessions, newest first, with the web list's filters; 50 a page."""
    # The service reads query-string text: give it the validated values as such.
    raw = {k: v.isoformat() if isinstance(v, date) else str(v) for k, v in args.items()}
    query = charging_sessions.parse_query(raw)
    if args.get("after") and (query.after is None or not 0 < query.after[1] <= MAX_ID):
        raise bad_cursor()
    if query.problems:
        raise ApiError(422, details={"problems": list(query.problems)})
    page = charging_sessions.list_sessions(query)
    next_after = None
    if page.next_after is not None:
        next_after = SessionQuery().params(after=page.next_after)["after"]
    return {"items": [present(row) for row in page.rows], "next_after": next_after}


@bp.get("/sessions/<int:session_id>")
@allowed("sessions.view")
@bp.response(200, SessionSchema)
def get_session(session_id: int) -> dict[str, Any]:
    """Read one charging session by id."""
    row = charging_sessions.session_row(session_id) if 0 < session_id <= MAX_ID else None
    if row is None:
        raise ApiError(404, "E_NOT_FOUND", f"There is no session {session_id} for you to see.")
    return present(row)
