"""Read-only views of the tenant's sites and chargers for the home page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select

from cass.extensions import db
from cass.models import Charger, Site
from cass.tenancy import current_tenant_id, scoped

SEARCH_LIMIT = 20


@dataclass(frozen=True)
class FleetSummary:
    """Counts for the overview tiles."""

    sites: int
    chargers: int
    online: int


def fleet_summary() -> FleetSummary:
    """Count the tenant's sites, chargers and online chargers in one query."""
    chargers = scoped(Charger).subquery()
    row = db.session.execute(
        select(
            select(func.count()).select_from(scoped(Site).subquery()).scalar_subquery(),
            func.count(chargers.c.id),
            func.count(chargers.c.id).filter(chargers.c.online),
        ).select_from(chargers)
    ).one()
    return FleetSummary(sites=row[0], chargers=row[1], online=row[2])


def search_condition(query: str) -> ColumnElement[bool]:
    """Return the condition on Charger for a text search: a case-insensitive part of its OCPP
    id, serial or asset tag, of its site's name or address, or its database id.

    The site is matched by a subquery, so callers need not join it. Non-empty `query` only.
    strpos(lower(...)) rather than ILIKE: the same matches without wildcards to escape, and
    half the cost on a tenant's scan (no index serves a search for a part of a word).
    """
    query = query.strip()[:100]
    needle = query.lower()

    def has(column: Any) -> ColumnElement[bool]:
        return func.strpos(func.lower(column), needle) > 0

    sites = select(Site.id).where(
        Site.tenant_id == current_tenant_id(), or_(has(Site.name), has(Site.address))
    )
    matches = [
        has(Charger.ocpp_id),
        has(Charger.serial),
        has(Charger.asset_tag),
        Charger.site_id.in_(sites),
    ]
    if query.isascii() and query.isdigit() and int(query) < 2**63:
        matches.append(Charger.id == int(query))
    return or_(*matches)


def search_chargers(query: str, limit: int = SEARCH_LIMIT) -> list[tuple[Charger, Site]]:
    """Find chargers by OCPP id, serial, asset tag, site name or address (case-insensitive)."""
    # NUL cannot be sent to Postgres in text; it is never meaningful in a search.
    query = query.replace("\x00", "")
    stmt = scoped(Charger).join(Site, Site.id == Charger.site_id).add_columns(Site)
    if query.strip():
        stmt = stmt.where(search_condition(query))
    stmt = stmt.order_by(Charger.ocpp_id).limit(limit)
    return [(row[0], row[1]) for row in db.session.execute(stmt)]


def charger_by_ocpp_id(ocpp_id: str) -> Charger | None:
    """Return the tenant's charger with this OCPP id, if any."""
    return db.session.scalars(scoped(Charger, Charger.ocpp_id == ocpp_id.strip()[:64])).first()
