"""The charger page as queries: its panels, each one indexed and LIMITed, and its commands.

Every panel reads one charger's rows through an index that starts with charger_id, newest
first, a page at a time, keyset-paginated on (time, id): the timeline on charger_event
(charger_id, at DESC), sessions on charging_session (charger_id, started_at DESC), the message
log on each day's ocpp_message partition (charger_id, at), commands on charger_command
(charger_id, created_at DESC), firmware jobs and diagnostics on (charger_id, id DESC).

A filter that the index cannot serve (faults only; a message action or direction) is applied to
a window of at most WINDOW rows read in index order: a rare match in a chatty charger's history
then costs one window, not the whole history, and the page offers "Search older" from where the
window ended. A time range on the message log narrows the index scan itself (and the partitions).

`through` is the live refresh's: the panel again from the newest row down to the oldest one the
user has loaded, so a refresh keeps what "Load older" added.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from flask import current_app
from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201
from sqlalchemy import (
    JSON,
    BigInteger,
    ColumnElement,
    Select,
    String,
    and_,
    bindparam,
    cast,
    event,
    func,
    null,
    or_,
    select,
    tuple_,
)

from cass.bounds import DAY_RANGE, parse_day, parse_moment
from cass.extensions import db
from cass.models import (
    Charger,
    ChargerCommand,
    ChargerEvent,
    ChargingSession,
    Connector,
    DiagnosticsRequest,
    FirmwareJob,
    OcppMessage,
    Site,
    Tenant,
    Ticket,
    User,
    Vendor,
)
from cass.services import charger_commands
from cass.services.audit import audit
from cass.services.tickets import format_key
from cass.tenancy import current_tenant_id, tenant_context

TIMELINE_PAGE = 25
MESSAGE_PAGE = 25
SESSION_PAGE = 10
SIDE_PANEL = 10  # commands, firmware jobs, diagnostics, tickets
WINDOW = 5000
MAX_THROUGH = 500
# The charger-wide status (connector 0) has no connector row: it is the newest connector-0
# status event, looked for among this many of the charger's newest events.
CHARGER_STATUS_LOOKBACK = 1000
MAX_PAYLOAD_SHOWN = 20_000
MAX_TIME = datetime(9999, 12, 31, tzinfo=UTC)
TIMELINE_FILTERS = {"all": "Everything", "status": "Status and presence", "faults": "Faults only"}
STATUS_KINDS = ("status", "online", "offline", "boot")
MESSAGE_ACTIONS = tuple(sorted({a.value for a in Action16} | {a.value for a in Action201}))
MESSAGE_TYPES = {2: "CALL", 3: "RESULT", 4: "ERROR"}
CURSOR_RE = re.compile(r"(\d{8}T\d{6}\.\d{6})Z(\d{1,19})")


class BadCursor(ValueError):
    """A panel's `after`/`through` is not a cursor this page handed out (422)."""


# --- cursors --------------------------------------------------------------------------------


def encode_cursor(at: datetime, ident: int) -> str:
    """Return the cursor of a row: its time (UTC, microseconds) and id, readable in a URL."""
    return f"{at.astimezone(UTC).strftime('%Y%m%dT%H%M%S.%f')}Z{ident}"


def decode_cursor(raw: str) -> tuple[datetime, int]:
    """Return (time, id) from a cursor; raise BadCursor if it is not one."""
    match = CURSOR_RE.fullmatch(raw)
    if not match:
        raise BadCursor(raw[:40])
    try:
        at = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%f").replace(tzinfo=UTC)
    except ValueError as exc:
        raise BadCursor(raw[:40]) from exc
    ident = int(match.group(2))
    if ident > 2**63 - 1:
        raise BadCursor(raw[:40])
    return at, ident


def _older_than(at: Any, ident: Any, cursor: str) -> ColumnElement[bool]:
    """Rows strictly older than the cursor, in (time, id) order; `at <=` bounds the index."""
    when, key = decode_cursor(cursor)
    return and_(at <= when, tuple_(at, ident) < tuple_(when, key))


def _not_older_than(at: Any, ident: Any, cursor: str) -> ColumnElement[bool]:
    when, key = decode_cursor(cursor)
    return and_(at >= when, tuple_(at, ident) >= tuple_(when, key))


