"""Bind each transaction to one tenant; the one helper every tenant query goes through.

Two layers keep tenants apart. Queries are scoped with `scoped()` / `get_or_404()`, and every
transaction also runs `SET LOCAL ROLE cass_app` with `app.tenant_id` set, so Postgres row-level
security filters whatever a query forgets. Only code that says `system_context()` (CLI commands,
scheduler jobs) runs as the owning role, across tenants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from flask import abort, current_app, g, has_app_context
from psycopg import pq
from psycopg import sql as pgsql
from psycopg.adapt import Transformer
from sqlalchemy import Select, event, select
from sqlalchemy.orm import Session, SessionTransaction

from cass.extensions import db

M = TypeVar("M")

# Sent as is (exec_driver_sql) into a transaction already open; set_config(..., true) is
# SET LOCAL: it ends with the transaction.
_BIND_SQL = (
    "SELECT set_config('role', %(role)s, true), set_config('app.tenant_id', %(tenant)s, true)"
)
_OPEN_SQL = pgsql.SQL(
    "BEGIN; SELECT set_config('role', {}, true), set_config('app.tenant_id', {}, true)"
)


def current_tenant_id() -> int | None:
    """Return the tenant bound to this request or command, if any."""
    return g.get("tenant_id") if has_app_context() else None


@lru_cache(maxsize=1024)
def _open_command(role: str, tenant: str) -> bytes:
    """Return the simple-protocol command that begins a transaction bound to `tenant`."""
    return _OPEN_SQL.format(pgsql.Literal(role), pgsql.Literal(tenant)).as_bytes(None)


def _opens_here(raw: Any) -> bool:
    """Return whether the driver connection `raw` is idle with a plain BEGIN to come."""
    return (
        isinstance(raw, psycopg.Connection)
        and not raw.autocommit
        and raw.pgconn.transaction_status == pq.TransactionStatus.IDLE
        and raw.isolation_level is None
        and raw.read_only is None
        and raw.deferrable is None
        and getattr(raw, "_pipeline", None) is None
    )


def _bind(connection: Any) -> None:
    """Set the role and tenant on the connection's current transaction.

    SQLAlchemy's begin sends nothing; psycopg would send BEGIN before the first statement, a
    round trip of its own. On an idle connection the transaction is begun here instead, and
    bound in the same round trip: BEGIN and the binding in one simple-protocol message (with
    the select that `open_with` asked for, if any). psycopg reads the transaction's state from
    libpq, so it sends no second BEGIN; COMMIT and ROLLBACK go on as ever.
    """
    if g.get("db_system"):
        return
    tenant = current_tenant_id()
    role, tenant_s = current_app.config["CASS_APP_DB_ROLE"], "" if tenant is None else str(tenant)
    raw = connection.connection.driver_connection
    if not _opens_here(raw):
        connection.exec_driver_sql(_BIND_SQL, {"role": role, "tenant": tenant_s})
        return
    command = _open_command(role, tenant_s)
    also = g.pop("opening_select", None)
    if also is not None:
        command += b"; " + also
    with raw.lock:
        # PQexec: the messages' statements run in order, and the last one's result comes back
        # (or the first error, after which nothing more runs).
        result = raw.pgconn.exec_(command)
    if result.status != pq.ExecStatus.TUPLES_OK:
        message = (result.error_message or b"").decode(errors="replace").strip()
        if raw.pgconn.status == pq.ConnStatus.BAD:
            # The server ended the connection (as SQLAlchemy does on a disconnect): nothing
            # more is sent on it, and the pool replaces it.
            connection.invalidate()
        raise psycopg.OperationalError(f"could not begin the tenant's transaction: {message}")
    if also is not None:
        transformer = Transformer(raw)
        transformer.set_pgresult(result)
        g.opening_rows = [transformer.load_row(i, tuple) for i in range(result.ntuples)]


def open_with(select_sql: bytes) -> list[tuple[Any, ...]] | None:
    """Begin the session's transaction bound to the request's tenant, running `select_sql` (a
    complete select, values inlined) in the same round trip; return its rows.

    Return None, having run nothing, when the session is in a transaction already or its
    connection cannot be opened that way (the caller then runs its select as usual).
    """
    if db.session().in_transaction() or g.get("db_system"):
        return None
    for attempt in (1, 2):
        g.opening_select = select_sql
        try:
            db.session.connection()  # begins: _after_begin binds, and runs the select
            return g.pop("opening_rows", None)
        except psycopg.OperationalError:
            # A pooled connection the server ended (a restart) that looked idle at checkout:
            # _bind invalidated it, so once more on a new connection; a second failure is real.
            db.session.rollback()
            if attempt == 2:
                raise
        finally:
            g.pop("opening_select", None)
    return None


@event.listens_for(Session, "after_begin")
def _after_begin(session: Session, transaction: SessionTransaction, connection: Any) -> None:
    if has_app_context():
        _bind(connection)


def bind_tenant(tenant_id: int | None) -> None:
    """Bind the request to `tenant_id`; applies to the open transaction too."""
    g.tenant_id = tenant_id
    if db.session().in_transaction():
        _bind(db.session.connection())


@contextmanager
def system_context() -> Iterator[None]:
    """Run the block as the owning role, across tenants (CLI and scheduler only)."""
    db.session.rollback()  # a transaction begun as cass_app must not carry over
    previous = g.get("db_system", False)
    g.db_system = True
    try:
        yield
    finally:
        db.session.rollback()
        g.db_system = previous


@contextmanager
def tenant_context(tenant_id: int) -> Iterator[None]:
    """Run the block bound to one tenant, under row-level security."""
    db.session.rollback()
    previous_system, previous_tenant = g.get("db_system", False), g.get("tenant_id")
    g.db_system, g.tenant_id = False, tenant_id
    try:
        yield
    finally:
        db.session.rollback()
        g.db_system, g.tenant_id = previous_system, previous_tenant


def scoped(model: type[M], *criteria: Any) -> Select[tuple[M]]:
    """Return `select(model)` filtered to the current tenant (and `criteria`)."""
    tenant = current_tenant_id()
    if tenant is None:
        abort(404)
    return select(model).where(model.tenant_id == tenant, *criteria)  # type: ignore[attr-defined]


def get_or_404(model: type[M], ident: Any) -> M:
    """Return the current tenant's `model` row with primary key `ident`, or abort 404."""
    try:
        ident = int(ident)
    except (TypeError, ValueError):
        abort(404)
    row = db.session.scalars(scoped(model, model.id == ident)).first()  # type: ignore[attr-defined]
    if row is None:
        abort(404)
    return row
