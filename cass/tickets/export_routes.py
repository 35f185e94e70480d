"""The ticket list as CSV at /tickets.csv: its own blueprint, since /tickets is a url_prefix."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

from flask import Blueprint, Response, request, stream_with_context
from flask_login import current_user

from cass.permissions import requires
from cass.services import ticket_queries

bp = Blueprint("ticket_export", __name__)

ROWS_PER_CHUNK = 500


@bp.get("/tickets.csv")
@requires("tickets.export")
def tickets_csv() -> Response:
    """Stream every ticket matching the list's filters and sort as CSV (no page cap).

    Takes the list's parameters; unparsable ones are ignored as on the list, and `after` is
    ignored since an export has no pages.
    """
    query = replace(ticket_queries.parse_list_query(request.args), after=None)
    rows = ticket_queries.export_rows(current_user._get_current_object(), query)

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

    # The generator runs after the view returns: stream_with_context keeps the request's
    # context (g.tenant_id, which binds RLS on each transaction, and the user) alive until the
    # last row, and the server-side cursor stays inside that one bound transaction.
    response = Response(stream_with_context(generate()), mimetype="text/csv")
    stamp = datetime.now(UTC).date().isoformat()
    response.headers["Content-Disposition"] = f'attachment; filename="tickets-{stamp}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Accel-Buffering"] = "no"  # let a proxy pass rows on as they come
    return response
