"""Tariffs per site: what charging costs, and from when.

A site's tariffs never overlap, so a session's tariff (the one in force when it started) is
always one row; the bridge prices each session with it when the session stops
(`ocpp_bridge.records.stop_session`). Changing a tariff does not reprice stopped sessions.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import exists, func, select

from cass.extensions import db
from cass.models import ChargingSession, Site, Tariff
from cass.services.audit import audit
from cass.tenancy import current_tenant_id, scoped

# ISO 4217 currencies in circulation (funds, metals and testing codes left out).
_CURRENCY_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
    KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
    MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD
    TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
CURRENCIES = frozenset(_CURRENCY_CODES.split())
# numeric(10, 4): the largest price a column holds.
MAX_PRICE = Decimal("999999.9999")
FIELDS = ("site_id", "name", "currency", "per_kwh", "per_minute", "per_session")


class TariffError(ValueError):
    """A rule about tariffs was broken; the message is shown to the admin."""


def site_zone(site: Site) -> ZoneInfo:
    """Return the site's time zone (UTC when its name is unknown to this system)."""
    try:
        return ZoneInfo(site.timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def to_site_time(value: datetime | None, site: Site) -> datetime | None:
    """Return an aware instant as the site's wall-clock time (naive), for forms and pages."""
    return value.astimezone(site_zone(site)).replace(tzinfo=None) if value else None


def from_site_time(value: datetime | None, site: Site) -> datetime | None:
    """Return a wall-clock time at the site (naive, as a form gives it) as an aware instant."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=site_zone(site))


def list_sites() -> list[Site]:
    """Return the tenant's sites by name."""
    return list(db.session.scalars(scoped(Site).order_by(Site.name)))


def list_tariffs(site_id: int | None = None) -> list[Tariff]:
    """Return the tenant's tariffs (of one site, when given), by site and newest period first."""
    stmt = scoped(Tariff)
    if site_id is not None:
        stmt = stmt.where(Tariff.site_id == site_id)
    stmt = stmt.join(Site, Site.id == Tariff.site_id).order_by(
        Site.name, Tariff.valid_from.desc(), Tariff.id
    )
    return list(db.session.scalars(stmt))


def _snapshot(tariff: Tariff) -> dict[str, Any]:
    values = {name: getattr(tariff, name) for name in FIELDS}
    values.update(
        {
            k: str(values[k])
            for k in ("per_kwh", "per_minute", "per_session")
            if values[k] is not None
        }
    )
    values["valid_from"] = tariff.valid_from.isoformat() if tariff.valid_from else None
    values["valid_to"] = tariff.valid_to.isoformat() if tariff.valid_to else None
    return values


def _overlapping(
    site_id: int, start: datetime, end: datetime | None, exclude: int
) -> Tariff | None:
    """Return a tariff of the site whose period overlaps [start, end) (end None: open)."""
    period = func.tstzrange(start, end, "[)")
    stmt = scoped(
        Tariff,
        Tariff.site_id == site_id,
        Tariff.id != exclude,
        func.tstzrange(Tariff.valid_from, Tariff.valid_to, "[)").op("&&")(period),
    ).order_by(Tariff.valid_from)
    return db.session.scalars(stmt.limit(1)).first()


def check_prices(**prices: Decimal | None) -> None:
    """Refuse a negative, too large or too precise price."""
    for name, value in prices.items():
        label = name.replace("_", " ")
        if value is None or not value.is_finite():
            raise TariffError(f"The price {label} is required.")
        if value < 0:
            raise TariffError(f"The price {label} cannot be negative.")
        if value > MAX_PRICE:
            raise TariffError(f"The price {label} is too large (at most {MAX_PRICE}).")
        if value != value.quantize(Decimal("0.0001")):
            raise TariffError(f"The price {label} has more than 4 decimal places.")


def save_tariff(
    tariff: Tariff | None,
    actor_id: int,
    site: Site,
    name: str,
    currency: str,
    per_kwh: Decimal,
    per_minute: Decimal,
    per_session: Decimal,
    valid_from: datetime,
    valid_to: datetime | None,
) -> Tariff:
    """Create a tariff (when `tariff` is None) or change one; refuse overlapping periods.

    Naive times are wall-clock times at the site. The site's row is locked first, so two
    admins saving tariffs of one site at once cannot both pass the overlap check.
    """
    currency = currency.strip().upper()
    if currency not in CURRENCIES:
        raise TariffError(f"“{currency[:10]}” is not an ISO 4217 currency code.")
    check_prices(per_kwh=per_kwh, per_minute=per_minute, per_session=per_session)
    start = from_site_time(valid_from, site)
    end = from_site_time(valid_to, site)
    assert start is not None
    if end is not None and end <= start:
        raise TariffError("“Valid to” must be after “Valid from”.")
    db.session.execute(scoped(Site, Site.id == site.id).with_for_update())
    clash = _overlapping(site.id, start, end, tariff.id if tariff else 0)
    if clash is not None:
        until = to_site_time(clash.valid_to, site)
        raise TariffError(
            f"The period overlaps tariff “{clash.name}” of this site "
            f"({to_site_time(clash.valid_from, site):%Y-%m-%d %H:%M} to "
            f"{f'{until:%Y-%m-%d %H:%M}' if until else 'open end'})."
        )
    before = _snapshot(tariff) if tariff else None
    if tariff is None:
        tariff = Tariff(tenant_id=current_tenant_id())
        db.session.add(tariff)
    tariff.site_id = site.id
    tariff.name = name.strip()
    tariff.currency = currency
    tariff.per_kwh, tariff.per_minute, tariff.per_session = per_kwh, per_minute, per_session
    tariff.valid_from, tariff.valid_to = start, end
    db.session.flush()
    audit(
        actor_id, "tariff", tariff.id, "update" if before else "create", before, _snapshot(tariff)
    )
    db.session.commit()
    return tariff


def delete_tariff(tariff: Tariff, actor_id: int) -> None:
    """Delete a tariff that priced no session (one that did is ended with "Valid to" instead)."""
    used = db.session.scalar(
        select(
            exists().where(
                ChargingSession.tenant_id == current_tenant_id(),
                ChargingSession.tariff_id == tariff.id,
            )
        )
    )
    if used:
        raise TariffError(
            "Sessions were priced with this tariff, so it is kept; set its “Valid to” to end it."
        )
    audit(actor_id, "tariff", tariff.id, "delete", _snapshot(tariff), None)
    db.session.delete(tariff)
    db.session.commit()
