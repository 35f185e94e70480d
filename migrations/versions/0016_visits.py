"""Site visits: appointments at a site for a ticket, with an engineer or a vendor, and their
check-ins. One engineer's visits that hold time never overlap: an exclusion constraint over
cass_visit_slot(), the visit as a range on a number line of its own per engineer (engineer id
times 10^12 seconds, plus the epoch seconds), which a built-in GiST range index keeps apart
(btree_gist, the usual way to mix "=" on the engineer with "&&" on the time, is not in the
embedded server). A tenant table under row-level security.

Revision ID: 0016_visits
Revises: 0015_charger_event_indexes
Create Date: 2026-11-29 03:05:00

"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from cass.db_security import APP_ROLE, drop_tenant_rls_sql, tenant_rls_sql

# revision identifiers, used by Alembic.
revision = "0016_visits"
down_revision = "0015_charger_event_indexes"
branch_labels = None
depends_on = None

# Immutable: the epoch of an instant does not depend on the session's timezone (extract() on
# timestamptz is only STABLE because other fields do).
SLOT_FUNCTION = """
    CREATE FUNCTION cass_visit_slot(engineer bigint, starts timestamptz, ends timestamptz)
    RETURNS numrange LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
        SELECT numrange(engineer * 1000000000000 + extract(epoch FROM starts),
                        engineer * 1000000000000 + extract(epoch FROM ends), '[)')
    $$
"""
STATUSES = "'scheduled','confirmed','en_route','on_site','done','cancelled','no_access'"


def upgrade():
    op.execute(SLOT_FUNCTION)
    op.create_table(
        "visit",
        sa.Column("ticket_id", sa.BigInteger(), nullable=False),
        sa.Column("engineer_id", sa.BigInteger(), nullable=True),
        sa.Column("vendor_id", sa.BigInteger(), nullable=True),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=12), server_default="scheduled", nullable=False),
        sa.Column("notes", sa.Text(), server_default="", nullable=False),
        sa.Column("outside_hours", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by_id", sa.BigInteger(), nullable=True),
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
        sa.CheckConstraint(f"status IN ({STATUSES})", name="ck_visit_status"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_visit_times"),
        sa.CheckConstraint(
            "engineer_id IS NOT NULL OR vendor_id IS NOT NULL", name="ck_visit_assignee"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "ticket_id"],
            ["ticket.tenant_id", "ticket.id"],
            name="fk_visit_ticket",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "engineer_id"],
            ["app_user.tenant_id", "app_user.id"],
            name="fk_visit_engineer",
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "vendor_id"], ["vendor.tenant_id", "vendor.id"], name="fk_visit_vendor"
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id", "site_id"], ["site.tenant_id", "site.id"], name="fk_visit_site"
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        postgresql.ExcludeConstraint(
            (sa.text("cass_visit_slot(engineer_id, starts_at, ends_at)"), "&&"),
            name="ex_visit_engineer_overlap",
            using="gist",
            where=sa.text("engineer_id IS NOT NULL AND status <> 'cancelled'"),
        ),
    )
    with op.batch_alter_table("visit", schema=None) as batch_op:
        batch_op.create_index("ix_visit_ticket", ["ticket_id", "starts_at"], unique=False)
        batch_op.create_index(
            "ix_visit_engineer_starts", ["tenant_id", "engineer_id", "starts_at"], unique=False
        )
        batch_op.create_index(
            "ix_visit_vendor_starts", ["tenant_id", "vendor_id", "starts_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_visit_tenant_id"), ["tenant_id"], unique=False)
    for sql in tenant_rls_sql("visit"):
        op.execute(sql)


def downgrade():
    for sql in drop_tenant_rls_sql("visit"):
        op.execute(sql)
    op.execute(f'REVOKE ALL ON "visit" FROM {APP_ROLE}')
    op.drop_table("visit")
    op.execute("DROP FUNCTION IF EXISTS cass_visit_slot(bigint, timestamptz, timestamptz)")
