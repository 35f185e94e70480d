"""Time to first response (MTTA) and time to resolve (MTTR), as a trend by day, week or month."""

from __future__ import annotations

from cass.services.reports import base, snapshots

FILTERS = ("site", "vendor", "engineer", "priority", "category")
GROUPINGS = {"week": "Week", "day": "Day", "month": "Month"}


def _select(f: base.Filters) -> str:
    """Select per day: tickets created, first responses and resolutions with their seconds."""
    where = base.and_tickets(f, FILTERS)
    return f"""
        SELECT day, '', sum(created), sum(responded), sum(responded_s), sum(resolved),
               sum(resolved_s)
        FROM (
            SELECT CAST(t.created_at AT TIME ZONE :zone AS date) AS day, count(*) AS created,
                   0 AS responded, 0 AS responded_s, 0 AS resolved, 0 AS resolved_s
            FROM ticket t
            WHERE t.tenant_id = :tenant AND t.created_at >= :since AND t.created_at < :until
              {where}
            GROUP BY 1
            UNION ALL
            {RESPONDED.format(where=where)}
            UNION ALL
            SELECT CAST(t.resolved_at AT TIME ZONE :zone AS date), 0, 0, 0, count(*),
                   sum(extract(epoch FROM t.resolved_at - t.created_at))
            FROM ticket t
            WHERE t.tenant_id = :tenant AND t.resolved_at >= :since AND t.resolved_at < :until
              {where}
            GROUP BY 1
        ) AS counted
        GROUP BY 1
    """


# A first response is what stops the SLA's first-response clock: a person's worklog, or the
# ticket leaving "new" (cass.services.sla); a clock cancelled with its ticket had none. The
# condition is the predicate of index ix_sla_clock_tenant_responded.
RESPONDED = """
    SELECT CAST(c.stopped_at AT TIME ZONE :zone AS date), 0, count(*),
           sum(extract(epoch FROM c.stopped_at - t.created_at)), 0, 0
    FROM sla_clock c JOIN ticket t ON t.tenant_id = c.tenant_id AND t.id = c.ticket_id
    WHERE c.tenant_id = :tenant AND c.clock = 'first_response' AND c.state IN ('met','breached')
      AND c.stopped_at IS NOT NULL AND c.stopped_at >= :since AND c.stopped_at < :until {where}
    GROUP BY 1
"""

FACTS = snapshots.register(
    snapshots.Facts(
        report="resolution",
        measures=("created", "responded", "responded_s", "resolved", "resolved_s"),
        depends=FILTERS,
        select=_select,
    )
)


def build(f: base.Filters) -> base.Table:
    """Per period: tickets created, first responses and their mean time, resolutions and MTTR.

    Times are wall-clock hours from creation (the SLA report counts business time); a ticket
    counts in the period of the event measured, so a trend shows when work got done. Periods
    start on the first day of the range's first day, week (Monday) or month.
    """
    sums = snapshots.figures(FACTS, f, unit=f.by)
    zero = [0, 0, 0, 0, 0]
    rows = [
        (p, *snapshots.numbers(sums.get((p, ""), zero), "iinin"))
        for p in base.period_starts(f, f.by)
    ]
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
