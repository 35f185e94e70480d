"""Dashboard indexes: the open tickets per status and priority, and the live SLA clocks by
ticket (the count of tickets at risk), per tenant, each read from the index alone.

- ix_ticket_tenant_open (tenant_id, status, priority) INCLUDE (assignee_vendor_id) over open
  tickets only (a vendor's too: their other index, by vendor and update, needs the table);
- ix_sla_clock_tenant_live (tenant_id, ticket_id) INCLUDE (due_at, state) over live clocks
  only: ix_sla_clock_tenant_due also holds every stopped breached clock, which a count of the
  clocks at risk now would read and throw away.

Revision ID: 0012_dashboard_indexes
Revises: 0011_report_indexes
Create Date: 2026-11-29 00:45:00

"""

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0012_dashboard_indexes"
down_revision = "0011_report_indexes"
branch_labels = None
depends_on = None

OPEN = "status IN ('new','assigned','in_progress','on_hold','reopened')"
LIVE = "stopped_at IS NULL AND state IN ('running','warning','breached')"


def upgrade():
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.create_index(
            "ix_ticket_tenant_open",
            ["tenant_id", "status", "priority"],
            unique=False,
            postgresql_include=["assignee_vendor_id"],
            postgresql_where=sa.text(OPEN),
        )
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sla_clock_tenant_live",
            ["tenant_id", "ticket_id"],
            unique=False,
            postgresql_include=["due_at", "state"],
            postgresql_where=sa.text(LIVE),
        )


def downgrade():
    with op.batch_alter_table("sla_clock", schema=None) as batch_op:
        batch_op.drop_index("ix_sla_clock_tenant_live", postgresql_where=sa.text(LIVE))
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_index("ix_ticket_tenant_open", postgresql_where=sa.text(OPEN))
