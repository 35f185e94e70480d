"""The charger list as queries: read its parameters, count the fleet by state, select one page.

Parameters arrive as a query string, so anything may come in: values that do not parse are
dropped and named in notices, so a pasted URL still shows a list. Only a bad `after` cursor is
an error (`BadCursor`, a 422): restarting at the first page would append rows already shown.

Everything is set-based. A page is one select of at most PAGE_SIZE + 1 chargers in OCPP-id
order (the (tenant_id, ocpp_id) index), their site name, connectors and open-ticket count coming
from scalar subqueries on indexed keys (connector's (charger_id, connector_no), ticket's
(tenant_id, charger_id, ...)); the state counts are one select over the filtered fleet (the
connectors per status from the (tenant_id, status, charger_id) index); the filter choices are
one select, the models and firmware by skip scans. The text search finds its chargers through a
trigram index (cass_charger_matches, migration 0006) and reads them by primary key. Each select
is built once per shape of query, with bound parameters (see _Shape).

Paging is by keyset on the OCPP id: `after` is the last id shown, so every page costs the same.
`through` is the live refresh's: the list again from the start down to the last row the user
has loaded ("Load more" keeps it up to date), so a refresh does not collapse what was loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ARRAY,
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    Select,
    String,
    Text,
    any_,
    bindparam,
    cast,
    column,
    exists,
    false,
    func,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by

from cass import lifecycle
from cass.extensions import db
from cass.models import Charger, Connector, Site, Ticket, User
from cass.tenancy import current_tenant_id
from ocpp_bridge.vocab import CHARGE_POINT_ID_RE

PAGE_SIZE = 50
# A live refresh re-reads at most this many rows (the user loaded that many with "Load more").
MAX_THROUGH = 500
MAX_Q = 100
MAX_TEXT = 80
MAX_ID = 2**63 - 1
# OCPP 1.6 connector states, then the 2.0.1 one that 1.6 does not have.
CONNECTOR_STATUSES = (
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEVSE",
    "SuspendedEV",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
    "Occupied",
)
SAFE_KEYS = ("q", "site", "online", "connector", "faulted", "model", "firmware", "warranty")


class BadCursor(ValueError):
    """`after` or `through` is not an OCPP id this list could have handed out (422)."""


@dataclass(frozen=True)
class ChargerQuery:
    """The list's filters, validated; `notices` says what was ignored and why."""

    q: str = ""
    site: int | None = None
    online: str | None = None  # "yes" or "no"
    connector: str | None = None  # a connector status: some connector is in it
    faulted: bool = False  # some connector is Faulted now
    model: str | None = None
    firmware: str | None = None
    warranty: str | None = None  # "expired" or "active"
    after: str | None = None  # the last OCPP id of the previous page
    through: str | None = None  # live refresh: every row up to this OCPP id
    notices: tuple[str, ...] = field(default=(), compare=False)

    def params(self, **changes: Any) -> dict[str, str]:
        """Return the canonical query parameters (for url_for), with `changes` applied."""
        query = replace(self, **changes) if changes else self
        out: dict[str, str] = {}
        for key in SAFE_KEYS:
            value = getattr(query, key)
            if value is True:
                out[key] = "1"
            elif value not in (None, "", False):
                out[key] = str(value)
        for key in ("after", "through"):
            if getattr(query, key):
                out[key] = getattr(query, key)
        return out

    def toggle(self, **changes: Any) -> dict[str, str]:
        """Return the parameters with `changes`, or without them when they are already set
        (a count tile turns its filter on and off); never with a cursor."""
        current = {k: getattr(self, k) for k in changes}
        if current == changes:
            changes = {k: (False if v is True else None) for k, v in changes.items()}
        return self.params(after=None, through=None, **changes)

    @property
    def filtered(self) -> bool:
        """Return whether any filter or search is on."""
        return bool(self.params(after=None, through=None))


def _clean(value: Any) -> str:
    # NUL cannot be sent to Postgres in text; it is never meaningful in a filter.
    return str(value or "").replace("\x00", "").strip()


