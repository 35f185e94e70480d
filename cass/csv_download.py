"""CSV downloads: one set of cell rules, streamed a chunk at a time without a cap on rows.

Every CSV the app writes (the ticket list, sessions, the charger registry, reports) follows the
same rules, whether Python writes the cells (`csv_cell`) or PostgreSQL does (`sql_cell`, for
`COPY ... TO STDOUT`); `tests/test_csv_export.py` checks that both give the same bytes:
- times as ISO-8601 with the offset, to the second, in the tenant's timezone
  (`2026-03-01T09:30:00-05:00`); dates as `2026-03-01`;
- text that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a tab or
  a carriage return: OWASP's "CSV injection") gets a leading `'`; numbers are never changed;
- NULL and the empty string are both an empty cell;
- RFC 4180 quoting (a cell with a comma, quote, CR or LF is quoted, quotes doubled), rows
  ending in LF (what COPY writes), UTF-8; with `?bom=1` on any CSV URL the file starts with a
  byte-order mark, so that Excel reads it as UTF-8.

Big exports (the ticket list) are a select whose columns are already cells (`CopyExport`):
PostgreSQL runs it as `COPY (select) TO STDOUT WITH (FORMAT csv)` on the request's own
connection, in its transaction, so row-level security and the tenant binding hold, and the
rows arrive already written as CSV; Python only gathers them into chunks. Memory stays flat (a
chunk at a time, the socket's back-pressure reaching Postgres), and there is no row cap.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from flask import Response, g, has_request_context, request, stream_with_context
from sqlalchemy import Date, DateTime, Select, String, Text, case, func, literal_column, select
from sqlalchemy.exc import DBAPIError

from cass.extensions import db
from cass.tenancy import current_tenant_id

ROWS_PER_CHUNK = 500  # Python-written rows per chunk
CHUNK_BYTES = 64 * 1024  # COPY output is passed on in chunks of about this size
BOM = "\ufeff"
# Spreadsheets run a cell starting with these as a formula (OWASP: CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# to_char() pattern of datetime.isoformat(timespec="seconds") in the session's time zone.
SQL_TIME_FORMAT = 'YYYY-MM-DD"T"HH24:MI:SSTZH:TZM'
SQL_DATE_FORMAT = "YYYY-MM-DD"
_FORMULA_CODES = tuple(literal_column(str(ord(c))) for c in FORMULA_START)


# --- cells ----------------------------------------------------------------------------------


def zone_of(name: str | None) -> ZoneInfo:
    """Return the IANA zone `name`, or UTC when it is not one."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def tenant_zone() -> ZoneInfo:
    """Return the time zone of the current tenant (UTC without one), once per request."""
    zone = g.get("csv_zone")
    if zone is None:
        from cass.models import Tenant

        tenant = current_tenant_id()
        name = None
        if tenant is not None:
            name = db.session.scalar(select(Tenant.timezone).where(Tenant.id == tenant))
        zone = g.csv_zone = zone_of(name)
    return zone


