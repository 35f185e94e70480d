"""`cass backup`, `cass restore` and `cass db reset` (issue 10, point 5): the round trip."""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from flask import Flask
from sqlalchemy import select

from cass.backup import BackupError, find_tool, unpack_backup
from cass.cli import cli
from cass.embedded_db import ensure_database
from cass.extensions import db
from cass.models import Ticket, User
from cass.services.attachments import attach
from cass.services.worklogs import add_worklog
from cass.storage import get_storage
from cass.tenancy import tenant_context
from tests.conftest import as_user, make_app

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
TEXT = "Fault log from the charger, with ümlauts.\n".encode() * 50
TABLES = (
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
    "ORDER BY c.relname"
)
SECURITY = (
    "SELECT 'policy', tablename || ':' || policyname || ':' || array_to_string(roles, ',') "
    "|| ':' || coalesce(qual, '') FROM pg_policies WHERE schemaname = 'public' "
    "UNION ALL SELECT 'rls', relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relrowsecurity "
    "UNION ALL SELECT 'grant', table_name || ':' || privilege_type "
    "FROM information_schema.role_table_grants WHERE grantee = 'cass_app' ORDER BY 1, 2"
)


@pytest.fixture
def run(app: Flask):
    """Invoke `cass …` on the test app (the suite's database)."""
    runner = app.test_cli_runner()
    return lambda *args: runner.invoke(cli, list(args))


