"""Report snapshot marks written by the SLA sweep itself: `cass_snapshot_mark()` marks the days
of (tenant, instant) pairs (the rule of migrations 0014 and 0018, once); the sweep, which looks
up each changed clock's ticket anyway, marks its breaches' days of creation in its own statement
and sets `cass.sweep_marked` for it, so the clock trigger skips that statement instead of
looking every ticket up again (0.10-0.22 s of a catch-up of 8,112 clocks).

Revision ID: 0019_sweep_marks
Revises: 0018_snapshot_marks_faster
Create Date: 2026-11-29 03:55:00

"""

import importlib.util
from pathlib import Path

from alembic import op

# revision identifiers, used by Alembic.
revision = "0019_sweep_marks"
down_revision = "0018_snapshot_marks_faster"
branch_labels = None
depends_on = None

MARK_FUNCTION = """
    CREATE FUNCTION cass_snapshot_mark(tenant_ids bigint[], instants timestamptz[])
    RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    DECLARE marked integer;
    BEGIN
        WITH m AS (
            SELECT * FROM unnest(tenant_ids, instants) AS i(tenant_id, at) WHERE at IS NOT NULL
        ),
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
        GET DIAGNOSTICS marked = ROW_COUNT;
        RETURN marked;
    END $$
"""

# The clock trigger of 0018, but skipping the statement the sweep marked for itself.
SLA_CLOCK_FUNCTION = """
    CREATE OR REPLACE FUNCTION cass_snapshot_mark_sla_clock() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND current_setting('cass.sweep_marked', true) = 'on' THEN
            RETURN NULL;
        END IF;
        IF TG_OP = 'INSERT' THEN
            PERFORM cass_snapshot_mark(array_agg(x.tenant_id), array_agg(x.at)) FROM (
                SELECT r.tenant_id, t.created_at FROM new_rows r
                CROSS JOIN LATERAL (
                    SELECT created_at FROM ticket WHERE id = r.ticket_id OFFSET 0
                ) AS t
                UNION ALL SELECT tenant_id, stopped_at FROM new_rows
                WHERE clock = 'first_response'
            ) AS x(tenant_id, at);
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM cass_snapshot_mark(array_agg(x.tenant_id), array_agg(x.at)) FROM (
                SELECT r.tenant_id, t.created_at FROM old_rows r
                CROSS JOIN LATERAL (
                    SELECT created_at FROM ticket WHERE id = r.ticket_id OFFSET 0
                ) AS t
                UNION ALL SELECT tenant_id, stopped_at FROM old_rows
                WHERE clock = 'first_response'
            ) AS x(tenant_id, at);
        ELSE
            PERFORM cass_snapshot_mark(array_agg(x.tenant_id), array_agg(x.at)) FROM (
                WITH changed AS (
                    SELECT n.tenant_id, n.ticket_id, n.clock, o.stopped_at AS o_stopped,
                           n.stopped_at AS n_stopped
                    FROM old_rows o JOIN new_rows n ON n.id = o.id
                    WHERE CASE WHEN o.state IN ('running', 'warning', 'paused') THEN 'running'
                               ELSE o.state END
                          IS DISTINCT FROM
                          CASE WHEN n.state IN ('running', 'warning', 'paused') THEN 'running'
                               ELSE n.state END
                       OR n.clock = 'first_response' AND o.stopped_at IS DISTINCT FROM n.stopped_at
                )
                SELECT c.tenant_id, t.created_at FROM changed c
                CROSS JOIN LATERAL (
                    SELECT created_at FROM ticket WHERE id = c.ticket_id OFFSET 0
                ) AS t
                UNION ALL SELECT tenant_id, o_stopped FROM changed WHERE clock = 'first_response'
                UNION ALL SELECT tenant_id, n_stopped FROM changed WHERE clock = 'first_response'
            ) AS x(tenant_id, at);
        END IF;
        RETURN NULL;
    END $$
"""


def upgrade():
    op.execute(MARK_FUNCTION)
    op.execute(SLA_CLOCK_FUNCTION)


def downgrade():
    # Back to 0018's clock trigger (from that migration's own text), then the function goes.
    path = Path(__file__).with_name("0018_snapshot_marks_faster.py")
    spec = importlib.util.spec_from_file_location("migration_0018", path)
    previous = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(previous)
    op.execute(previous._function("sla_clock"))
    op.execute("DROP FUNCTION IF EXISTS cass_snapshot_mark(bigint[], timestamptz[])")
