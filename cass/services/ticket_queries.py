"""The ticket list as queries: read its parameters, select one page set-based, stream CSV rows.

Parameters arrive as a query string, so anything may come in. Values that do not parse (an
unknown status, a garbage date, a non-numeric id) are dropped and reported as notices, so a
pasted URL still shows a list. Only a bad `after` cursor is an error (`BadCursor`, a 422 in the
view): restarting silently at the first page would append duplicate rows under "Load more".

A page is one select of the tickets the user may see (as `tickets.visible`), filtered, ordered
by (sort column, updated_at, id) to match the (tenant_id, <filter>, updated_at, id) indexes, with
the site, charger and assignee names and the most urgent live SLA clock in the same select
(the CSV leaves the clock out: time left is a moment's reading, not data), and paged by keyset:
the next page starts after the last row's sort values, never at an OFFSET, so every page costs
the same. A search for words may take up to three selects (see `list_page`).
"""

from __future__ import annotations

import base64
import binascii
import json
import operator
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import abort
from psycopg.rows import namedtuple_row
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    any_,
    bindparam,
    cast,
    func,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from werkzeug.datastructures import MultiDict

from cass import lifecycle
from cass.csv_download import CopyExport, csv_cell, sql_cell, sql_text, tenant_zone
from cass.extensions import db
from cass.models import Charger, Connector, Site, Tenant, Ticket, User, Vendor
from cass.models.tickets import CATEGORIES, CHANNELS, PRIORITIES
from cass.pool import fetch_direct
from cass.services import sla
from cass.services.tickets import KEY_RE, format_key, tenant_prefix
from cass.tenancy import current_tenant_id

PAGE_SIZE = 50
MAX_ID = 2**63 - 1  # bigint: a larger number would make Postgres raise, not match nothing
MAX_Q = 200
SORTS = ("updated", "created", "priority", "key", "status")
# Newest first for times and keys; most urgent first for priority; A to Z for status (the
# status codes sort like their labels).
DEFAULT_DIR = {
    "updated": "desc",
    "created": "desc",
    "priority": "asc",
    "key": "desc",
    "status": "asc",
}
MAX_CURSOR = 400
MAX_QUERY_STRING = 4000
SEARCH_CAP = 1000
SEARCH_WINDOW = 2000
WINDOW_COLUMNS = (
    "id",
    "number",
    "title",
    "status",
    "priority",
    "category",
    "created_at",
    "updated_at",
    "site_id",
    "charger_id",
    "assignee_user_id",
    "assignee_vendor_id",
    "search",
)
MULTI_KEYS = ("status", "priority")
SINGLE_KEYS = (
    "category",
    "site",
    "charger",
    "assignee",
    "vendor",
    "channel",
    "created_from",
    "created_to",
    "updated_from",
    "updated_to",
    "q",
    "sort",
    "dir",
)
# The only query keys a saved view keeps, in the order URLs show them.
SAFE_KEYS = MULTI_KEYS + SINGLE_KEYS
DATE_KEYS = ("created_from", "created_to", "updated_from", "updated_to")
CSV_HEADER = (
    "key",
    "title",
    "status",
    "priority",
    "category",
    "channel",
    "site",
    "charger",
    "connector",
    "assignee",
    "vendor",
    "caller_name",
    "caller_phone",
    "caller_email",
    "created",
    "updated",
    "resolved",
)


class BadCursor(ValueError):
    """The `after` cursor is not one this list handed out (422)."""


