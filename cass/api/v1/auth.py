"""Bearer tokens on every API call: who calls, in which tenant, within which rate limit."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, request
from flask_login import current_user
from flask_smorest import Blueprint
from webargs.flaskparser import FlaskParser
from werkzeug.wrappers import Response

from cass.api.v1.errors import ApiError
from cass.auth.session import as_loaded
from cass.permissions import PERMISSIONS, can
from cass.services import api_tokens
from cass.tenancy import bind_tenant

F = TypeVar("F", bound=Callable[..., Any])

# Methods a read-scoped token may use.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def authenticate() -> None:
    """Resolve the call's bearer token to its user and tenant, counting it against the limit."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401)
    window = timedelta(seconds=current_app.config["CASS_API_RATE_WINDOW"])
    caller = api_tokens.authenticate(token, window)
    if caller is None:
        raise ApiError(401, "E_INVALID_TOKEN", "The token is unknown, revoked or expired.")
    limit = current_app.config["CASS_API_RATE_LIMIT"]
    reset = max(1, math.ceil((caller.window_ends - datetime.now(UTC)).total_seconds()))
    g.api_rate = (limit, caller.remaining(limit), reset)
    if caller.calls > limit:
        raise ApiError(
            429,
            message=f"This token may make {limit} calls in {window.seconds} s; retry in {reset} s.",
            details={"limit": limit, "window_seconds": window.seconds, "retry_after": reset},
            headers={"Retry-After": str(reset)},
        )
    if not caller.user["is_active_flag"]:
        raise ApiError(401, "E_INVALID_TOKEN", "The token's user is deactivated.")
    bind_tenant(caller.tenant_id)
    user = as_loaded(caller.user)
    # Flask-Login's current user for this request only: nothing goes into a session cookie.
    g._login_user = user
    g.api_scope = caller.scope


def rate_headers(response: Response) -> Response:
    """Tell the caller its limit, what is left and when the window resets."""
    rate = g.get("api_rate")
    if rate is not None:
        limit, remaining, reset = rate
        response.headers["X-RateLimit-Limit"] = str(limit)
        response.headers["X-RateLimit-Remaining"] = str(remaining)
        response.headers["X-RateLimit-Reset"] = str(reset)
    response.headers["Cache-Control"] = "no-store"
    return response


def allowed(action: str) -> Callable[[F], F]:
    """Let the call through only if its user's role may perform `action` (the permission table
    the web uses) and, for a method that changes something, its token is write-scoped."""
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}")

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if request.method not in READ_METHODS and g.get("api_scope") != "write":
                raise ApiError(403, "E_READ_ONLY_TOKEN", "This token may only read (GET).")
            if not can(current_user.role, action):
                raise ApiError(403)
            return view(*args, **kwargs)

        wrapped.required_action = action  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator


class ApiBlueprint(Blueprint):
    """A flask-smorest blueprint whose arguments refuse what they do not know (422).

    webargs would drop unknown query parameters; a filter misspelt (`priorty=P1`) would then
    give the whole list, as if it were the answer. Every location goes by the schema's own
    rule, marshmallow's RAISE.
    """

    ARGUMENTS_PARSER = FlaskParser(unknown=None)


def api_blueprint(name: str, description: str) -> Blueprint:
    """Return a blueprint under /api/v1 whose every view needs a bearer token."""
    blueprint = ApiBlueprint(name, name, url_prefix="/api/v1", description=description)
    blueprint.before_request(authenticate)
    blueprint.after_request(rate_headers)
    return blueprint