def csv_cell(value: Any, zone: ZoneInfo) -> str:
    """Return `value` as a CSV cell: times in `zone`, text that no spreadsheet runs as a
    formula, numbers as they are, None empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return "'" + value if value.startswith(FORMULA_START) else value
    if isinstance(value, datetime):
        return value.astimezone(zone).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")  # as Postgres writes numeric: never 1E+1
    return str(value)


def sql_text(column: Any) -> Any:
    """Return the SQL of text `column` as csv_cell writes it (formula guard; '' as NULL)."""
    guarded = func.ascii(column).in_(_FORMULA_CODES)
    # ascii('') is 0; NULLIF, since COPY writes '' as "" and NULL as nothing, csv.writer both
    # as nothing.
    return case((guarded, literal_column("''''") + column), else_=func.nullif(column, ""))


def sql_cell(column: Any) -> Any:
    """Return the SQL expression that writes `column` as csv_cell would (COPY's text of it)."""
    kind = column.type
    if isinstance(kind, DateTime):
        # In the session's time zone, which copy_chunks sets to the tenant's.
        return func.to_char(column, SQL_TIME_FORMAT)
    if isinstance(kind, Date):
        return func.to_char(column, SQL_DATE_FORMAT)  # whatever DateStyle says
    if isinstance(kind, String | Text):
        return sql_text(column)
    return column  # integers: Postgres and Python write them alike


def write_rows(rows: Iterable[Iterable[Any]]) -> str:
    """Return `rows` (already cells) as CSV text."""
    lines = _Lines()
    _writer(lines).writerows(rows)
    return lines.take()


class _Lines:
    """The file a csv.writer writes to: it keeps the rows, each ending in LF."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, line: str) -> None:
        # csv.writer writes each row in one call, ending in the CRLF it was given (so that it
        # quotes every cell holding a CR or an LF, as COPY does); rows end in LF, as COPY's.
        self.parts.append(line[:-2] + "\n")

    def take(self) -> str:
        text = "".join(self.parts)
        self.parts.clear()
        return text


def _writer(lines: _Lines) -> Any:
    # Quoting as COPY's: only cells holding a comma, quote, CR or LF, quotes doubled.
    return csv.writer(lines, lineterminator="\r\n")


# --- COPY -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CopyExport:
    """An export that PostgreSQL writes: `statement`'s columns are cells (sql_cell), in the
    order of `header`; it runs in the session's transaction, with the tenant's time zone."""

    header: tuple[str, ...]
    statement: Select[Any]
    # The same CSV's rows (header first) written by Python: used when Postgres does not know
    # the tenant's time zone (its zone data is older than Python's); without them, UTC.
    rows: Callable[[], Iterable[Iterable[Any]]] | None = None


def literal_select(statement: Select[Any], connection: psycopg.Connection) -> str:
    """Return the SQL of `statement` with its values inlined as literals, for COPY.

    COPY takes no bound parameters, so the values are written into the text by psycopg's
    client-side quoting (libpq's escaping, as the connection's settings need), never pasted.
    """
    compiled = statement.compile(dialect=db.session.get_bind().dialect)
    state = compiled.construct_expanded_state()  # IN lists written out, one value each
    processors = state.processors
    values = {
        name: processors[name](value) if name in processors else value
        for name, value in state.parameters.items()
    }
    return psycopg.ClientCursor(connection).mogrify(state.statement, values)


def copy_sql(export: CopyExport, connection: psycopg.Connection) -> str:
    """Return the `COPY (<the select>) TO STDOUT` of `export`, its values inlined."""
    return f"COPY ({literal_select(export.statement, connection)}) TO STDOUT WITH (FORMAT csv)"


def copy_chunks(export: CopyExport, zone: ZoneInfo | None = None) -> Iterator[bytes]:
    """Yield the CSV of `export`, header first, in chunks of about CHUNK_BYTES, read by COPY on
    the session's connection (bound to the tenant) with the time zone set to `zone` (the
    tenant's by default) for the rest of the transaction."""
    zone = zone or tenant_zone()
    if not _use_zone(zone):
        if export.rows is not None:
            yield from write_chunks(export.rows())
            return
        _use_zone(ZoneInfo("UTC"))
    raw = db.session.connection().connection.driver_connection
    sql = copy_sql(export, raw)
    # What can fail before a byte is sent has run (a failure is still a 500). Then the header,
    # so that a browser starts the download at once even when Postgres must sort every row
    # before the first comes out.
    yield write_rows([export.header]).encode()
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        yield from _gathered(copy)


def _use_zone(zone: ZoneInfo) -> bool:
    """Set the transaction's time zone to `zone`; return False if Postgres does not know it
    (a zone newer than its zone data, such as America/Coyhaique), leaving the zone as it was."""
    try:
        with db.session.begin_nested():  # a failed SET must not end the request's transaction
            db.session.connection().exec_driver_sql(
                "SELECT set_config('timezone', %(zone)s, true)", {"zone": zone.key}
            )
    except DBAPIError:
        return False
    return True


def _gathered(copy: Any) -> Iterator[bytes]:
    """Yield the rows of a COPY TO in progress gathered into chunks of about CHUNK_BYTES."""
    buffer = bytearray()
    for row in copy:
        buffer += row
        if len(buffer) >= CHUNK_BYTES:
            yield bytes(buffer)
            buffer.clear()
    if buffer:
        yield bytes(buffer)


# --- responses ------------------------------------------------------------------------------


def wants_bom() -> bool:
    """Return whether the request asked for a byte-order mark (`?bom=1`, for Excel)."""
    return has_request_context() and request.args.get("bom", "") in ("1", "true", "yes", "on")


def csv_download(source: Iterable[Iterable[Any]] | CopyExport, name: str) -> Response:
    """Return a streamed `<name>-<date>.csv` attachment of `source`: rows (header first) that
    Python writes, or a CopyExport that Postgres writes.

    `?bom=1` on the request starts the file with a UTF-8 byte-order mark.
    """
    bom = wants_bom()
    chunks = copy_chunks(source) if isinstance(source, CopyExport) else write_chunks(source)

    def generate() -> Iterator[bytes]:
        # The mark goes with the first chunk: until then the request can still fail as a 500.
        rest = iter(chunks)
        first = next(rest, b"")
        yield BOM.encode() + first if bom else first
        yield from rest

    # The generator runs after the view returns: stream_with_context keeps the request's
    # context (g.tenant_id, which binds RLS on each transaction, and the user) alive until the
    # last row, and the cursor or COPY stays inside that one bound transaction.
    response = Response(stream_with_context(generate()), mimetype="text/csv")
    response.charset = "utf-8"
    stamp = datetime.now(UTC).date().isoformat()
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Accel-Buffering"] = "no"  # let a proxy pass rows on as they come
    return response


def write_chunks(rows: Iterable[Iterable[Any]]) -> Iterator[bytes]:
    """Yield `rows` (cells already) written as CSV, ROWS_PER_CHUNK rows a chunk."""
    lines = _Lines()
    writer = _writer(lines)
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % ROWS_PER_CHUNK == 0:
            yield lines.take().encode()
    yield lines.take().encode()
