"""Outbound webhooks: a tenant's endpoints (URL, signing secret, subscribed events) and the
queue and log of deliveries to them, both tenant tables under row-level security.

Events are queued by statement-level AFTER INSERT triggers (transition tables) on the tables
every writer appends to, in the writer's own transaction (a transactional outbox): whoever
writes -- the web, the scheduler's SLA sweep, the OCPP bridge, the CSMS API -- enqueues alike.

- ticket_event: the statement's events of one ticket become one ticket.created (if a
  'created' event is among them) or ticket.changed delivery, with the changes listed;
- charger_event (kind 'status'): a fault (status Faulted or an error code other than
  NoError) is charger.faulted; a non-fault status after a fault of the same connector is
  charger.recovered (cass.services.workflow.facts_for_charger_event's rule);
- sla_event (kinds 'warning', 'breached'): sla.warning and sla.breached.

Each trigger first asks the tiny partial index ix_webhook_endpoint_active whether any
statement row's tenant has an active endpoint subscribed, and returns at once when not.

Revision ID: 0021_webhooks
Revises: 0020_api_tokens
Create Date: 2026-11-29 05:03:50.678904

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from cass.db_security import APP_ROLE, drop_tenant_rls_sql, tenant_rls_sql

# revision identifiers, used by Alembic.
revision = "0021_webhooks"
down_revision = "0020_api_tokens"
branch_labels = None
depends_on = None

# The payload's shape in one place: {"id", "type", "occurred_at", "tenant", "data"}, one row
# per (event, subscribed active endpoint); "id" is the delivery's event_id (X-CASS-Delivery).
ENQUEUE = """
CREATE FUNCTION cass_webhook_time(at timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;
CREATE FUNCTION cass_webhook_enqueue(
  tenants bigint[], types text[], ats timestamptz[], datas jsonb[]
) RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN
  -- PL/pgSQL, not SQL: its statement's plan is kept across calls (a SQL function's is not).
  INSERT INTO webhook_delivery (tenant_id, endpoint_id, event_type, event_id, payload)
  SELECT x.tenant_id, x.endpoint_id, x.type, x.eid,
         jsonb_build_object('id', x.eid, 'type', x.type, 'occurred_at', cass_webhook_time(x.at),
                            'tenant', x.slug, 'data', x.data)
  FROM (
    SELECT ev.tenant_id, e.id AS endpoint_id, ev.type, ev.at, ev.data, tn.slug,
           gen_random_uuid() AS eid
    FROM unnest(tenants, types, ats, datas) AS ev(tenant_id, type, at, data)
    JOIN webhook_endpoint e
      ON e.tenant_id = ev.tenant_id AND e.active AND ev.type = ANY (e.events)
    JOIN tenant tn ON tn.id = ev.tenant_id
  ) x;
END
$$;
"""


def _wanted(types: str, rows: str = "TRUE") -> str:
    """Return the trigger's early exits: no active endpoint anywhere subscribes to `types` (a
    cached plan over the tiny partial index: the usual case costs next to nothing), or none of a
    statement row's tenant does."""
    return f"""
  IF NOT EXISTS (SELECT 1 FROM webhook_endpoint e WHERE e.active AND e.events && {types}) THEN
    RETURN NULL;
  END IF;
  IF NOT EXISTS (
    SELECT 1 FROM webhook_endpoint e
    WHERE e.active AND e.events && {types}
      AND EXISTS (SELECT 1 FROM new_rows n WHERE n.tenant_id = e.tenant_id AND {rows})
  ) THEN
    RETURN NULL;
  END IF;"""


def _subscribed(types: str) -> str:
    return f"(SELECT e.tenant_id FROM webhook_endpoint e WHERE e.active AND e.events && {types})"


TICKET_TYPES = "ARRAY['ticket.created', 'ticket.changed']"
CHARGER_TYPES = "ARRAY['charger.faulted', 'charger.recovered']"
SLA_TYPES = "ARRAY['sla.warning', 'sla.breached']"
FAULT = "({t}.status = 'Faulted' OR coalesce({t}.error_code, '') NOT IN ('', 'NoError'))"

