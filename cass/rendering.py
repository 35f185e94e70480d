"""Render a whole page or, for htmx requests, just the fragment it includes."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from functools import cache, lru_cache
from typing import Any

from flask import Flask, Response, current_app, make_response, render_template, request
from markupsafe import Markup, escape

from cass.lifecycle import STATUS_LABELS
from cass.models.tickets import PRIORITIES

# Distinct renderings kept by render_once() and options(): a navigation per role and endpoint,
# per tenant a handful.
CACHED_RENDERINGS = 1024


def wants_fragment() -> bool:
    """Return whether to answer with a fragment: htmx, but neither boosted nor a restore."""
    hx = getattr(request, "htmx", None)
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def render(page: str, fragment: str | None = None, status: int = 200, **context: Any) -> Response:
    """Render `fragment` for htmx requests, else `page` (which includes the fragment)."""
    template = fragment if fragment and wants_fragment() else page
    return make_response(render_template(template, **context), status)


_rendered: dict[tuple[str, Hashable], Markup] = {}


def render_once(
    template: str, key: Hashable, make: Callable[[], dict[str, Any]] | None = None, **context: Any
) -> Markup:
    """Return `template` rendered with `context` (and what `make()` returns, called only when
    rendering), reusing the markup made for the same `key`.

    `key` must hold everything the markup depends on (choices, say): the same key is taken to
    give the same markup. Templates that reload when edited (debug) are rendered each time.
    """
    found = None if current_app.jinja_env.auto_reload else _rendered.get((template, key))
    if found is None:
        if make is not None:
            context.update(make())
        found = Markup(render_template(template, **context))  # noqa: S704 (Jinja escaped it)
        if not current_app.jinja_env.auto_reload:
            if len(_rendered) >= CACHED_RENDERINGS:
                _rendered.clear()
            _rendered[(template, key)] = found
    return found


@lru_cache(maxsize=CACHED_RENDERINGS)
def _options(choices: tuple[tuple[Any, str], ...]) -> str:
    return "".join(
        f'<option value="{escape(value)}">{escape(label)}</option>' for value, label in choices
    )


def options(choices: Iterable[tuple[Any, str]], selected: Any = None) -> Markup:
    """Return `<option>`s for (value, label) pairs, the one whose value is `selected` selected.

    The markup of a list of choices (a tenant's sites, say) is made once and reused: a page
    offers hundreds of options, and they seldom change.
    """
    html = _options(tuple(choices))
    if selected is not None:
        value = f'<option value="{escape(selected)}">'
        html = html.replace(value, value[:-1] + " selected>", 1)
    return Markup(html)  # noqa: S704 (every value and label is escaped in _options)


def init_rendering(app: Flask) -> None:
    """Offer templates `badges()` (every status and priority badge, rendered once),
    `options()` and `render_once()`."""

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
    app.jinja_env.globals["options"] = options
    app.jinja_env.globals["render_once"] = render_once
