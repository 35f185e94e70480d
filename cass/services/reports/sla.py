"""SLA compliance by clock, site, vendor, priority or engineer."""

from __future__ import annotations

from cass.models.sla import CLOCKS
from cass.services.reports import base, snapshots

FILTERS = ("site", "vendor", "engineer", "priority", "category")
GROUPINGS = {
    "clock": "Clock",
    **{by: base.GROUP_TITLES[by] for by in ("site", "vendor", "priority", "engineer", "category")},
}


def _select(f: base.Filters) -> str:
    """Select per day of the ticket's creation and group: clocks met, breached, running."""
    key = "c.clock" if f.by == "clock" else f"t.{base.TICKET_GROUPS[f.by][0]}"
    where = " AND ".join(
        [
            "t.tenant_id = :tenant",
            "t.created_at >= :since",
            "t.created_at < :until",
            "c.state <> 'cancelled'",
            *base.ticket_conditions(f, FILTERS),
        ]
    )
    return f"""
        SELECT CAST(t.created_at AT TIME ZONE :zone AS date), coalesce(CAST({key} AS text), ''),
               count(*) FILTER (WHERE c.state = 'met'),
               count(*) FILTER (WHERE c.state = 'breached'),
               count(*) FILTER (WHERE c.state IN ('running', 'warning', 'paused'))
        FROM ticket t
        JOIN sla_clock c ON c.tenant_id = t.tenant_id AND c.ticket_id = t.id
        WHERE {where}
        GROUP BY 1, 2
    """


FACTS = snapshots.register(
    snapshots.Facts(
        report="sla",
        measures=("met", "breached", "running"),
        depends=("by", *FILTERS),
        select=_select,
    )
)


def build(f: base.Filters) -> base.Table:
    """Count the clocks of the tickets created in the range per group: met, breached, running.

    Compliance is met / (met + breached): a clock still running has not been decided, and a
    cancelled one (its ticket cancelled, or solved before a visit was needed) made no promise.
    """
    rows = []
    for key, values in snapshots.figures(FACTS, f).items():
        met, breached, running = snapshots.numbers(values, "iii")
        rows.append((base.group_key(f.by, key), met + breached + running, met, breached, running))
    if f.by == "clock":
        order = {name: n for n, name in enumerate(CLOCKS)}
        rows = [(CLOCKS.get(r[0], r[0]), *r[1:]) for r in sorted(rows, key=lambda r: order[r[0]])]
    else:
        rows = base.labelled(f.by, rows)
    rows = [(*r, base.percent(r[2], r[2] + r[3])) for r in rows]
    met, breached = base.total(rows, 2), base.total(rows, 3)
    return base.Table(
        columns=(
            base.Column("group", GROUPINGS[f.by], "text"),
            base.Column("clocks", "Clocks"),
            base.Column("met", "Met"),
            base.Column("breached", "Breached"),
            base.Column("running", "Still running"),
            base.Column("compliance", "Compliance", "percent"),
        ),
        rows=rows,
        totals=(
            "Total",
            base.total(rows, 1),
            met,
            breached,
            base.total(rows, 4),
            base.percent(met, met + breached),
        ),
        chart=base.Chart(
            "bar",
            ("met", "breached"),
            stacked=True,
            horizontal=f.by in ("site", "vendor", "engineer"),
            limit=20,
        ),
    )


base.register(
    base.Report(
        slug="sla",
        title="SLA compliance",
        summary="The clocks of tickets opened in the period: met, breached, still running.",
        filters=FILTERS,
        groupings=GROUPINGS,
        build=build,
    )
)