def parse_query(args: Mapping[str, Any]) -> ChargerQuery:
    """Read the list's filters from query parameters, dropping what does not parse."""
    notices: list[str] = []
    one = {key: _clean(args.get(key)) for key in (*SAFE_KEYS, "after", "through")}
    kept: dict[str, Any] = {"q": one["q"][:MAX_Q]}
    site = one["site"]
    if site.isascii() and site.isdigit() and 0 < int(site) <= MAX_ID:
        kept["site"] = int(site)
    elif site:
        notices.append(f"Ignored site “{site[:40]}”: not a site id.")
    online = one["online"].lower()
    if online in ("yes", "no"):
        kept["online"] = online
    elif online:
        notices.append(f"Ignored online “{online[:40]}”: use yes or no.")
    connector = one["connector"]
    match = next((s for s in CONNECTOR_STATUSES if s.lower() == connector.lower()), None)
    if match:
        kept["connector"] = match
    elif connector:
        notices.append(f"Ignored connector status “{connector[:40]}”: there is no such status.")
    faulted = one["faulted"].lower()
    if faulted in ("1", "yes", "true", "on", "y"):
        kept["faulted"] = True
    elif faulted not in ("", "0", "no", "false", "off", "n"):
        notices.append(f"Ignored faulted “{faulted[:40]}”: use 1.")
    for key in ("model", "firmware"):
        value = one[key]
        if len(value) > MAX_TEXT:
            notices.append(f"Ignored {key}: at most {MAX_TEXT} characters.")
        elif value:
            kept[key] = value
    warranty = one["warranty"].lower()
    if warranty in ("expired", "active"):
        kept["warranty"] = warranty
    elif warranty:
        notices.append(f"Ignored warranty “{warranty[:40]}”: use expired or active.")
    kept["after"] = one["after"] or None
    kept["through"] = one["through"] or None
    return ChargerQuery(**kept, notices=tuple(notices))


# --- who sees which chargers ----------------------------------------------------------------


def visible_criteria(actor: User) -> list[ColumnElement[bool]]:
    """Return the conditions on Charger that `actor` may see.

    Staff see the tenant's chargers. A vendor's users see the chargers their vendor services
    (charger.vendor_id) and those of tickets assigned to their vendor, whatever the ticket's
    status: the chargers they are sent to work on, with the history they need there.
    """
    tenant = current_tenant_id()
    where: list[ColumnElement[bool]] = [Charger.tenant_id == tenant]
    if actor.role == "vendor":
        if actor.vendor_id is None:
            return [*where, false()]
        on_tickets = select(Ticket.charger_id).where(
            Ticket.tenant_id == tenant,
            Ticket.assignee_vendor_id == actor.vendor_id,
            Ticket.charger_id.is_not(None),
        )
        where.append(or_(Charger.vendor_id == actor.vendor_id, Charger.id.in_(on_tickets)))
    return where


def visible_charger(actor: User, ocpp_id: str) -> Charger | None:
    """Return the charger with this OCPP id if `actor` may see it, else None."""
    ocpp_id = (ocpp_id or "").strip()
    if not CHARGE_POINT_ID_RE.fullmatch(ocpp_id):
        return None
    shape, params = _shape(actor, ChargerQuery())
    params["ocpp_id"] = ocpp_id
    return db.session.scalars(_charger_select(shape.who), params).first()


@lru_cache(maxsize=8)
def _charger_select(who: str) -> Select[Any]:
    return select(Charger).where(
        *_visible(who), Charger.ocpp_id == bindparam("ocpp_id", type_=String)
    )


# --- the selects ----------------------------------------------------------------------------
#
# Each select is built once per shape of query (which filters are on, staff or vendor, which
# cursor), with bound parameters for the values, and kept: building a select with three
# subqueries and hashing it for SQLAlchemy's compiled cache costs more than Postgres takes to
# run it. _Shape says which clauses a select has; _params gives the values.

NEEDLE = bindparam("needle", type_=Text)


@dataclass(frozen=True)
class _Shape:
    """Which clauses a select has (hashable: the key of the kept selects)."""

    who: str  # "staff", "vendor", or "nobody" (a vendor user without a vendor)
    q: bool = False
    q_id: bool = False  # the search is also a database id
    site: bool = False
    model: bool = False
    firmware: bool = False
    warranty: str | None = None
    online: bool = False
    connector: bool = False
    faulted: bool = False

    @property
    def base(self) -> _Shape:
        """Return this shape without the state filters (the counts' shape)."""
        return replace(self, online=False, connector=False, faulted=False)


