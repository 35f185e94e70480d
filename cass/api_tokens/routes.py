"""/account/api-tokens (one's own tokens) and /admin/api-tokens (the tenant's live ones)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.admin.forms import ConfirmForm
from cass.api_tokens.forms import TokenForm
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import api_tokens

bp = Blueprint("api_tokens", __name__)


@bp.after_request
def _no_store(response: Response) -> Response:
    # A new token is in the answer that made it: no cache, proxy or back button may keep one.
    response.headers["Cache-Control"] = "no-store"
    return response


def _panel(
    form: TokenForm | None = None,
    token: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> Response:
    """Render the page, or for htmx its token panel."""
    return render(
        "account/api_tokens.html",
        "account/_api_tokens.html",
        status,
        tokens=api_tokens.tokens_of(current_user),
        form=form or TokenForm(formdata=None),
        token=token,
        error=error,
        max_live=api_tokens.MAX_LIVE,
        now=datetime.now(UTC),
        api_url=url_for("api_tickets.list_tickets", _external=True),
    )


@bp.get("/account/api-tokens")
@requires("api_tokens.own")
def index() -> Response:
    """List the user's API tokens, with the form that makes one."""
    return _panel()


@bp.post("/account/api-tokens")
@requires("api_tokens.own")
def create() -> Response:
    """Make a token and show it once, in this answer only."""
    form = TokenForm()
    error = None
    if form.validate_on_submit():
        try:
            token = api_tokens.create(
                current_user, form.name.data, form.scope.data, form.expires_at()
            )
        except api_tokens.TokenError as exc:
            error = str(exc)
        else:
            # Never a redirect: the token would have to travel in the session or the URL.
            return _panel(token=token)
    if wants_fragment():
        response = render("account/_api_token_form.html", None, 422, form=form, error=error)
        # The form posts into the whole panel; a refusal replaces the form alone.
        response.headers["HX-Retarget"] = "#api-token-form"
        response.headers["HX-Reswap"] = "outerHTML"
        return response
    return _panel(form, error=error, status=422)


@bp.post("/account/api-tokens/<int:token_id>/revoke")
@requires("api_tokens.own")
def revoke(token_id: int) -> Response:
    """Revoke one of the user's tokens: calls with it get 401 from now on."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _panel(status=422)
    revoked = api_tokens.revoke(current_user, token_id)
    if not revoked and all(token.id != token_id for token in api_tokens.tokens_of(current_user)):
        abort(404)  # someone else's token, or none at all
    if wants_fragment():
        return _panel()
    flash("The token is revoked: calls with it are refused.", "success")
    return redirect(url_for("api_tokens.index"), 303)


def _admin_table(status: int = 200) -> Response:
    """Render the admin page, or for htmx its table."""
    return render(
        "admin/api_tokens.html",
        "admin/_api_tokens.html",
        status,
        rows=api_tokens.tenant_tokens(),
    )


@bp.get("/admin/api-tokens")
@requires("api_tokens.manage")
def admin_index() -> Response:
    """List every live API token of the tenant, whoever made it."""
    return _admin_table()


@bp.post("/admin/api-tokens/<int:token_id>/revoke")
@requires("api_tokens.manage")
def admin_revoke(token_id: int) -> Response:
    """Revoke any user's token in the tenant (a leaked one, say)."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _admin_table(422)
    token = api_tokens.revoke_any(current_user, token_id)
    if token is None:
        abort(404)
    if wants_fragment():
        return _admin_table()
    flash(f"The token “{token.name}” is revoked: calls with it are refused.", "success")
    return redirect(url_for("api_tokens.admin_index"), 303)
