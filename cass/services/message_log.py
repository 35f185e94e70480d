"""The OCPP message log's upkeep (daily partitions made ahead, old ones dropped) and its
export as CSV or JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, Text, and_, case, cast, select, text

from cass.csv_download import CopyExport, csv_cell, sql_cell, sql_text, tenant_zone
from cass.extensions import db
from cass.models import Charger, OcppMessage, Site
from cass.services.charger_page import MESSAGE_TYPES, parse_page_query
from cass.tenancy import current_tenant_id

DAYS_AHEAD = 3


def apply_retention(keep_days: int) -> int:
    """Make the coming days' partitions and drop those older than `keep_days`; return drops."""
    if keep_days < 1:
        raise ValueError("the message log keeps at least one day")
    dropped = db.session.execute(
        text("SELECT cass_ocpp_message_partitions(:keep, :ahead)"),
        {"keep": keep_days, "ahead": DAYS_AHEAD},
    ).scalar_one()
    db.session.commit()
    return int(dropped)


# --- export ---------------------------------------------------------------------------------
#
# The log as a file for a support case with a manufacturer: one charger's frames with the
# viewer's filters (parsed by the viewer's own parser, so the file holds what the page shows),
# or a whole site's over a bounded time range. Oldest first, as a log file reads. CSV goes
# through the shared cell rules and COPY (cass.csv_download); JSON Lines through a server-side
# cursor. Both keep the time range in the WHERE clause on `at`, the partition key, so Postgres
# reads only the partitions of those days.

EXPORT_HEADER = (
    "time",
    "charger",
    "direction",
    "message_type",
    "unique_id",
    "action",
    "error_code",
    "error_description",
    "payload",
)
# A site's export covers at most this many days, so one click cannot read a whole retention
# period of every charger at once; without a range it covers the last day.
SITE_MAX_DAYS = 31
SITE_DEFAULT_DAYS = 1
EXPORT_BATCH = 1000
_FILTER_NAMES = {
    "msg_action": "action",
    "msg_dir": "direction",
    "msg_from": "from",
    "msg_to": "to",
}


class BadExport(ValueError):
    """The export's filters do not parse or ask for too much (422); `notices` says why."""

    def __init__(self, notices: list[str]) -> None:
        super().__init__("; ".join(notices))
        self.notices = notices