# --- panel parameters -----------------------------------------------------------------------


def _clean(value: Any) -> str:
    return str(value or "").replace("\x00", "").strip()


def _parse_minute(value: str) -> datetime | None:
    """Read a datetime-local value (2026-11-28T14:30) or a date as UTC; None if unreadable or
    outside the bounds (the panel adds a minute to "to": 9999-12-31T23:59 would overflow)."""
    try:
        if len(value) == 10:
            return datetime.combine(parse_day(value), time.min, tzinfo=UTC)
        return parse_moment(value).astimezone(UTC)
    except ValueError:
        return None


@dataclass(frozen=True)
class PageQuery:
    """The charger page's panel parameters, validated; `notices` says what was ignored."""

    tl: str = "all"
    tl_after: str | None = None
    tl_through: str | None = None
    msg_action: str | None = None
    msg_dir: str | None = None
    msg_from: datetime | None = None
    msg_to: datetime | None = None
    msg_after: str | None = None
    ss_after: str | None = None
    ss_through: str | None = None
    notices: tuple[str, ...] = field(default=(), compare=False)

    def params(self, **changes: Any) -> dict[str, str]:
        """Return the non-default parameters (for url_for), with `changes` applied."""
        query = replace(self, **changes) if changes else self
        out: dict[str, str] = {}
        for key in (
            "tl",
            "tl_after",
            "tl_through",
            "msg_action",
            "msg_dir",
            "msg_from",
            "msg_to",
            "msg_after",
            "ss_after",
            "ss_through",
        ):
            value = getattr(query, key)
            if key == "tl" and value == "all":
                continue
            if isinstance(value, datetime):
                out[key] = value.strftime("%Y-%m-%dT%H:%M")
            elif value:
                out[key] = value
        return out

    def messages_params(self, **changes: Any) -> dict[str, str]:
        """Return only the message log's parameters (its filter form's and cursor)."""
        return {k: v for k, v in self.params(**changes).items() if k.startswith("msg_")}

    @property
    def messages_filtered(self) -> bool:
        """Return whether the message log is filtered."""
        return bool(self.msg_action or self.msg_dir or self.msg_from or self.msg_to)


def parse_page_query(args: Mapping[str, Any]) -> PageQuery:
    """Read the panels' parameters, dropping what does not parse (cursors are checked later)."""
    notices: list[str] = []
    one = {key: _clean(args.get(key)) for key in PageQuery.__dataclass_fields__}
    kept: dict[str, Any] = {}
    if one["tl"] in TIMELINE_FILTERS:
        kept["tl"] = one["tl"]
    elif one["tl"]:
        notices.append(f"Ignored timeline filter “{one['tl'][:40]}”.")
    action = one["msg_action"]
    match = next((a for a in MESSAGE_ACTIONS if a.lower() == action.lower()), None)
    if match:
        kept["msg_action"] = match
    elif action:
        notices.append(f"Ignored action “{action[:40]}”: OCPP has no such action.")
    if one["msg_dir"] in ("in", "out"):
        kept["msg_dir"] = one["msg_dir"]
    elif one["msg_dir"]:
        notices.append(f"Ignored direction “{one['msg_dir'][:40]}”: use in or out.")
    for key in ("msg_from", "msg_to"):
        if one[key]:
            moment = _parse_minute(one[key][:40])
            if moment is None:
                notices.append(
                    f"Ignored “{one[key][:40]}”: use a time like 2026-11-28T14:30, {DAY_RANGE}."
                )
            else:
                kept[key] = moment
    for key in ("tl_after", "tl_through", "msg_after", "ss_after", "ss_through"):
        kept[key] = one[key][:60] or None
    return PageQuery(**kept, notices=tuple(notices))


# --- the charger and its state --------------------------------------------------------------


@dataclass(frozen=True)
class SiteView:
    """The charger's site as the page shows it."""

    id: int
    name: str
    address: str | None
    lat: str | None  # as stored (numeric), for the map link
    lon: str | None
    contact_name: str | None
    contact_phone: str | None


@dataclass(frozen=True)
class Header:
    """What the page's head shows: the charger, its site and the vendor servicing it."""

    charger: Charger
    site: SiteView
    vendor: str | None