@pytest.fixture
def fresh(pg_server, tmp_path: Path) -> Iterator[Flask]:
    """An app on a new, empty database of the same server, with a storage folder of its own."""
    name = f"cass_restore_{uuid.uuid4().hex[:8]}"
    url = ensure_database(pg_server.get_uri(), name)
    app = make_app(url, CASS_STORAGE_URL=f"file://{tmp_path / 'restored-files'}")
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    with psycopg.connect(pg_server.get_uri(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def invoke(app: Flask, *args: str):
    """Invoke `cass …` on `app`."""
    return app.test_cli_runner().invoke(cli, list(args))


def rows(app: Flask, sql: str) -> list[tuple]:
    """Run `sql` as the owner (no RLS) on the app's database."""
    with psycopg.connect(app.config["DATABASE_URL"]) as conn:
        return conn.execute(sql).fetchall()


def digest(app: Flask) -> dict[str, tuple[int, str]]:
    """Return every table's row count and the MD5 of its rows in a stable order."""
    found = {}
    with psycopg.connect(app.config["DATABASE_URL"]) as conn:
        for (table,) in conn.execute(TABLES).fetchall():
            found[table] = conn.execute(
                "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f'FROM "{table}" t'
            ).fetchone()
    return found


@pytest.fixture
def seeded(app: Flask, demo: dict[str, int]) -> list[tuple[str, int, str]]:
    """The demo data plus attachments (one on a worklog) and their events; return them."""
    made = []
    with app.app_context(), tenant_context(demo["demo"]):
        engineer = db.session.get(User, demo["engineer@demo.test"])
        tickets = list(db.session.scalars(select(Ticket).order_by(Ticket.id).limit(3)))
        for i, ticket in enumerate(tickets):
            worklog = add_worklog(ticket, engineer, f"Photo of connector {i}.", 10)
            item = attach(ticket, engineer, io.BytesIO(PNG), f"photo-{i}.png", worklog)
            made.append((f"DEMO-{ticket.number}", item.id, item.storage_key))
            item = attach(ticket, engineer, io.BytesIO(TEXT), f"log-{i}.txt")
            made.append((f"DEMO-{ticket.number}", item.id, item.storage_key))
        db.session.commit()
    return made


def test_round_trip_restores_every_row_file_and_the_security(app, run, seeded, fresh, tmp_path):
    backup = tmp_path / "cass.tar"
    result = run("backup", str(backup))
    assert result.exit_code == 0, result.output
    assert "Backed up 2 tenants" in result.output
    assert backup.stat().st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left

    result = invoke(fresh, "restore", str(backup))
    assert result.exit_code == 0, result.output
    assert "Restored the backup" in result.output

    # Every table's rows, tickets, events, worklogs and attachments among them, are equal.
    source, restored = digest(app), digest(fresh)
    for table in ("ticket", "ticket_event", "worklog", "attachment"):
        assert restored[table] == source[table] and source[table][0] > 0, table
    assert restored == source
    # Policies, RLS flags and cass_app's grants came along.
    assert rows(fresh, SECURITY) == rows(app, SECURITY)
    assert rows(fresh, "SELECT version_num FROM alembic_version") == rows(
        app, "SELECT version_num FROM alembic_version"
    )
    # Every attachment's bytes, from the restored app's own storage.
    keys = [key for (key,) in rows(fresh, "SELECT storage_key FROM attachment")]
    assert len(keys) == len(seeded)
    with app.app_context():
        old = get_storage(app)
    with fresh.app_context():
        new = get_storage(fresh)
    assert new.root != old.root
    for key in keys:
        with old.open(key) as a, new.open(key) as b:
            assert a.read() == b.read()

    # The restored database serves pages under RLS as the web's role, to a signed-in user.
    client = as_user(fresh, "admin@demo.test")
    ticket_key, attachment_id, _ = seeded[0]
    page = client.get(f"/tickets/{ticket_key}")
    assert page.status_code == 200
    assert "photo-0.png" in page.get_data(as_text=True)
    download = client.get(f"/tickets/{ticket_key}/attachments/{attachment_id}")
    assert download.status_code == 200
    assert download.data == PNG
    # … and keeps tenants apart: acme's admin finds no demo ticket.
    other = as_user(fresh, "admin@acme.test")
    assert other.get(f"/tickets/{ticket_key}").status_code == 404


def test_restore_refuses_a_database_with_data_unless_yes(app, run, seeded, tmp_path):
    backup = tmp_path / "cass.tar"
    assert run("backup", str(backup)).exit_code == 0
    before = digest(app)
    with psycopg.connect(app.config["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE ticket SET title = 'Changed after the backup' WHERE id = 1")
    changed = digest(app)
    assert changed != before

    result = run("restore", str(backup))
    assert result.exit_code == 1
    assert "already holds data" in result.output and "--yes" in result.output
    assert digest(app) == changed

    result = run("restore", "--yes", str(backup))
    assert result.exit_code == 0, result.output
    assert digest(app) == before
    # The app still works on the replaced schema.
    assert as_user(app, "agent@demo.test").get("/tickets").status_code == 200


def _offset(backup: Path, member: str) -> int:
    """Return where `member`'s bytes start in the backup."""
    with tarfile.open(backup) as tar:
        return tar.getmember(member).offset_data


def _damage(backup: Path, member: str) -> bytes:
    """Return the backup with one byte in the middle of `member` flipped."""
    data = bytearray(backup.read_bytes())
    with tarfile.open(backup) as tar:
        size = tar.getmember(member).size
    at = _offset(backup, member) + size // 2
    data[at] ^= 0xFF
    return bytes(data)


def test_a_corrupt_or_truncated_backup_changes_nothing(app, run, seeded, fresh, tmp_path):
    backup = tmp_path / "cass.tar"
    assert run("backup", str(backup)).exit_code == 0
    whole = backup.read_bytes()
    cases = {
        # Cut inside the dump's bytes (half the file could end on a member's boundary).
        "cut.tar": whole[: _offset(backup, "db.dump") + 700],
        "cut-end.tar": whole[: _offset(backup, "manifest.json") + 10],
        "dump.tar": _damage(backup, "db.dump"),
        "noise.tar": b"not a backup at all" * 100,
    }
    with tarfile.open(backup) as tar:
        file_member = next(n for n in tar.getnames() if n.startswith("files/"))
    cases["file.tar"] = _damage(backup, file_member)
    for name, data in cases.items():
        bad = tmp_path / name
        bad.write_bytes(data)
        result = invoke(fresh, "restore", str(bad))
        assert result.exit_code == 1, (name, result.output)
        line = result.output.strip()
        assert line.startswith("cass: ") and "\n" not in line, (name, line)
        assert "Traceback" not in result.output
        # Nothing changed: the database is still new, the storage folder still empty.
        assert rows(fresh, "SELECT to_regclass('public.tenant')") == [(None,)], name
        with fresh.app_context():
            root = get_storage(fresh).root
        assert not root.exists() or not any(root.rglob("*")), name
    assert "damaged" in invoke(fresh, "restore", str(tmp_path / "dump.tar")).output
    assert "not a complete" in invoke(fresh, "restore", str(tmp_path / "cut.tar")).output


def test_a_backup_from_a_newer_schema_is_refused(app, run, tmp_path, fresh):
    backup = tmp_path / "cass.tar"
    with psycopg.connect(app.config["DATABASE_URL"], autocommit=True) as conn:
        (head,) = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    try:
        assert run("backup", str(backup)).exit_code == 0
    finally:
        with psycopg.connect(app.config["DATABASE_URL"], autocommit=True) as conn:
            conn.execute("UPDATE alembic_version SET version_num = %s", (head,))
    result = invoke(fresh, "restore", str(backup))
    assert result.exit_code == 1
    assert "newer version" in result.output
    assert rows(fresh, "SELECT to_regclass('public.tenant')") == [(None,)]


def test_db_reset_refuses_a_database_that_is_not_embedded(app, run, seeded):
    result = run("db", "reset")
    assert result.exit_code == 1
    assert "--yes" in result.output
    assert rows(app, "SELECT count(*) FROM tenant") == [(2,)]


def test_db_reset_with_yes_drops_and_migrates(fresh, tmp_path):
    backup = tmp_path / "empty.tar"
    # A database with a stray table and a migrated schema; reset leaves only the migrations' work.
    with fresh.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    with psycopg.connect(fresh.config["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("CREATE TABLE stray (id int)")
        conn.execute("INSERT INTO tenant (slug, name, key_prefix) VALUES ('x', 'X', 'X')")
    result = invoke(fresh, "db", "reset", "--yes", "--no-demo")
    assert result.exit_code == 0, result.output
    assert rows(fresh, "SELECT to_regclass('public.stray')") == [(None,)]
    assert rows(fresh, "SELECT count(*) FROM tenant") == [(0,)]
    assert rows(fresh, SECURITY)  # the migrations made the policies and grants again
    # Other db commands are still Flask-Migrate's.
    assert invoke(fresh, "db", "current").exit_code == 0
    # An empty, migrated database backs up and restores too (no files, no tenants).
    assert invoke(fresh, "backup", str(backup)).exit_code == 0
    assert invoke(fresh, "restore", str(backup)).exit_code == 0


def test_the_tools_match_the_server(pg_server):
    with psycopg.connect(pg_server.get_uri()) as conn:
        major = conn.info.server_version // 10000
    for name in ("pg_dump", "pg_restore", "psql"):
        assert find_tool(name, major).is_file()
    with pytest.raises(BackupError, match="no pg_dump for PostgreSQL 99"):
        find_tool("pg_dump", 99)


def test_unpack_refuses_members_outside_the_backup(tmp_path):
    bad = tmp_path / "evil.tar"
    with tarfile.open(bad, "w") as tar:
        info = tarfile.TarInfo("files/../../etc/passwd")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(BackupError, match="not a complete CASS backup"):
        unpack_backup(bad, tmp_path / "staging")


def test_a_backup_from_an_older_schema_is_restored_then_migrated(fresh, tmp_path):
    backup = tmp_path / "old.tar"
    with fresh.app_context():
        from flask_migrate import upgrade

        upgrade(revision="0020_api_tokens")
        db.engine.dispose()
    assert invoke(fresh, "backup", str(backup)).exit_code == 0
    result = invoke(fresh, "restore", "--yes", str(backup))
    assert result.exit_code == 0, result.output
    assert "Migrated from 0020_api_tokens" in result.output
    with fresh.app_context():
        from cass.backup import check_revisions

        (head,) = rows(fresh, "SELECT version_num FROM alembic_version")[0]
        assert check_revisions(fresh, [head]) is False  # at head now
