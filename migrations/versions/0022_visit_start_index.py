"""An index on visit (tenant_id, starts_at): the visits of a range of start times with no
engineer or vendor filter (the dispatcher's week at /visits/week, GET /api/v1/visits) were
read by scanning the tenant's visits; ix_visit_engineer_starts and ix_visit_vendor_starts
serve only a given engineer or vendor.

EXPLAIN ANALYZE on 5,000 visits of one tenant over 1,000 days (the current week's 34):
- the week, `starts_at < end AND ends_at > start`: Seq Scan, 4,966 rows removed by the filter;
  with the lower bound `starts_at > start - 24 h` (a visit lasts at most 24 hours; the week
  view adds it, cass.visits.panel.overlapping): Index Scan using ix_visit_tenant_starts, Index
  Cond on tenant_id and both ends of starts_at, 4 rows removed.
- the API's list (ORDER BY starts_at, id LIMIT 51): Index Scan using ix_visit_tenant_starts,
  Index Cond (tenant_id, starts_at < end), yet 4,769 earlier visits removed by the filter
  `ends_at > start`; with the same lower bound, Bitmap Index Scan on ix_visit_tenant_starts
  over the range only (149 rows), then a top-N sort.

Revision ID: 0022_visit_start_index
Revises: 0021_webhooks
Create Date: 2026-11-29 09:00:00

"""

from alembic import op

# revision identifiers, used by Alembic.
revision = "0022_visit_start_index"
down_revision = "0021_webhooks"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_visit_tenant_starts", "visit", ["tenant_id", "starts_at"], unique=False)


def downgrade():
    op.drop_index("ix_visit_tenant_starts", table_name="visit")