TICKET_FUNCTION = f"""
CREATE FUNCTION cass_webhook_ticket_event() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN{_wanted(TICKET_TYPES)}
  -- One delivery per ticket and statement: a change's field events arrive in one INSERT.
  PERFORM cass_webhook_enqueue(array_agg(g.tenant_id), array_agg(g.type), array_agg(g.at),
                               array_agg(g.data))
  FROM (
    SELECT n.tenant_id,
           CASE WHEN bool_or(n.kind = 'created') THEN 'ticket.created' ELSE 'ticket.changed' END
             AS type,
           max(n.at) AS at,
           jsonb_build_object(
             'id', t.id, 'key', tn.key_prefix || '-' || t.number, 'title', t.title,
             'status', t.status, 'priority', t.priority, 'category', t.category,
             'channel', t.channel, 'charger', c.ocpp_id, 'site_id', t.site_id,
             'assignee_user_id', t.assignee_user_id,
             'assignee_vendor_id', t.assignee_vendor_id, 'version', t.version,
             'created_at', cass_webhook_time(t.created_at),
             'updated_at', cass_webhook_time(t.updated_at),
             'actor_id', max(n.actor_id),
             'changes', coalesce(
               jsonb_agg(jsonb_build_object('kind', n.kind, 'field', n.field,
                                            'from', n.from_value, 'to', n.to_value,
                                            'note', n.note) ORDER BY n.id)
                 FILTER (WHERE n.kind <> 'created'),
               '[]'::jsonb)
           ) AS data
    FROM new_rows n
    JOIN ticket t ON t.id = n.ticket_id
    JOIN tenant tn ON tn.id = n.tenant_id
    LEFT JOIN charger c ON c.id = t.charger_id
    WHERE n.tenant_id IN {_subscribed(TICKET_TYPES)}
    GROUP BY n.tenant_id, t.id, tn.id, c.id
  ) g;
  RETURN NULL;
END $$
"""

CHARGER_FUNCTION = f"""
CREATE FUNCTION cass_webhook_charger_event() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN{_wanted(CHARGER_TYPES, "n.kind = 'status'")}
  PERFORM cass_webhook_enqueue(array_agg(g.tenant_id), array_agg(g.type), array_agg(g.at),
                               array_agg(g.data))
  FROM (
    SELECT n.tenant_id, n.at,
           CASE WHEN {FAULT.format(t="n")} THEN 'charger.faulted' ELSE 'charger.recovered' END
             AS type,
           jsonb_build_object(
             'ocpp_id', c.ocpp_id, 'charger_id', c.id, 'site_id', c.site_id,
             'connector', n.connector_no, 'status', n.status, 'error_code', n.error_code,
             'info', n.info, 'vendor_error_code', n.vendor_error_code,
             'previous_status', p.status, 'previous_error_code', p.error_code,
             'source', coalesce(n.data ->> 'source', 'ocpp')
           ) AS data
    FROM new_rows n
    JOIN charger c ON c.id = n.charger_id
    -- The connector's status before this one (the rule of facts_for_charger_event).
    LEFT JOIN LATERAL (
      SELECT p.status, p.error_code FROM charger_event p
      WHERE p.charger_id = n.charger_id AND p.connector_no = n.connector_no
        AND p.kind = 'status' AND p.id < n.id
      ORDER BY p.at DESC, p.id DESC LIMIT 1
    ) p ON true
    WHERE n.kind = 'status' AND n.tenant_id IN {_subscribed(CHARGER_TYPES)}
      AND ({FAULT.format(t="n")} OR (p.status IS NOT NULL AND {FAULT.format(t="p")}))
  ) g;
  RETURN NULL;
END $$
"""

