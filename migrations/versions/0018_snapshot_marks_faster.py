"""Report snapshot marks, faster: the triggers of migration 0014 again, marking the same days.

Two plans went wrong on a large change (the SLA sweep's catch-up: 8,112 clocks, 150 ms of
trigger time). A transition table has no statistics, so the planner hashed the whole ticket table
to find each clock's ticket (now a lookup by key per row, LATERAL), and the tenant's zone check, written
as a CTE used once, was inlined and run per row (now MATERIALIZED: once a tenant). A moved
ticket's worklogs, events and first response are read by ticket per row (LATERAL) for the same
reason (OFFSET 0 keeps each a lookup: the planner would flatten it into the same hash join). The bodies compute exactly what 0014's did, so the downgrade leaves them.

Revision ID: 0018_snapshot_marks_faster
Revises: 0017_calendar_feeds
Create Date: 2026-11-29 03:45:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0018_snapshot_marks_faster"
down_revision = "0017_calendar_feeds"
branch_labels = None
depends_on = None

# Marks the local day of each (tenant_id, at) the query {instants} yields, today excepted. A
# zone Postgres does not know marks the UTC day and both its neighbours (and today too): some
# day, wherever the zone is, and a write must never fail for the zone's sake.
MARK = """
    WITH m AS (SELECT * FROM ({instants}) AS i(tenant_id, at) WHERE at IS NOT NULL),
    zones AS MATERIALIZED (
        SELECT t.id, cass_known_zone(t.timezone) AS zone FROM tenant t
        WHERE t.id IN (SELECT tenant_id FROM m)
    )
    INSERT INTO report_snapshot_dirty (tenant_id, day)
    SELECT DISTINCT m.tenant_id, d.day
    FROM m JOIN zones z ON z.id = m.tenant_id
    CROSS JOIN LATERAL (
        SELECT CAST(m.at AT TIME ZONE z.zone AS date) AS day,
               CAST(clock_timestamp() AT TIME ZONE z.zone AS date) AS today
        WHERE z.zone IS NOT NULL
        UNION ALL
        SELECT CAST(m.at AT TIME ZONE 'UTC' AS date) + s.n, CAST('infinity' AS date)
        FROM generate_series(-1, 1) AS s(n)
        WHERE z.zone IS NULL
    ) AS d
    WHERE d.day < d.today;
