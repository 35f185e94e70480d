"""Bind each transaction to one tenant; the one helper every tenant query goes through.

Two layers keep tenants apart. Queries are scoped with `scoped()` / `get_or_404()`, and every
transaction also runs `SET LOCAL ROLE cass_app` with `app.tenant_id` set, so Postgres row-level
security filters whatever a query forgets. Only code that says `system_context()` (CLI commands,
scheduler jobs) runs as the owning role, across tenants.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from flask import abort, current_app, g, has_app_context
from sqlalchemy import Select, event, select
from sqlalchemy.orm import Session, SessionTransaction

from cass.extensions import db

M = TypeVar("M")

# Sent as is (exec_driver_sql): the one statement every request runs, so it skips text()'s
# compilation; set_config(..., true) is SET LOCAL: it ends with the transaction.
_BIND_SQL = (
    "SELECT set_config('role', %(role)s, true), set_config('app.tenant_id', %(tenant)s, true)"
)


def current_tenant_id() -> int | None:
    """Return the tenant bound to this request or command, if any."""
    return g.get("tenant_id") if has_app_context() else None


def _bind(connection: Any) -> None:
    """Set the role and tenant on the connection's current transaction."""
    if g.get("db_system"):
        return
    tenant = current_tenant_id()
    connection.exec_driver_sql(
        _BIND_SQL,
        {
            "role": current_app.config["CASS_APP_DB_ROLE"],
            "tenant": "" if tenant is None else str(tenant),
        },
    )


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
