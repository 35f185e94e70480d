"""Register and edit the tenant's chargers: identity, site, asset data, vendor, key, registration.

The public charger list and page belong to the chargers area; this is the admin's registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from cass.csv_download import csv_cell, tenant_zone
from cass.extensions import db
from cass.models import Charger, Connector, Site, Vendor
from cass.services.audit import audit
from cass.tenancy import current_tenant_id, scoped
from ocpp_bridge.keys import MIN_KEY_LENGTH, hash_key
from ocpp_bridge.vocab import CHARGE_POINT_ID_RE, REGISTRATIONS

MAX_KEY_LENGTH = 128
MAX_CONNECTORS = 10
PAGE_SIZE = 50
TEXT_MAX = 80  # manufacturer, model, serial, asset tag, firmware: String(80)
EXPORT_HEADER = (
    "ocpp_id",
    "site",
    "manufacturer",
    "model",
    "serial",
    "asset_tag",
    "install_date",
    "warranty_end",
)
AUDITED = (
    "ocpp_id",
    "site_id",
    "manufacturer",
    "model",
    "serial",
    "asset_tag",
    "firmware",
    "install_date",
    "warranty_end",
    "vendor_id",
    "registration",
)
# Postgres's name for the global unique constraint on charger.ocpp_id.
OCPP_ID_CONSTRAINT = "charger_ocpp_id_key"


class ChargerError(ValueError):
    """A rule about chargers was broken; `field` names the form field it concerns, if one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class ChargerData:
    """What an admin enters for a charger (already validated in shape by the form)."""

    ocpp_id: str
    site_id: int
    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    asset_tag: str = ""
    firmware: str = ""
    install_date: date | None = None
    warranty_end: date | None = None
    vendor_id: int | None = None
    registration: str = "accepted"


@dataclass(frozen=True)
class ChargerFilters:
    """What the admin's charger list is narrowed by."""

    q: str = ""
    registration: str | None = None
    site_id: int | None = None


@dataclass(frozen=True)
class ChargerRow:
    """A charger with the names the list shows next to it."""

    charger: Charger
    site_name: str
    vendor_name: str | None


def ocpp_id_problem(ocpp_id: str) -> str | None:
    """Return why `ocpp_id` cannot be a charge point id, or None when it can."""
    if not ocpp_id:
        return "An OCPP id is required."
    if not CHARGE_POINT_ID_RE.fullmatch(ocpp_id):
        return "Use 1-64 letters, digits and . _ : * + @ - (no spaces)."
    return None


def key_problem(key: str) -> str | None:
    """Return why `key` cannot be a charger key, or None when it can."""
    if len(key) < MIN_KEY_LENGTH:
        return f"A charger key needs at least {MIN_KEY_LENGTH} characters."
    if len(key) > MAX_KEY_LENGTH:
        return f"A charger key takes at most {MAX_KEY_LENGTH} characters."
    return None


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_chargers(
    filters: ChargerFilters, after: str | None = None, limit: int = PAGE_SIZE
) -> list[ChargerRow]:
    """Return a page of the tenant's chargers by OCPP id, after `after` (keyset)."""
    stmt = (
        scoped(Charger)
        .join(Site, Site.id == Charger.site_id)
        .outerjoin(Vendor, Vendor.id == Charger.vendor_id)
        .add_columns(Site.name, Vendor.name)
    )
    query = filters.q.strip()[:100]
    if query:
        like = f"%{_escape_like(query)}%"
        stmt = stmt.where(
            or_(
                Charger.ocpp_id.ilike(like),
                Charger.serial.ilike(like),
                Charger.asset_tag.ilike(like),
                Charger.manufacturer.ilike(like),
                Charger.model.ilike(like),
                Site.name.ilike(like),
            )
        )
    if filters.registration:
        stmt = stmt.where(Charger.registration == filters.registration)
    if filters.site_id is not None:
        stmt = stmt.where(Charger.site_id == filters.site_id)
    if after:
        stmt = stmt.where(Charger.ocpp_id > after)
    stmt = stmt.order_by(Charger.ocpp_id).limit(limit)
    return [ChargerRow(row[0], row[1], row[2]) for row in db.session.execute(stmt)]


def row_of(charger: Charger) -> ChargerRow:
    """Return the list row of one charger."""
    site = db.session.scalar(scoped(Site, Site.id == charger.site_id))
    vendor = (
        None
        if charger.vendor_id is None
        else db.session.scalar(scoped(Vendor, Vendor.id == charger.vendor_id))
    )
    return ChargerRow(charger, site.name if site else "", vendor.name if vendor else None)


def registration_counts() -> dict[str, int]:
    """Count the tenant's chargers per registration state (every state, zeros included)."""
    stmt = (
        scoped(Charger)
        .with_only_columns(Charger.registration, func.count())
        .group_by(Charger.registration)
    )
    counts = dict.fromkeys(REGISTRATIONS, 0)
    counts.update({row[0]: row[1] for row in db.session.execute(stmt)})
    return counts


