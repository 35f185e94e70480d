"""Tickets by status, priority, category, channel, site, vendor or engineer."""

from __future__ import annotations

from cass.lifecycle import OPEN_STATUSES
from cass.services.reports.base import (
    GROUP_TITLES,
    TICKET_GROUPS,
    Chart,
    Column,
    Filters,
    Report,
    Table,
    bind,
    fetch,
    labelled,
    register,
    ticket_conditions,
    total,
)

FILTERS = ("site", "vendor", "engineer", "priority", "category")
GROUPINGS = {
    by: GROUP_TITLES[by]
    for by in ("status", "priority", "category", "site", "vendor", "engineer", "channel")
}


def build(f: Filters) -> Table:
    """Count the tickets created in the range per group: all, still open, resolved, cancelled."""
    column, _ = TICKET_GROUPS[f.by]
    where = " AND ".join(
        [
            "t.tenant_id = :tenant",
            "t.created_at >= :since",
            "t.created_at < :until",
            *ticket_conditions(f, FILTERS),
        ]
    )
    rows = fetch(
        f"""
        SELECT t.{column},
               count(*),
               count(*) FILTER (WHERE t.status = ANY(:open)),
               count(*) FILTER (WHERE t.status IN ('resolved', 'closed')),
               count(*) FILTER (WHERE t.status = 'cancelled')
        FROM ticket t
        WHERE {where}
        GROUP BY 1
        """,
        bind(f, open=list(OPEN_STATUSES)),
    )
    rows = labelled(f.by, rows)
    return Table(
        columns=(
            Column("group", GROUP_TITLES[f.by], "text"),
            Column("created", "Created"),
            Column("open", "Still open"),
            Column("resolved", "Resolved or closed"),
            Column("cancelled", "Cancelled"),
        ),
        rows=rows,
        totals=("Total", *(total(rows, i) for i in range(1, 5))),
        chart=Chart(
            "bar",
            ("open", "resolved", "cancelled"),
            stacked=True,
            horizontal=f.by in ("site", "vendor", "engineer"),
            limit=20,
        ),
    )


register(
    Report(
        slug="tickets-by",
        title="Tickets by status, priority, category, site, vendor or engineer",
        summary="Tickets created in the period, and where they stand now.",
        filters=FILTERS,
        groupings=GROUPINGS,
        build=build,
    )
)
