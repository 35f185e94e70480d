"""Import chargers from CSV: every row is checked first, then all rows go in, or none.

Columns (header row, any order): ocpp_id, site, manufacturer, model, serial, asset_tag,
install_date, warranty_end, key. ocpp_id, site and key are required; a site named but missing is
created. The import is set-based: the sites and chargers each go in by multi-row INSERTs with
RETURNING, in one transaction with their audit rows.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import String, any_, bindparam, func, insert
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cass.extensions import db
from cass.models import AuditLog, Charger, Site
from cass.services.charger_admin import TEXT_MAX, key_problem, ocpp_id_problem
from cass.services.sites import NAME_MAX
from cass.tenancy import current_tenant_id, scoped
from ocpp_bridge.keys import hash_key

COLUMNS = (
    "ocpp_id",
    "site",
    "manufacturer",
    "model",
    "serial",
    "asset_tag",
    "install_date",
    "warranty_end",
    "key",
)
REQUIRED = ("ocpp_id", "site", "key")
TEXT_COLUMNS = ("manufacturer", "model", "serial", "asset_tag")
MAX_ROWS = 50_000
MAX_ERRORS = 1_000  # past this many, the rest are counted, not listed
# A spreadsheet-safe export writes a leading ' before these; an import takes it off again.
FORMULA_START = ("=", "+", "-", "@")


@dataclass(frozen=True)
class LineError:
    """One problem: the file's line (1 is the header), the column (or "") and what is wrong."""

    line: int
    column: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.column}" if self.column else "")
        return f"{where}: {self.message}"


@dataclass
class ImportResult:
    """What an import did: the errors (then nothing was written) or what it created."""

    errors: list[LineError] = field(default_factory=list)
    more_errors: int = 0  # errors beyond MAX_ERRORS, not listed
    rows: int = 0
    chargers: int = 0
    sites_created: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def error_count(self) -> int:
        return len(self.errors) + self.more_errors

    def add(self, line: int, column: str, message: str) -> None:
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(LineError(line, column, message))
        else:
            self.more_errors += 1


@dataclass
class _Row:
    line: int
    ocpp_id: str
    site: str
    manufacturer: str | None
    model: str | None
    serial: str | None
    asset_tag: str | None
    install_date: date | None
    warranty_end: date | None
    key: str


def _decode(data: bytes | str, result: ImportResult) -> str | None:
    """Return the file as text (UTF-8, with or without a byte-order mark)."""
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        result.add(line, "", "The file is not UTF-8 text (save it as CSV UTF-8).")
        return None


def _cell(value: str) -> str:
    """Trim a cell and undo an export's formula guard."""
    value = value.strip()
    if value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:]
    return value


def _header(names: list[str], result: ImportResult) -> list[str] | None:
    """Check the header row; return its column names, or None when it is unusable."""
    columns = [name.strip().lower() for name in names]
    seen: set[str] = set()
    for name in columns:
        if name not in COLUMNS:
            result.add(1, name, f"Unknown column (expected {', '.join(COLUMNS)}).")
        elif name in seen:
            result.add(1, name, "This column appears twice.")
        seen.add(name)
    for name in REQUIRED:
        if name not in seen:
            result.add(1, name, "This column is missing.")
    return None if result.errors else columns


def _date(value: str, line: int, column: str, result: ImportResult) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        result.add(line, column, f"“{value[:40]}” is not a date (use YYYY-MM-DD).")
        return None


def _check(values: dict[str, str], line: int, result: ImportResult) -> _Row:
    """Check one row's cells (each bad cell is one error); return the row's values."""
    problem = ocpp_id_problem(values["ocpp_id"])
    if problem:
        result.add(line, "ocpp_id", problem)
    site = values["site"]
    if not site:
        result.add(line, "site", "A site is required.")
    elif len(site) > NAME_MAX:
        result.add(line, "site", f"At most {NAME_MAX} characters.")
    for column in TEXT_COLUMNS:
        if len(values[column]) > TEXT_MAX:
            result.add(line, column, f"At most {TEXT_MAX} characters.")
    install = _date(values["install_date"], line, "install_date", result)
    warranty = _date(values["warranty_end"], line, "warranty_end", result)
    if install and warranty and warranty < install:
        result.add(line, "warranty_end", "The warranty cannot end before the install date.")
    problem = "A key is required." if not values["key"] else key_problem(values["key"])
    if problem:
        result.add(line, "key", problem)
    return _Row(
        line=line,
        ocpp_id=values["ocpp_id"],
        site=site,
        install_date=install,
        warranty_end=warranty,
        key=values["key"],
        **{column: values[column] or None for column in TEXT_COLUMNS},
    )


