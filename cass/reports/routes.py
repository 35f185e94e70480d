"""The reports: an index, and each report as a page with filters, a table and a chart."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, abort, request
from werkzeug.wrappers import Response

from cass.csv_download import csv_download
from cass.permissions import requires
from cass.rendering import render
from cass.reports.pdf import pdf_download, report_pdf
from cass.reports.presenting import chart_for
from cass.services import reports
from cass.services.reports import Filters, Report, Table, table_rows

bp = Blueprint("reports", __name__, url_prefix="/reports")


@bp.get("")
@requires("reports.view")
def index() -> Response:
    """List the reports."""
    return render("reports/index.html", reports=reports.REPORTS.values())


@bp.get("/<slug>")
@requires("reports.view")
def show(slug: str) -> Response:
    """Show report `slug` for the filters in the query string (422 with the errors if bad)."""
    report = reports.REPORTS.get(slug) or abort(404)
    context = {"report": report, "choices": reports.choices(), "args": request.args}
    try:
        report, filters, table = reports.run(slug, request.args)
    except reports.BadFilters as bad:
        return render(
            "reports/report.html", "reports/_body.html", 422, errors=bad.errors, **context
        )
    return render(
        "reports/report.html",
        "reports/_body.html",
        filters=filters,
        table=table,
        chart=chart_for(report, table),
        errors={},
        **context,
    )


@bp.get("/<slug>.csv")
@requires("reports.export")
def download_csv(slug: str) -> Response:
    """Download report `slug` with the page's filters as CSV (422 when the filters are bad)."""
    return _download(slug, lambda report, f, table, name: csv_download(table_rows(table), name))


@bp.get("/<slug>.pdf")
@requires("reports.export")
def download_pdf(slug: str) -> Response:
    """Download report `slug` with the page's filters as a PDF for printing (422 when bad)."""
    return _download(
        slug, lambda report, f, table, name: pdf_download(report_pdf(report, f, table), name)
    )


def _download(slug: str, write: Callable[[Report, Filters, Table, str], Response]) -> Response:
    """Run report `slug` for a download and `write` it under its name; 404 for no such report,
    422 naming the bad filters."""
    if slug not in reports.REPORTS:
        abort(404)
    try:
        report, filters, table = reports.run(slug, request.args)
    except reports.BadFilters as bad:
        return Response(str(bad), 422, mimetype="text/plain")
    return write(report, filters, table, f"{slug}-{filters.start}-{filters.end}")