@dataclass(frozen=True)
class MessageFilter:
    """The message log's filters as an export applies them; `end` is exclusive."""

    action: str | None = None
    direction: str | None = None
    start: datetime | None = None
    end: datetime | None = None

    def params(self) -> dict[str, str]:
        """Return the viewer's parameters (msg_*) that give these filters."""
        out = {"msg_action": self.action or "", "msg_dir": self.direction or ""}
        if self.start:
            out["msg_from"] = self.start.strftime("%Y-%m-%dT%H:%M")
        if self.end:
            out["msg_to"] = (self.end - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
        return {k: v for k, v in out.items() if v}

    def span_label(self) -> str:
        """Return the range for a file name: 20261128T1430-20261129T0000, or "all"."""
        ends = [f"{t:%Y%m%dT%H%M}" if t else "" for t in (self.start, self.end)]
        return "-".join(ends) if any(ends) else "all"


def parse_export_filter(args: Mapping[str, Any], *, site: bool = False) -> MessageFilter:
    """Read the viewer's message-log filters for an export; raise BadExport on any it drops.

    The viewer shows a notice and ignores a filter it cannot read; a file has no room for a
    notice, and a silently wider file is the wrong data to send a manufacturer, so an export
    refuses instead. A site's export also needs a range of at most SITE_MAX_DAYS.
    """
    query = parse_page_query({k: args.get(k, "") for k in _FILTER_NAMES})
    notices = list(query.notices)
    if not notices:  # a parser that drops a value without a notice must not widen the file
        for key, label in _FILTER_NAMES.items():
            if str(args.get(key) or "").strip() and not getattr(query, key):
                notices.append(f"Could not read the {label} filter.")
    if notices:
        raise BadExport(notices)
    start = query.msg_from
    # "to" is inclusive of its minute, as in the viewer.
    end = query.msg_to + timedelta(minutes=1) if query.msg_to else None
    if start and end and end <= start:
        raise BadExport(["“From” must be before “To”."])
    if site:
        if end is None:
            end = (
                start + timedelta(days=SITE_DEFAULT_DAYS)
                if start
                else datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
            )
        if start is None:
            start = end - timedelta(days=SITE_DEFAULT_DAYS)
        if end - start > timedelta(days=SITE_MAX_DAYS):
            most = f"A site's message log is exported {SITE_MAX_DAYS} days at most"
            raise BadExport([f"{most}: narrow the range."])
    return MessageFilter(query.msg_action, query.msg_dir, start, end)


def _export_select(charger_ids: Select[Any] | list[int], flt: MessageFilter) -> Select[Any]:
    """Return the frames of `charger_ids` matching `flt`, oldest first, with their charger."""
    m, c = OcppMessage, Charger
    tenant = current_tenant_id()
    stmt = (
        select(m.id, m.at, c.ocpp_id, m.direction, m.message_type, m.message_id, m.action)
        .add_columns(m.error_code, m.error_description, cast(m.payload, Text).label("payload"))
        .join(c, and_(c.id == m.charger_id, c.tenant_id == tenant))
        .where(m.tenant_id == tenant, m.charger_id.in_(charger_ids))
        .order_by(m.at, m.id)
    )
    if flt.start:
        stmt = stmt.where(m.at >= flt.start)
    if flt.end:
        stmt = stmt.where(m.at < flt.end)
    if flt.action:
        stmt = stmt.where(m.action == flt.action)
    if flt.direction:
        stmt = stmt.where(m.direction == flt.direction)
    return stmt


def _site_charger_ids(site: Site) -> Select[Any]:
    return select(Charger.id).where(
        Charger.tenant_id == current_tenant_id(), Charger.site_id == site.id
    )


def export_select(target: Charger | Site, flt: MessageFilter) -> Select[Any]:
    """Return the select of a charger's or a site's frames matching `flt`, oldest first."""
    if isinstance(target, Charger):
        return _export_select([target.id], flt)
    return _export_select(_site_charger_ids(target), flt)


def _type_label(column: Any) -> Any:
    return case(*((column == n, label) for n, label in MESSAGE_TYPES.items()), else_=None)


def csv_export(target: Charger | Site, flt: MessageFilter) -> CopyExport:
    """Return the CSV export of the frames (written by Postgres with COPY, the shared rules)."""
    s = export_select(target, flt).subquery()
    columns = [
        sql_cell(s.c.at),
        sql_text(s.c.ocpp_id),
        sql_text(s.c.direction),
        _type_label(s.c.message_type),
        sql_text(s.c.message_id),
        sql_text(s.c.action),
        sql_text(s.c.error_code),
        sql_text(s.c.error_description),
        sql_text(s.c.payload),
    ]
    # Ordered again outside: a subquery's ORDER BY does not bind the outer select.
    statement = select(*columns).order_by(s.c.at, s.c.id)
    return CopyExport(EXPORT_HEADER, statement, lambda: csv_rows(target, flt))


def _raw_rows(target: Charger | Site, flt: MessageFilter) -> Iterator[Any]:
    """Yield the frames by a server-side cursor, EXPORT_BATCH rows at a time."""
    stmt = export_select(target, flt).execution_options(yield_per=EXPORT_BATCH)
    yield from db.session.execute(stmt)


def csv_rows(target: Charger | Site, flt: MessageFilter) -> Iterator[list[str]]:
    """Yield the CSV rows (header first) written by Python, for a zone Postgres lacks."""
    yield list(EXPORT_HEADER)
    zone = tenant_zone()
    for r in _raw_rows(target, flt):
        label = MESSAGE_TYPES.get(r.message_type) if r.message_type is not None else None
        yield [
            csv_cell(value, zone)
            for value in (
                r.at,
                r.ocpp_id,
                r.direction,
                label,
                r.message_id,
                r.action,
                r.error_code,
                r.error_description,
                r.payload,
            )
        ]


def jsonl_lines(target: Charger | Site, flt: MessageFilter) -> Iterator[str]:
    """Yield one JSON object a frame (the payload as a JSON value), oldest first."""
    zone = tenant_zone()
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    for r in _raw_rows(target, flt):
        label = MESSAGE_TYPES.get(r.message_type) if r.message_type is not None else None
        head = dumps(
            {
                "time": r.at.astimezone(zone).isoformat(timespec="seconds"),
                "charger": r.ocpp_id,
                "direction": r.direction,
                "message_type": label,
                "unique_id": r.message_id,
                "action": r.action,
                "error_code": r.error_code,
                "error_description": r.error_description,
            }
        )
        # The payload is Postgres's JSON text of the jsonb, put in as it is: no parse and
        # re-dump in Python of what may be a 64 KB frame.
        yield f'{head[:-1]},"payload":{r.payload or "null"}}}\n'
