"""Calendar feeds: a user's secret iCalendar URL of their site visits. Only the SHA-256 of the
token is kept (unique: the feed request has nothing else to go by); a user has at most one live
feed (a partial unique index over the ones not revoked). A tenant table under row-level security.

Revision ID: 0017_calendar_feeds
Revises: 0016_visits
Create Date: 2026-11-29 02:54:12.463973

"""

import sqlalchemy as sa
from alembic import op

from cass.db_security import APP_ROLE, drop_tenant_rls_sql, tenant_rls_sql

# revision identifiers, used by Alembic.
revision = "0017_calendar_feeds"
down_revision = "0016_visits"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "calendar_feed",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["app_user.tenant_id", "app_user.id"],
            name="fk_calendar_feed_user",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_calendar_feed_token_hash"),
    )
    with op.batch_alter_table("calendar_feed", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_feed_tenant_id"), ["tenant_id"], unique=False)
        batch_op.create_index(
            "uq_calendar_feed_live",
            ["tenant_id", "user_id"],
            unique=True,
            postgresql_where=sa.text("revoked_at IS NULL"),
        )
    for sql in tenant_rls_sql("calendar_feed"):
        op.execute(sql)


def downgrade():
    for sql in drop_tenant_rls_sql("calendar_feed"):
        op.execute(sql)
    op.execute(f'REVOKE ALL ON "calendar_feed" FROM {APP_ROLE}')
    with op.batch_alter_table("calendar_feed", schema=None) as batch_op:
        batch_op.drop_index("uq_calendar_feed_live", postgresql_where=sa.text("revoked_at IS NULL"))
        batch_op.drop_index(batch_op.f("ix_calendar_feed_tenant_id"))
    op.drop_table("calendar_feed")
