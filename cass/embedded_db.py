"""The embedded PostgreSQL (the `pgserver` wheel) used when DATABASE_URL is unset."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import psycopg

from cass.config import instance_dir

DB_NAME = "cass"
logging.getLogger("pgserver").setLevel(logging.WARNING)


def start_embedded(pgdata: Path | None = None, cleanup_mode: str | None = "stop"):
    """Start (or attach to) the embedded server over `pgdata` and return its handle."""
    # pgserver falls back to a runtime dir under /tmp; keep it quiet and predictable.
    os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}")  # noqa: S108
    runtime = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime.mkdir(mode=0o700, exist_ok=True)
    runtime.chmod(0o700)
    import pgserver  # imported late: it is only needed without DATABASE_URL

    pgdata = pgdata or instance_dir() / "pgdata"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    return pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)


def ensure_database(server_uri: str, name: str = DB_NAME) -> str:
    """Create database `name` on the server if missing and return its libpq URL."""
    with psycopg.connect(server_uri, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = server_uri.partition("?")
    base = base.rsplit("/", 1)[0]
    return f"{base}/{name}?{query}" if query else f"{base}/{name}"


def resolve_database_url() -> str:
    """Return DATABASE_URL, or the embedded server's URL after starting it when unset."""
    url = os.environ.get("DATABASE_URL")
    if url:
        return url
    server = start_embedded()
    return ensure_database(server.get_uri())
