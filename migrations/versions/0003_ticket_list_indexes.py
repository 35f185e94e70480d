"""ticket list: full-text search per tenant, through an index, under row-level security

Row-level security lets Postgres use an index only for leakproof operators, and the full-text
match `@@` is not one: searched as the app role, the ticket table is read row by row. So:

- ix_ticket_tenant_search indexes each ticket's words together with a token of its tenant
  ("~t<tenant id>"), so one GIN scan intersects a word with the tenant (a plain GIN index on
  the words would read the word's matches in every tenant);
- cass_ticket_matches(query, charger_prefix, limit), running as the table owner, returns the
  ids of the request's tenant's tickets (tenant from app.tenant_id, never a parameter) whose
  words match or whose charger's OCPP id starts with the prefix. The list then reads those
  rows by id under row-level security, as every other query.

Revision ID: 0003_ticket_list_indexes
Revises: 0002_ticket_desk
Create Date: 2026-11-28 13:00:00
"""
from alembic import op

from cass.db_security import APP_ROLE

# revision identifiers, used by Alembic.
revision = '0003_ticket_list_indexes'
down_revision = '0002_ticket_desk'
branch_labels = None
depends_on = None

SIGNATURE = "cass_ticket_matches(text, text, integer)"
DOCUMENT = "(search || array_to_tsvector(ARRAY['~t' || tenant_id::text]))"


def upgrade():
    op.execute(f"CREATE INDEX ix_ticket_tenant_search ON ticket USING gin ({DOCUMENT})")
    op.execute(f"""
        CREATE FUNCTION cass_ticket_matches(
            p_query text, p_charger_prefix text, p_limit integer
        ) RETURNS TABLE (id bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp
        AS $$
          SELECT t.id FROM ticket t
          WHERE t.tenant_id = nullif(current_setting('app.tenant_id', true), '')::bigint
            AND (
              {DOCUMENT} @@ websearch_to_tsquery('simple', p_query)
              AND {DOCUMENT}
                @@ quote_literal('~t' || current_setting('app.tenant_id', true))::tsquery
              OR t.charger_id = ANY (ARRAY(
                SELECT c.id FROM charger c
                WHERE c.tenant_id = nullif(current_setting('app.tenant_id', true), '')::bigint
                  AND c.ocpp_id ILIKE p_charger_prefix))
            )
          LIMIT p_limit
        $$
    """)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO {APP_ROLE}")


def downgrade():
    op.execute(f"DROP FUNCTION IF EXISTS {SIGNATURE}")
    op.execute("DROP INDEX IF EXISTS ix_ticket_tenant_search")
