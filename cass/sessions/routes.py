"""The charging-session list (filters, keyset "load more") and its CSV export."""

from __future__ import annotations

from datetime import UTC

from flask import Blueprint, Response, request

from cass.csv_download import csv_download
from cass.permissions import requires
from cass.rendering import render
from cass.services import charging_sessions

bp = Blueprint("sessions", __name__)


@bp.get("/sessions")
@requires("sessions.view")
def index() -> Response:
    """List charging sessions, newest first, 50 at a time, with kWh, duration and cost."""
    query = charging_sessions.parse_query(request.args)
    listing = charging_sessions.list_sessions(query)
    # "Load more" asks for the next rows only; a filter change for the whole table.
    fragment = "sessions/_rows.html" if query.after else "sessions/_table.html"
    return render(
        "sessions/index.html",
        fragment,
        422 if query.problems else 200,
        query=query,
        listing=listing,
        sites=charging_sessions.site_choices(),
        utc=UTC,
    )


@bp.get("/sessions.csv")
@requires("sessions.export")
def sessions_csv() -> Response:
    """Stream every session matching the list's filters as CSV (no page cap)."""
    rows = charging_sessions.export_rows(charging_sessions.parse_query(request.args))

    return csv_download(rows, "sessions")
