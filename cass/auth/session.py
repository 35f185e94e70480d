"""Load the signed-in user and bind the request to their tenant before anything else."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Flask, flash, redirect, request, session
from flask_login import current_user, login_url, logout_user
from sqlalchemy import inspect, select
from sqlalchemy.orm import make_transient_to_detached
from werkzeug.wrappers import Response

from cass.extensions import db, login_manager
from cass.models import User
from cass.tenancy import bind_tenant, open_with

UNSCOPED_BLUEPRINTS = {"health"}
MAX_ID = 2**63 - 1  # bigint


@cache
def _user_select() -> tuple[tuple[str, ...], bytes]:
    """Return the attribute names of User's columns and the select of them, but its WHERE."""
    stmt = select(*(column for _, column in user_attributes()))
    sql = str(stmt.compile(dialect=db.engine.dialect))
    return tuple(key for key, _ in user_attributes()), sql.encode()


def _get_user(user_id: int) -> User | None:
    """Return user `user_id` (under the bound tenant), selected as the transaction begins.

    Every signed-in request reads its user first: the select rides in the round trip that
    begins and binds the transaction (tenancy.open_with), and the row becomes a persistent
    User as the ORM would load it, without the ORM's query machinery.
    """
    if not 0 < user_id <= MAX_ID:
        return None
    session = db.session()
    if session.identity_map.get(session.identity_key(User, user_id)) is None:
        keys, sql = _user_select()
        rows = open_with(sql + b" WHERE app_user.id = %d" % user_id)
        if rows is not None:
            if not rows:
                return None
            return as_loaded(dict(zip(keys, rows[0], strict=True)))
    return session.get(User, user_id)


def as_loaded(values: dict[str, Any]) -> User:
    """Return the User of a row selected outside the ORM (its column values by attribute name),
    persistent in the session as the ORM would load it: no history, an identity key."""
    user = User(**values)
    make_transient_to_detached(user)
    db.session.add(user)
    return user


@cache
def user_attributes() -> tuple[tuple[str, Any], ...]:
    """Return (attribute name, column) of each of User's columns, for a select or a RETURNING
    whose row as_loaded() turns into a User."""
    return tuple((prop.key, prop.columns[0]) for prop in inspect(User).column_attrs)


@login_manager.user_loader
def load_user(ident: str) -> User | None:
    """Return the user behind a session id `tenant:user:token`, if still valid and active."""
    try:
        tenant_s, user_s, token = ident.split(":", 2)
        tenant_id, user_id = int(tenant_s), int(user_s)
    except ValueError:
        return None
    bind_tenant(tenant_id)
    user = _get_user(user_id)
    if user is None or not user.is_active or user.session_token != token:
        bind_tenant(None)
        return None
    return user


def init_sessions(app: Flask) -> None:
    """Configure Flask-Login and resolve the user at the start of each request."""
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please sign in to see that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "basic"

    @login_manager.unauthorized_handler
    def _unauthorized() -> Response:
        # htmx would swap a redirect's target into the page; tell it to navigate instead.
        target = login_url("auth.login", next_url=request.full_path.rstrip("?"))
        if request.htmx:
            response = Response("Please sign in.", 401)
            response.headers["HX-Redirect"] = target
            return response
        flash(login_manager.login_message, "info")
        return redirect(target)

    @app.before_request
    def _bind_user() -> None:
        if request.blueprint in UNSCOPED_BLUEPRINTS or request.endpoint == "static":
            return
        if (request.blueprint or "").startswith("api"):
            # The API authenticates each call itself (a bearer token, or the CSMS's signature);
            # a session cookie sent along must not make a call anybody's.
            bind_tenant(None)
            return
        bind_tenant(None)
        if not current_user.is_authenticated and "_user_id" in session:
            # A deactivated user or a changed password: the old session ends here.
            logout_user()