@dataclass(frozen=True)
class ConnectorState:
    """One connector now (number 0 is the charger as a whole)."""

    connector_no: int
    status: str
    error_code: str | None
    since: datetime | None


def _charger_wide(tenant: Any, charger: Any) -> Select[Any]:
    """Return a select of the newest connector-0 status among the charger's newest events."""
    e = ChargerEvent
    recent = (
        select(e.id, e.at, e.connector_no, e.kind, e.status, e.error_code)
        .where(e.tenant_id == tenant, e.charger_id == charger)
        .order_by(e.at.desc())
        .limit(CHARGER_STATUS_LOOKBACK)
        .subquery()
    )
    return (
        select(recent.c.status, recent.c.error_code, recent.c.at)
        .where(recent.c.connector_no == 0, recent.c.kind == "status")
        .order_by(recent.c.at.desc(), recent.c.id.desc())
        .limit(1)
    )


def _connectors(tenant: Any, charger: Any) -> Select[Any]:
    k = Connector
    return (
        select(k.connector_no, k.status, k.error_code, k.updated_at)
        .where(k.tenant_id == tenant, k.charger_id == charger)
        .order_by(k.connector_no)
    )


def connector_states(charger: Charger) -> list[ConnectorState]:
    """Return the charger-wide status (if the charger reported one lately) and each connector."""
    tenant = current_tenant_id()
    whole = db.session.connection().execute(_charger_wide(tenant, charger.id)).first()
    states = [ConnectorState(0, *whole)] if whole else []
    return states + [ConnectorState(*row) for row in _rows(_connectors(tenant, charger.id))]


# --- timeline -------------------------------------------------------------------------------


def _is_fault(e: Any) -> ColumnElement[bool]:
    return or_(e.status == "Faulted", and_(e.error_code.is_not(None), e.error_code != "NoError"))


@dataclass(frozen=True)
class Panel:
    """A page of a panel: rows, the next page's cursor, and whether a window ran out."""

    rows: list[Any]
    next_after: str | None
    window_ended: bool = False  # no more matches in WINDOW rows; "Search older" continues


def _rows(stmt: Select[Any]) -> list[Any]:
    """Return the rows of a select of columns, run on the session's connection (bound to the
    tenant): the ORM's part of session.execute() costs more than these small selects."""
    return list(db.session.connection().execute(stmt).all())


def _windowed(
    base: Select[Any],
    at: str,
    match: list[Any],
    limit: int,
    project: Any = None,
) -> Panel:
    """Return up to `limit` rows of `base` (ordered newest first, already after the cursor)
    matching `match` (functions of the window's columns), looking at no more than WINDOW rows
    of it. `project` picks the output columns from the window's (default: all)."""
    window = base.limit(WINDOW).subquery()
    w = window.c
    wheres = [clause(w) for clause in match]
    columns = project(w) if project else [window]
    rows = _rows(
        select(*columns).where(*wheres).order_by(w[at].desc(), w.id.desc()).limit(limit + 1)
    )
    if len(rows) > limit:
        last = rows[limit - 1]
        return Panel(rows[:limit], encode_cursor(getattr(last, at), last.id))
    # Fewer matches than a page: was the window full? Then older rows remain unsearched.
    edge = (
        db.session.connection()
        .execute(
            select(w[at], w.id, func.count().over()).order_by(w[at].asc(), w.id.asc()).limit(1)
        )
        .first()
    )
    if edge is None or edge[2] < WINDOW:
        return Panel(rows, None)
    return Panel(rows, encode_cursor(edge[0], edge[1]), window_ended=True)


def _paged(stmt: Select[Any], at: Any, ident: Any, after: str | None, size: int) -> Select[Any]:
    """Return `stmt` after the cursor (if any), limited to one row more than a page."""
    if after:
        stmt = stmt.where(_older_than(at, ident, after))
    return stmt.limit(size + 1)


def _through(
    stmt: Select[Any], base: Select[Any], at: Any, ident: Any, name: str, through: str
) -> Panel:
    """Return the rows of `stmt` from the newest down to the cursor `through` (a live refresh
    of what was loaded, at most MAX_THROUGH); "older" continues from the cursor if `base` (the
    unfiltered rows, so this stays one indexed row) has anything older."""
    rows = _rows(stmt.where(_not_older_than(at, ident, through)).limit(MAX_THROUGH + 1))
    if len(rows) > MAX_THROUGH:
        return _cut(rows, MAX_THROUGH, name)
    older = db.session.connection().execute(base.where(_older_than(at, ident, through)).limit(1))
    older = older.first()
    return Panel(rows, through if older is not None else None)