def parse(data: bytes | str) -> tuple[list[_Row], ImportResult]:
    """Read and check every row of a CSV file; return the rows and the result with its errors."""
    result = ImportResult()
    text = _decode(data, result)
    if text is None:
        return [], result
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[_Row] = []
    first_line: dict[str, int] = {}
    try:
        header = next(reader, None)
        if header is None:
            result.add(1, "", "The file is empty; it needs a header row and a row per charger.")
            return [], result
        columns = _header(header, result)
        if columns is None:
            return [], result
        end = reader.line_num
        for cells in reader:
            line, end = end + 1, reader.line_num  # a quoted cell may span lines
            if not any(cell.strip() for cell in cells):
                continue
            result.rows += 1
            if result.rows > MAX_ROWS:
                result.add(line, "", f"At most {MAX_ROWS} chargers per file.")
                break
            if len(cells) != len(columns):
                result.add(line, "", f"Expected {len(columns)} values, found {len(cells)}.")
                continue
            values = dict.fromkeys(COLUMNS, "") | {
                name: _cell(cell) for name, cell in zip(columns, cells, strict=True)
            }
            row = _check(values, line, result)
            if row.ocpp_id in first_line:
                result.add(
                    line, "ocpp_id", f"{row.ocpp_id} is also on line {first_line[row.ocpp_id]}."
                )
            elif row.ocpp_id:
                first_line[row.ocpp_id] = line
            rows.append(row)
    except csv.Error as exc:
        result.add(reader.line_num + 1, "", f"Not readable as CSV: {exc}.")
        return [], result
    if not result.rows and not result.errors:
        result.add(2, "", "The file has no chargers to import.")
    return rows, result


def _known_ocpp_ids(ocpp_ids: list[str]) -> set[str]:
    """Return which of `ocpp_ids` the tenant already has."""
    ids = bindparam("ids", ocpp_ids, type_=ARRAY(String))
    stmt = scoped(Charger, Charger.ocpp_id == any_(ids)).with_only_columns(Charger.ocpp_id)
    return set(db.session.scalars(stmt))


def _site_ids(rows: list[_Row], actor_id: int | None, result: ImportResult) -> dict[str, int]:
    """Return site ids by lower-cased name, creating the sites the file names but lacks."""
    tenant_id = current_tenant_id()
    stmt = scoped(Site).with_only_columns(func.lower(Site.name), Site.id)
    ids: dict[str, int] = {name: ident for name, ident in db.session.execute(stmt)}
    missing: dict[str, str] = {}
    for row in rows:  # first spelling in the file wins
        missing.setdefault(row.site.lower(), row.site)
    missing = {lower: name for lower, name in missing.items() if lower not in ids}
    if missing:
        created = db.session.execute(
            pg_insert(Site)
            .values([{"tenant_id": tenant_id, "name": name} for name in missing.values()])
            .on_conflict_do_nothing(index_elements=["tenant_id", "name"])
            .returning(Site.id, Site.name)
        ).all()
        for ident, name in created:
            ids[name.lower()] = ident
            result.sites_created.append(name)
        if len(created) < len(missing):  # made meanwhile by someone else: look them up
            ids.update(dict(db.session.execute(stmt)))
        _audit_many(
            actor_id,
            "site",
            [
                (ident, {"name": name, "timezone": "UTC", "source": "import"})
                for ident, name in created
            ],
        )
    return ids


def _audit_many(actor_id: int | None, entity: str, items: list[tuple[int, dict[str, Any]]]) -> None:
    """Add one audit row per created item, in one multi-row INSERT."""
    if items:
        tenant_id = current_tenant_id()
        db.session.execute(
            insert(AuditLog),
            [
                {
                    "tenant_id": tenant_id,
                    "actor_id": actor_id,
                    "entity": entity,
                    "entity_id": ident,
                    "action": "import",
                    "before": None,
                    "after": after,
                }
                for ident, after in items
            ],
        )


def import_chargers(data: bytes | str, actor_id: int | None = None) -> ImportResult:
    """Import a CSV of chargers into the current tenant: all rows, or none and the errors."""
    rows, result = parse(data)
    if not result.ok:
        return result
    by_line = {row.ocpp_id: row.line for row in rows}
    for ocpp_id in sorted(_known_ocpp_ids(list(by_line)), key=by_line.__getitem__):
        result.add(by_line[ocpp_id], "ocpp_id", f"{ocpp_id} already exists.")
    if not result.ok:
        db.session.rollback()
        return result
    tenant_id = current_tenant_id()
    sites = _site_ids(rows, actor_id, result)
    values = [
        {
            "tenant_id": tenant_id,
            "ocpp_id": row.ocpp_id,
            "site_id": sites[row.site.lower()],
            "manufacturer": row.manufacturer,
            "model": row.model,
            "serial": row.serial,
            "asset_tag": row.asset_tag,
            "install_date": row.install_date,
            "warranty_end": row.warranty_end,
            "key_hash": hash_key(row.key),  # salted per charger, so one hash per row
            "registration": "accepted",
        }
        for row in rows
    ]
    # Another tenant's charger may hold an OCPP id (unique across tenants, invisible here under
    # row-level security): ON CONFLICT DO NOTHING leaves those rows out, and we report them.
    inserted = db.session.execute(
        pg_insert(Charger)
        .on_conflict_do_nothing(index_elements=["ocpp_id"])
        .returning(Charger.id, Charger.ocpp_id),
        values,
    ).all()
    if len(inserted) < len(rows):
        taken = set(by_line) - {ocpp_id for _, ocpp_id in inserted}
        db.session.rollback()
        result.sites_created.clear()
        for ocpp_id in sorted(taken, key=by_line.__getitem__):
            result.add(by_line[ocpp_id], "ocpp_id", f"{ocpp_id} is already in use.")
        return result
    line_of = {row.ocpp_id: row for row in rows}
    _audit_many(
        actor_id,
        "charger",
        [
            (
                ident,
                {
                    "ocpp_id": ocpp_id,
                    "site_id": sites[line_of[ocpp_id].site.lower()],
                    "key": "set",
                },
            )
            for ident, ocpp_id in inserted
        ],
    )
    db.session.commit()
    result.chargers = len(inserted)
    return result
