"""Backup, restore and reset of a CASS database (and its uploaded files).

A backup is one uncompressed tar file (the dump is compressed already, and so are most photos):

- `db.dump` — `pg_dump --format=custom` of the whole database;
- `files/<key>` — every stored file (attachments, report exports) of the `file://` storage
  backend; an `s3://` bucket is not copied (its own versioning or replication backs it up);
- `manifest.json` — written last: format, CASS version, alembic revision, time, row counts, the
  storage kind, and the size and SHA-256 of every other member, so that a restore can prove the
  whole file is intact before it changes anything.

The PostgreSQL tools come from the `pgserver` wheel (PostgreSQL 16), or from PATH and the usual
Debian folders when the server is newer than that; a tool older than the server cannot dump it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from flask import Flask
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from cass.config import instance_dir
from cass.db_security import create_app_role_sql
from cass.storage import CHUNK_SIZE, LocalStorage, S3Storage, check_key, get_storage

FORMAT = "cass-backup"
FORMAT_VERSION = 1
DUMP_MEMBER = "db.dump"
MANIFEST_MEMBER = "manifest.json"
FILES_PREFIX = "files/"
# Tables whose rows a backup counts (reported, and checked by the tests after a restore).
COUNTED_TABLES = ("tenant", "user", "ticket", "ticket_event", "worklog", "attachment")
# Restore and reset wait this long for locks held by running processes, then give up cleanly.
LOCK_TIMEOUT = "15s"
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class BackupError(RuntimeError):
    """A reason a backup, restore or reset cannot go on; printed as one line."""


@dataclass
class RestoreResult:
    """What a restore did."""

    manifest: dict[str, Any]
    files: int
    upgraded_from: list[str] | None  # the backup's revisions when migrations ran after it


# --- PostgreSQL tools and connections -------------------------------------------------------


def libpq_url(url: str) -> str:
    """Return the libpq form of a DATABASE_URL (without SQLAlchemy's driver suffix)."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def _tool_env(url: str) -> tuple[str, dict[str, str]]:
    """Return (conninfo without the password, environment with PGPASSWORD) for a client tool.

    The password goes in the environment because a command line is visible to every local user.
    """
    params = conninfo_to_dict(libpq_url(url))
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None}), env


def server_major(conn: psycopg.Connection[Any]) -> int:
    """Return the server's major version (16 for 16.2)."""
    return conn.info.server_version // 10000


def _tool_major(path: Path) -> int | None:
    """Return the major version a PostgreSQL client tool reports, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    return int(match.group(1)) if match else None


def _candidates(name: str) -> Iterator[Path]:
    """Yield the places a tool may be: the pgserver wheel, PATH, Debian's versioned folders."""
    try:
        import pgserver
    except ImportError:
        pass
    else:
        yield Path(pgserver.__file__).parent / "pginstall" / "bin" / name
    found = shutil.which(name)
    if found:
        yield Path(found)
    yield from sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)


def find_tool(name: str, major: int) -> Path:
    """Return a `name` (pg_dump, pg_restore, psql) able to work with a server of `major`."""
    # pg_dump refuses servers newer than itself; the same major is the best match, then newer.
    usable: list[tuple[int, Path]] = []
    for path in _candidates(name):
        if path.is_file():
            version = _tool_major(path)
            if version is not None and version >= major:
                usable.append((version, path))
    if not usable:
        raise BackupError(
            f"no {name} for PostgreSQL {major} or newer (looked in the pgserver wheel, PATH and "
            f"/usr/lib/postgresql); install the PostgreSQL {major} client tools"
        )
    return min(usable, key=lambda item: item[0])[1]


def _run_checked(argv: list[str], env: dict[str, str], what: str) -> None:
    """Run a tool; raise BackupError with its first error line when it fails."""
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BackupError(f"{what} failed: {_first_error(proc.stderr)}")


def _first_error(stderr: str) -> str:
    """Return the most telling line of a tool's error output."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in lines:
        if "error" in line.lower() or "fatal" in line.lower():
            return line
    return lines[0] if lines else "no error message"


def is_embedded(url: str) -> bool:
    """Tell whether `url` is this folder's embedded server (its data under instance/pgdata)."""
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
            row = conn.execute("SHOW data_directory").fetchone()
    except psycopg.Error:
        # Only superusers and pg_read_all_settings may see it: a managed server, not ours.
        return False
    data_dir = Path(str(row[0])).resolve() if row else None
    return data_dir == (instance_dir() / "pgdata").resolve()