def _cut(rows: list[Any], size: int, at: str) -> Panel:
    more = len(rows) > size
    rows = rows[:size]
    return Panel(rows, encode_cursor(getattr(rows[-1], at), rows[-1].id) if more else None)


def timeline(charger: Charger, query: PageQuery) -> Panel:
    """Return a page of the charger's events, newest first, filtered as `query.tl` says."""
    e = ChargerEvent
    stmt = (
        select(
            e.id,
            e.at,
            e.kind,
            e.connector_no,
            e.status,
            e.error_code,
            e.info,
            e.vendor_error_code,
            e.data,
        )
        .where(e.tenant_id == current_tenant_id(), e.charger_id == charger.id)
        .order_by(e.at.desc(), e.id.desc())
    )
    if query.tl_through and not query.tl_after:
        shown = stmt
        if query.tl != "all":
            shown = stmt.where(_is_fault(e) if query.tl == "faults" else e.kind.in_(STATUS_KINDS))
        return _through(shown, stmt, e.at, e.id, "at", query.tl_through)
    if query.tl == "all":
        paged = _paged(stmt, e.at, e.id, query.tl_after, TIMELINE_PAGE)
        return _cut(_rows(paged), TIMELINE_PAGE, "at")
    if query.tl_after:
        stmt = stmt.where(_older_than(e.at, e.id, query.tl_after))
    match = (
        [lambda w: _is_fault(w)] if query.tl == "faults" else [lambda w: w.kind.in_(STATUS_KINDS)]
    )
    return _windowed(stmt, "at", match, TIMELINE_PAGE)


# --- message log ----------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageRow:
    """One OCPP frame, its payload pretty-printed."""

    id: int
    at: datetime
    direction: str
    message_type: int | None
    message_id: str | None
    action: str | None
    payload: str
    error_code: str | None
    error_description: str | None

    @property
    def type_label(self) -> str:
        """Return CALL, RESULT or ERROR."""
        return MESSAGE_TYPES.get(self.message_type or 0, "?")


def _cut_text(text: str | None) -> str:
    if text is None:
        return ""
    if len(text) > MAX_PAYLOAD_SHOWN:
        return text[:MAX_PAYLOAD_SHOWN] + "\n… (cut: the payload is longer)"
    return text


def _message_columns(m: Any) -> list[Any]:
    """Return the columns a message row shows, the payload pretty-printed by Postgres (in C,
    for the shown rows only) and cut one character past what is shown."""
    pretty = func.left(func.jsonb_pretty(m.payload), MAX_PAYLOAD_SHOWN + 1)
    return [
        m.id,
        m.at,
        m.direction,
        m.message_type,
        m.message_id,
        m.action,
        pretty.label("payload"),
        m.error_code,
        m.error_description,
    ]


def messages(charger: Charger, query: PageQuery) -> Panel:
    """Return a page of the charger's OCPP frames, newest first, filtered by `query`."""
    m = OcppMessage
    stmt = (
        select(m.id, m.at, m.direction, m.message_type, m.message_id, m.action)
        .add_columns(m.payload, m.error_code, m.error_description)
        .where(m.tenant_id == current_tenant_id(), m.charger_id == charger.id)
        .order_by(m.at.desc(), m.id.desc())
    )
    # A time range narrows the index scan and the partitions; "to" is inclusive of its minute.
    if query.msg_from:
        stmt = stmt.where(m.at >= query.msg_from)
    if query.msg_to:
        stmt = stmt.where(m.at < query.msg_to + timedelta(minutes=1))
    if query.msg_after:
        stmt = stmt.where(_older_than(m.at, m.id, query.msg_after))
    match: list[Any] = []
    if query.msg_action:
        match.append(lambda w: w.action == query.msg_action)
    if query.msg_dir:
        match.append(lambda w: w.direction == query.msg_dir)
    if match:
        panel = _windowed(stmt, "at", match, MESSAGE_PAGE, _message_columns)
    else:
        shown = stmt.with_only_columns(*_message_columns(m)).limit(MESSAGE_PAGE + 1)
        panel = _cut(_rows(shown), MESSAGE_PAGE, "at")
    rows = [
        MessageRow(
            r.id,
            r.at,
            r.direction,
            r.message_type,
            r.message_id,
            r.action,
            _cut_text(r.payload),
            r.error_code,
            r.error_description,
        )
        for r in panel.rows
    ]
    return Panel(rows, panel.next_after, panel.window_ended)


