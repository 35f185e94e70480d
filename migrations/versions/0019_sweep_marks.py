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


def _migration_0018():
    """Return migration 0018's module: its marking rule and clock instants, as that text has them."""
    path = Path(__file__).with_name("0018_snapshot_marks_faster.py")
    spec = importlib.util.spec_from_file_location("migration_0018", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PREVIOUS = _migration_0018()

# 0018's rule, over arrays of (tenant, instant) pairs.
MARK_FUNCTION = f"""
    CREATE FUNCTION cass_snapshot_mark(tenant_ids bigint[], instants timestamptz[])
    RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    DECLARE marked integer;
    BEGIN
        {PREVIOUS.MARK.format(instants="SELECT * FROM unnest(tenant_ids, instants)")}
        GET DIAGNOSTICS marked = ROW_COUNT;
        RETURN marked;
    END $$
"""


def _marks(instants: str) -> str:
    return (
        "PERFORM cass_snapshot_mark(array_agg(x.tenant_id), array_agg(x.at))"
        f" FROM ({instants}) AS x(tenant_id, at);"
    )


# The clock trigger of 0018, through the function, skipping the statement the sweep marked.
INSERTED, UPDATED = PREVIOUS.INSTANTS["sla_clock"]
SLA_CLOCK_FUNCTION = f"""
    CREATE OR REPLACE FUNCTION cass_snapshot_mark_sla_clock() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND current_setting('cass.sweep_marked', true) = 'on' THEN
            RETURN NULL;
        END IF;
        IF TG_OP = 'INSERT' THEN
            {_marks(INSERTED.format(rows="new_rows"))}
        ELSIF TG_OP = 'DELETE' THEN
            {_marks(INSERTED.format(rows="old_rows"))}
        ELSE
            {_marks(UPDATED)}
        END IF;
        RETURN NULL;
    END $$
"""


def upgrade():
    op.execute(MARK_FUNCTION)
    op.execute(SLA_CLOCK_FUNCTION)


def downgrade():
    # Back to 0018's clock trigger, then the function goes.
    op.execute(PREVIOUS._function("sla_clock"))
    op.execute("DROP FUNCTION IF EXISTS cass_snapshot_mark(bigint[], timestamptz[])")
