"""SQL for the database side of tenant isolation, used by the migrations.

Kept stable on purpose: old migrations call these functions, so change them only by adding new
ones.
"""

from __future__ import annotations

APP_ROLE = "cass_app"


def create_app_role_sql(role: str = APP_ROLE) -> list[str]:
    """Return SQL creating the non-bypassing role the web runs as, granted to the migrator."""
    return [
        f"""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
            CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS;
          END IF;
        END $$""",  # noqa: S608 (role is a fixed name, not input)
        # The migrator (and the processes using DATABASE_URL) switch to the role per transaction.
        f"GRANT {role} TO CURRENT_USER",
        f"GRANT USAGE ON SCHEMA public TO {role}",
    ]


def grant_table_sql(table: str, role: str = APP_ROLE) -> list[str]:
    """Return SQL letting the app role read and write `table` (RLS still applies)."""
    return [
        f'GRANT SELECT, INSERT, UPDATE, DELETE ON "{table}" TO {role}',
    ]


def tenant_rls_sql(table: str, column: str = "tenant_id", role: str = APP_ROLE) -> list[str]:
    """Return SQL enabling row-level security on `table`, matching `column` to app.tenant_id.

    With no tenant set, `nullif(...)` is NULL and the policy matches no row at all.
    """
    match = f"{column} = nullif(current_setting('app.tenant_id', true), '')::bigint"
    return [
        *grant_table_sql(table, role),
        f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY',
        f'CREATE POLICY tenant_isolation ON "{table}" TO {role} '
        f"USING ({match}) WITH CHECK ({match})",
    ]


def drop_tenant_rls_sql(table: str) -> list[str]:
    """Return SQL undoing tenant_rls_sql()."""
    return [
        f'DROP POLICY IF EXISTS tenant_isolation ON "{table}"',
        f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY',
    ]