def _shape(actor: User, query: ChargerQuery) -> tuple[_Shape, dict[str, Any]]:
    """Return the shape of `query`'s selects for `actor`, and the values of their parameters."""
    params: dict[str, Any] = {"tenant": current_tenant_id(), "today": datetime.now(UTC).date()}
    who = "staff"
    if actor.role == "vendor":
        who = "vendor" if actor.vendor_id is not None else "nobody"
        params["vendor_id"] = actor.vendor_id
    q = query.q.strip()[:MAX_Q]
    q_id = bool(q) and q.isascii() and q.isdigit() and int(q) < 2**63
    params.update(
        needle=q.lower(),
        q_id=int(q) if q_id else None,
        site=query.site,
        model=query.model,
        firmware=query.firmware,
        online=query.online == "yes",
        connector=query.connector,
        after=query.after,
        through=query.through,
    )
    shape = _Shape(
        who,
        q=bool(q),
        q_id=q_id,
        site=bool(query.site),
        model=bool(query.model),
        firmware=bool(query.firmware),
        warranty=query.warranty,
        online=bool(query.online),
        connector=bool(query.connector),
        faulted=query.faulted,
    )
    return shape, params


def _visible(who: str) -> list[ColumnElement[bool]]:
    """Return the conditions on Charger for who may see which (see visible_criteria)."""
    where: list[ColumnElement[bool]] = [Charger.tenant_id == bindparam("tenant")]
    if who == "nobody":
        return [*where, false()]
    if who == "vendor":
        on_tickets = select(Ticket.charger_id).where(
            Ticket.tenant_id == bindparam("tenant"),
            Ticket.assignee_vendor_id == bindparam("vendor_id"),
            Ticket.charger_id.is_not(None),
        )
        vendor = Charger.vendor_id == bindparam("vendor_id")
        where.append(or_(vendor, Charger.id.in_(on_tickets)))
    return where


def search_condition(with_id: bool = False) -> ColumnElement[bool]:
    """Return the condition on Charger for a text search (the parameter `needle`, lower-cased):
    a case-insensitive part of its OCPP id, serial or asset tag, of its site's name or address,
    or (`with_id`, parameter `q_id`) its database id: the matches of fleet.search_condition,
    found through indexes.

    The charger's own fields are matched by cass_charger_matches() through a trigram index (see
    migration 0006: row-level security would keep Postgres from using it in this query), its
    site's through the site_id index from the array of the tenant's matching sites (a few
    hundred rows at most). The matches are gathered into one array first, so the chargers are
    read by primary key: Postgres cannot estimate how many a search matches, and given a
    subquery it plans for thousands and scans the tenant's chargers.
    """

    def has(col: Any) -> ColumnElement[bool]:
        return func.strpos(func.lower(col), NEEDLE) > 0

    tenant = bindparam("tenant")
    own = func.cass_charger_matches(NEEDLE).table_valued(column("id", BigInteger))
    sites = select(func.array_agg(Site.id)).where(
        Site.tenant_id == tenant, or_(has(Site.name), has(Site.address))
    )
    parts: list[Select[Any]] = [
        select(own.c.id),
        select(Charger.id).where(
            Charger.tenant_id == tenant, Charger.site_id == any_(_array(sites))
        ),
    ]
    if with_id:
        parts.append(select(bindparam("q_id", type_=BigInteger)))
    found = union_all(*parts).subquery()
    return Charger.id == any_(_array(select(func.array_agg(found.c.id))))


def _array(stmt: Select[Any]) -> ColumnElement[Any]:
    """Return a select of one array as a value (`= ANY(...)` of a bare subquery would compare
    with each of its rows, not with the elements of its array)."""
    return cast(stmt.scalar_subquery(), ARRAY(BigInteger))


def _has_connector(status: Any) -> ColumnElement[bool]:
    return exists().where(
        Connector.tenant_id == bindparam("tenant"),
        Connector.charger_id == Charger.id,
        Connector.status == status,
    )