# --- sessions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRow:
    """One charging session with its energy and duration worked out."""

    id: int
    connector_no: int
    id_tag: str | None
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    energy_wh: int | None
    cost: Decimal | None
    currency: str | None

    @property
    def kwh(self) -> float | None:
        """Return the energy in kWh, if known."""
        return None if self.energy_wh is None else self.energy_wh / 1000

    def duration(self, now: datetime) -> timedelta:
        """Return how long it ran (or has been running)."""
        return (self.stopped_at or now) - self.started_at


def sessions(charger: Charger, query: PageQuery) -> Panel:
    """Return a page of the charger's charging sessions, newest first."""
    s = ChargingSession
    energy = func.coalesce(s.energy_wh, s.meter_stop - s.meter_start)
    stmt = (
        select(
            s.id,
            s.connector_no,
            s.id_tag,
            s.started_at,
            s.stopped_at,
            s.stop_reason,
            energy.label("energy_wh"),
            s.cost,
            s.currency,
        )
        .where(s.tenant_id == current_tenant_id(), s.charger_id == charger.id)
        .order_by(s.started_at.desc(), s.id.desc())
    )
    if query.ss_through and not query.ss_after:
        panel = _through(stmt, stmt, s.started_at, s.id, "started_at", query.ss_through)
    else:
        paged = _paged(stmt, s.started_at, s.id, query.ss_after, SESSION_PAGE)
        panel = _cut(_rows(paged), SESSION_PAGE, "started_at")
    return Panel([SessionRow(*r) for r in panel.rows], panel.next_after)


# --- tickets, jobs, commands ----------------------------------------------------------------


@dataclass(frozen=True)
class TicketRow:
    """One of the charger's tickets."""

    key: str
    title: str
    status: str
    priority: str
    updated_at: datetime


@dataclass(frozen=True)
class JobRow:
    """A firmware job or diagnostics request (file_name: diagnostics only)."""

    id: int
    status: str
    location: str
    retrieve_at: datetime | None
    file_name: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class CommandView:
    """A command as the page shows it."""

    id: int
    action: str
    payload: dict[str, Any]
    status: str
    created_at: datetime
    finished_at: datetime | None
    result: Any
    error: str | None


@dataclass(frozen=True)
class CommandRow:
    """A queued command with the name of who queued it."""

    command: CommandView | ChargerCommand
    by: str | None

    @property
    def configuration(self) -> list[dict[str, Any]] | None:
        """Return GetConfiguration's keys (key, value, readonly), if this is one with a result."""
        result = self.command.result or {}
        if self.command.action != "GetConfiguration" or not isinstance(result, dict):
            return None
        keys = result.get("configurationKey") or []
        return [k for k in keys if isinstance(k, dict)]

    @property
    def unknown_keys(self) -> list[str]:
        """Return the keys a GetConfiguration asked for that the charger does not know."""
        result = self.command.result or {}
        return [str(k) for k in result.get("unknownKey") or []] if isinstance(result, dict) else []


def _commands(tenant: Any, charger: Any) -> Select[Any]:
    c = ChargerCommand
    return (
        select(
            c.id,
            c.action,
            c.payload,
            c.status,
            c.created_at,
            c.finished_at,
            c.result,
            c.error,
            User.name.label("by"),
        )
        .outerjoin(User, and_(User.id == c.created_by_id, User.tenant_id == c.tenant_id))
        .where(c.tenant_id == tenant, c.charger_id == charger)
        .order_by(c.created_at.desc(), c.id.desc())
        .limit(SIDE_PANEL)
    )


