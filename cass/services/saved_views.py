"""Saved list views: a name for a set of filters and sort, personal or shared with the tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select

from cass.extensions import db
from cass.models import SavedView, User
from cass.permissions import can
from cass.services.ticket_queries import MAX_ID, parse_query_string
from cass.tenancy import current_tenant_id, scoped

MAX_QUERY = 2000


class ViewError(ValueError):
    """The view cannot be saved; the message is shown next to the form (422)."""


class NotAllowed(PermissionError):
    """The user's role may not share views (403)."""


def canonical_query(raw: str) -> str:
    """Return `raw` reduced to the list's valid filters and sort, as a query string.

    Only the list's own keys survive (never `after` or anything else), and only values that
    parse, so applying a saved view can never carry a stale cursor or foreign parameters.
    """
    return parse_query_string(raw).query_string()


@dataclass(frozen=True, slots=True)
class ViewItem:
    """One saved view as the panel lists it."""

    id: int
    owner_id: int
    name: str
    shared: bool
    query: str


# The columns of a ViewItem, in order, and the panel's order.
ITEM_COLUMNS = (SavedView.id, SavedView.owner_id, SavedView.name, SavedView.shared, SavedView.query)
ORDER = (func.lower(SavedView.name), SavedView.id)


def visible_to(user_id: Any, tenant_id: Any) -> list[ColumnElement[bool]]:
    """Return the conditions of the views a user sees in a tenant: their own and the shared
    ones (`user_id` and `tenant_id` are values or bound parameters)."""
    return [
        SavedView.tenant_id == tenant_id,
        or_(SavedView.owner_id == user_id, SavedView.shared),
    ]


def list_views(actor: User) -> list[ViewItem]:
    """Return the actor's views and the views shared in the tenant, by name."""
    stmt = select(*ITEM_COLUMNS).where(*visible_to(actor.id, current_tenant_id()))
    return [ViewItem(*row) for row in db.session.execute(stmt.order_by(*ORDER))]


def save_view(actor: User, name: str, raw_query: str, shared: bool) -> SavedView:
    """Save the list's current filters and sort under `name` for `actor` (shared if asked)."""
    if shared and not can(actor.role, "views.share"):
        raise NotAllowed("Your role may not share views.")
    name = name.strip()
    if not name:
        raise ViewError("Give the view a name.")
    if any(ord(c) < 32 for c in name):  # Postgres refuses NUL; the rest is never meant
        raise ViewError("The name cannot contain control characters.")
    query = canonical_query(raw_query)
    if len(query) > MAX_QUERY:
        raise ViewError("These filters are too long to save as a view.")
    taken = db.session.scalar(
        scoped(
            SavedView,
            SavedView.owner_id == actor.id,
            func.lower(SavedView.name) == name.lower(),
        )
        .exists()
        .select()
    )
    if taken:
        raise ViewError(f"You already have a view named “{name}”.")
    view = SavedView(
        tenant_id=current_tenant_id(), owner_id=actor.id, name=name, shared=shared, query=query
    )
    db.session.add(view)
    db.session.commit()
    return view


def _own(actor: User, view_id: int) -> SavedView | None:
    if not 0 < view_id <= MAX_ID:
        return None
    return db.session.scalars(
        scoped(SavedView, SavedView.id == view_id, SavedView.owner_id == actor.id)
    ).first()


def set_shared(actor: User, view_id: int, shared: bool) -> SavedView | None:
    """Share the actor's own view with the tenant, or stop; None when it is not theirs."""
    if not can(actor.role, "views.share"):
        raise NotAllowed("Your role may not share views.")
    view = _own(actor, view_id)
    if view is not None and view.shared != shared:
        view.shared = shared
        db.session.commit()
    return view


def delete_view(actor: User, view_id: int) -> bool:
    """Delete the actor's own view `view_id`; return False when there is none (not theirs)."""
    view = _own(actor, view_id)
    if view is None:
        return False
    db.session.delete(view)
    db.session.commit()
    return True