def snapshot(charger: Charger) -> dict[str, Any]:
    """Return the audited fields of a charger as JSON-friendly values (never the key)."""
    values = {name: getattr(charger, name) for name in AUDITED}
    for name in ("install_date", "warranty_end"):
        if values[name] is not None:
            values[name] = values[name].isoformat()
    values["key"] = "set" if charger.key_hash else None
    return values


def _clean(data: ChargerData) -> dict[str, Any]:
    """Check a charger's fields; return them trimmed, blanks as None."""
    values = {
        key: (value.strip() if isinstance(value, str) else value)
        for key, value in asdict(data).items()
    }
    problem = ocpp_id_problem(values["ocpp_id"])
    if problem:
        raise ChargerError(problem, "ocpp_id")
    for key in ("manufacturer", "model", "serial", "asset_tag", "firmware"):
        if len(values[key]) > TEXT_MAX:
            raise ChargerError(f"At most {TEXT_MAX} characters.", key)
        values[key] = values[key] or None
    if values["registration"] not in REGISTRATIONS:
        raise ChargerError("Not a registration state.", "registration")
    install, warranty = values["install_date"], values["warranty_end"]
    if install and warranty and warranty < install:
        raise ChargerError("The warranty cannot end before the install date.", "warranty_end")
    return values


def _ocpp_id_taken(ocpp_id: str, exclude_id: int) -> bool:
    """Return whether another charger of the tenant has this OCPP id."""
    stmt = scoped(Charger, Charger.ocpp_id == ocpp_id, Charger.id != exclude_id)
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) > 0


def _flush_or_clash(ocpp_id: str) -> None:
    """Flush; a clash on the OCPP id (another tenant's, or a concurrent save) is a ChargerError."""
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        if constraint == OCPP_ID_CONSTRAINT:
            raise ChargerError(f"OCPP id {ocpp_id} is already in use.", "ocpp_id") from exc
        raise


def create_charger(
    actor_id: int | None, data: ChargerData, key: str, connectors: int = 0
) -> Charger:
    """Register a charger with its key (hashed) and `connectors` connectors; audit; commit."""
    values = _clean(data)
    problem = key_problem(key)
    if problem:
        raise ChargerError(problem, "key")
    if not 0 <= connectors <= MAX_CONNECTORS:
        raise ChargerError(f"From 0 to {MAX_CONNECTORS} connectors.", "connectors")
    if _ocpp_id_taken(values["ocpp_id"], 0):
        raise ChargerError(f"OCPP id {values['ocpp_id']} is already in use.", "ocpp_id")
    tenant_id = current_tenant_id()
    charger = Charger(tenant_id=tenant_id, key_hash=hash_key(key), **values)
    db.session.add(charger)
    _flush_or_clash(values["ocpp_id"])
    db.session.add_all(
        Connector(tenant_id=tenant_id, charger_id=charger.id, connector_no=n)
        for n in range(1, connectors + 1)
    )
    after = snapshot(charger) | {"connectors": connectors}
    audit(actor_id, "charger", charger.id, "create", None, after)
    db.session.commit()
    return charger


def update_charger(
    charger: Charger, actor_id: int | None, data: ChargerData, key: str | None = None
) -> Charger:
    """Change a charger's fields and, when `key` is given, replace its key; audit; commit."""
    values = _clean(data)
    if key:
        problem = key_problem(key)
        if problem:
            raise ChargerError(problem, "key")
    if _ocpp_id_taken(values["ocpp_id"], charger.id):
        raise ChargerError(f"OCPP id {values['ocpp_id']} is already in use.", "ocpp_id")
    before = snapshot(charger)
    for name, value in values.items():
        setattr(charger, name, value)
    if key:
        charger.key_hash = hash_key(key)
    _flush_or_clash(values["ocpp_id"])
    after = snapshot(charger)
    if key:
        after["key"] = "replaced"
    if after != before:
        audit(actor_id, "charger", charger.id, "update", before, after)
    db.session.commit()
    return charger


def set_registration(charger: Charger, actor_id: int | None, registration: str) -> Charger:
    """Accept, hold as pending or reject a charger (the bridge answers its next boot so)."""
    if registration not in REGISTRATIONS:
        raise ChargerError("Not a registration state.", "registration")
    before = charger.registration
    if before != registration:
        charger.registration = registration
        audit(
            actor_id,
            "charger",
            charger.id,
            "registration",
            {"registration": before},
            {"registration": registration},
        )
    db.session.commit()
    return charger


def export_rows(batch: int = 1000) -> Iterator[list[str]]:
    """Yield the CSV rows (header first) of every charger, read by a server-side cursor."""
    yield list(EXPORT_HEADER)
    zone = tenant_zone()
    stmt = (
        scoped(Charger)
        .join(Site, Site.id == Charger.site_id)
        .with_only_columns(
            Charger.ocpp_id,
            Site.name,
            Charger.manufacturer,
            Charger.model,
            Charger.serial,
            Charger.asset_tag,
            Charger.install_date,
            Charger.warranty_end,
        )
        .order_by(Charger.ocpp_id)
        .execution_options(yield_per=batch)
    )
    for row in db.session.execute(stmt):
        yield [csv_cell(value, zone) for value in row]
