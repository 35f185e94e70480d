"""Create and edit the tenant's vendors."""

from __future__ import annotations

from sqlalchemy import func, select

from cass.extensions import db
from cass.models import Vendor
from cass.tenancy import current_tenant_id, scoped


class VendorError(ValueError):
    """A rule about vendors was broken; the message is shown to the admin."""


def list_vendors(active_only: bool = False) -> list[Vendor]:
    """Return the tenant's vendors by name."""
    stmt = scoped(Vendor).order_by(Vendor.name)
    if active_only:
        stmt = stmt.where(Vendor.is_active)
    return list(db.session.scalars(stmt))


def _name_taken(name: str, exclude_id: int = 0) -> bool:
    """Return whether another vendor of the tenant has this name (case-insensitive)."""
    stmt = scoped(Vendor, func.lower(Vendor.name) == name.lower(), Vendor.id != exclude_id)
    return db.session.scalar(select(func.count()).select_from(stmt.subquery())) > 0


def save_vendor(
    vendor: Vendor | None, name: str, contact_email: str, phone: str, active: bool
) -> Vendor:
    """Create a vendor (when `vendor` is None) or update one."""
    name = name.strip()
    if _name_taken(name, vendor.id if vendor else 0):
        raise VendorError("A vendor with this name already exists.")
    if vendor is None:
        vendor = Vendor(tenant_id=current_tenant_id())
        db.session.add(vendor)
    vendor.name = name
    vendor.contact_email = contact_email.strip().lower() or None
    vendor.phone = phone.strip() or None
    vendor.is_active = active
    db.session.commit()
    return vendor
