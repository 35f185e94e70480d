"""SLA compliance by clock, site, vendor, priority or engineer."""

from __future__ import annotations

from cass.models.sla import CLOCKS
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
    percent,
    register,
    ticket_conditions,
    total,
)

FILTERS = ("site", "vendor", "engineer", "priority", "category")
GROUPINGS = {
    "clock": "Clock",
    **{by: GROUP_TITLES[by] for by in ("site", "vendor", "priority", "engineer", "category")},
}


def build(f: Filters) -> Table:
    """Count the clocks of the tickets created in the range per group: met, breached, running.

    Compliance is met / (met + breached): a clock still running has not been decided, and a
    cancelled one (its ticket cancelled, or solved before a visit was needed) made no promise.
    """
    key = "c.clock" if f.by == "clock" else f"t.{TICKET_GROUPS[f.by][0]}"
    where = " AND ".join(
        [
            "t.tenant_id = :tenant",
            "t.created_at >= :since",
            "t.created_at < :until",
            "c.state <> 'cancelled'",
            *ticket_conditions(f, FILTERS),
        ]
    )
    rows = fetch(
        f"""
        SELECT {key},
               count(*) FILTER (WHERE c.state = 'met'),
               count(*) FILTER (WHERE c.state = 'breached'),
               count(*) FILTER (WHERE c.state IN ('running', 'warning', 'paused'))
        FROM ticket t
        JOIN sla_clock c ON c.tenant_id = t.tenant_id AND c.ticket_id = t.id
        WHERE {where}
        GROUP BY 1
        """,
        bind(f),
    )
    rows = [
        (k, met + breached + running, met, breached, running) for k, met, breached, running in rows
    ]
    if f.by == "clock":
        order = {name: n for n, name in enumerate(CLOCKS)}
        rows = [(CLOCKS.get(r[0], r[0]), *r[1:]) for r in sorted(rows, key=lambda r: order[r[0]])]
    else:
        rows = labelled(f.by, rows)
    rows = [(*r, percent(r[2], r[2] + r[3])) for r in rows]
    met, breached = total(rows, 2), total(rows, 3)
    return Table(
        columns=(
            Column("group", GROUPINGS[f.by], "text"),
            Column("clocks", "Clocks"),
            Column("met", "Met"),
            Column("breached", "Breached"),
            Column("running", "Still running"),
            Column("compliance", "Compliance", "percent"),
        ),
        rows=rows,
        totals=(
            "Total",
            total(rows, 1),
            met,
            breached,
            total(rows, 4),
            percent(met, met + breached),
        ),
        chart=Chart(
            "bar",
            ("met", "breached"),
            stacked=True,
            horizontal=f.by in ("site", "vendor", "engineer"),
            limit=20,
        ),
    )


register(
    Report(
        slug="sla",
        title="SLA compliance",
        summary="The clocks of tickets opened in the period: met, breached, still running.",
        filters=FILTERS,
        groupings=GROUPINGS,
        build=build,
    )
)
