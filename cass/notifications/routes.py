"""The bell (an unread count, fetched after the page and refreshed) and the inbox page."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.admin.forms import ConfirmForm
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import notifications

bp = Blueprint("notifications", __name__, url_prefix="/notifications")


def _inbox(status: int = 200) -> Response:
    return render(
        "notifications/index.html",
        None,
        status,
        items=notifications.inbox(current_user),
        unread=notifications.unread_count(current_user),
        confirm=ConfirmForm(formdata=None),
    )


@bp.get("")
@requires("home.view")
def index() -> Response:
    """List the user's latest in-app notifications."""
    return _inbox()


@bp.get("/bell")
@requires("home.view")
def bell() -> Response:
    """Answer the bell with its unread count (htmx); the inbox page otherwise."""
    if not wants_fragment():
        return _inbox()
    return render("notifications/_bell.html", None, unread=notifications.unread_count(current_user))


@bp.post("/read")
@requires("home.view")
def mark_read() -> Response:
    """Mark every notification of the user read."""
    if not ConfirmForm().validate_on_submit():
        return _inbox(422)
    count = notifications.mark_read(current_user)
    if wants_fragment():
        return _inbox()
    flash(f"{count} notification{'s' if count != 1 else ''} marked read.", "success")
    return redirect(url_for("notifications.index"), 303)
