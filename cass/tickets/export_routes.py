"""The ticket list as CSV at /tickets.csv: its own blueprint, since /tickets is a url_prefix."""

from __future__ import annotations

from dataclasses import replace

from flask import Blueprint, Response, request
from flask_login import current_user

from cass.csv_download import csv_download
from cass.permissions import requires
from cass.services import ticket_queries

bp = Blueprint("ticket_export", __name__)


@bp.get("/tickets.csv")
@requires("tickets.export")
def tickets_csv() -> Response:
    """Stream every ticket matching the list's filters and sort as CSV (no page cap).

    Takes the list's parameters; unparsable ones are ignored as on the list, and `after` is
    ignored since an export has no pages. Postgres writes the CSV (COPY), `?bom=1` for Excel.
    """
    query = replace(ticket_queries.parse_list_query(request.args), after=None)
    export = ticket_queries.export_copy(current_user._get_current_object(), query)

    return csv_download(export, "tickets")