def holds_data(conn: psycopg.Connection[Any]) -> bool:
    """Tell whether the database has any tenant (every row of CASS belongs to one)."""
    exists = conn.execute("SELECT to_regclass('public.tenant') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return False
    return conn.execute("SELECT EXISTS (SELECT 1 FROM public.tenant)").fetchone() == (True,)


def _revisions(conn: psycopg.Connection[Any]) -> list[str]:
    """Return the database's alembic revisions (none before the first migration)."""
    if conn.execute("SELECT to_regclass('public.alembic_version')").fetchone() == (None,):
        return []
    return sorted(r[0] for r in conn.execute("SELECT version_num FROM public.alembic_version"))


def _counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Return the row counts of COUNTED_TABLES (as the owner, whom RLS does not filter)."""
    counts = {}
    for table in COUNTED_TABLES:
        if conn.execute("SELECT to_regclass(%s)", (f'public."{table}"',)).fetchone() != (None,):
            row = conn.execute(f'SELECT count(*) FROM public."{table}"').fetchone()  # noqa: S608
            counts[table] = int(row[0]) if row else 0
    return counts


def _schema_reset_sql(major: int) -> list[str]:
    """Return SQL replacing the public schema with an empty one, as a new database has it."""
    owner = "pg_database_owner" if major >= 15 else "CURRENT_USER"
    return [
        f"SET lock_timeout = '{LOCK_TIMEOUT}'",
        # The role is per cluster, not per database: a new server has no cass_app yet, and the
        # dump's grants and policies name it.
        *create_app_role_sql()[:2],
        "DROP SCHEMA IF EXISTS public CASCADE",
        "CREATE SCHEMA public",
        f"ALTER SCHEMA public OWNER TO {owner}",
        "GRANT USAGE ON SCHEMA public TO PUBLIC",
        *create_app_role_sql()[2:],  # USAGE on the new schema for cass_app
    ]


# --- Migrations -------------------------------------------------------------------------------


def _script(app: Flask) -> Any:
    """Return the alembic ScriptDirectory of the app's migrations."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(app.extensions["migrate"].migrate.get_config())


def check_revisions(app: Flask, revisions: list[str]) -> bool:
    """Raise BackupError for a backup newer than this code; return whether it needs upgrading."""
    script = _script(app)
    for revision in revisions:
        try:
            known = script.get_revision(revision)
        except Exception:  # alembic raises several kinds for an unknown id
            known = None
        if known is None:
            raise BackupError(
                f"the backup's schema revision {revision} is unknown to this CASS (the backup "
                "comes from a newer version); upgrade CASS, then restore"
            )
    return set(revisions) != set(script.get_heads())


# --- Backup ---------------------------------------------------------------------------------


class _HashingReader:
    """Read a stream through, hashing what passes (so each file is read from disk once)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self.raw.read(n)
        self.sha256.update(chunk)
        self.size += len(chunk)
        return chunk


def _add_stream(tar: tarfile.TarFile, name: str, stream: IO[bytes], size: int) -> dict[str, Any]:
    """Add `size` bytes of `stream` as member `name`; return its size and SHA-256."""
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(datetime.now(UTC).timestamp())
    info.mode = 0o600
    reader = _HashingReader(stream)
    tar.addfile(info, reader)  # type: ignore[arg-type]  (tarfile only calls read())
    if reader.size != size:
        raise BackupError(f"{name} changed while it was being backed up")
    return {"size": size, "sha256": reader.sha256.hexdigest()}


def _stored_files(storage: LocalStorage) -> Iterator[tuple[str, Path]]:
    """Yield (key, path) of every stored file, skipping the temporary files of unfinished puts."""
    if not storage.root.is_dir():
        return
    for path in sorted(storage.root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.name.startswith("."):
            continue
        key = path.relative_to(storage.root).as_posix()
        with contextlib.suppress(ValueError):
            yield check_key(key), path


def _cass_version() -> str:
    """Return the installed CASS version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cass")
    except PackageNotFoundError:
        return "unknown"


def create_backup(app: Flask, target: Path) -> dict[str, Any]:
    """Write a backup of the app's database and stored files to `target`; return its manifest."""
    url = libpq_url(app.config["DATABASE_URL"])
    storage = get_storage(app)
    target = target.resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    dump = tmp.with_suffix(".dump")
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            pg_dump = find_tool("pg_dump", server_major(conn))
            # One snapshot for the counts, the revision and pg_dump: they describe the same data.
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
            revisions = _revisions(conn)
            counts = _counts(conn)
            server_version = conn.info.parameter_status("server_version") or ""
            conninfo, env = _tool_env(url)
            _run_checked(
                [
                    str(pg_dump),
                    "--format=custom",
                    f"--snapshot={snapshot[0] if snapshot else ''}",
                    f"--file={dump}",
                    f"--dbname={conninfo}",
                ],
                env,
                "pg_dump",
            )
            conn.rollback()
        members: dict[str, Any] = {}
        files = file_bytes = 0
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            with dump.open("rb") as stream:
                members[DUMP_MEMBER] = _add_stream(tar, DUMP_MEMBER, stream, dump.stat().st_size)
            dump.unlink()
            if isinstance(storage, LocalStorage):
                # Files come after the dump's snapshot: one uploaded since is an extra file
                # nobody points at, one deleted since is missing (and its row was deleted too,
                # unless the delete is newer than the snapshot).
                for key, path in _stored_files(storage):
                    try:
                        stream = path.open("rb")
                    except FileNotFoundError:
                        continue
                    with stream:
                        size = os.fstat(stream.fileno()).st_size
                        members[FILES_PREFIX + key] = _add_stream(
                            tar, FILES_PREFIX + key, stream, size
                        )
                    files += 1
                    file_bytes += size
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "cass_version": _cass_version(),
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "alembic_revisions": revisions,
                "postgres_version": server_version,
                "counts": {**counts, "files": files, "file_bytes": file_bytes},
                "storage": _storage_note(storage),
                "members": members,
            }
            data = json.dumps(manifest, indent=2).encode()
            _add_stream(tar, MANIFEST_MEMBER, io.BytesIO(data), len(data))
        with tmp.open("rb") as done:
            os.fsync(done.fileno())
        # The backup holds password hashes and customers' data: readable by its owner only.
        tmp.chmod(0o600)
        os.replace(tmp, target)
        return manifest
    finally:
        tmp.unlink(missing_ok=True)
        dump.unlink(missing_ok=True)


