"""The ticket list: filters, search, sort, keyset pagination and saved views."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import abort, flash, redirect, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response
from wtforms import BooleanField, HiddenField, StringField
from wtforms.validators import DataRequired, Length

from cass.models import SavedView, User
from cass.permissions import can, requires
from cass.rendering import render, wants_fragment
from cass.services import saved_views, ticket_list, ticket_queries
from cass.services.ticket_list import ListScreen
from cass.services.ticket_queries import BadCursor, ListPage
from cass.tickets.blueprint import bp
from cass.tickets.routes import new_bulk_form
from cass.widgets import CheckboxInput, TextInput

BAD_CURSOR = (
    "This “Load more” link does not fit this list (it was altered, or made for another sort). "
    "Nothing more was loaded; reload the list to start again."
)


class SavedViewForm(FlaskForm):
    """Save the list's current filters and sort under a name; `query` is the list's URL query."""

    # Own ids: the list page has other fields called "name" elsewhere.
    # Rendered on every load of the list page: the faster widgets.
    name = StringField(
        "View name",
        validators=[DataRequired(), Length(max=80)],
        id="view-name",
        widget=TextInput(),
    )
    shared = BooleanField("Share with the team", id="view-shared", widget=CheckboxInput())
    query = HiddenField(validators=[Length(max=ticket_queries.MAX_QUERY_STRING)])


class DeleteViewForm(FlaskForm):
    """Confirm deleting a saved view (the CSRF token only)."""


class ShareViewForm(FlaskForm):
    """Share one's saved view with the team (`shared` checked) or stop sharing it."""

    shared = BooleanField("Shared")


def _actor() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _view_fields() -> dict[str, Any]:
    return {"view_form": SavedViewForm(formdata=None)}


def _views_context(
    form: SavedViewForm | None = None,
    error: str | None = None,
    views: list[saved_views.ViewItem] | None = None,
) -> dict[str, Any]:
    """Return what the saved-views panel renders (`views` read now unless given); without
    `form`, an empty one (its fields made once, by `view_fields`)."""
    return {
        "views": saved_views.list_views(_actor()) if views is None else views,
        "view_form": form,
        "view_fields": _view_fields,
        "view_error": error,
    }


def _whole_page(
    screen: ListScreen,
    status: int,
    form: SavedViewForm | None = None,
    view_error: str | None = None,
) -> Response:
    """Render the whole list page: filters, saved views, the bulk form and the table."""
    error = BAD_CURSOR if screen.bad_cursor else None
    context: dict[str, Any] = {
        "query": screen.listing.query,
        "listing": screen.listing,
        "error": error,
        "choices": screen.choices,
        **_views_context(form, view_error, screen.views),
    }
    if can(current_user.role, "tickets.bulk"):
        # The bulk form's fields depend on the role's actions and the assignees only.
        context["bulk_key"] = (current_user.role, tuple(screen.assignees))
        context["bulk_fields"] = lambda: {"bulk_form": new_bulk_form(screen.assignees)}
    return render("tickets/list.html", status=422 if error else status, **context)


@bp.get("")
@requires("tickets.view")
def index() -> Response:
    """List the tickets the user may see: filtered, searched, sorted, 50 rows a page.

    htmx gets the table (a filter or sort change) or, with `after`, the next rows and a new
    "Load more" row; other requests get the whole page. Parameters that do not parse are
    ignored and named in a notice above the table (200). A bad `after` cursor is a 422 with a
    message: restarting at the first page would append rows that are already shown.
    """
    query = ticket_queries.parse_list_query(request.args)
    if not wants_fragment():
        return _whole_page(ticket_list.list_screen(_actor(), query), 200)
    error, status = None, 200
    try:
        listing = ticket_queries.list_page(_actor(), query)
    except BadCursor:
        listing, error, status = ListPage(query, [], None), BAD_CURSOR, 422
    context = {"query": query, "listing": listing, "error": error}
    if query.after:
        return render("tickets/_list_rows.html", status=status, **context)
    response = render("tickets/_list_table.html", status=status, **context)
    # The filter form sends its empty fields too: the address bar gets the clean URL instead,
    # and nothing new when it shows this list already (a live refresh, say).
    clean = url_for("tickets.index", **query.params())
    shown = urlsplit(request.headers.get("HX-Current-URL", ""))
    same = (shown.path, shown.query) == urlsplit(clean)[2:4]
    response.headers["HX-Push-Url"] = "false" if same else clean
    return response


def _views_answer(status: int, form: SavedViewForm, error: str | None = None) -> Response:
    """Answer a saved-view POST that did not redirect: the panel for htmx, else the page."""
    if wants_fragment():
        return render("tickets/_list_views.html", status=status, **_views_context(form, error))
    query = ticket_queries.parse_query_string(form.query.data or "")
    return _whole_page(ticket_list.list_screen(_actor(), query), status, form, error)


def _view_url(view: SavedView) -> str:
    return url_for("tickets.index", **ticket_queries.parse_query_string(view.query).params())


@bp.post("/views")
@requires("views.save")
def view_save() -> Response:
    """Save the list's filters and sort as a named view; sharing needs `views.share` (403)."""
    form = SavedViewForm()
    error = None
    if form.validate_on_submit():
        try:
            view = saved_views.save_view(
                _actor(), form.name.data or "", form.query.data or "", form.shared.data
            )
        except saved_views.NotAllowed:
            abort(403)
        except saved_views.ViewError as exc:
            error = str(exc)
        else:
            if wants_fragment():
                return render("tickets/_list_views.html", **_views_context())
            flash(f"View “{view.name}” saved.", "success")
            return redirect(_view_url(view), 303)
    return _views_answer(422, form, error)


@bp.post("/views/<int:view_id>/delete")
@requires("views.save")
def view_delete(view_id: int) -> Response:
    """Delete one of the user's own saved views (anyone else's is a 404)."""
    form = DeleteViewForm()
    if not form.validate_on_submit():
        abort(400)
    if not saved_views.delete_view(_actor(), view_id):
        abort(404)
    if wants_fragment():
        return render("tickets/_list_views.html", **_views_context())
    flash("View deleted.", "success")
    return redirect(url_for("tickets.index"), 303)


@bp.post("/views/<int:view_id>/share")
@requires("views.share")
def view_share(view_id: int) -> Response:
    """Share one of the user's own saved views with the team, or stop (others' are a 404)."""
    form = ShareViewForm()
    if not form.validate_on_submit():
        abort(400)
    view = saved_views.set_shared(_actor(), view_id, form.shared.data)
    if view is None:
        abort(404)
    if wants_fragment():
        return render("tickets/_list_views.html", **_views_context())
    flash(f"View “{view.name}” is {'shared' if view.shared else 'yours only'} now.", "success")
    return redirect(url_for("tickets.index"), 303)
