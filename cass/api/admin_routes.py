"""The admin page of the CSMS integration: whether a secret is set; rotate or remove it."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.admin.forms import ConfirmForm
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import csms_events

bp = Blueprint("csms_admin", __name__, url_prefix="/admin/csms")


def _panel(status: int = 200, secret: str | None = None) -> Response:
    """Render the page, or for htmx its secret panel."""
    slug, is_set = csms_events.secret_status(current_user.tenant_id)
    response = render(
        "api/csms.html",
        "api/_csms_secret.html",
        status,
        is_set=is_set,
        secret=secret,
        tenant_slug=slug,
        window_minutes=int(csms_events.REPLAY_WINDOW.total_seconds() // 60),
    )
    if secret:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("")
@requires("csms.manage")
def index() -> Response:
    """Show whether events from another CSMS are accepted, and how they are signed."""
    return _panel()


@bp.post("/secret")
@requires("csms.manage")
def rotate() -> Response:
    """Make a new secret and show it once; the previous one stops working at once."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _panel(422)
    secret = csms_events.rotate_secret(current_user.tenant_id, current_user.id)
    # Shown in this answer only (never stored in the session cookie, never shown again).
    return _panel(secret=secret)


@bp.post("/secret/delete")
@requires("csms.manage")
def remove() -> Response:
    """Remove the secret: every event is refused until a new one is made."""
    form = ConfirmForm()
    if form.validate_on_submit():
        csms_events.remove_secret(current_user.tenant_id, current_user.id)
    if wants_fragment():
        return _panel()
    flash("The CSMS secret was removed; events are refused until a new one is made.", "success")
    return redirect(url_for("csms_admin.index"), 303)
