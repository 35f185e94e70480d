"""Engineer workload and activity: open tickets held, tickets resolved, worklogs, changes made."""

from __future__ import annotations

from cass.lifecycle import OPEN_STATUSES
from cass.models.tickets import _in
from cass.services.reports import base, snapshots

FILTERS = ("engineer", "site", "priority", "category")
# The filters that narrow the tickets counted.
TICKET_FILTERS = ("site", "priority", "category")
# Written as the predicate of index ix_ticket_tenant_open_assignee, so the planner uses it.
OPEN = _in("t.status", OPEN_STATUSES)


def _select(f: base.Filters) -> str:
    """Select per day and person: tickets resolved and their seconds, worklogs, changes."""
    tickets = base.and_tickets(f, TICKET_FILTERS)
    return f"""
        SELECT day, uid, sum(resolved), sum(resolved_s), sum(logs), sum(minutes), sum(changes)
        FROM (
            SELECT CAST(t.resolved_at AT TIME ZONE :zone AS date) AS day,
                   CAST(t.assignee_user_id AS text) AS uid, count(*) AS resolved,
                   sum(extract(epoch FROM t.resolved_at - t.created_at)) AS resolved_s,
                   0 AS logs, 0 AS minutes, 0 AS changes
            FROM ticket t
            WHERE t.tenant_id = :tenant AND t.resolved_at >= :since AND t.resolved_at < :until
              AND t.assignee_user_id IS NOT NULL {tickets}
            GROUP BY 1, 2
            UNION ALL
            SELECT CAST(w.created_at AT TIME ZONE :zone AS date), CAST(w.author_id AS text),
                   0, 0, count(*), sum(w.minutes), 0
            FROM worklog w JOIN ticket t ON t.tenant_id = w.tenant_id AND t.id = w.ticket_id
            WHERE w.tenant_id = :tenant AND w.created_at >= :since AND w.created_at < :until
              AND w.author_id IS NOT NULL {tickets}
            GROUP BY 1, 2
            UNION ALL
            SELECT CAST(e.at AT TIME ZONE :zone AS date), CAST(e.actor_id AS text),
                   0, 0, 0, 0, count(*)
            FROM ticket_event e JOIN ticket t ON t.tenant_id = e.tenant_id AND t.id = e.ticket_id
            WHERE e.tenant_id = :tenant AND e.at >= :since AND e.at < :until
              AND e.actor_id IS NOT NULL {tickets}
            GROUP BY 1, 2
        ) AS done
        GROUP BY 1, 2
    """


FACTS = snapshots.register(
    snapshots.Facts(
        report="workload",
        measures=("resolved", "resolved_s", "worklogs", "minutes", "changes"),
        # The engineer filter picks the person shown, not the tickets counted.
        depends=TICKET_FILTERS,
        select=_select,
    )
)


def build(f: base.Filters) -> base.Table:
    """Per person who works tickets: open tickets now, and in the range resolved, MTTR, logged.

    "Open now" is today's load whatever the range; the rest counts what happened in the range.
    Site, priority and category narrow every figure to those tickets.
    """
    done = snapshots.figures(FACTS, f)
    uids = list(done)
    tickets = base.and_tickets(f, TICKET_FILTERS)
    people = " AND u.id = :engineer" if f.engineer is not None else ""
    rows = base.fetch(
        f"""
        WITH open_now AS (
            SELECT t.assignee_user_id AS uid, count(*) AS n FROM ticket t
            WHERE t.tenant_id = :tenant AND {OPEN}
              AND t.assignee_user_id IS NOT NULL {tickets}
            GROUP BY 1
        ), done AS (
            SELECT * FROM unnest(CAST(:uids AS bigint[]), CAST(:resolved AS bigint[]),
                                 CAST(:resolved_s AS numeric[]), CAST(:logs AS bigint[]),
                                 CAST(:minutes AS bigint[]), CAST(:changes AS bigint[]))
                AS d(uid, resolved, resolved_s, logs, minutes, changes)
        )
        SELECT u.name, coalesce(open_now.n, 0), coalesce(done.resolved, 0),
               CASE WHEN done.resolved > 0 THEN done.resolved_s END,
               coalesce(done.logs, 0), coalesce(done.minutes, 0), coalesce(done.changes, 0)
        FROM app_user u
        LEFT JOIN open_now ON open_now.uid = u.id
        LEFT JOIN done ON done.uid = u.id
        WHERE u.tenant_id = :tenant {people}
          AND (u.role = ANY(:workers) AND u.is_active
               OR open_now.n IS NOT NULL OR done.uid IS NOT NULL)
        ORDER BY 2 DESC, 3 DESC, 1
        """,
        base.bind(
            f,
            workers=list(base.WORKER_ROLES),
            uids=[int(u) for u in uids],
            **{
                name: [done[u][n] for u in uids]
                for n, name in enumerate(("resolved", "resolved_s", "logs", "minutes", "changes"))
            },
        ),
    )
    table = [
        (name, open_n, res_n, base.mean_hours(res_s, res_n), logs, minutes, n)
        for name, open_n, res_n, res_s, logs, minutes, n in rows
    ]
    resolved_s = sum(float(r[3] or 0) for r in rows)
    n_resolved = base.total(table, 2)
    return base.Table(
        columns=(
            base.Column("person", "Person", "text"),
            base.Column("open", "Open now"),
            base.Column("resolved", "Resolved"),
            base.Column("mttr", "Mean time to resolve (h)", "hours"),
            base.Column("worklogs", "Worklogs"),
            base.Column("minutes", "Minutes logged"),
            base.Column("changes", "Changes made"),
        ),
        rows=table,
        totals=(
            "Total",
            base.total(table, 1),
            n_resolved,
            base.mean_hours(resolved_s, n_resolved),
            base.total(table, 4),
            base.total(table, 5),
            base.total(table, 6),
        ),
        chart=base.Chart("bar", ("open", "resolved"), horizontal=True, limit=20),
    )


base.register(
    base.Report(
        slug="workload",
        title="Engineer workload and activity",
        summary="Open tickets each person holds now, and what they resolved and logged.",
        filters=FILTERS,
        groupings={"person": "Person"},
        build=build,
    )
)
