"""The charging-session list (filters, keyset "load more") and its CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Blueprint, Response, request, stream_with_context

from cass.permissions import requires
from cass.rendering import render
from cass.services import charging_sessions

bp = Blueprint("sessions", __name__)

ROWS_PER_CHUNK = 500


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
@requires("sessions.view")
def sessions_csv() -> Response:
    """Stream every session matching the list's filters as CSV (no page cap)."""
    rows = charging_sessions.export_rows(charging_sessions.parse_query(request.args))

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for n, row in enumerate(rows, 1):
            writer.writerow(row)
            if n % ROWS_PER_CHUNK == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    # As /tickets.csv: the request context (and so the tenant binding) lives until the last row.
    response = Response(stream_with_context(generate()), mimetype="text/csv")
    stamp = datetime.now(UTC).date().isoformat()
    response.headers["Content-Disposition"] = f'attachment; filename="sessions-{stamp}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response