def _base_criteria(shape: _Shape) -> list[ColumnElement[bool]]:
    """Return what the user may see narrowed by every filter but the state ones."""
    where = _visible(shape.who)
    if shape.q:
        where.append(search_condition(shape.q_id))
    if shape.site:
        where.append(Charger.site_id == bindparam("site", type_=BigInteger))
    if shape.model:
        where.append(Charger.model == bindparam("model", type_=String))
    if shape.firmware:
        where.append(Charger.firmware == bindparam("firmware", type_=String))
    if shape.warranty:
        today = bindparam("today", type_=Date)
        if shape.warranty == "expired":
            where.append(Charger.warranty_end < today)
        else:
            where.append(or_(Charger.warranty_end >= today, Charger.warranty_end.is_(None)))
    return where


def _state_criteria(shape: _Shape) -> list[ColumnElement[bool]]:
    """Return the state filters: online, a connector status, faulted now."""
    where: list[ColumnElement[bool]] = []
    if shape.online:
        where.append(Charger.online == bindparam("online", type_=Boolean))
    if shape.connector:
        where.append(_has_connector(bindparam("connector", type_=String)))
    if shape.faulted:
        where.append(_has_connector("Faulted"))
    return where


def _has_state_filter(query: ChargerQuery) -> bool:
    return bool(query.online or query.connector or query.faulted)


def _check_cursor(value: str | None) -> str | None:
    if value is not None and not CHARGE_POINT_ID_RE.fullmatch(value):
        raise BadCursor(value[:40])
    return value


@dataclass(frozen=True, slots=True)
class ChargerRow:
    """One row of the list, with everything its cells show."""

    id: int
    ocpp_id: str
    manufacturer: str | None
    model: str | None
    serial: str | None
    asset_tag: str | None
    firmware: str | None
    online: bool
    last_seen: datetime | None
    warranty_end: date | None
    registration: str
    site_id: int
    site: str | None
    connectors: list[tuple[int, str, str]]  # (number, status, error code)
    open_tickets: int

    @property
    def faulted(self) -> bool:
        """Return whether some connector is Faulted."""
        return any(status == "Faulted" for _, status, _ in self.connectors)


@dataclass(frozen=True)
class ChargerPage:
    """One page of the list and the cursor of the next one (None at the end)."""

    query: ChargerQuery
    rows: list[ChargerRow]
    next_after: str | None


def _page_select(shape: _Shape, where: list[ColumnElement[bool]], limit: int) -> Select[Any]:
    tenant = bindparam("tenant")
    connectors = (
        select(
            func.json_agg(
                aggregate_order_by(
                    func.json_build_array(
                        Connector.connector_no, Connector.status, Connector.error_code
                    ),
                    Connector.connector_no,
                ),
                type_=JSON,
            )
        )
        .where(Connector.tenant_id == tenant, Connector.charger_id == Charger.id)
        .scalar_subquery()
    )
    tickets = select(func.count()).where(
        Ticket.tenant_id == tenant,
        Ticket.charger_id == Charger.id,
        Ticket.status.in_(lifecycle.OPEN_STATUSES),
    )
    if shape.who != "staff":
        tickets = tickets.where(Ticket.assignee_vendor_id == bindparam("vendor_id"))
    site = select(Site.name).where(Site.id == Charger.site_id).scalar_subquery()
    return (
        select(
            Charger.id,
            Charger.ocpp_id,
            Charger.manufacturer,
            Charger.model,
            Charger.serial,
            Charger.asset_tag,
            Charger.firmware,
            Charger.online,
            Charger.last_seen,
            Charger.warranty_end,
            Charger.registration,
            Charger.site_id,
            site.label("site"),
            connectors.label("connectors"),
            tickets.scalar_subquery().label("open_tickets"),
        )
        .where(*where)
        .order_by(Charger.ocpp_id)
        .limit(limit)
    )


@lru_cache(maxsize=512)
def _list_select(shape: _Shape, cursor: str | None) -> Select[Any]:
    """Return the page's select: the first page, the page `after` a cursor, or (`through`)
    every row up to one, and whether any follows it (an InitPlan run once)."""
    where = _base_criteria(shape) + _state_criteria(shape)
    if cursor == "after":
        where.append(Charger.ocpp_id > bindparam("after", type_=String))
    if cursor != "through":
        return _page_select(shape, where, PAGE_SIZE + 1)
    through = bindparam("through", type_=String)
    later = exists().where(*where, Charger.ocpp_id > through)
    stmt = _page_select(shape, [*where, Charger.ocpp_id <= through], MAX_THROUGH + 1)
    return stmt.add_columns(later.label("later"))