SLA_FUNCTION = f"""
CREATE FUNCTION cass_webhook_sla_event() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER SET search_path = public, pg_catalog AS $$
BEGIN{_wanted(SLA_TYPES, "n.kind IN ('warning', 'breached')")}
  PERFORM cass_webhook_enqueue(array_agg(g.tenant_id), array_agg(g.type), array_agg(g.at),
                               array_agg(g.data))
  FROM (
    SELECT n.tenant_id, n.at,
           CASE n.kind WHEN 'warning' THEN 'sla.warning' ELSE 'sla.breached' END AS type,
           jsonb_build_object(
             'clock', n.clock,
             'due_at', cass_webhook_time((n.detail ->> 'due_at')::timestamptz),
             'ticket', jsonb_build_object(
               'id', t.id, 'key', tn.key_prefix || '-' || t.number, 'title', t.title,
               'status', t.status, 'priority', t.priority,
               'assignee_user_id', t.assignee_user_id,
               'assignee_vendor_id', t.assignee_vendor_id)
           ) AS data
    FROM new_rows n
    -- Each clock's ticket by key: a catch-up sweep inserts thousands of events at once.
    JOIN LATERAL (SELECT * FROM ticket t WHERE t.id = n.ticket_id OFFSET 0) t ON true
    JOIN tenant tn ON tn.id = n.tenant_id
    WHERE n.kind IN ('warning', 'breached') AND n.tenant_id IN {_subscribed(SLA_TYPES)}
  ) g;
  RETURN NULL;
END $$
"""

SOURCES = (
    ("ticket_event", "cass_webhook_ticket_event"),
    ("charger_event", "cass_webhook_charger_event"),
    ("sla_event", "cass_webhook_sla_event"),
)
TRIGGERS = [
    ENQUEUE,
    TICKET_FUNCTION,
    CHARGER_FUNCTION,
    SLA_FUNCTION,
    *(
        f"CREATE TRIGGER {function} AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        for table, function in SOURCES
    ),
]


def upgrade():
    op.create_table(
        "webhook_endpoint",
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("description", sa.String(length=200), server_default="", nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("events", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "events <@ ARRAY['ticket.created', 'ticket.changed', 'charger.faulted', 'charger.recovered', 'sla.warning', 'sla.breached']::text[]",
            name="ck_webhook_endpoint_events",
        ),
        sa.CheckConstraint("url ~ '^https?://'", name="ck_webhook_endpoint_url"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tenant_id", "id", name="uq_webhook_endpoint_tenant_id"),
    )
    with op.batch_alter_table("webhook_endpoint", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_endpoint_active",
            ["tenant_id"],
            unique=False,
            postgresql_include=["events"],
            postgresql_where=sa.text("active"),
        )

    op.create_table(
        "webhook_delivery",
        sa.Column("endpoint_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column(
            "event_id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False
        ),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("status", sa.String(length=10), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=True,
        ),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.Column("response_ms", sa.Integer(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed')", name="ck_webhook_delivery_status"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "endpoint_id"],
            ["webhook_endpoint.tenant_id", "webhook_endpoint.id"],
            name="fk_webhook_delivery_endpoint",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", name="uq_webhook_delivery_event_id"),
    )
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_delivery_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status = 'pending'"),
        )
        batch_op.create_index(
            "ix_webhook_delivery_endpoint", ["tenant_id", "endpoint_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_webhook_delivery_finished",
            ["created_at"],
            unique=False,
            postgresql_where=sa.text("status <> 'pending'"),
        )

    for table in ("webhook_endpoint", "webhook_delivery"):
        for sql in tenant_rls_sql(table):
            op.execute(sql)
    for sql in TRIGGERS:
        op.execute(sql)


def downgrade():
    for table, function in SOURCES:
        op.execute(f"DROP TRIGGER IF EXISTS {function} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.execute(
        "DROP FUNCTION IF EXISTS cass_webhook_enqueue(bigint[], text[], timestamptz[], jsonb[])"
    )
    op.execute("DROP FUNCTION IF EXISTS cass_webhook_time(timestamptz)")
    for table in ("webhook_delivery", "webhook_endpoint"):
        for sql in drop_tenant_rls_sql(table):
            op.execute(sql)
        op.execute(f'REVOKE ALL ON "{table}" FROM {APP_ROLE}')
    with op.batch_alter_table("webhook_delivery", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_delivery_finished", postgresql_where=sa.text("status <> 'pending'")
        )
        batch_op.drop_index("ix_webhook_delivery_endpoint")
        batch_op.drop_index(
            "ix_webhook_delivery_due", postgresql_where=sa.text("status = 'pending'")
        )

    op.drop_table("webhook_delivery")
    with op.batch_alter_table("webhook_endpoint", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_endpoint_active",
            postgresql_include=["events"],
            postgresql_where=sa.text("active"),
        )

    op.drop_table("webhook_endpoint")