def commands(charger: Charger) -> list[CommandRow]:
    """Return the charger's newest commands and who queued each (one select)."""
    stmt = _commands(current_tenant_id(), charger.id)
    return [CommandRow(CommandView(*row[:8]), row[8]) for row in _rows(stmt)]


@dataclass(frozen=True)
class LiveState:
    """The parts of the page that change while it is open."""

    head: Header
    connectors: list[ConnectorState]
    commands: list[CommandRow]
    firmware_jobs: list[JobRow]
    diagnostics: list[JobRow]
    tickets: list[TicketRow]


def _json_rows(stmt: Select[Any]) -> Any:
    """Return a scalar subquery of `stmt`'s rows as one JSON array of arrays, in its order."""
    rows = stmt.subquery()
    return select(func.json_agg(func.json_build_array(*rows.c), type_=JSON)).scalar_subquery()


def _moment(value: str | None) -> datetime | None:
    """Read a timestamp from JSON (Postgres writes ISO 8601 with the offset)."""
    return datetime.fromisoformat(value) if value else None


@lru_cache(maxsize=4)
def _live_select(vendor_user: bool) -> Select[Any]:
    """Return live_state's select (built once; a vendor's user sees their vendor's tickets)."""
    tenant = bindparam("tenant", type_=BigInteger)
    charger = bindparam("charger", type_=BigInteger)
    site = select(
        Site.id,
        Site.name,
        Site.address,
        cast(Site.lat, String),
        cast(Site.lon, String),
        Site.contact_name,
        Site.contact_phone,
    ).where(Site.tenant_id == tenant, Site.id == bindparam("site", type_=BigInteger))
    vendor = select(Vendor.name).where(
        Vendor.tenant_id == tenant, Vendor.id == bindparam("vendor", type_=BigInteger)
    )
    j, d = FirmwareJob, DiagnosticsRequest
    jobs = (
        select(j.id, j.status, j.location, j.retrieve_at, null(), j.created_at, j.updated_at)
        .where(j.tenant_id == tenant, j.charger_id == charger)
        .order_by(j.id.desc())
        .limit(SIDE_PANEL)
    )
    requests = (
        select(d.id, d.status, d.location, null(), d.file_name, d.created_at, d.updated_at)
        .where(d.tenant_id == tenant, d.charger_id == charger)
        .order_by(d.id.desc())
        .limit(SIDE_PANEL)
    )
    # The tickets the user may see (tickets.visible): the tenant's, or their vendor's.
    tickets = select(
        Ticket.number, Ticket.title, Ticket.status, Ticket.priority, Ticket.updated_at
    ).where(Ticket.tenant_id == tenant, Ticket.charger_id == charger)
    if vendor_user:
        tickets = tickets.where(
            Ticket.assignee_vendor_id == bindparam("actor_vendor", type_=BigInteger)
        )
    tickets = tickets.order_by(Ticket.updated_at.desc(), Ticket.id.desc()).limit(SIDE_PANEL)
    prefix = select(Tenant.key_prefix).where(Tenant.id == tenant).scalar_subquery()
    return select(
        _json_rows(site),
        vendor.scalar_subquery(),
        _json_rows(_charger_wide(tenant, charger)),
        _json_rows(_connectors(tenant, charger)),
        _json_rows(_commands(tenant, charger)),
        _json_rows(jobs),
        _json_rows(requests),
        _json_rows(tickets),
        prefix,
    )


def live_state(actor: User, charger: Charger) -> LiveState:
    """Return the site, vendor, connectors, commands, jobs and tickets in one select.

    Each part is a scalar subquery on an index that starts with the charger (or a primary key),
    aggregated to JSON: one round trip instead of eight. The select is built once, with bound
    parameters (building it took longer than running it).
    """
    params = {
        "tenant": current_tenant_id(),
        "charger": charger.id,
        "site": charger.site_id,
        "vendor": charger.vendor_id,
        "actor_vendor": actor.vendor_id,
    }
    stmt = _live_select(actor.role == "vendor")
    found = db.session.connection().execute(stmt, params).one()
    (site_row, vendor_name, whole, connectors, queued, fw, diag, ticket_rows, key_prefix) = found
    states = [ConnectorState(0, s, e, _moment(at)) for s, e, at in whole or []]
    states += [ConnectorState(n, s, e, _moment(at)) for n, s, e, at in connectors or []]

    def job(row: list[Any]) -> JobRow:
        ident, status, location, retrieve, file_name, created, updated = row
        return JobRow(
            ident,
            status,
            location,
            _moment(retrieve),
            file_name,
            _moment(created),
            _moment(updated),
        )

    return LiveState(
        head=Header(charger, SiteView(*site_row[0]), vendor_name),
        connectors=states,
        commands=[
            CommandRow(
                CommandView(i, a, p, st, _moment(c), _moment(f), r, e),  # type: ignore[arg-type]
                by,
            )
            for i, a, p, st, c, f, r, e, by in queued or []
        ],
        firmware_jobs=[job(row) for row in fw or []],
        diagnostics=[job(row) for row in diag or []],
        tickets=[
            TicketRow(format_key(key_prefix, number), title, status, priority, _moment(updated))
            for number, title, status, priority, updated in ticket_rows or []
        ],
    )


