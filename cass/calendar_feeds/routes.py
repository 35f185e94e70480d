"""GET /calendar/<token>.ics (authenticated by its token alone) and /account/calendar."""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.admin.forms import ConfirmForm
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.services import calendar_feeds

bp = Blueprint("calendar_feeds", __name__)


@bp.get("/calendar/<token>.ics")
def feed(token: str) -> Response:
    """Serve the iCalendar of the token's user; 404 for a token unknown or revoked."""
    body = calendar_feeds.feed(token)
    if body is None:
        abort(404)
    response = make_response(body)
    response.content_type = "text/calendar; charset=utf-8"
    response.headers["Cache-Control"] = "private, max-age=300"
    response.headers["Content-Disposition"] = 'inline; filename="cass-visits.ics"'
    return response


def _panel(status: int = 200, token: str | None = None) -> Response:
    """Render the page, or for htmx its feed panel."""
    url = url_for("calendar_feeds.feed", token=token, _external=True) if token else None
    response = render(
        "account/calendar.html",
        "account/_calendar_feed.html",
        status,
        feed=calendar_feeds.current(current_user),
        url=url,
        # The same URL for calendar apps that subscribe when a webcal:// link is opened.
        webcal="webcal://" + url.split("://", 1)[1] if url else None,
        vendor=current_user.role == "vendor",
    )
    if url:
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/account/calendar")
@requires("visits.feed")
def index() -> Response:
    """Show whether the user has a calendar feed, and how to make or revoke one."""
    return _panel()


@bp.post("/account/calendar")
@requires("visits.feed")
def create() -> Response:
    """Make a new feed URL and show it once; an earlier one stops working at once."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _panel(422)
    token = calendar_feeds.create(current_user)
    # Shown in this answer only: never stored (only its hash), never in the session cookie.
    return _panel(token=token)


@bp.post("/account/calendar/revoke")
@requires("visits.feed")
def revoke() -> Response:
    """Revoke the feed: its URL answers 404 from now on."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        return _panel(422)
    revoked = calendar_feeds.revoke(current_user)
    if wants_fragment():
        return _panel()
    if revoked:
        flash("Your calendar feed is revoked: its URL no longer works.", "success")
    return redirect(url_for("calendar_feeds.index"), 303)