@dataclass(frozen=True)
class ListQuery:
    """The list's filters and sort, validated; `notices` says what was ignored and why."""

    status: tuple[str, ...] = ()  # as asked, may include the pseudo-status "open"
    priority: tuple[str, ...] = ()
    category: str | None = None
    site: int | None = None
    charger: str | None = None  # OCPP id
    assignee: str | None = None  # "me", "none" or a user id
    vendor: int | None = None
    channel: str | None = None
    created_from: date | None = None
    created_to: date | None = None
    updated_from: date | None = None
    updated_to: date | None = None
    q: str = ""
    sort: str = "updated"
    dir: str = "desc"
    after: str | None = None
    notices: tuple[str, ...] = field(default=(), compare=False)

    @property
    def statuses(self) -> tuple[str, ...]:
        """Return the real statuses asked for, with "open" expanded."""
        wanted = set()
        for value in self.status:
            wanted.update(lifecycle.OPEN_STATUSES if value == "open" else (value,))
        return tuple(s for s in lifecycle.STATUSES if s in wanted)

    def params(self, **changes: Any) -> dict[str, str | list[str]]:
        """Return the canonical query parameters (for url_for), with `changes` applied."""
        query = replace(self, **changes) if changes else self
        out: dict[str, str | list[str]] = {}
        for key in SAFE_KEYS:
            value = getattr(query, key)
            # Defaults stay out of shareable URLs.
            if (key == "sort" and value == "updated") or (
                key == "dir" and value == DEFAULT_DIR[query.sort]
            ):
                continue
            if isinstance(value, tuple):
                if value:
                    out[key] = list(value)
            elif value not in (None, ""):
                out[key] = value.isoformat() if isinstance(value, date) else str(value)
        if query.after:
            out["after"] = query.after
        return out

    def query_string(self) -> str:
        """Return the canonical query string of the filters and sort (no cursor)."""
        return urlencode(self.params(after=None), doseq=True)

    def sort_params(self, sort: str) -> dict[str, str | list[str]]:
        """Return the parameters for a click on column `sort` (toggles the direction)."""
        if sort == self.sort:
            direction = "asc" if self.dir == "desc" else "desc"
        else:
            direction = DEFAULT_DIR[sort]
        return self.params(sort=sort, dir=direction, after=None)


def _clean(value: str | None) -> str:
    # NUL cannot be sent to Postgres in text; it is never meaningful in a filter.
    return (value or "").replace("\x00", "").strip()


def _id(value: str) -> int | None:
    # isascii: "²".isdigit() is true, yet int("²") raises.
    if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID:
        return int(value)
    return None


def parse_list_query(args: Mapping[str, Any]) -> ListQuery:
    """Read the list's filters and sort from query parameters, dropping what does not parse."""
    notices: list[str] = []
    getlist = getattr(args, "getlist", None)

    def many(key: str) -> list[str]:
        values = getlist(key) if getlist else [args.get(key)]
        return [v for v in (_clean(x) for x in values) if v]

    def one(key: str) -> str:
        values = many(key)
        return values[0] if values else ""

    kept: dict[str, Any] = {}
    statuses = []
    for value in many("status"):
        if value in lifecycle.STATUSES or value == "open":
            if value not in statuses:
                statuses.append(value)
        else:
            notices.append(f"Ignored status “{value[:40]}”: there is no such status.")
    kept["status"] = tuple(statuses)
    priorities = []
    for value in many("priority"):
        if value.upper() in PRIORITIES:
            if value.upper() not in priorities:
                priorities.append(value.upper())
        else:
            notices.append(f"Ignored priority “{value[:40]}”: use P1, P2, P3 or P4.")
    kept["priority"] = tuple(sorted(priorities))
    for key, allowed in (("category", CATEGORIES), ("channel", CHANNELS)):
        value = one(key)
        if value in allowed:
            kept[key] = value
        elif value:
            notices.append(f"Ignored {key} “{value[:40]}”: there is no such {key}.")
    for key in ("site", "vendor"):
        value = one(key)
        if value and _id(value) is None:
            notices.append(f"Ignored {key} “{value[:40]}”: not an id.")
        elif value:
            kept[key] = _id(value)
    charger = one("charger")
    if len(charger) > 64:
        notices.append("Ignored charger: an OCPP id has at most 64 characters.")
    elif charger:
        kept["charger"] = charger
    assignee = one("assignee").lower()
    if assignee in ("me", "none") or (assignee and _id(assignee) is not None):
        kept["assignee"] = assignee
    elif assignee:
        notices.append(f"Ignored assignee “{assignee[:40]}”: use me, none or a user id.")
    for key in DATE_KEYS:
        value = one(key)
        if not value:
            continue
        try:
            kept[key] = date.fromisoformat(value)
        except ValueError:
            label = key.replace("_", " ")
            notices.append(f"Ignored {label} “{value[:40]}”: use a date like 2025-01-31.")
    kept["q"] = one("q")[:MAX_Q]
    sort = one("sort")
    if sort and sort not in SORTS:
        notices.append(f"Ignored sort “{sort[:40]}”: sort by {', '.join(SORTS)}.")
    kept["sort"] = sort if sort in SORTS else "updated"
    direction = one("dir").lower()
    if direction and direction not in ("asc", "desc"):
        notices.append(f"Ignored dir “{direction[:40]}”: use asc or desc.")
    kept["dir"] = direction if direction in ("asc", "desc") else DEFAULT_DIR[kept["sort"]]
    kept["after"] = one("after") or None
    return ListQuery(**kept, notices=tuple(notices))


