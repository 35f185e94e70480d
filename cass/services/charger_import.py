"""Import chargers from CSV: every row is checked first, then all rows go in, or none.

Columns (header row, any order): ocpp_id, site, manufacturer, model, serial, asset_tag,
install_date, warranty_end, key. ocpp_id, site and key are required; a site named but missing is
created. The import is set-based: the new sites go in by one multi-row INSERT, the chargers by one
INSERT ... SELECT over arrays (unnest), their audit rows by INSERT ... SELECT, all in one
transaction.
"""

from __future__ import annotations

import csv
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import (
    BigInteger,
    Date,
    String,
    any_,
    bindparam,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy import (
    column as sql_column,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from cass.csv_download import FORMULA_START
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
    """Trim a cell and undo an export's formula guard (the ' that csv_cell puts before text a
    spreadsheet would run)."""
    value = value.strip()
    if value.startswith("'") and value[1:].startswith(FORMULA_START):
        return value[1:].strip()
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
    if not ocpp_ids:
        return set()
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
            pg_insert(Site.__table__)
            .values([{"tenant_id": tenant_id, "name": name} for name in missing.values()])
            .on_conflict_do_nothing(index_elements=["tenant_id", "name"])
            .returning(Site.__table__.c.id, Site.__table__.c.name)
        ).all()
        for ident, name in created:
            ids[name.lower()] = ident
            result.sites_created.append(name)
        if len(created) < len(missing):  # made meanwhile by someone else: look them up
            ids.update(dict(db.session.execute(stmt)))
        _audit_imported(Site, [ident for ident, _ in created], actor_id)
    return ids


def _audit_imported(
    model: type[Site] | type[Charger], ids: list[int], actor_id: int | None
) -> None:
    """Add an "import" audit row per new site or charger, in one INSERT ... SELECT."""
    if not ids:
        return
    table = model.__table__
    if model is Site:
        after = func.jsonb_build_object(
            literal("name", String), table.c.name, literal("timezone", String), table.c.timezone
        )
    else:
        after = func.jsonb_build_object(
            literal("ocpp_id", String),
            table.c.ocpp_id,
            literal("site_id", String),
            table.c.site_id,
            literal("key", String),
            literal("set", String),
        )
    rows = select(
        table.c.tenant_id,
        literal(actor_id, BigInteger),
        literal(model.__tablename__, String),
        table.c.id,
        literal("import", String),
        after,
    ).where(
        table.c.tenant_id == current_tenant_id(),
        table.c.id == any_(bindparam(f"{model.__tablename__}_ids", ids, type_=ARRAY(BigInteger))),
    )
    columns = ["tenant_id", "actor_id", "entity", "entity_id", "action", "after"]
    db.session.execute(insert(AuditLog.__table__).from_select(columns, rows))


def _hash_keys(keys: list[str]) -> list[str]:
    """Hash every key (each with its own salt); PBKDF2 releases the GIL, so use the cores."""
    if len(keys) < 200:
        return [hash_key(key) for key in keys]
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        return list(pool.map(hash_key, keys, chunksize=100))


def _insert_chargers(rows: list[_Row], sites: dict[str, int]) -> list[tuple[int, str]]:
    """Insert the rows in one statement over arrays; return (id, ocpp_id) of those inserted.

    Another tenant's charger may hold an OCPP id (unique across tenants, invisible here under
    row-level security): ON CONFLICT DO NOTHING leaves such rows out, for the caller to report.
    """
    table = Charger.__table__
    arrays = {
        "ocpp_id": (String, [row.ocpp_id for row in rows]),
        "site_id": (BigInteger, [sites[row.site.lower()] for row in rows]),
        **{name: (String, [getattr(row, name) for row in rows]) for name in TEXT_COLUMNS},
        "install_date": (Date, [row.install_date for row in rows]),
        "warranty_end": (Date, [row.warranty_end for row in rows]),
        "key_hash": (String, _hash_keys([row.key for row in rows])),
    }
    values = (
        func.unnest(
            *(bindparam(name, items, type_=ARRAY(kind)) for name, (kind, items) in arrays.items())
        )
        .table_valued(*(sql_column(name, kind) for name, (kind, _) in arrays.items()))
        .render_derived(name="r")
    )
    stmt = (
        pg_insert(table)
        .from_select(
            ["tenant_id", *arrays],
            select(literal(current_tenant_id(), BigInteger), *values.c),
        )
        .on_conflict_do_nothing(index_elements=["ocpp_id"])
        .returning(table.c.id, table.c.ocpp_id)
    )
    return [(ident, ocpp_id) for ident, ocpp_id in db.session.execute(stmt)]


def import_chargers(data: bytes | str, actor_id: int | None = None) -> ImportResult:
    """Import a CSV of chargers into the current tenant: all rows, or none and the errors."""
    rows, result = parse(data)
    # Each OCPP id's first line (a repeat is already an error); ids the tenant has are errors
    # too, reported with the rest in one go.
    by_line: dict[str, int] = {}
    for row in rows:
        by_line.setdefault(row.ocpp_id, row.line)
    for ocpp_id in _known_ocpp_ids([i for i in by_line if not ocpp_id_problem(i)]):
        result.add(by_line[ocpp_id], "ocpp_id", f"{ocpp_id} already exists.")
    if not result.ok:
        db.session.rollback()
        # By line, then in the file's column order (whole-row problems first).
        result.errors.sort(
            key=lambda e: (e.line, COLUMNS.index(e.column) if e.column in COLUMNS else -1)
        )
        return result
    sites = _site_ids(rows, actor_id, result)
    inserted = _insert_chargers(rows, sites)
    if len(inserted) < len(rows):
        taken = set(by_line) - {ocpp_id for _, ocpp_id in inserted}
        db.session.rollback()
        result.sites_created.clear()
        for ocpp_id in sorted(taken, key=by_line.__getitem__):
            result.add(by_line[ocpp_id], "ocpp_id", f"{ocpp_id} is already in use.")
        return result
    _audit_imported(Charger, [ident for ident, _ in inserted], actor_id)
    db.session.commit()
    result.chargers = len(inserted)
    return result
