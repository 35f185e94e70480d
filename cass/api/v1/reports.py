"""/api/v1/reports: the reports offered, and a report's table as JSON."""

from __future__ import annotations

from datetime import date
from typing import Any

from cass.api.v1.auth import allowed, api_blueprint
from cass.api.v1.errors import ApiError
from cass.api.v1.report_schemas import ReportArgs, ReportInfoSchema, ReportTableSchema
from cass.services import reports
from cass.services.reports.base import FILTERS

bp = api_blueprint("api_reports", "Reports: aggregates by period or group, as tables.")


@bp.get("/reports")
@allowed("reports.view")
@bp.response(200, ReportInfoSchema(many=True))
def list_reports() -> list[dict[str, Any]]:
    """List the reports with their filters and groupings."""
    return [
        {
            "slug": report.slug,
            "title": report.title,
            "summary": report.summary,
            "filters": list(report.filters),
            "groupings": [{"by": by, "label": label} for by, label in report.groupings.items()],
        }
        for report in reports.REPORTS.values()
    ]


@bp.get("/reports/<slug>")
@allowed("reports.view")
@bp.arguments(ReportArgs, location="query", as_kwargs=True)
@bp.response(200, ReportTableSchema)
def get_report(slug: str, **args: Any) -> dict[str, Any]:
    """Run a report with its page's range, grouping and filters; return its table."""
    if slug not in reports.REPORTS:
        raise ApiError(404, "E_NOT_FOUND", f"There is no report {slug[:40]!r}.")
    # The page's parsing, given the validated values as the query-string text it reads.
    raw = {k: v.isoformat() if isinstance(v, date) else str(v) for k, v in args.items()}
    try:
        report, filters, table = reports.run(slug, raw)
    except reports.BadFilters as bad:
        fields = {name: [message] for name, message in bad.errors.items()}
        raise ApiError(422, details={"fields": {"query": fields}}) from bad
    return {
        "slug": report.slug,
        "title": report.title,
        "parameters": {
            "start": filters.start,
            "end": filters.end,
            "zone": filters.zone,
            "by": filters.by,
            **{name: getattr(filters, name) for name in FILTERS},
        },
        "columns": [{"key": c.key, "label": c.label, "kind": c.kind} for c in table.columns],
        "rows": [list(row) for row in table.rows],
        "totals": None if table.totals is None else list(table.totals),
        "notes": list(table.notes),
    }
