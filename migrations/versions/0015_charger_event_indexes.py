"""Charger reports from indexes alone: each charger's online/offline events by time (uptime), and
the tenant's faults carrying their charger and error code (counted without reading the table).

Revision ID: 0015_charger_event_indexes
Revises: 0014_report_snapshots
Create Date: 2026-11-29 02:36:21.369902

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0015_charger_event_indexes"
down_revision = "0014_report_snapshots"
branch_labels = None
depends_on = None

# As in cass.models.ocpp (FAULT_PREDICATE), written out: a migration must not change with the code.
FAULTS = "kind = 'status' AND (status = 'Faulted' OR coalesce(error_code, 'NoError') <> 'NoError')"


def upgrade():
    with op.batch_alter_table("charger_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_charger_event_presence",
            ["charger_id", "at", "id"],
            unique=False,
            postgresql_include=["kind", "tenant_id"],
            postgresql_where=sa.text("kind IN ('online', 'offline')"),
        )
        batch_op.drop_index("ix_charger_event_tenant_faults", postgresql_where=sa.text(FAULTS))
        batch_op.create_index(
            "ix_charger_event_tenant_faults",
            ["tenant_id", "at"],
            unique=False,
            postgresql_include=["charger_id", "error_code"],
            postgresql_where=sa.text(FAULTS),
        )


def downgrade():
    with op.batch_alter_table("charger_event", schema=None) as batch_op:
        batch_op.drop_index("ix_charger_event_tenant_faults", postgresql_where=sa.text(FAULTS))
        batch_op.create_index(
            "ix_charger_event_tenant_faults",
            ["tenant_id", "at"],
            unique=False,
            postgresql_where=sa.text(FAULTS),
        )
        batch_op.drop_index(
            "ix_charger_event_presence", postgresql_where=sa.text("kind IN ('online', 'offline')")
        )
