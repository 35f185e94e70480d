"""The schema exists only through migrations, and they agree with the models (point 2)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from cass.config import ROOT
from cass.embedded_db import ensure_database
from cass.extensions import db
from cass.models.ocpp import include_in_migrations
from tests.conftest import make_app


def test_models_and_migrations_agree(app):
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": include_in_migrations}
        )
        diff = compare_metadata(context, db.metadata)
    assert diff == [], f"models and migrations disagree: {diff}"


def test_migrations_go_down_and_up_on_a_fresh_database(pg_server):
    url = ensure_database(pg_server.get_uri(), "cass_roundtrip")
    app = make_app(url)
    with app.app_context():
        upgrade()
        downgrade(revision="base")
        upgrade()
        db.engine.dispose()
    with psycopg.connect(url) as conn:
        tables = {
            r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        }
        assert {"tenant", "app_user", "vendor", "site", "charger", "connector"} <= tables
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute('DROP DATABASE "cass_roundtrip" WITH (FORCE)')


def test_readyz_reports_pending_migrations(pg_server):
    url = ensure_database(pg_server.get_uri(), "cass_unmigrated")
    app = make_app(url)
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "migrating"
    with app.app_context():
        db.engine.dispose()
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute('DROP DATABASE "cass_unmigrated" WITH (FORCE)')


def test_never_sqlite_anywhere():
    tracked = subprocess.run(
        [
            "git",
            "ls-files",
            "cass",
            "ocpp_bridge",
            "migrations",
            "tests",
            "pyproject.toml",
            "wsgi.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    offenders = [
        f
        for f in tracked
        if f != "tests/test_migrations.py"
        and "sqlite" in Path(ROOT, f).read_text(errors="ignore").lower()
    ]
    assert offenders == []
