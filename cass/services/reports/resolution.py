"""Time to first response (MTTA) and time to resolve (MTTR), as a trend by day, week or month."""

from __future__ import annotations

from cass.services.reports import base

FILTERS = ("site", "vendor", "engineer", "priority", "category")
GROUPINGS = {"week": "Week", "day": "Day", "month": "Month"}


def _counted(column: str, where: str, seconds: bool) -> str:
    """Return a select of tickets per period of `column`, with their seconds since creation."""
    spent = f"sum(extract(epoch FROM t.{column} - t.created_at))" if seconds else "NULL"
    return f"""
        SELECT date_trunc(:unit, t.{column} AT TIME ZONE :zone) AS p, count(*) AS n,
               {spent} AS s
        FROM ticket t
        WHERE t.tenant_id = :tenant AND t.{column} >= :since AND t.{column} < :until {where}
        GROUP BY 1
    """


# A first response is what stops the SLA's first-response clock: a person's worklog, or the
# ticket leaving "new" (cass.services.sla); a clock cancelled with its ticket had none.
RESPONDED = """
    SELECT date_trunc(:unit, c.stopped_at AT TIME ZONE :zone) AS p, count(*) AS n,
           sum(extract(epoch FROM c.stopped_at - t.created_at)) AS s
    FROM sla_clock c JOIN ticket t ON t.tenant_id = c.tenant_id AND t.id = c.ticket_id
    WHERE c.tenant_id = :tenant AND c.clock = 'first_response' AND c.state IN ('met','breached')
      AND c.stopped_at IS NOT NULL AND c.stopped_at >= :since AND c.stopped_at < :until {where}
    GROUP BY 1
"""


def build(f: base.Filters) -> base.Table:
    """Per period: tickets created, first responses and their mean time, resolutions and MTTR.

    Times are wall-clock hours from creation (the SLA report counts business time); a ticket
    counts in the period of the event measured, so a trend shows when work got done. Periods
    start on the first day of the range's first day, week (Monday) or month.
    """
    where = base.and_tickets(f, FILTERS)
    rows = base.fetch(
        f"""
        WITH periods AS ({base.PERIODS}),
        created AS ({_counted("created_at", where, seconds=False)}),
        responded AS ({RESPONDED.format(where=where)}),
        resolved AS ({_counted("resolved_at", where, seconds=True)})
        SELECT CAST(periods.p AS date),
               coalesce(created.n, 0),
               coalesce(responded.n, 0), responded.s,
               coalesce(resolved.n, 0), resolved.s
        FROM periods
        LEFT JOIN created ON created.p = periods.p
        LEFT JOIN responded ON responded.p = periods.p
        LEFT JOIN resolved ON resolved.p = periods.p
        ORDER BY 1
        """,
        base.bind(f, unit=f.by),
    )
    table = [
        (
            p,
            created,
            responded,
            base.mean_hours(resp_s, responded),
            resolved,
            base.mean_hours(res_s, resolved),
        )
        for p, created, responded, resp_s, resolved, res_s in rows
    ]
    responded_s = sum(float(r[3] or 0) for r in rows)
    resolved_s = sum(float(r[5] or 0) for r in rows)
    n_responded, n_resolved = base.total(table, 2), base.total(table, 4)
    return base.Table(
        columns=(
            base.Column("period", GROUPINGS[f.by], "period"),
            base.Column("created", "Created"),
            base.Column("responded", "First responses"),
            base.Column("mtta", "Mean time to first response (h)", "hours"),
            base.Column("resolved", "Resolved"),
            base.Column("mttr", "Mean time to resolve (h)", "hours"),
        ),
        rows=table,
        totals=(
            "Whole period",
            base.total(table, 1),
            n_responded,
            base.mean_hours(responded_s, n_responded),
            n_resolved,
            base.mean_hours(resolved_s, n_resolved),
        ),
        chart=base.Chart("line", ("mtta", "mttr"), unit="h"),
    )


base.register(
    base.Report(
        slug="resolution",
        title="Response and resolution times (MTTA, MTTR)",
        summary="Mean hours to first response and to resolution, by week, day or month.",
        filters=FILTERS,
        groupings=GROUPINGS,
        build=build,
    )
)
