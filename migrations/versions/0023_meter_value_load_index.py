"""A covering index of the meter values the peak-load figures read: each charger's power
samples and energy-register readings in time order, with the columns the statement needs, so a
site's period is an index-only range scan per charger.

A fleet writes its meter values in time order, so one charger's rows lie one to a heap page:
with only ix_meter_value_charger_at, 30 days of a 10-charger site (36,050 rows, in a table of
43.8 million: tests/bench/bench_utilization.py) read 36,212 heap pages; a year 437,000.
Row security checks tenant_id, which the index carries too. The table is insert-only, so
autovacuum keeps its visibility map set and the scans stay index-only but for the newest pages.

Revision ID: 0023_meter_value_load_index
Revises: 0022_visit_start_index
Create Date: 2026-11-29 06:45:00

"""

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = "0023_meter_value_load_index"
down_revision = "0022_visit_start_index"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index(
        "ix_meter_value_load",
        "meter_value",
        ["charger_id", "at"],
        unique=False,
        postgresql_include=["tenant_id", "connector_no", "measurand", "phase", "unit", "value"],
        postgresql_where=sa.text(
            "measurand IN ('Power.Active.Import', 'Energy.Active.Import.Register') "
            "AND value IS NOT NULL"
        ),
    )


def downgrade():
    op.drop_index("ix_meter_value_load", table_name="meter_value")
