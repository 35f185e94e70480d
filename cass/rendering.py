"""Render a whole page or, for htmx requests, just the fragment it includes."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, render_template, request


def wants_fragment() -> bool:
    """Return whether to answer with a fragment: htmx, but neither boosted nor a restore."""
    hx = getattr(request, "htmx", None)
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def render(page: str, fragment: str | None = None, status: int = 200, **context: Any) -> Response:
    """Render `fragment` for htmx requests, else `page` (which includes the fragment)."""
    template = fragment if fragment and wants_fragment() else page
    return make_response(render_template(template, **context), status)
