"""Render a whole page or, for htmx requests, just the fragment it includes."""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Flask, Response, make_response, render_template, request
from markupsafe import Markup

from cass.lifecycle import STATUS_LABELS
from cass.models.tickets import PRIORITIES


def wants_fragment() -> bool:
    """Return whether to answer with a fragment: htmx, but neither boosted nor a restore."""
    hx = getattr(request, "htmx", None)
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def render(page: str, fragment: str | None = None, status: int = 200, **context: Any) -> Response:
    """Render `fragment` for htmx requests, else `page` (which includes the fragment)."""
    template = fragment if fragment and wants_fragment() else page
    return make_response(render_template(template, **context), status)


def init_rendering(app: Flask) -> None:
    """Offer templates `badges()`: every status and priority badge, rendered once."""

    def render_badges() -> tuple[dict[str, Markup], dict[str, Markup]]:
        # The markup stays in the _badges.html macros; a list of 50 rows looks it up instead of
        # calling them 100 times.
        macros = app.jinja_env.get_template("tickets/_badges.html").make_module(
            {"status_labels": STATUS_LABELS}
        )
        return (
            {status: macros.status_badge(status) for status in STATUS_LABELS},
            {priority: macros.priority_badge(priority) for priority in PRIORITIES},
        )

    rendered = cache(render_badges)

    def badges() -> tuple[dict[str, Markup], dict[str, Markup]]:
        # Templates that reload when edited (debug) get fresh badges each time.
        return render_badges() if app.jinja_env.auto_reload else rendered()

    app.jinja_env.globals["badges"] = badges
