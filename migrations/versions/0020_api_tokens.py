"""API tokens: a user's bearer credentials for /api/v1, scoped read or write. Only the SHA-256
of the secret is kept (unique: a request has nothing else to go by). The row also holds the
token's rate-limit window. A tenant table under row-level security.

Revision ID: 0020_api_tokens
Revises: 0019_sweep_marks
Create Date: 2026-11-29 05:02:01.373673

"""

import sqlalchemy as sa
from alembic import op

from cass.db_security import APP_ROLE, drop_tenant_rls_sql, tenant_rls_sql

# revision identifiers, used by Alembic.
revision = "0020_api_tokens"
down_revision = "0019_sweep_marks"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_token",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_calls", sa.Integer(), server_default="0", nullable=False),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("tenant_id", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("scope IN ('read', 'write')", name="ck_api_token_scope"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["app_user.tenant_id", "app_user.id"],
            name="fk_api_token_user",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenant.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash", name="uq_api_token_token_hash"),
    )
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.create_index("ix_api_token_user", ["tenant_id", "user_id", "id"], unique=False)
    for sql in tenant_rls_sql("api_token"):
        op.execute(sql)


def downgrade():
    for sql in drop_tenant_rls_sql("api_token"):
        op.execute(sql)
    op.execute(f'REVOKE ALL ON "api_token" FROM {APP_ROLE}')
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_index("ix_api_token_user")

    op.drop_table("api_token")