def _storage_note(storage: object) -> dict[str, Any]:
    """Describe the storage backend and whether its files are in the backup."""
    if isinstance(storage, LocalStorage):
        return {"kind": "file", "files_included": True}
    if isinstance(storage, S3Storage):
        return {
            "kind": "s3",
            "bucket": storage.bucket,
            "prefix": storage.prefix,
            "files_included": False,
            "note": "objects stay in the bucket; back it up with versioning or replication",
        }
    return {"kind": type(storage).__name__, "files_included": False}


# --- Restore --------------------------------------------------------------------------------


def _copy_member(source: IO[bytes], dest: Path) -> dict[str, Any]:
    """Copy a member to `dest`; return its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


def unpack_backup(source: Path, staging: Path) -> dict[str, Any]:
    """Unpack a backup into `staging` and prove it whole; return its manifest.

    Raises BackupError for anything short of a complete, unchanged backup: not a tar, cut
    short, a member changed, missing or extra, or a manifest of another format.
    """
    seen: dict[str, Any] = {}
    manifest: dict[str, Any] | None = None
    try:
        # Stream mode ("r|"): one pass, no seeking, nothing held in memory but the manifest.
        with tarfile.open(source, "r|") as tar:
            for member in tar:
                name = member.name
                if not member.isfile():
                    raise BackupError(f"{source}: unexpected entry {name!r}; not a CASS backup")
                stream = tar.extractfile(member)
                if stream is None:
                    raise BackupError(f"{source}: cannot read {name!r}")
                if name == MANIFEST_MEMBER:
                    manifest = json.loads(stream.read(1024 * 1024 * 64).decode())
                elif name == DUMP_MEMBER:
                    seen[name] = _copy_member(stream, staging / DUMP_MEMBER)
                elif name.startswith(FILES_PREFIX):
                    key = check_key(name[len(FILES_PREFIX) :])
                    seen[name] = _copy_member(stream, staging / "files" / key)
                else:
                    raise BackupError(f"{source}: unexpected entry {name!r}; not a CASS backup")
    except (tarfile.TarError, EOFError, OSError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise BackupError(f"{source}: no such file") from exc
        raise BackupError(f"{source}: not a complete CASS backup ({exc})") from exc
    if manifest is None:
        raise BackupError(f"{source}: no manifest.json; the file is cut short or not a backup")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{source}: not a CASS backup of format {FORMAT_VERSION}")
    expected = manifest.get("members", {})
    if set(expected) != set(seen) or DUMP_MEMBER not in seen:
        missing = sorted(set(expected) - set(seen))
        raise BackupError(
            f"{source}: the backup is incomplete ({len(missing)} member(s) missing"
            f"{', e.g. ' + missing[0] if missing else ''})"
        )
    for name, facts in seen.items():
        if expected[name] != facts:
            raise BackupError(f"{source}: {name} is damaged (its checksum does not match)")
    return manifest


def _staged_files(staging: Path) -> list[tuple[str, Path]]:
    """Return (key, path) of the files unpacked from a backup."""
    root = staging / "files"
    if not root.is_dir():
        return []
    return [(p.relative_to(root).as_posix(), p) for p in sorted(root.rglob("*")) if p.is_file()]


def _restore_dump(url: str, dump: Path, major: int) -> None:
    """Replace the database's schema and data by the dump's, in one transaction.

    pg_restore writes SQL that psql runs after our own BEGIN and schema reset; COMMIT is sent
    only once pg_restore has finished well, so a failure anywhere leaves the database as it was.
    `--no-owner`: the objects belong to whoever restores (the DATABASE_URL user, who must own
    them to run migrations); grants and RLS policies come with the dump.
    """
    pg_restore = find_tool("pg_restore", major)
    psql = find_tool("psql", major)
    conninfo, env = _tool_env(url)
    # pg_restore refuses a dump made by a newer pg_dump; learn that before anything changes.
    _run_checked([str(pg_restore), "--list", str(dump)], env, "pg_restore --list")
    with tempfile.TemporaryFile() as psql_err, tempfile.TemporaryFile() as restore_err:
        consumer = subprocess.Popen(
            [str(psql), "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", f"--dbname={conninfo}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_err,
            env=env,
        )
        producer = subprocess.Popen(
            [str(pg_restore), "--no-owner", "--file=-", str(dump)],
            stdout=subprocess.PIPE,
            stderr=restore_err,
            env=env,
        )
        assert consumer.stdin is not None and producer.stdout is not None
        try:
            preamble = ";\n".join(["BEGIN", *_schema_reset_sql(major)]) + ";\n"
            consumer.stdin.write(preamble.encode())
            shutil.copyfileobj(producer.stdout, consumer.stdin, CHUNK_SIZE)
            produced = producer.wait()
            if produced == 0:
                consumer.stdin.write(b"COMMIT;\n")
            # Otherwise psql ends with the transaction open, and the server rolls it back.
            consumer.stdin.close()
        except BrokenPipeError:
            produced = None  # psql stopped at an error (ON_ERROR_STOP)
        finally:
            if producer.poll() is None:
                producer.kill()
            producer.wait()
            consumed = consumer.wait()
        if produced not in (0, None):
            restore_err.seek(0)
            raise BackupError(f"pg_restore failed: {_first_error(restore_err.read().decode())}")
        if consumed != 0 or produced is None:
            psql_err.seek(0)
            raise BackupError(f"restore failed: {_first_error(psql_err.read().decode())}")


def restore_backup(app: Flask, source: Path, replace: bool = False) -> RestoreResult:
    """Restore a backup into the app's database (and its files into the app's storage)."""
    url = libpq_url(app.config["DATABASE_URL"])
    with tempfile.TemporaryDirectory(prefix="cass-restore-") as tmp:
        staging = Path(tmp)
        manifest = unpack_backup(source, staging)
        revisions = list(manifest.get("alembic_revisions") or [])
        needs_upgrade = check_revisions(app, revisions)
        with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
            major = server_major(conn)
            if holds_data(conn) and not replace:
                raise BackupError(
                    "the database already holds data; restoring replaces all of it: "
                    "give --yes to go ahead"
                )
        storage = get_storage(app)
        files = _staged_files(staging)
        # Files first: should the database part fail, the new files are merely unreferenced
        # (keys are unique), while the other order would leave rows pointing at nothing.
        for key, path in files:
            with path.open("rb") as stream:
                storage.put(key, stream, "application/octet-stream", path.stat().st_size)
        _restore_dump(url, staging / DUMP_MEMBER, major)
    from cass.extensions import db

    with app.app_context():
        # Pooled connections know the dropped tables; start over.
        db.engine.dispose()
        if needs_upgrade:
            from flask_migrate import upgrade

            upgrade()
            db.engine.dispose()
    return RestoreResult(manifest, len(files), revisions if needs_upgrade else None)


# --- Reset ----------------------------------------------------------------------------------


def reset_database(app: Flask) -> None:
    """Drop every table, function and row of the app's database, then migrate it to head."""
    from flask_migrate import upgrade

    from cass.extensions import db

    url = libpq_url(app.config["DATABASE_URL"])
    with app.app_context():
        db.engine.dispose()
    with psycopg.connect(url, connect_timeout=10) as conn:
        for statement in _schema_reset_sql(server_major(conn)):
            conn.execute(statement)
        conn.commit()
    with app.app_context():
        upgrade()
        db.engine.dispose()