def parse_query_string(raw: str) -> ListQuery:
    """Read a list query from a URL query string (a saved view's), without any cursor."""
    args = MultiDict(parse_qsl(raw[:MAX_QUERY_STRING], keep_blank_values=False))
    return replace(parse_list_query(args), after=None)


# --- the select ---------------------------------------------------------------------------
#
# A page's statements are built once per shape (which filters are set, the sort and its
# direction, a cursor or not, the search strategy) with bound parameters, and kept; a request
# only works out the values. Building a select of a dozen conditions and four subqueries, and
# SQLAlchemy's cache key of it, cost more than Postgres takes to run it; a kept statement is
# neither rebuilt nor keyed again (SQLAlchemy memoizes the key on the statement).

_TENANT = bindparam("tenant", type_=BigInteger)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _day_after(day: date) -> datetime:
    # "To" dates are inclusive: everything before the next midnight (UTC).
    if day == date.max:
        return datetime.max.replace(tzinfo=UTC)
    return _day_start(day + timedelta(days=1))


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True)
class _Search:
    """A text search: one of the tenant's ticket keys, or words (and maybe a charger id)."""

    q: str
    number: int | None = None  # the ticket number, when `q` is one of the tenant's keys

    @property
    def charger_prefix(self) -> str | None:
        """Return the ILIKE pattern of charger ids starting with `q` (None: `q` has spaces,
        which an OCPP id never has)."""
        if any(c.isspace() for c in self.q):
            return None
        return _escape_like(self.q) + "%"

    @property
    def kind(self) -> str:
        """Return how it matches: "number", "words", or "words+charger"."""
        if self.number is not None:
            return "number"
        return "words" if self.charger_prefix is None else "words+charger"

    def values(self) -> dict[str, Any]:
        """Return the values of the bound parameters of its conditions."""
        if self.number is not None:
            return {"number": self.number}
        return {"q": self.q, "charger_prefix": self.charger_prefix}


def _parse_search(q: str) -> _Search:
    """Tell one of the tenant's ticket keys (exact) from words."""
    key = KEY_RE.match(q.upper())
    if key and key.group(1) == tenant_prefix():
        return _Search(q, number=int(key.group(2)))
    return _Search(q)


def _matches(t: Any, kind: str) -> ColumnElement[bool]:
    """Return the condition on ticket (or alias) `t` for a search of `kind` (_Search.kind)."""
    if kind == "number":
        return t.number == bindparam("number", type_=Integer)
    words = t.search.bool_op("@@")(
        func.websearch_to_tsquery("simple", bindparam("q", type_=String))
    )
    if kind == "words":
        return words
    chargers = select(Charger.id).where(
        Charger.tenant_id == _TENANT,
        Charger.ocpp_id.ilike(bindparam("charger_prefix", type_=String)),
    )
    return or_(words, t.charger_id.in_(chargers))


def _matching_ids() -> Any:
    """Return a select of the ids matching the search (`q`, `charger_prefix`) in the tenant,
    found through the full-text index by cass_ticket_matches (migration 0003), at most `cap`
    of them (NULL: all)."""
    found = func.cass_ticket_matches(
        bindparam("q", type_=String),
        bindparam("charger_prefix", type_=String),
        bindparam("cap", type_=Integer),
    ).table_valued("id")
    return select(found.c.id)


