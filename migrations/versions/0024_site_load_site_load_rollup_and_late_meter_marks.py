"""Site load per quarter hour, and stale-day marks for late meter values, events and stops.

`site_load` keeps each site's load per quarter hour (cass.services.peak_load), filled by the
report-snapshot job over the same days and marks as the report snapshots. For it, and for the
utilization snapshots, late rows must mark their days stale as the other history tables do
(migrations 0014 and 0018): meter values and charger events now mark the local day of each row
inserted, changed or deleted (only past days mark, so a charger's live rows cost one look at the
tenant's zone per statement: the bridge writes them with one COPY per batch); a session's stop
(`stopped_at`) and connector now mark its start day too; and a charger moved to another site
marks every day since its history began (its quarters and its connectors' time belong to another
site now).

Revision ID: 0024_site_load
Revises: 0023_meter_value_load_index
Create Date: 2026-11-29 08:31:04.904100

"""

import importlib.util
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from cass.db_security import drop_tenant_rls_sql, tenant_rls_sql

# revision identifiers, used by Alembic.
revision = "0024_site_load"
down_revision = "0023_meter_value_load_index"
branch_labels = None
depends_on = None


def _migration(name: str):
    """Return an earlier migration's module (its marking rule, instants and triggers)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PREVIOUS = _migration("0018_snapshot_marks_faster")
# 0014 made the statement triggers (transition tables) that call the marking functions.
TRIGGERS = _migration("0014_report_snapshots")._triggers


def _changed(columns: str) -> str:
    """Return the instants of updated rows whose `columns` changed: old and new."""
    return f"""
        WITH changed AS (
            SELECT o.tenant_id, o.at AS o_at, n.at AS n_at
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE ({", ".join("o." + c for c in columns.split())})
                  IS DISTINCT FROM ({", ".join("n." + c for c in columns.split())})
        )
        SELECT tenant_id, o_at FROM changed UNION ALL SELECT tenant_id, n_at FROM changed
        """


# table -> (instants of inserted rows ({rows}), of updated rows), as in 0018; deletes mark
# what inserts would, from old_rows. A handled event (`handled_at` set) changes no figure.
INSTANTS = {
    "charger_event": (
        "SELECT tenant_id, at FROM {rows}",
        _changed("at charger_id connector_no kind status"),
    ),
    "meter_value": (
        "SELECT tenant_id, at FROM {rows}",
        _changed("at charger_id connector_no measurand phase unit value"),
    ),
    "charging_session": (
        PREVIOUS.INSTANTS["charging_session"][0],
        """
        WITH changed AS (
            SELECT o.tenant_id, o.started_at AS o_started, n.started_at AS n_started
            FROM old_rows o JOIN new_rows n ON n.id = o.id
            WHERE (o.started_at, o.stopped_at, o.charger_id, o.connector_no, o.energy_wh, o.cost,
                   o.currency)
                  IS DISTINCT FROM
                  (n.started_at, n.stopped_at, n.charger_id, n.connector_no, n.energy_wh, n.cost,
                   n.currency)
        )
        SELECT tenant_id, o_started FROM changed UNION ALL SELECT tenant_id, n_started FROM changed
        """,
    ),
}
NEW_TABLES = ("charger_event", "meter_value")


def _function(table: str, instants: dict) -> str:
    inserted, updated = instants[table]
    mark = PREVIOUS.MARK
    return f"""
        CREATE OR REPLACE FUNCTION cass_snapshot_mark_{table}() RETURNS trigger LANGUAGE plpgsql
        SECURITY DEFINER SET search_path = public, pg_catalog AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                {mark.format(instants=inserted.format(rows="new_rows"))}
            ELSIF TG_OP = 'DELETE' THEN
                {mark.format(instants=inserted.format(rows="old_rows"))}
            ELSE
                {mark.format(instants=updated)}
            END IF;
            RETURN NULL;
        END $$
    """


# A moved charger's connectors belong to another site's figures on every day since its history
# began, not only on days it wrote something (its state carries over the others): an instant
# every 12 hours marks each local day up to now (a day is at least 23 hours long).
CHARGER_HISTORY = (
    PREVIOUS.CHARGER_SESSIONS
    + """
    UNION ALL
    SELECT NEW.tenant_id, g FROM generate_series(
        least((SELECT min(at) FROM charger_event WHERE charger_id = NEW.id),
              (SELECT min(at) FROM meter_value WHERE charger_id = NEW.id),
              (SELECT min(started_at) FROM charging_session WHERE charger_id = NEW.id)),
        clock_timestamp(), interval '12 hours') AS g
    """
)
CHARGER_FUNCTION = PREVIOUS.CHARGER_FUNCTION.replace(
    PREVIOUS.CHARGER_SESSIONS, CHARGER_HISTORY
)


def upgrade():
    op.create_table(
        "site_load",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=False),
        sa.Column("q", sa.DateTime(timezone=True), nullable=False),
        sa.Column("w", sa.Float(), nullable=False),
        sa.Column("wh", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "site_id", "q"),
    )
    op.create_index("ix_site_load_tenant_q", "site_load", ["tenant_id", "q"], unique=False)
    for sql in tenant_rls_sql("site_load"):
        op.execute(sql)
    for table in INSTANTS:
        op.execute(_function(table, INSTANTS))
    for table in NEW_TABLES:
        for sql in TRIGGERS(table):
            op.execute(sql)
    op.execute(CHARGER_FUNCTION)


def downgrade():
    op.execute(PREVIOUS.CHARGER_FUNCTION)
    op.execute(_function("charging_session", PREVIOUS.INSTANTS))
    for table in NEW_TABLES:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS cass_snapshot_mark_{table}_{event} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS cass_snapshot_mark_{table}()")
    for sql in drop_tenant_rls_sql("site_load"):
        op.execute(sql)
    op.drop_table("site_load")
