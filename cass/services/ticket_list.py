"""The whole ticket-list page: its rows, and everything around them in one more select.

The rows are `ticket_queries.list_page`. The filter form's choices (sites, people, vendors),
the saved views and the bulk form's assignees come from one select of JSON aggregates rather
than five selects: on this page each statement costs more in its round trip and SQLAlchemy's
work around it than in its rows. That select rides in the round trip of the page's own first
statement (`cass.pool.alongside`), compiled once.

The tenant's sites, people and vendors change seldom and are the same for everyone in it, so
they are kept per tenant: a change made through this process's sessions (an ORM flush or an
insert, update or delete on their tables) clears them as it commits; one made elsewhere (another
web process, the OCPP bridge registering a site) shows within CHOICES_SECONDS. The saved views
are read on every load: a view just saved must be there.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from functools import cache
from itertools import chain
from typing import Any

from sqlalchemy import JSON, BigInteger, Select, bindparam, event, func, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm import ORMExecuteState, Session

from cass.extensions import db
from cass.models import Site, User, Vendor
from cass.permissions import can
from cass.pool import alongside
from cass.services import saved_views
from cass.services.saved_views import ViewItem
from cass.services.ticket_queries import BadCursor, ListPage, ListQuery, list_page
from cass.services.tickets import ASSIGNABLE_ROLES, assignee_options
from cass.tenancy import current_tenant_id

# How long a change made outside this process may take to show in the filters and bulk form.
CHOICES_SECONDS = 5.0
_WATCHED = (Site, User, Vendor)
_WATCHED_TABLES = frozenset(model.__tablename__ for model in _WATCHED)
_CHANGED = "cass_list_choices_changed"  # in Session.info: this transaction changed them


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


@dataclass(frozen=True)
class _TenantChoices:
    """A tenant's filter choices and bulk assignees, as read at `read_at` (monotonic)."""

    choices: FilterChoices
    assignees: list[tuple[str, str]]
    read_at: float


class _Kept:
    """The tenants' choices kept per engine (so per app and database), cleared together."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation = 0  # bumped by every clearing
        self.by_engine: weakref.WeakKeyDictionary[Any, dict[int, _TenantChoices]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, tenant: int) -> _TenantChoices | None:
        found = self.by_engine.get(db.engine, {}).get(tenant)
        if found is None or time.monotonic() - found.read_at > CHOICES_SECONDS:
            return None
        return found

    def put(self, tenant: int, generation: int, found: _TenantChoices) -> None:
        with self.lock:
            # Read before a clearing that came since: it may hold what was changed.
            if generation == self.generation:
                self.by_engine.setdefault(db.engine, {})[tenant] = found

    def clear(self) -> None:
        with self.lock:
            self.generation += 1
            self.by_engine.clear()


_kept = _Kept()


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, flush_context: Any) -> None:
    # Still the flush's own lists here.
    if any(isinstance(obj, _WATCHED) for obj in chain(session.new, session.dirty, session.deleted)):
        session.info[_CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in _WATCHED_TABLES:
            state.session.info[_CHANGED] = True


@event.listens_for(Session, "after_commit")
def _clear_on_commit(session: Session) -> None:
    if session.info.pop(_CHANGED, False):
        _kept.clear()


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    session.info.pop(_CHANGED, None)


def _json_rows(*columns: Any, where: list[Any], order_by: tuple[Any, ...]) -> Any:
    """Return a scalar subquery of the matching rows' `columns` as one JSON array of arrays."""
    rows = func.json_agg(aggregate_order_by(func.json_build_array(*columns), *order_by), type_=JSON)
    return select(rows).where(*where).scalar_subquery()


@cache
def _surroundings_select(choices: bool) -> Select[Any]:
    """Return the select of the saved views and, with `choices`, the tenant's sites, people
    and vendors.

    Built once per process (per variant), with the tenant and the user as bound parameters:
    building and keying a statement of four subqueries costs more than running it.
    """
    tenant, me = bindparam("tenant", type_=BigInteger), bindparam("me", type_=BigInteger)
    parts = {
        "views": _json_rows(
            *saved_views.ITEM_COLUMNS,
            where=saved_views.visible_to(me, tenant),
            order_by=saved_views.ORDER,
        ),
    }
    if choices:
        parts["sites"] = _json_rows(
            Site.id, Site.name, where=[Site.tenant_id == tenant], order_by=(Site.name, Site.id)
        )
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


@cache
def _surroundings_sql(choices: bool) -> tuple[str, Any, tuple[str, ...]]:
    """Return the surroundings select as psycopg runs it, its compiled form and its columns."""
    compiled = _surroundings_select(choices).compile(dialect=db.engine.dialect)
    return str(compiled), compiled, tuple(compiled.statement.selected_columns.keys())


def _tenant_choices(found: dict[str, list[Any]]) -> _TenantChoices:
    """Return the filter choices and bulk assignees made of the select's aggregates."""
    users, vendors = found["users"], found["vendors"]
    return _TenantChoices(
        FilterChoices(
            [(ident, name) for ident, name in found["sites"]],
            [(ident, name) for ident, name, role, _ in users if role != "viewer"],
            [(ident, name) for ident, name, _ in vendors],
        ),
        assignee_options(
            [(i, n) for i, n, role, active in users if active and role in ASSIGNABLE_ROLES],
            [(i, n) for i, n, active in vendors if active],
        ),
        time.monotonic(),
    )


def list_screen(actor: User, query: ListQuery) -> ListScreen:
    """Return the page of tickets matching `query` and all the whole page offers around it."""
    tenant = current_tenant_id()
    kept = _kept.get(tenant) if tenant is not None else None
    generation = _kept.generation
    sql, compiled, names = _surroundings_sql(kept is None)
    params = compiled.construct_params({"tenant": tenant, "me": actor.id})
    # The surroundings ride with the page's first statement, in its round trip.
    with alongside(db.session.connection(), sql, params) as rows:
        try:
            listing, bad_cursor = list_page(actor, query), False
        except BadCursor:
            listing, bad_cursor = ListPage(query, [], None), True
    if not rows:  # no statement was sent (a bad cursor): on their own
        rows = list(db.session.connection().exec_driver_sql(sql, params).all())
    # On the session's connection (bound to the tenant); json_agg over no rows is NULL.
    found = {name: value or [] for name, value in zip(names, rows[0], strict=True)}
    if kept is None:
        kept = _tenant_choices(found)
        if tenant is not None:
            _kept.put(tenant, generation, kept)
    choices = kept.choices
    if actor.role == "vendor":  # vendors filter by site only
        choices = FilterChoices(choices.sites, [], [])
    return ListScreen(
        listing=listing,
        bad_cursor=bad_cursor,
        choices=choices,
        views=[ViewItem(*v) for v in found["views"]],
        assignees=kept.assignees if can(actor.role, "tickets.bulk") else [],
    )
