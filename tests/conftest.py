"""Fixtures: one throwaway embedded PostgreSQL per test session, migrated once; each test
starts from empty tables (truncation, so that threads and subprocesses see the same data)."""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from cass import create_app
from cass.config import Config
from cass.embedded_db import ensure_database, start_embedded
from cass.extensions import db

DEMO_PASSWORD = "demo-password-123"
CHARGER_KEY = "charger-key-123"
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
CSRF_HEADER_RE = re.compile(r'"X-CSRFToken": "([^"]+)"')


@pytest.fixture(scope="session")
def pg_server() -> Iterator[object]:
    """Start the embedded PostgreSQL for the whole test session."""
    root = Path(tempfile.mkdtemp(prefix="cass-test-"))
    server = start_embedded(root / "pgdata", cleanup_mode="delete")
    # A throwaway database needs no durability; this makes truncation and commits cheap.
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def database_url(pg_server, tmp_path_factory) -> str:
    """Create and migrate the test database; return its libpq URL."""
    url = ensure_database(pg_server.get_uri(), "cass_test")
    os.environ["CASS_INSTANCE_DIR"] = str(tmp_path_factory.mktemp("instance"))
    app = create_app(Config(DATABASE_URL=url, SECRET_KEY="test"))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    return url


# Which tables and column-owned sequences the schema has, per database URL (the schema is
# migrated once per session, so they never change under a test).
_SCHEMA: dict[str, tuple[list[str], list[str]]] = {}


def _schema(conn: psycopg.Connection, url: str) -> tuple[list[str], list[str]]:
    if url not in _SCHEMA:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ]
        sequences = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT d.objid::regclass::text FROM pg_depend d "
                "JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
                "WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass "
                "AND d.deptype IN ('a', 'i')"
            )
        ]
        _SCHEMA[url] = (tables, sequences)
    return _SCHEMA[url]


def truncate_all(url: str) -> None:
    """Empty every table and restart the sequences its columns own (as the owner, which RLS
    does not filter), as TRUNCATE ... RESTART IDENTITY CASCADE would."""
    # TRUNCATE makes new files for every table and index: 0.3 s a test even when all are empty,
    # most of the suite's time. Deleting the rows of the tables that have any takes milliseconds;
    # with the replication role no trigger fires, so neither foreign keys nor marks get in the way.
    with psycopg.connect(url, autocommit=True) as conn:
        tables, sequences = _schema(conn, url)
        filled = [
            r[0]
            for r in conn.execute(
                " UNION ALL ".join(
                    f"SELECT '{t}' FROM (SELECT FROM \"{t}\" LIMIT 1) AS x" for t in tables
                )
            )
        ]
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            for table in filled:
                conn.execute(f'DELETE FROM "{table}"')
        if sequences:
            conn.execute(
                "SELECT setval(seqrelid, seqstart, false) FROM pg_sequence "
                "WHERE seqrelid = ANY(%s::regclass[]) AND pg_sequence_last_value(seqrelid) "
                "IS NOT NULL",
                (sequences,),
            )


def make_app(database_url: str, **overrides: object) -> Flask:
    """Create a test app on the test database."""
    files = Path(os.environ["CASS_INSTANCE_DIR"]) / "files"
    overrides.setdefault("CASS_STORAGE_URL", f"file://{files}")
    app = create_app(Config(DATABASE_URL=database_url, SECRET_KEY="test-secret"), **overrides)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    """A fresh app on empty tables."""
    truncate_all(database_url)
    app = make_app(database_url)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="session")
def demo_hashes() -> tuple[str, str]:
    """Hash the demo password and charger key once per session (argon2 is slow on purpose)."""
    from cass.services.passwords import hash_password
    from ocpp_bridge.keys import hash_key

    return hash_password(DEMO_PASSWORD), hash_key(CHARGER_KEY)


@dataclass
class Snapshot:
    """The demo data as COPY output per table, and the ids tests refer to by name."""

    tables: list[tuple[str, str, bytes]]  # (table, column list, binary COPY data)
    ids: dict[str, int]


