"""Report snapshots: each report's figures per local day, and the triggers marking stale days.

`report_snapshot` holds a report variant's additive figures per day and group key;
`report_snapshot_span` the days each variant holds; `report_snapshot_dirty` the days a late
change made stale. Statement-level triggers (transition tables, so a COPY or a bulk update costs
one insert, not one per row) on the tables the reports read mark the local days of the rows
they change, skipping today (never snapshotted). A ticket whose site, assignee, vendor, priority
or category changes also marks the days of its worklogs, events and first response, which the
filtered reports count by those fields. A charger moved to another site marks its sessions'
days; a tenant's new timezone drops its snapshots (every day is another day now).

Revision ID: 0014_report_snapshots
Revises: 0013_responded_index
Create Date: 2026-11-29 02:03:11.162505

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from cass.db_security import drop_tenant_rls_sql, tenant_rls_sql

# revision identifiers, used by Alembic.
revision = "0014_report_snapshots"
down_revision = "0013_responded_index"
branch_labels = None
depends_on = None

TABLES = ("report_snapshot", "report_snapshot_span", "report_snapshot_dirty")

# The zone if Postgres knows it (its tz database may be older than Python's), else NULL.
KNOWN_ZONE = """
    CREATE FUNCTION cass_known_zone(zone text) RETURNS text LANGUAGE plpgsql STABLE AS $$
    BEGIN
        PERFORM now() AT TIME ZONE zone;
        RETURN zone;
    EXCEPTION WHEN invalid_parameter_value THEN
        RETURN NULL;
    END $$
"""

# Marks the local day of each (tenant_id, at) the query {instants} yields, today excepted. A
# zone Postgres does not know marks the UTC day and both its neighbours (and today too): some
# day, wherever the zone is, and a write must never fail for the zone's sake.
MARK = """
    WITH m AS (SELECT * FROM ({instants}) AS i(tenant_id, at) WHERE at IS NOT NULL),
    zones AS (
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
        UNION ALL SELECT w.tenant_id, w.created_at
            FROM changed c JOIN worklog w ON w.ticket_id = c.id WHERE c.moved
        UNION ALL SELECT e.tenant_id, e.at
            FROM changed c JOIN ticket_event e ON e.ticket_id = c.id WHERE c.moved
        UNION ALL SELECT k.tenant_id, k.stopped_at
            FROM changed c JOIN sla_clock k ON k.ticket_id = c.id
            WHERE c.moved AND k.clock = 'first_response'
        """,
    ),
    "sla_clock": (
        """
        SELECT r.tenant_id, t.created_at FROM {rows} r JOIN ticket t ON t.id = r.ticket_id
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
        SELECT c.tenant_id, t.created_at FROM changed c JOIN ticket t ON t.id = c.ticket_id
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
        CREATE FUNCTION cass_snapshot_mark_{table}() RETURNS trigger LANGUAGE plpgsql
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


def _triggers(table: str) -> list[str]:
    name = f"cass_snapshot_mark_{table}"
    return [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
        f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table}"
        " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {name}()",
    ]


# Row triggers where the change is rare and the table hot (heartbeats update chargers): the
# WHEN clause costs next to nothing on every other update.
CHARGER_SESSIONS = "SELECT tenant_id, started_at FROM charging_session WHERE charger_id = NEW.id"
ROW_TRIGGERS = [
    f"""
    CREATE FUNCTION cass_snapshot_mark_charger_site() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    BEGIN
        {MARK.format(instants=CHARGER_SESSIONS)}
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER cass_snapshot_mark_charger_site AFTER UPDATE OF site_id ON charger
    FOR EACH ROW WHEN (OLD.site_id IS DISTINCT FROM NEW.site_id)
    EXECUTE FUNCTION cass_snapshot_mark_charger_site()
    """,
    """
    CREATE FUNCTION cass_snapshot_drop_spans() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_catalog AS $$
    BEGIN
        DELETE FROM report_snapshot_span WHERE tenant_id = NEW.id;
        DELETE FROM report_snapshot WHERE tenant_id = NEW.id;
        RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER cass_snapshot_drop_spans AFTER UPDATE OF timezone ON tenant
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION cass_snapshot_drop_spans()
    """,
]


def upgrade():
    # ### commands auto generated by Alembic - please adjust! ###
    op.create_table(
        "report_snapshot",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("report", sa.String(length=40), nullable=False),
        sa.Column("variant", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("figures", postgresql.ARRAY(sa.Numeric()), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "report", "variant", "day", "key"),
    )
    op.create_table(
        "report_snapshot_dirty",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("report_snapshot_dirty", schema=None) as batch_op:
        batch_op.create_index(
            "ix_report_snapshot_dirty_tenant_day", ["tenant_id", "day"], unique=False
        )

    op.create_table(
        "report_snapshot_span",
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.Column("report", sa.String(length=40), nullable=False),
        sa.Column("variant", sa.Text(), nullable=False),
        sa.Column("first_day", sa.Date(), nullable=True),
        sa.Column("last_day", sa.Date(), nullable=True),
        sa.Column(
            "used_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("tenant_id", "report", "variant"),
    )
    # ### end Alembic commands ###
    for table in TABLES:
        for sql in tenant_rls_sql(table):
            op.execute(sql)
    op.execute(KNOWN_ZONE)
    for table in INSTANTS:
        op.execute(_function(table))
        for sql in _triggers(table):
            op.execute(sql)
    for sql in ROW_TRIGGERS:
        op.execute(sql)


def downgrade():
    op.execute("DROP TRIGGER IF EXISTS cass_snapshot_drop_spans ON tenant")
    op.execute("DROP FUNCTION IF EXISTS cass_snapshot_drop_spans()")
    op.execute("DROP TRIGGER IF EXISTS cass_snapshot_mark_charger_site ON charger")
    op.execute("DROP FUNCTION IF EXISTS cass_snapshot_mark_charger_site()")
    for table in INSTANTS:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS cass_snapshot_mark_{table}_{event} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS cass_snapshot_mark_{table}()")
    op.execute("DROP FUNCTION IF EXISTS cass_known_zone(text)")
    for table in TABLES:
        for sql in drop_tenant_rls_sql(table):
            op.execute(sql)
    # ### commands auto generated by Alembic - please adjust! ###
    op.drop_table("report_snapshot_span")
    with op.batch_alter_table("report_snapshot_dirty", schema=None) as batch_op:
        batch_op.drop_index("ix_report_snapshot_dirty_tenant_day")

    op.drop_table("report_snapshot_dirty")
    op.drop_table("report_snapshot")
    # ### end Alembic commands ###
