"""Tickets by status, priority, category, channel, site, vendor or engineer."""

from __future__ import annotations

from cass.lifecycle import OPEN_STATUSES
from cass.services.reports import base, snapshots

FILTERS = ("site", "vendor", "engineer", "priority", "category")
GROUPINGS = {
    by: base.GROUP_TITLES[by]
    for by in ("status", "priority", "category", "site", "vendor", "engineer", "channel")
}


def _select(f: base.Filters) -> str:
    """Select per day of creation and group: created, still open, resolved, cancelled."""
    column, _ = base.TICKET_GROUPS[f.by]
    where = " AND ".join(
        [
            "t.tenant_id = :tenant",
            "t.created_at >= :since",
            "t.created_at < :until",
            *base.ticket_conditions(f, FILTERS),
        ]
    )
    return f"""
        SELECT CAST(t.created_at AT TIME ZONE :zone AS date),
               coalesce(CAST(t.{column} AS text), ''),
               count(*),
               count(*) FILTER (WHERE t.status = ANY(:open)),
               count(*) FILTER (WHERE t.status IN ('resolved', 'closed')),
               count(*) FILTER (WHERE t.status = 'cancelled')
        FROM ticket t
        WHERE {where}
        GROUP BY 1, 2
    """


FACTS = snapshots.register(
    snapshots.Facts(
        report="tickets-by",
        measures=("created", "open", "resolved", "cancelled"),
        depends=("by", *FILTERS),
        select=_select,
        binds={"open": list(OPEN_STATUSES)},
    )
)


def build(f: base.Filters) -> base.Table:
    """Count the tickets created in the range per group: all, still open, resolved, cancelled."""
    rows = [
        (base.group_key(f.by, key), *snapshots.numbers(values, "iiii"))
        for key, values in snapshots.figures(FACTS, f).items()
    ]
    rows = base.labelled(f.by, rows)
    return base.Table(
        columns=(
            base.Column("group", base.GROUP_TITLES[f.by], "text"),
            base.Column("created", "Created"),
            base.Column("open", "Still open"),
            base.Column("resolved", "Resolved or closed"),
            base.Column("cancelled", "Cancelled"),
        ),
        rows=rows,
        totals=("Total", *(base.total(rows, i) for i in range(1, 5))),
        chart=base.Chart(
            "bar",
            ("open", "resolved", "cancelled"),
            stacked=True,
            horizontal=f.by in ("site", "vendor", "engineer"),
            limit=20,
        ),
    )


base.register(
    base.Report(
        slug="tickets-by",
        title="Tickets by status, priority, category, site, vendor or engineer",
        summary="Tickets created in the period, and where they stand now.",
        filters=FILTERS,
        groupings=GROUPINGS,
        build=build,
    )
)
