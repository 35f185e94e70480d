"""The whole ticket-list page: its rows, and everything around them in one more select.

The rows are `ticket_queries.list_page`. The filter form's choices (sites, people, vendors),
the saved views and the bulk form's assignees come from one select of JSON aggregates rather
than five selects: on this page each statement costs more in its round trip and SQLAlchemy's
work around it than in its rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

from sqlalchemy import JSON, BigInteger, Select, bindparam, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by

from cass.extensions import db
from cass.models import Site, User, Vendor
from cass.permissions import can
from cass.services import saved_views
from cass.services.saved_views import ViewItem
from cass.services.ticket_queries import BadCursor, ListPage, ListQuery, list_page
from cass.services.tickets import ASSIGNABLE_ROLES, assignee_options
from cass.tenancy import current_tenant_id


@dataclass(frozen=True)
class FilterChoices:
    """What the filter form offers: the tenant's sites, its people but viewers, its vendors."""

    sites: list[tuple[int, str]]
    users: list[tuple[int, str]]
    vendors: list[tuple[int, str]]


@dataclass(frozen=True)
class ListScreen:
    """Everything the whole list page shows."""

    listing: ListPage
    bad_cursor: bool  # `after` was not a cursor of this list: no rows, and a 422
    choices: FilterChoices
    views: list[ViewItem]
    assignees: list[tuple[str, str]]  # the bulk form's, for those who may act in bulk


def _json_rows(*columns: Any, where: list[Any], order_by: tuple[Any, ...]) -> Any:
    """Return a scalar subquery of the matching rows' `columns` as one JSON array of arrays."""
    rows = func.json_agg(aggregate_order_by(func.json_build_array(*columns), *order_by), type_=JSON)
    return select(rows).where(*where).scalar_subquery()


@cache
def _surroundings_select(staff: bool) -> Select[Any]:
    """Return the select of the sites, saved views and, for `staff`, people and vendors.

    Built once per process (per variant), with the tenant and the user as bound parameters:
    building and keying a statement of four subqueries costs more than running it.
    """
    tenant, me = bindparam("tenant", type_=BigInteger), bindparam("me", type_=BigInteger)
    parts = {
        "sites": _json_rows(
            Site.id, Site.name, where=[Site.tenant_id == tenant], order_by=(Site.name, Site.id)
        ),
        "views": _json_rows(
            *saved_views.ITEM_COLUMNS,
            where=saved_views.visible_to(me, tenant),
            order_by=saved_views.ORDER,
        ),
    }
    if staff:
        parts["users"] = _json_rows(
            User.id,
            User.name,
            User.role,
            User.is_active_flag,
            where=[User.tenant_id == tenant],
            order_by=(User.name, User.id),
        )
        parts["vendors"] = _json_rows(
            Vendor.id,
            Vendor.name,
            Vendor.is_active,
            where=[Vendor.tenant_id == tenant],
            order_by=(Vendor.name, Vendor.id),
        )
    return select(*(part.label(name) for name, part in parts.items()))


def _surroundings(actor: User) -> dict[str, list[list[Any]]]:
    """Return the sites, saved views, people and vendors the page offers, in one select."""
    # Vendors filter by site only, and never act in bulk.
    stmt = _surroundings_select(actor.role != "vendor")
    # On the session's connection (bound to the tenant): columns, not entities.
    found = (
        db.session.connection()
        .execute(stmt, {"tenant": current_tenant_id(), "me": actor.id})
        .one()
        ._asdict()
    )
    # json_agg over no rows is NULL.
    return {name: found.get(name) or [] for name in ("sites", "views", "users", "vendors")}


def list_screen(actor: User, query: ListQuery) -> ListScreen:
    """Return the page of tickets matching `query` and all the whole page offers around it."""
    try:
        listing, bad_cursor = list_page(actor, query), False
    except BadCursor:
        listing, bad_cursor = ListPage(query, [], None), True
    found = _surroundings(actor)
    users = [(ident, name) for ident, name, role, _ in found["users"] if role != "viewer"]
    vendors = [(ident, name) for ident, name, _ in found["vendors"]]
    assignees: list[tuple[str, str]] = []
    if can(actor.role, "tickets.bulk"):
        assignees = assignee_options(
            [
                (i, n)
                for i, n, role, active in found["users"]
                if active and role in ASSIGNABLE_ROLES
            ],
            [(i, n) for i, n, active in found["vendors"] if active],
        )
    return ListScreen(
        listing=listing,
        bad_cursor=bad_cursor,
        choices=FilterChoices([(ident, name) for ident, name in found["sites"]], users, vendors),
        views=[ViewItem(*v) for v in found["views"]],
        assignees=assignees,
    )