def list_page(actor: User, query: ChargerQuery) -> ChargerPage:
    """Return the page of visible chargers matching `query` (after its cursor, if any)."""
    after, through = _check_cursor(query.after), _check_cursor(query.through)
    shape, params = _shape(actor, query)
    connection = db.session.connection()
    if through and not after:
        result = connection.execute(_list_select(shape, "through"), params).all()
        size = MAX_THROUGH
        more = len(result) > size or bool(result and result[0][-1])
    else:
        result = connection.execute(_list_select(shape, "after" if after else None), params)
        result = result.all()
        size = PAGE_SIZE
        more = len(result) > size
    rows = [
        ChargerRow(*row[:13], [tuple(c) for c in row[13] or []], row[14])  # type: ignore[arg-type]
        for row in result[:size]
    ]
    return ChargerPage(query, rows, rows[-1].ocpp_id if more and rows else None)


@dataclass(frozen=True)
class StateCounts:
    """The filtered fleet (state filters aside) counted by state."""

    chargers: int
    online: int
    faulted: int  # chargers with a Faulted connector
    connectors: dict[str, int]  # connectors per status

    @property
    def offline(self) -> int:
        """Return how many chargers are offline."""
        return self.chargers - self.online

    def connector_states(self) -> list[tuple[str, int]]:
        """Return (status, connectors) in the usual order of states, for the present ones."""
        known = [s for s in CONNECTOR_STATUSES if s in self.connectors]
        others = sorted(s for s in self.connectors if s not in CONNECTOR_STATUSES)
        return [(s, self.connectors[s]) for s in known + others]


@lru_cache(maxsize=256)
def _counts_select(shape: _Shape) -> Select[Any]:
    """Return the counts' select for a shape without state filters (see state_counts)."""
    base = _base_criteria(shape)
    k = Connector
    on: list[ColumnElement[bool]] = [k.tenant_id == bindparam("tenant")]
    chargers = select(
        func.json_build_array(func.count(), func.count().filter(Charger.online))
    ).where(*base)
    if len(base) > 1:  # more than the tenant: filters (a search, say), or a vendor's chargers
        # Evaluated once (a CTE used three times is materialized), not once per aggregate.
        fleet = select(Charger.id, Charger.online).where(*base).cte("fleet")
        chargers = select(
            func.json_build_array(func.count(), func.count().filter(fleet.c.online))
        ).select_from(fleet)
        on.append(k.charger_id.in_(select(fleet.c.id)))
    # One hashed pass over the connectors: a count per status, and the chargers of the
    # Faulted ones (few), made distinct here rather than by a sort in the database.
    per_status = (
        select(
            k.status.label("status"),
            func.count().label("n"),
            func.array_agg(k.charger_id).filter(k.status == "Faulted").label("faulted"),
        )
        .where(*on)
        .group_by(k.status)
        .subquery()
    )
    statuses = select(
        func.json_agg(
            func.json_build_array(per_status.c.status, per_status.c.n, per_status.c.faulted)
        )
    )
    return select(chargers.scalar_subquery(), statuses.scalar_subquery())


def state_counts(actor: User, query: ChargerQuery) -> StateCounts:
    """Count the chargers matching every filter but the state ones, by state, in one select.

    Two aggregates: the chargers (all, online), and their connectors per status with the
    chargers of the Faulted ones (hashed, no sort).
    Unfiltered, each is one scan of the tenant's rows; filtered, the chargers are selected once
    and the connectors matched against them.
    """
    shape, params = _shape(actor, query)
    stmt = _counts_select(shape.base)
    (total, online), found = db.session.connection().execute(stmt, params).one()
    faulted = {ident for _, _, ids in found or [] for ident in ids or []}
    return StateCounts(total, online, len(faulted), {status: n for status, n, _ in found or []})