"""

# table -> (instants of inserted rows (new_rows), of updated rows (old_rows, new_rows));
# deleted rows mark what inserted ones would, read from old_rows.
INSTANTS = {
    "ticket": (
        "SELECT tenant_id, created_at FROM {rows}"
        " UNION ALL SELECT tenant_id, resolved_at FROM {rows}",
        """
        WITH changed AS (
            SELECT n.tenant_id, n.id, o.created_at AS o_created, o.resolved_at AS o_resolved,
                   n.created_at AS n_created, n.resolved_at AS n_resolved,
                   (o.site_id, o.assignee_vendor_id, o.assignee_user_id, o.priority, o.category)
                   IS DISTINCT FROM
                   (n.site_id, n.assignee_vendor_id, n.assignee_user_id, n.priority, n.category)
                   AS moved
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (o.status, o.priority, o.category, o.channel, o.site_id, o.assignee_vendor_id,
                   o.assignee_user_id, o.created_at, o.resolved_at)
                  IS DISTINCT FROM
                  (n.status, n.priority, n.category, n.channel, n.site_id, n.assignee_vendor_id,
                   n.assignee_user_id, n.created_at, n.resolved_at)
        )
        SELECT tenant_id, o_created FROM changed
        UNION ALL SELECT tenant_id, n_created FROM changed
        UNION ALL SELECT tenant_id, o_resolved FROM changed
        UNION ALL SELECT tenant_id, n_resolved FROM changed
        UNION ALL SELECT c.tenant_id, w.created_at FROM changed c
            CROSS JOIN LATERAL (SELECT created_at FROM worklog WHERE ticket_id = c.id OFFSET 0) AS w
            WHERE c.moved
        UNION ALL SELECT c.tenant_id, e.at FROM changed c
            CROSS JOIN LATERAL (SELECT at FROM ticket_event WHERE ticket_id = c.id OFFSET 0) AS e
            WHERE c.moved
        UNION ALL SELECT c.tenant_id, k.stopped_at FROM changed c
            CROSS JOIN LATERAL (
                SELECT stopped_at FROM sla_clock
                WHERE ticket_id = c.id AND clock = 'first_response' OFFSET 0
            ) AS k
            WHERE c.moved
        """,
    ),
    "sla_clock": (
        """
        SELECT r.tenant_id, t.created_at FROM {rows} r
        CROSS JOIN LATERAL (SELECT created_at FROM ticket WHERE id = r.ticket_id OFFSET 0) AS t
        UNION ALL SELECT tenant_id, stopped_at FROM {rows} WHERE clock = 'first_response'
        """,
        """
        WITH changed AS (
            SELECT n.tenant_id, n.ticket_id, n.clock, o.stopped_at AS o_stopped,
                   n.stopped_at AS n_stopped
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            -- What the reports count: met, breached, cancelled, or still running (a warning or
            -- a pause changes nothing), and when a first response stopped.
            WHERE CASE WHEN o.state IN ('running', 'warning', 'paused') THEN 'running'
                       ELSE o.state END
                  IS DISTINCT FROM
                  CASE WHEN n.state IN ('running', 'warning', 'paused') THEN 'running'
                       ELSE n.state END
               OR n.clock = 'first_response' AND o.stopped_at IS DISTINCT FROM n.stopped_at
        )
        SELECT c.tenant_id, t.created_at FROM changed c
        CROSS JOIN LATERAL (SELECT created_at FROM ticket WHERE id = c.ticket_id OFFSET 0) AS t
        UNION ALL SELECT tenant_id, o_stopped FROM changed WHERE clock = 'first_response'
        UNION ALL SELECT tenant_id, n_stopped FROM changed WHERE clock = 'first_response'
        """,
    ),
    "worklog": (
        "SELECT tenant_id, created_at FROM {rows}",
        """
        SELECT tenant_id, created_at FROM old_rows
        UNION ALL SELECT tenant_id, created_at FROM new_rows
        """,
    ),
    "ticket_event": (
        "SELECT tenant_id, at FROM {rows}",
        "SELECT tenant_id, at FROM old_rows UNION ALL SELECT tenant_id, at FROM new_rows",
    ),
    "charging_session": (
        "SELECT tenant_id, started_at FROM {rows}",
        """
        WITH changed AS (
            SELECT o.tenant_id, o.started_at AS o_started, n.started_at AS n_started
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (o.started_at, o.charger_id, o.energy_wh, o.cost, o.currency)
                  IS DISTINCT FROM (n.started_at, n.charger_id, n.energy_wh, n.cost, n.currency)
        )
        SELECT tenant_id, o_started FROM changed UNION ALL SELECT tenant_id, n_started FROM changed
        """,
    ),
}


def _function(table: str) -> str:
    inserted, updated = INSTANTS[table]
    return f"""
        CREATE OR REPLACE FUNCTION cass_snapshot_mark_{table}() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = public, pg_catalog AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {MARK.format(instants=inserted.format(rows="new_rows"))}
            ELSIF TG_OP = 'DELETE' THEN
                {MARK.format(instants=inserted.format(rows="old_rows"))}
            ELSE
                {MARK.format(instants=updated)}
            END IF;
            RETURN NULL;
        END $$
    """


CHARGER_SESSIONS = "SELECT tenant_id, started_at FROM charging_session WHERE charger_id = NEW.id"
CHARGER_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION cass_snapshot_mark_charger_site() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    BEGIN
        {MARK.format(instants=CHARGER_SESSIONS)}
        RETURN NULL;
    END $$
    """


def upgrade():
    for table in INSTANTS:
        op.execute(_function(table))
    op.execute(CHARGER_FUNCTION)


def downgrade():
    # 0014's bodies mark the same days, only slower: nothing to undo.
    pass