def open_session_ids(charger: Charger) -> list[int]:
    """Return the ids of the charger's sessions still running (for RemoteStopTransaction)."""
    s = ChargingSession
    stmt = (
        select(s.id)
        .where(
            s.tenant_id == current_tenant_id(), s.charger_id == charger.id, s.stopped_at.is_(None)
        )
        .order_by(s.started_at.desc())
        .limit(5)
    )
    return list(db.session.scalars(stmt))


# --- queuing a command, audited -------------------------------------------------------------


def queue_command(
    charger: Charger, action: str, payload: dict[str, Any], actor: User
) -> ChargerCommand:
    """Queue a command through charger_commands, with an audit row in the same transaction.

    queue_command commits by itself; the audit row is added once its flush has given the
    command an id, and goes out with the same commit, so a command is never queued unaudited.
    On CommandError nothing is written.
    """
    session = db.session()
    queued: list[ChargerCommand] = []

    def seen(session: Any, flush_context: Any) -> None:
        queued.extend(o for o in session.new if isinstance(o, ChargerCommand))

    def record(session: Any) -> None:
        if queued and not getattr(record, "done", False):
            record.done = True  # type: ignore[attr-defined]
            command = queued[0]
            audit(
                actor.id,
                "charger_command",
                command.id,
                "queue",
                None,
                {
                    "charger": charger.ocpp_id,
                    "charger_id": charger.id,
                    "action": command.action,
                    "payload": command.payload,
                },
            )

    event.listen(session, "after_flush", seen)
    event.listen(session, "before_commit", record)
    try:
        command = charger_commands.queue_command(charger, action, payload, user=actor)
    except Exception:
        session.rollback()
        raise
    finally:
        event.remove(session, "after_flush", seen)
        event.remove(session, "before_commit", record)
    return command


def cancel_command(command: ChargerCommand, actor: User) -> ChargerCommand:
    """Withdraw a command not sent yet (charger_commands.cancel_command), audited."""
    session = db.session()

    def record(session: Any) -> None:
        if not getattr(record, "done", False):
            record.done = True  # type: ignore[attr-defined]
            audit(actor.id, "charger_command", command.id, "cancel", {"status": "pending"}, None)

    event.listen(session, "before_commit", record)
    try:
        return charger_commands.cancel_command(command, user=actor)
    finally:
        event.remove(session, "before_commit", record)


def command_of(charger: Charger, ident: int) -> ChargerCommand | None:
    """Return the charger's command with this id, if any."""
    c = ChargerCommand
    stmt = select(c).where(
        c.tenant_id == current_tenant_id(), c.charger_id == charger.id, c.id == ident
    )
    return db.session.scalars(stmt).first()


def presence_watch(tenant_id: int, charger: Charger) -> Callable[[], dict[str, Any]]:
    """Return a reader of the charger's presence, for its page's stream (outside the request)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    charger_id, ocpp_id = charger.id, charger.ocpp_id
    stmt = select(Charger.online, Charger.last_seen).where(Charger.id == charger_id)

    def watch() -> dict[str, Any]:
        with app.app_context(), tenant_context(tenant_id):
            row = db.session.execute(stmt).one_or_none()
            db.session.remove()
        online, last_seen = row if row else (None, None)
        return {"kind": "charger", "id": ocpp_id, "online": online, "last_seen": last_seen}

    return watch
