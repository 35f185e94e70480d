"""How a report's table reads on a page and in print: its chart and its formatted values."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from flask import Flask
from markupsafe import Markup

from cass.charts import Series, bar_chart, line_chart
from cass.services.reports import Report, Table

EMPTY = "—"
# A page shows this many rows of a table (a thousand chargers make a page nobody reads); the
# totals, the CSV and the PDF hold them all.
PAGE_ROWS = 200


def chart_for(report: Report, table: Table, *, inline_colours: bool = False) -> Markup | None:
    """Return `table`'s chart as SVG (None when the report draws none)."""
    spec = table.chart
    if spec is None:
        return None
    rows = table.rows if spec.limit is None else table.rows[: spec.limit]
    labels = [label(row[0]) for row in rows]
    at = [table.position(key) for key in spec.series]
    series = [Series(table.columns[n].label, [row[n] for row in rows]) for n in at]
    title = report.title
    if spec.limit is not None and len(table.rows) > spec.limit:
        title = f"{title} (first {spec.limit} of {len(table.rows)})"
    desc = f"{', '.join(s.name for s in series)} per {table.columns[0].label.lower()}."
    if spec.kind == "line":
        return line_chart(
            title, labels, series, desc=desc, unit=spec.unit, inline_colours=inline_colours
        )
    return bar_chart(
        title,
        labels,
        series,
        desc=desc,
        unit=spec.unit,
        stacked=spec.stacked,
        horizontal=spec.horizontal,
        inline_colours=inline_colours,
    )


def label(value: Any) -> str:
    """Return a group's label as text (a period as its first day)."""
    return value.isoformat() if isinstance(value, date) else str(value)


def report_value(value: Any, kind: str) -> str:
    """Return a table cell as a person reads it: grouped digits, fixed decimals, a unit."""
    if value is None or value == "":
        return EMPTY if kind not in ("text", "period") else ""
    if kind == "percent":
        return f"{float(value):.1f} %"
    if kind in ("hours", "money"):
        return f"{Decimal(str(value)):,.2f}"
    if kind == "kwh":
        return f"{Decimal(str(value)):,.1f}"
    if kind in ("int",) and isinstance(value, int | Decimal):
        return f"{value:,}"
    return label(value)


def init_presenting(app: Flask) -> None:
    """Offer `report_value` to templates as a filter, and `page_rows`."""
    app.jinja_env.filters["report_value"] = report_value
    app.jinja_env.globals["page_rows"] = PAGE_ROWS