def _copy_columns(conn: psycopg.Connection, table: str) -> str:
    """Return the table's stored (not generated) columns, quoted, in order."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (f'"{table}"',),
    ).fetchall()
    return ", ".join(f'"{r[0]}"' for r in rows)


@pytest.fixture(scope="session")
def demo_snapshot(database_url: str, demo_hashes: tuple[str, str]) -> Snapshot:
    """Seed the demo data once, then keep it as COPY data (seeding through services is slow)."""
    from sqlalchemy import select

    from cass.models import Charger, Tenant, User, Vendor
    from cass.services.demo import seed_demo
    from cass.tenancy import system_context

    truncate_all(database_url)
    app = make_app(database_url)
    with app.app_context():
        with system_context():
            seed_demo(DEMO_PASSWORD, CHARGER_KEY, demo_hashes)
            ids = {t.slug: t.id for t in db.session.scalars(select(Tenant))}
            for user in db.session.scalars(select(User)):
                ids[user.email] = user.id
            for vendor in db.session.scalars(select(Vendor)):
                ids[f"vendor:{vendor.name}"] = vendor.id
            for charger in db.session.scalars(select(Charger)):
                ids[charger.ocpp_id] = charger.id
        order = [t.name for t in db.metadata.sorted_tables]
        db.engine.dispose()
    tables = []
    with psycopg.connect(database_url) as conn:
        for table in order:
            columns = _copy_columns(conn, table)
            data = bytearray()
            cursor = conn.cursor()
            with cursor.copy(
                # A query, not the table: COPY TO cannot read a partitioned table directly.
                f'COPY (SELECT {columns} FROM "{table}") TO STDOUT (FORMAT binary)'
            ) as copy:
                for chunk in copy:
                    data += chunk
            if cursor.rowcount:  # an empty table has nothing to restore
                tables.append((table, columns, bytes(data)))
    return Snapshot(tables, ids)


@pytest.fixture
def demo(app: Flask, database_url: str, demo_snapshot: Snapshot) -> dict[str, int]:
    """Restore the demo data into the empty tables; return the ids the tests use, by name."""
    with psycopg.connect(database_url) as conn:
        for table, columns, data in demo_snapshot.tables:
            with conn.cursor().copy(
                f'COPY "{table}" ({columns}) FROM STDIN (FORMAT binary)'
            ) as copy:
                copy.write(data)
        # Identity sequences must continue after the restored ids (one statement for all).
        conn.execute(
            "SELECT "
            + ", ".join(
                f"setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
                f'coalesce((SELECT max(id) FROM "{table}"), 0) + 1, false)'
                for table, columns, _ in demo_snapshot.tables
                if '"id"' in columns.split(", ")
            )
        )
    return dict(demo_snapshot.ids)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client of the app."""
    return app.test_client()


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """Serve `app` from a background thread on a real socket; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
        server.server_close()


def csrf_from(html: str) -> str:
    """Return the CSRF token embedded in a page (form field or the body's hx-headers)."""
    match = CSRF_RE.search(html) or CSRF_HEADER_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = DEMO_PASSWORD, **extra: str):
    """Sign in through the real form; return the POST response."""
    token = csrf_from(client.get("/login").get_data(as_text=True))
    return client.post(
        "/login", data={"csrf_token": token, "email": email, "password": password, **extra}
    )


def as_user(app: Flask, email: str) -> FlaskClient:
    """Return a new client signed in as `email`."""
    client = app.test_client()
    assert login(client, email).status_code == 303
    return client


def page_token(client: FlaskClient, path: str = "/") -> str:
    """Return the CSRF token of a signed-in page."""
    return csrf_from(client.get(path).get_data(as_text=True))


# The longest files go first. xdist hands out whole files (--dist loadfile) in collection order,
# so a long file collected late would run alone at the end while the other worker idles. The
# access matrix (a signed-in client per cell) is the longest by far.
SLOW_FIRST = ("tests/test_permissions.py", "tests/test_api_schema.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the items of SLOW_FIRST files to the front, keeping every other order."""
    items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FIRST))