def _condition(name: str) -> list[ColumnElement[bool]]:
    """Return the conditions of one filter (see _filters), with bound parameters."""
    if name == "tenant":
        return [Ticket.tenant_id == _TENANT]
    if name == "vendor_scope":
        return [Ticket.assignee_vendor_id == bindparam("scope_vendor", type_=BigInteger)]
    if name == "status":
        return [Ticket.status.in_(bindparam("statuses", expanding=True))]
    if name == "priority":
        return [Ticket.priority.in_(bindparam("priorities", expanding=True))]
    if name == "charger":
        charger = select(Charger.id).where(
            Charger.tenant_id == _TENANT, Charger.ocpp_id == bindparam("charger", type_=String)
        )
        return [Ticket.charger_id == charger.scalar_subquery()]
    if name == "unassigned":
        return [Ticket.assignee_user_id.is_(None), Ticket.assignee_vendor_id.is_(None)]
    if name in _COMPARED:
        column, operator = _COMPARED[name]
        return [operator(column, bindparam(name, type_=column.type))]
    raise KeyError(name)


# Filters that compare one column with their value: name -> (column, comparison).
_COMPARED: dict[str, tuple[Any, Callable[[Any, Any], ColumnElement[bool]]]] = {
    "category": (Ticket.category, operator.eq),
    "channel": (Ticket.channel, operator.eq),
    "site": (Ticket.site_id, operator.eq),
    "vendor": (Ticket.assignee_vendor_id, operator.eq),
    "assignee": (Ticket.assignee_user_id, operator.eq),
    "created_from": (Ticket.created_at, operator.ge),
    "created_to": (Ticket.created_at, operator.lt),
    "updated_from": (Ticket.updated_at, operator.ge),
    "updated_to": (Ticket.updated_at, operator.lt),
}


def _filters(actor: User, query: ListQuery) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Return the names of the conditions but the text search (what `actor` may see, the
    filters) and the values of their bound parameters."""
    tenant = current_tenant_id()
    if tenant is None:
        abort(404)
    names, values = ["tenant"], {"tenant": tenant}
    # What `actor` may see, as tickets.visible says: the tenant's tickets, a vendor's own only.
    if actor.role == "vendor":
        names.append("vendor_scope")
        values["scope_vendor"] = actor.vendor_id
    if query.status:
        names.append("status")
        values["statuses"] = list(query.statuses)
    if query.priority:
        names.append("priority")
        values["priorities"] = list(query.priority)
    for name in ("category", "channel", "site", "vendor", "charger"):
        value = getattr(query, name)
        if value:
            names.append(name)
            values[name] = value
    if query.assignee == "none":
        names.append("unassigned")
    elif query.assignee:
        names.append("assignee")
        values["assignee"] = actor.id if query.assignee == "me" else int(query.assignee)
    for name, day, to_moment in (
        ("created_from", query.created_from, _day_start),
        ("created_to", query.created_to, _day_after),
        ("updated_from", query.updated_from, _day_start),
        ("updated_to", query.updated_to, _day_after),
    ):
        if day:
            names.append(name)
            values[name] = to_moment(day)
    return tuple(names), values


def _where(filters: tuple[str, ...]) -> list[ColumnElement[bool]]:
    return [condition for name in filters for condition in _condition(name)]


def _sort_columns(sort: str, t: Any = Ticket) -> tuple[Any, ...]:
    """Return the ORDER BY columns of `sort`, unique together, matching an index."""
    return {
        "updated": (t.updated_at, t.id),
        "created": (t.created_at, t.id),
        "priority": (t.priority, t.updated_at, t.id),
        "status": (t.status, t.updated_at, t.id),
        "key": (t.number,),  # unique per tenant
    }[sort]


def encode_cursor(query: ListQuery, values: tuple[Any, ...]) -> str:
    """Return the opaque `after` cursor for the row with these sort values."""
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps([query.sort, query.dir, *plain], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(query: ListQuery) -> tuple[Any, ...]:
    """Return the sort values in `query.after`; raise BadCursor unless it fits this sort."""
    raw = query.after or ""
    if len(raw) > MAX_CURSOR:
        raise BadCursor("too long")
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor("not a cursor") from exc
    columns = _sort_columns(query.sort)
    if not isinstance(data, list) or data[:2] != [query.sort, query.dir]:
        raise BadCursor("made for another sort")
    values = data[2:]
    if len(values) != len(columns):
        raise BadCursor("wrong length")
    out: list[Any] = []
    for column, value in zip(columns, values, strict=True):
        kind = column.key
        if kind in ("updated_at", "created_at"):
            try:
                moment = datetime.fromisoformat(value) if isinstance(value, str) else None
            except ValueError:
                moment = None
            if moment is None or moment.tzinfo is None:
                raise BadCursor("bad time")
            out.append(moment)
        elif kind in ("id", "number"):
            if type(value) is not int or not 0 < value <= MAX_ID:
                raise BadCursor("bad number")
            out.append(value)
        else:
            allowed = PRIORITIES if kind == "priority" else lifecycle.STATUSES
            if value not in allowed:
                raise BadCursor("bad value")
            out.append(value)
    return tuple(out)


def _ordered(stmt: Select[Any], sort: str, direction: str, t: Any = Ticket) -> Select[Any]:
    columns = _sort_columns(sort, t)
    if direction == "desc":
        return stmt.order_by(*(c.desc() for c in columns))
    return stmt.order_by(*(c.asc() for c in columns))


def _after(sort: str, direction: str) -> ColumnElement[bool]:
    """Return the keyset condition: rows strictly after the cursor (`after_0`, `after_1`, ...)
    in the list's order."""
    columns = _sort_columns(sort)
    values = [bindparam(f"after_{i}", type_=c.type) for i, c in enumerate(columns)]
    left = tuple_(*columns) if len(columns) > 1 else columns[0]
    right = tuple_(*values) if len(values) > 1 else values[0]
    return left < right if direction == "desc" else left > right


