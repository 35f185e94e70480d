"""charger list and page at scale: indexes, and the charger search through an index under
row-level security

- ix_charger_tenant_ocpp (tenant_id, ocpp_id): the list's order and its keyset cursor within
  one tenant (the global unique ocpp_id index walks every tenant's chargers);
- ix_charger_tenant_model / ix_charger_tenant_firmware (tenant_id, model|firmware, ocpp_id):
  the model and firmware filters in list order, and the filter choices by a skip scan (a few
  index descents instead of grouping every charger);
- ix_connector_tenant_status (tenant_id, status, charger_id): the counts per connector status
  from the index alone, and "faulted now" / "a connector is ..." as a join from the few
  matching connectors rather than a probe per charger;
- ix_charger_search, a GIN index of each charger's trigrams (of its lower-cased OCPP id, serial
  and asset tag) with a token of its tenant, and cass_charger_matches(needle): row-level
  security lets Postgres use an index only for leakproof operators, and neither strpos nor
  array containment is one, so the function runs as the table owner, takes the tenant from
  app.tenant_id (never a parameter), narrows by the index and checks each candidate with the
  same strpos(lower(...)) test as before (its ROWS 20 tells the planner a search finds a
  few chargers, so the page reads them by id). pg_trgm is not used: it is not in every build of
  Postgres we run on (the embedded one has no contrib modules).

Revision ID: 0006_charger_indexes
Revises: 0005_chargers_desk
Create Date: 2026-11-28 17:40:00
"""
from alembic import op

from cass.db_security import APP_ROLE

# revision identifiers, used by Alembic.
revision = '0006_charger_indexes'
down_revision = '0005_chargers_desk'
branch_labels = None
depends_on = None

GRAMS = "cass_charger_grams(text)"
MATCHES = "cass_charger_matches(text)"
# Keep in step with cass.models.assets.CHARGER_SEARCH_DOCUMENT.
DOCUMENT = (
    "(((ARRAY['~t' || tenant_id::text] || cass_charger_grams(lower(ocpp_id)))"
    " || cass_charger_grams(lower(serial))) || cass_charger_grams(lower(asset_tag)))"
)


def upgrade():
    op.create_index("ix_charger_tenant_ocpp", "charger", ["tenant_id", "ocpp_id"])
    op.create_index("ix_charger_tenant_model", "charger", ["tenant_id", "model", "ocpp_id"])
    op.create_index(
        "ix_charger_tenant_firmware", "charger", ["tenant_id", "firmware", "ocpp_id"]
    )
    op.create_index(
        "ix_connector_tenant_status", "connector", ["tenant_id", "status", "charger_id"]
    )
    # The distinct three-character pieces of a text ('{}' for shorter text, NULL for NULL).
    op.execute(f"""
        CREATE FUNCTION {GRAMS.replace('(text)', '(p_text text)')} RETURNS text[]
        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
        AS $$
          SELECT coalesce(array_agg(DISTINCT substr(p_text, i, 3)), '{{}}')
          FROM generate_series(1, length(p_text) - 2) AS i
        $$
    """)
    op.execute(f"CREATE INDEX ix_charger_search ON charger USING gin ({DOCUMENT})")
    # p_needle is lower-cased by the caller, as the strpos test always had it.
    op.execute(f"""
        CREATE FUNCTION {MATCHES.replace('(text)', '(p_needle text)')}
        RETURNS TABLE (id bigint)
        LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp ROWS 20
        AS $$
          SELECT c.id FROM charger c
          WHERE c.tenant_id = nullif(current_setting('app.tenant_id', true), '')::bigint
            AND {DOCUMENT} @> (ARRAY['~t' || current_setting('app.tenant_id', true)]
                               || cass_charger_grams(p_needle))
            AND (strpos(lower(c.ocpp_id), p_needle) > 0
                 OR strpos(lower(c.serial), p_needle) > 0
                 OR strpos(lower(c.asset_tag), p_needle) > 0)
        $$
    """)
    op.execute(f"REVOKE ALL ON FUNCTION {MATCHES} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {MATCHES} TO {APP_ROLE}")


def downgrade():
    op.execute(f"DROP FUNCTION IF EXISTS {MATCHES}")
    op.execute("DROP INDEX IF EXISTS ix_charger_search")
    op.execute(f"DROP FUNCTION IF EXISTS {GRAMS}")
    op.drop_index("ix_connector_tenant_status", table_name="connector")
    op.drop_index("ix_charger_tenant_firmware", table_name="charger")
    op.drop_index("ix_charger_tenant_model", table_name="charger")
    op.drop_index("ix_charger_tenant_ocpp", table_name="charger")
