"""Reports: named, filterable aggregates, each one set-based select, shown as a table and a chart.

A report reads the page's parameters into `Filters` (a date range counted in the tenant's
timezone, the filters that report takes, and a grouping), runs one aggregate select for the
tenant and returns a `Table`: typed columns, rows, a totals row, and the chart's series. The same
table feeds the page, its CSV (`csv_rows`, also what scheduled exports write) and its PDF.

Each report module registers itself in `REPORTS` when imported; the import order below is the
order of the index page.
"""

from cass.services.reports import (  # noqa: F401  (each registers its reports)
    chargers,
    peak_load,
    resolution,
    sessions,
    sla,
    tickets,
    utilization,
    workload,
)
from cass.services.reports.base import (
    REPORTS,
    BadFilters,
    Filters,
    Report,
    Table,
    choices,
    csv_rows,
    parse_filters,
    run,
    table_rows,
)

__all__ = [
    "REPORTS",
    "BadFilters",
    "Filters",
    "Report",
    "Table",
    "choices",
    "csv_rows",
    "parse_filters",
    "run",
    "table_rows",
]