def _joined(*columns: Any) -> Select[Any]:
    """Return a select of `columns` over ticket joined to its site, charger and assignees.

    For the CSV export: over many rows Postgres joins these in bulk (hash joins).
    """
    return (
        select(*columns)
        .select_from(Ticket)
        .outerjoin(Site, Site.id == Ticket.site_id)
        .outerjoin(Charger, Charger.id == Ticket.charger_id)
        .outerjoin(User, User.id == Ticket.assignee_user_id)
        .outerjoin(Vendor, Vendor.id == Ticket.assignee_vendor_id)
    )


def _lookup(column: Any, key: Any, foreign_key: Any, name: str) -> Any:
    """Return `column` of the row whose `key` is the ticket's `foreign_key`, as `name`."""
    return select(column).where(key == foreign_key).scalar_subquery().label(name)


def _prefix() -> Any:
    # Computed once per query (an InitPlan), so the key needs no extra round trip.
    return select(Tenant.key_prefix).where(Tenant.id == _TENANT).scalar_subquery().label("prefix")


def _page_columns(t: Any) -> tuple[Any, ...]:
    """Return the columns of a page of `t` but the key prefix, in ListRow's order."""
    # The names come from scalar subqueries, one primary-key lookup per shown row: planning a
    # five-table outer join costs Postgres ~2 ms a query, these ~0.3 ms, for the same work.
    return (
        t.id,
        t.number,
        t.title,
        t.status,
        t.priority,
        t.category,
        t.created_at,
        t.updated_at,
        _lookup(Site.name, Site.id, t.site_id, "site"),
        _lookup(Charger.ocpp_id, Charger.id, t.charger_id, "charger"),
        _lookup(User.name, User.id, t.assignee_user_id, "assignee"),
        _lookup(Vendor.name, Vendor.id, t.assignee_vendor_id, "vendor"),
    )


def _page(sort: str, direction: str, where: list[ColumnElement[bool]], t: Any = Ticket) -> Any:
    """Return the select of one page of `t` (the ticket table or a window of it), each row with
    its most urgent live SLA clock (sla.urgent_clock()'s columns, null without one)."""
    stmt = select(*_page_columns(t), _prefix()).where(*where)
    page = _ordered(stmt, sort, direction, t).limit(bindparam("page_limit", type_=Integer))
    # The clock is looked up outside the page's LIMIT: joined inside, a page that Postgres must
    # sort would look up the clock of every matching ticket, not just of the rows shown.
    shown = page.subquery("page")
    urgent = sla.urgent_clock(shown.c.id)
    stmt = select(*shown.c, *urgent.c).select_from(shown).outerjoin(urgent, true())
    return _ordered(stmt, sort, direction, shown.c)


