"""Create and edit the tenant's sites (places with chargers)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from functools import cache
from typing import Any
from zoneinfo import available_timezones

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cass.extensions import db
from cass.models import Charger, Site
from cass.services.audit import audit
from cass.tenancy import current_tenant_id, scoped

NAME_MAX = 120
COORD_STEP = Decimal("0.000001")
AUDITED = (
    "name",
    "address",
    "lat",
    "lon",
    "timezone",
    "contact_name",
    "contact_phone",
    "contact_email",
)


class SiteError(ValueError):
    """A rule about sites was broken; `field` names the form field it concerns, if one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SiteData:
    """What an admin enters for a site (already validated in shape by the form)."""

    name: str
    address: str = ""
    lat: Decimal | None = None
    lon: Decimal | None = None
    timezone: str = "UTC"
    contact_name: str = ""
    contact_phone: str = ""
    contact_email: str = ""


@cache
def timezones() -> tuple[str, ...]:
    """Return the IANA time-zone names this system knows, sorted."""
    # Leave out the database's own files that are not zones an operator means.
    return tuple(sorted(available_timezones() - {"localtime", "posixrules", "Factory"}))


def is_timezone(name: str) -> bool:
    """Return whether `name` is a known IANA time zone."""
    return name in _timezone_set()


@cache
def _timezone_set() -> frozenset[str]:
    return frozenset(timezones())


def list_sites() -> list[tuple[Site, int]]:
    """Return the tenant's sites by name, each with its number of chargers."""
    counts = (
        scoped(Charger)
        .with_only_columns(Charger.site_id, func.count().label("n"))
        .group_by(Charger.site_id)
        .subquery()
    )
    stmt = (
        scoped(Site)
        .outerjoin(counts, counts.c.site_id == Site.id)
        .add_columns(func.coalesce(counts.c.n, 0))
        .order_by(func.lower(Site.name), Site.id)
    )
    return [(row[0], row[1]) for row in db.session.execute(stmt)]


def site_choices() -> list[tuple[int, str]]:
    """Return (id, name) of the tenant's sites, by name, for a select."""
    stmt = scoped(Site).with_only_columns(Site.id, Site.name).order_by(func.lower(Site.name))
    return [(row.id, row.name) for row in db.session.execute(stmt)]


def site_chargers(site: Site) -> list[Charger]:
    """Return the chargers at `site`, by OCPP id."""
    return list(
        db.session.scalars(scoped(Charger, Charger.site_id == site.id).order_by(Charger.ocpp_id))
    )


def count_chargers(site: Site) -> int:
    """Return how many chargers `site` has."""
    stmt = scoped(Charger, Charger.site_id == site.id).with_only_columns(func.count())
    return db.session.scalar(stmt) or 0


def snapshot(site: Site) -> dict[str, Any]:
    """Return the audited fields of a site as JSON-friendly values."""
    values = {name: getattr(site, name) for name in AUDITED}
    for name in ("lat", "lon"):
        if values[name] is not None:
            values[name] = str(values[name])
    return values


def _name_taken(name: str, exclude_id: int) -> bool:
    """Return whether another site of the tenant has this name (case-insensitive)."""
    stmt = scoped(Site, func.lower(Site.name) == name.lower(), Site.id != exclude_id)
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) > 0


def save_site(site: Site | None, actor_id: int | None, data: SiteData) -> Site:
    """Create a site (when `site` is None) or update one, with an audit row, and commit."""
    values = {
        key: (value.strip() if isinstance(value, str) else value)
        for key, value in asdict(data).items()
    }
    if not values["name"]:
        raise SiteError("A site needs a name.", "name")
    if _name_taken(values["name"], site.id if site else 0):
        raise SiteError("A site with this name already exists.", "name")
    if not is_timezone(values["timezone"]):
        raise SiteError("Not a known time zone (e.g. Europe/London).", "timezone")
    if (values["lat"] is None) != (values["lon"] is None):
        raise SiteError("Give both latitude and longitude, or neither.", "lat")
    for key in ("lat", "lon"):
        if values[key] is not None:  # as stored (numeric(9,6)), so an unchanged save is no change
            values[key] = Decimal(values[key]).quantize(COORD_STEP)
    values["contact_email"] = values["contact_email"].lower()
    for key in ("address", "contact_name", "contact_phone", "contact_email"):
        values[key] = values[key] or None
    before = None if site is None else snapshot(site)
    if site is None:
        site = Site(tenant_id=current_tenant_id())
        db.session.add(site)
    for key, value in values.items():
        setattr(site, key, value)
    try:
        db.session.flush()
    except IntegrityError as exc:  # a concurrent save took the name first
        db.session.rollback()
        raise SiteError("A site with this name already exists.", "name") from exc
    after = snapshot(site)
    if before != after:
        audit(actor_id, "site", site.id, "create" if before is None else "update", before, after)
    db.session.commit()
    return site
