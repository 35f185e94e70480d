"""The reports: an index, and each report as a page with filters, a table and a chart."""

from __future__ import annotations

from flask import Blueprint
from werkzeug.wrappers import Response

from cass.permissions import requires
from cass.rendering import render

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.get("")
@requires("reports.view")
def index() -> Response:
    """List the reports."""
    return render("reports/index.html")