def counts_for(actor: User, query: ChargerQuery, listing: ChargerPage) -> StateCounts:
    """Return the state counts for the list: from the rows themselves when they are the whole
    filtered fleet (no state filter, no cursor to skip rows, nothing after them), else
    counted by the database (state_counts)."""
    if query.after or _has_state_filter(query) or listing.next_after is not None:
        return state_counts(actor, query)
    connectors: dict[str, int] = {}
    for row in listing.rows:
        for _, status, _ in row.connectors:
            connectors[status] = connectors.get(status, 0) + 1
    return StateCounts(
        len(listing.rows),
        sum(1 for row in listing.rows if row.online),
        sum(1 for row in listing.rows if row.faulted),
        connectors,
    )


@dataclass(frozen=True)
class FilterChoices:
    """What the filter form offers: the tenant's sites, and the models and firmware seen."""

    sites: list[tuple[int, str]]
    models: list[str]
    firmware: list[str]


# The models and firmware versions in use, each by a skip scan of its (tenant_id, column, ...)
# index: the smallest value, then the smallest one above it, and so on; one index descent a
# distinct value instead of grouping every charger of the tenant.
STAFF_CHOICES = text("""
WITH RECURSIVE models(v) AS (
  SELECT min(model) FROM charger WHERE tenant_id = :tenant
  UNION ALL
  SELECT (SELECT min(c.model) FROM charger c WHERE c.tenant_id = :tenant AND c.model > m.v)
  FROM models m WHERE m.v IS NOT NULL
), versions(v) AS (
  SELECT min(firmware) FROM charger WHERE tenant_id = :tenant
  UNION ALL
  SELECT (SELECT min(c.firmware) FROM charger c WHERE c.tenant_id = :tenant AND c.firmware > f.v)
  FROM versions f WHERE f.v IS NOT NULL
)
SELECT (SELECT json_agg(json_build_array(s.id, s.name) ORDER BY s.name, s.id)
        FROM site s WHERE s.tenant_id = :tenant),
       ARRAY(SELECT v FROM models WHERE v IS NOT NULL),
       ARRAY(SELECT v FROM versions WHERE v IS NOT NULL)
""")


def filter_choices(actor: User) -> FilterChoices:
    """Return the sites, models and firmware versions to filter by, in one select.

    Staff see the tenant's chargers, so the models and firmware come from skip scans of their
    indexes (STAFF_CHOICES); a vendor's users from one scan of their chargers, grouped by both.
    """
    tenant = current_tenant_id()
    if actor.role != "vendor":
        found_sites, models, versions = (
            db.session.connection().execute(STAFF_CHOICES, {"tenant": tenant}).one()
        )
        return FilterChoices(
            [(ident, name) for ident, name in found_sites or []],
            sorted(models),
            sorted(versions),
        )
    pairs = (
        select(Charger.model.label("model"), Charger.firmware.label("firmware"))
        .where(*visible_criteria(actor))
        .group_by(Charger.model, Charger.firmware)
        .subquery()
    )
    seen = select(func.json_agg(func.json_build_array(pairs.c.model, pairs.c.firmware), type_=JSON))
    sites = select(
        func.json_agg(
            aggregate_order_by(func.json_build_array(Site.id, Site.name), Site.name, Site.id),
            type_=JSON,
        )
    ).where(Site.tenant_id == tenant)
    found_sites, found = (
        db.session.connection()
        .execute(select(sites.scalar_subquery(), seen.scalar_subquery()))
        .one()
    )
    found = found or []
    return FilterChoices(
        [(ident, name) for ident, name in found_sites or []],
        sorted({model for model, _ in found if model is not None}),
        sorted({firmware for _, firmware in found if firmware is not None}),
    )


@dataclass(frozen=True)
class ListScreen:
    """Everything the list shows: counts, one page (or none, for a bad cursor), choices."""

    counts: StateCounts
    listing: ChargerPage
    bad_cursor: bool


def list_screen(actor: User, query: ChargerQuery) -> ListScreen:
    """Return the counts and the page of chargers for `query` (a bad cursor: no rows)."""
    try:
        listing, bad = list_page(actor, query), False
    except BadCursor:
        listing, bad = ChargerPage(query, [], None), True
    counts = state_counts(actor, query) if bad else counts_for(actor, query, listing)
    return ListScreen(counts, listing, bad)
