"""Load the signed-in user and bind the request to their tenant before anything else."""

from __future__ import annotations

from flask import Flask, flash, redirect, request, session
from flask_login import current_user, login_url, logout_user
from werkzeug.wrappers import Response

from cass.extensions import db, login_manager
from cass.models import User
from cass.tenancy import bind_tenant

UNSCOPED_BLUEPRINTS = {"health"}


@login_manager.user_loader
def load_user(ident: str) -> User | None:
    """Return the user behind a session id `tenant:user:token`, if still valid and active."""
    try:
        tenant_s, user_s, token = ident.split(":", 2)
        tenant_id, user_id = int(tenant_s), int(user_s)
    except ValueError:
        return None
    bind_tenant(tenant_id)
    user = db.session.get(User, user_id)
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
        bind_tenant(None)
        if not current_user.is_authenticated and "_user_id" in session:
            # A deactivated user or a changed password: the old session ends here.
            logout_user()
