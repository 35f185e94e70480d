"""What the benchmarks share: an embedded PostgreSQL of their own, migrated, and cleaned up.

    with benchkit.embedded("cass-bench-x-", pgdata=args.pgdata) as bench:
        app = benchkit.migrated_app(bench.url)
        ...

The server runs in a temporary folder (deleted afterwards) or over `--pgdata DIR`, which is
kept, stopped, for the next run to reuse its seeded data. Loading tens of millions of rows needs
no durability: fsync, synchronous_commit and full_page_writes are off unless `durable=True`.
Importing this module puts the project root on sys.path, so the benches import `cass`.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FAST_LOAD = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
PASSWORD = "bench-password-1"  # every seeded user's
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def log(message: str) -> None:
    """Print a line at once (the benches run for minutes; output must not wait in a buffer)."""
    print(message, flush=True)


@dataclass(frozen=True)
class Bench:
    """A running embedded server with the bench's database on it."""

    server: Any  # pgserver's handle
    url: str  # the bench database's libpq URL
    root: Path  # a temporary folder, deleted afterwards (CASS_INSTANCE_DIR is under it)
    pgdata: Path


@contextmanager
def embedded(
    prefix: str,
    *,
    database: str = "cass_bench",
    pgdata: str | Path | None = None,
    durable: bool = False,
    settings: Mapping[str, str] | None = None,
) -> Iterator[Bench]:
    """Start an embedded PostgreSQL in a temporary folder (or over `pgdata`, kept afterwards),
    set `settings` (ALTER SYSTEM; the fast-load ones too unless `durable`), create `database`;
    stop the server and delete the folder when the block ends."""
    from cass.embedded_db import ensure_database, start_embedded

    root = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["CASS_INSTANCE_DIR"] = str(root / "instance")
    data = Path(pgdata).resolve() if pgdata else root / "pgdata"
    server = start_embedded(data, cleanup_mode="stop" if pgdata else "delete")
    try:
        wanted = {**({} if durable else FAST_LOAD), **(settings or {})}
        if wanted:
            with psycopg.connect(server.get_uri(), autocommit=True) as conn:
                for name, value in wanted.items():
                    conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
                conn.execute("SELECT pg_reload_conf()")
        url = ensure_database(server.get_uri(), database)
        yield Bench(server, url, root, data)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def migrated_app(url: str, secret: str = "bench-secret", **overrides: Any) -> Any:  # noqa: S107
    """Return the Flask app on `url`, its schema migrated to head (the engine's pool empty)."""
    from flask_migrate import upgrade

    from cass import create_app
    from cass.config import Config
    from cass.extensions import db

    app = create_app(Config(DATABASE_URL=url, SECRET_KEY=secret), **overrides)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return app


def scalar(url: str, sql: str, params: Any = None) -> Any:
    """Return the first column of the first row of `sql` (as the owner: no row security)."""
    with psycopg.connect(url) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


@contextmanager
def bulk_load(conn: psycopg.Connection, tables: list[str] | tuple[str, ...]) -> Iterator[None]:
    """Load `tables` in the block without their secondary indexes and triggers, then build the
    indexes once and VACUUM ANALYZE: far faster than keeping every index up row by row.

    `conn` is in autocommit. Indexes backing constraints (primary keys, unique) stay.
    """
    conn.execute("SET session_replication_role = replica")  # no triggers, no FK checks
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    indexes = conn.execute(
        """SELECT i.indexname, i.indexdef FROM pg_indexes i
           JOIN pg_class x ON x.relname = i.indexname
           WHERE i.schemaname = 'public' AND i.tablename = ANY(%s)
             AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.oid)""",
        (list(tables),),
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    yield
    started = time.monotonic()
    for _, definition in indexes:
        # A partitioned table's index is listed "ON ONLY" it: built so, it would cover no
        # partition.
        conn.execute(definition.replace(" ON ONLY ", " ON "))
    log(f"  {len(indexes)} indexes built: {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    conn.execute("VACUUM ANALYZE")
    log(f"  VACUUM ANALYZE: {time.monotonic() - started:.0f} s")


def copy_rows(conn: psycopg.Connection, table: str, columns: str, rows: Iterable[str]) -> int:
    """COPY text-format lines into `table`, in 1 MB chunks; return how many."""
    count = 0
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        buffer = io.StringIO()
        for line in rows:
            buffer.write(line)
            count += 1
            if buffer.tell() > 1 << 20:
                copy.write(buffer.getvalue())
                buffer = io.StringIO()
        copy.write(buffer.getvalue())
    return count


def signed_in(app: Any, email: str, password: str = PASSWORD) -> Any:
    """Return a test client of `app` signed in through the real form as `email`."""
    client = app.test_client()
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True))
    assert token, "no CSRF token on the sign-in page"
    answer = client.post(
        "/login", data={"csrf_token": token.group(1), "email": email, "password": password}
    )
    assert answer.status_code == 303, f"sign-in of {email} failed"
    return client


def percentile(values: list[float], share: float) -> float:
    """Return the nearest-rank `share` percentile of `values` (0.5: the median)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class ServerClock:
    """WSGI middleware keeping the server time of the last request (ms), until its body is
    produced: the whole Flask app, without the test client around it, and the web process's
    own CPU time (not Postgres's)."""

    def __init__(self, wsgi_app: Callable[..., object]) -> None:
        self.wsgi_app = wsgi_app
        self.last = 0.0
        self.last_cpu = 0.0

    def __call__(self, environ: dict, start_response: Callable[..., object]) -> object:
        started, cpu = time.perf_counter(), time.process_time()
        body = list(self.wsgi_app(environ, start_response))  # type: ignore[call-overload]
        self.last = (time.perf_counter() - started) * 1000
        self.last_cpu = (time.process_time() - cpu) * 1000
        return body


def reset_sequences(conn: psycopg.Connection, tables: Iterable[str]) -> None:
    """Move each table's id sequence past the ids COPY wrote, as inserts would have."""
    for table in tables:
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
        )