@lru_cache(maxsize=1024)
def _page_statement(
    filters: tuple[str, ...], sort: str, direction: str, after: bool, search: str, source: str
) -> Any:
    """Return the kept select of one page of this shape.

    `search` is a _Search.kind or "" for none; `source` is where the page is taken from:
    "table", the first SEARCH_WINDOW rows of the list ("window", `window`), or the tickets
    with the ids found by the full-text probe ("ids", `ids`).
    """
    where = _where(filters)
    if after:
        where.append(_after(sort, direction))
    if source == "window":
        # Only the columns the page needs: every column of a subquery costs SQLAlchemy a proxy.
        first = select(*(getattr(Ticket, name) for name in WINDOW_COLUMNS)).where(*where)
        first = _ordered(first, sort, direction).limit(bindparam("window", type_=Integer))
        window = first.subquery().c
        return _page(sort, direction, [_matches(window, search)], window)
    if source == "ids":
        where.append(Ticket.id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
    elif search:
        where.append(_matches(Ticket, search))
    return _page(sort, direction, where)


_MATCHING_IDS = _matching_ids()


@lru_cache(maxsize=1024)
def _compiled(stmt: Any) -> Any:
    """Return `stmt` compiled for the engine's dialect (once: the statements are kept per
    shape)."""
    return stmt.compile(dialect=db.engine.dialect)


def _fetch(stmt: Any, values: dict[str, Any]) -> list[Any]:
    """Return every row of `stmt` with `values` (named tuples), run on the session's connection
    (bound to the tenant). Neither the ORM's execution (~0.5 ms a page) nor the Core's (another
    ~0.25): the statement is compiled once, its lists expanded and values processed as the Core
    would, and run by psycopg directly (`cass.pool.fetch_direct`)."""
    state = _compiled(stmt).construct_expanded_state(values)
    processors = state.processors
    params = {
        name: processors[name](value) if name in processors else value
        for name, value in state.parameters.items()
    }
    return fetch_direct(db.session.connection(), state.statement, params, namedtuple_row)


@dataclass(frozen=True, slots=True)
class ListRow:
    """One row of the list, with everything its cells show."""

    id: int
    key: str
    number: int
    title: str
    status: str
    priority: str
    category: str
    created_at: datetime
    updated_at: datetime
    site: str | None
    charger: str | None
    assignee: str | None
    vendor: str | None
    sla: sla.Badge | None = None  # the most urgent live clock


@dataclass(frozen=True)
class ListPage:
    """One page of the list and the cursor of the next one (None at the end)."""

    query: ListQuery
    rows: list[ListRow]
    next_after: str | None


def _sort_values(row: ListRow, sort: str) -> tuple[Any, ...]:
    return tuple(getattr(row, c.key) for c in _sort_columns(sort))


def list_page(actor: User, query: ListQuery) -> ListPage:
    """Return the page of visible tickets matching `query`, after its cursor if any.

    A search for words may take up to three selects. Row-level security keeps Postgres from
    using the full-text index in a query on the table (`@@` is not leakproof), and in date
    order a rare word means walking the whole tenant. So:
    1. the first SEARCH_WINDOW rows of the list are searched: enough for any common word;
    2. else cass_ticket_matches (migration 0003: it runs as the owner, bound to the request's
       tenant) finds the matches through the index; if there are at most SEARCH_CAP, the page
       is picked among those ids by primary key, under row-level security;
    3. else, a common word after all, the whole list is walked in order.
    """
    filters, values = _filters(actor, query)
    if query.after:
        values.update((f"after_{i}", v) for i, v in enumerate(decode_cursor(query)))
    values["page_limit"] = PAGE_SIZE + 1
    shape = (filters, query.sort, query.dir, bool(query.after))
    search = _parse_search(query.q) if query.q else None
    if search is None:
        result = _fetch(_page_statement(*shape, "", "table"), values)
    else:
        values.update(search.values())
        if search.number is not None:
            result = _fetch(_page_statement(*shape, search.kind, "table"), values)
        else:
            values["window"] = SEARCH_WINDOW
            result = _fetch(_page_statement(*shape, search.kind, "window"), values)
            if len(result) <= PAGE_SIZE:
                values["cap"] = SEARCH_CAP + 1
                ids = [ident for (ident,) in _fetch(_MATCHING_IDS, values)]
                if len(ids) > SEARCH_CAP:
                    result = _fetch(_page_statement(*shape, search.kind, "table"), values)
                else:
                    values["ids"] = ids
                    result = _fetch(_page_statement(*shape, search.kind, "ids"), values)
    # Unpacked by position, in _page_columns' order: attribute access on 650 cells costs more.
    # The clock's columns follow; only a row with a clock is read by name, by sla.badge_of().
    now = datetime.now(UTC)
    rows = [
        ListRow(
            ident,
            format_key(prefix, number),
            number,
            title,
            status,
            priority,
            category,
            created_at,
            updated_at,
            site,
            charger,
            assignee,
            vendor,
            None if clock is None else sla.badge_of(row, now),
        )
        for row in result[:PAGE_SIZE]
        for (
            ident,
            number,
            title,
            status,
            priority,
            category,
            created_at,
            updated_at,
            site,
            charger,
            assignee,
            vendor,
            prefix,
            clock,
        ) in (row[:14],)
    ]
    more = len(result) > PAGE_SIZE
    next_after = encode_cursor(query, _sort_values(rows[-1], query.sort)) if more else None
    return ListPage(query, rows, next_after)


# --- CSV ---------------------------------------------------------------------------------


# The CSV's columns after the key, in CSV_HEADER's order.
_EXPORT_COLUMNS = (
    Ticket.title,
    Ticket.status,
    Ticket.priority,
    Ticket.category,
    Ticket.channel,
    Site.name,
    Charger.ocpp_id,
    Connector.connector_no,
    User.name,
    Vendor.name,
    Ticket.caller_name,
    Ticket.caller_phone,
    Ticket.caller_email,
    Ticket.created_at,
    Ticket.updated_at,
    Ticket.resolved_at,
)


def _export(actor: User, query: ListQuery, *columns: Any) -> Select[Any]:
    """Return the select of `columns` of every ticket `actor` may see that matches `query`,
    in the list's order, its values bound."""
    stmt = _joined(*columns).outerjoin(Connector, Connector.id == Ticket.connector_id)
    filters, values = _filters(actor, query)
    where = _where(filters)
    if query.q:
        search = _parse_search(query.q)
        values.update(search.values())
        if search.number is not None:
            where.append(_matches(Ticket, search.kind))
        else:
            values["cap"] = None
            where.append(Ticket.id.in_(_matching_ids()))
    return _ordered(stmt.where(*where), query.sort, query.dir).params(values)


def export_statement(actor: User, query: ListQuery) -> Select[Any]:
    """Return the select of every matching row with the CSV's columns, in the list's order
    (the key as its prefix and number)."""
    return _export(actor, query, _prefix(), Ticket.number, *_EXPORT_COLUMNS)


def export_copy(actor: User, query: ListQuery) -> CopyExport:
    """Return the CSV of every matching ticket as a select that Postgres writes (COPY)."""
    prefix = select(Tenant.key_prefix).where(Tenant.id == _TENANT).scalar_subquery()
    key = sql_text(prefix + "-" + cast(Ticket.number, Text)).label("key")
    cells = (
        sql_cell(column).label(name)
        for name, column in zip(CSV_HEADER[1:], _EXPORT_COLUMNS, strict=True)
    )
    statement = _export(actor, query, key, *cells)
    return CopyExport(CSV_HEADER, statement, rows=lambda: export_rows(actor, query))


def export_rows(actor: User, query: ListQuery, batch: int = 1000) -> Iterator[list[str]]:
    """Yield the CSV rows (header first) of every matching ticket, read by a server-side cursor.

    The same cells as export_copy, written by Python (for the scheduled exports' files).
    """
    yield list(CSV_HEADER)
    zone = tenant_zone()
    stmt = export_statement(actor, query).execution_options(yield_per=batch)
    for row in db.session.execute(stmt):
        prefix, number, *rest = row
        yield [csv_cell(format_key(prefix, number), zone), *(csv_cell(v, zone) for v in rest)]
