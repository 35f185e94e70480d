"""The demo data that `cass up` seeds on an empty database (and `cass seed-demo`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from cass.extensions import db
from cass.models import Charger, Connector, Site, Tenant, User, Vendor
from cass.services.passwords import hash_password
from cass.services.tenants import create_tenant

DEMO_USERS = {
    "demo": [
        ("admin@demo.test", "Ada Admin", "admin"),
        ("manager@demo.test", "Mona Manager", "as_manager"),
        ("agent@demo.test", "Alex Agent", "call_center"),
        ("engineer@demo.test", "Erin Engineer", "as_engineer"),
        ("vendor@demo.test", "Victor Vendor", "vendor"),
        ("viewer@demo.test", "Vera Viewer", "viewer"),
    ],
    "acme": [
        ("admin@acme.test", "Acme Admin", "admin"),
        ("agent@acme.test", "Acme Agent", "call_center"),
    ],
}
DEMO_SITES = {
    "demo": [
        (
            "Harbour Car Park",
            "1 Quay Street, Harbourtown",
            "51.507400",
            "-0.127800",
            "Europe/London",
        ),
        (
            "Northgate Depot",
            "45 Northgate Road, Millbrook",
            "51.520100",
            "-0.101000",
            "Europe/London",
        ),
        (
            "Riverside Retail Park",
            "Unit 3, Riverside Way, Ashford",
            "51.149000",
            "0.872000",
            "Europe/London",
        ),
    ],
    "acme": [
        ("Acme HQ", "100 Main Street, Springfield", "39.781700", "-89.650100", "America/Chicago"),
    ],
}
MODELS = [("Alpitronic", "HYC300"), ("ABB", "Terra AC W22"), ("Kempower", "S-Series")]


def is_seeded() -> bool:
    """Return whether any tenant exists (the database is not empty)."""
    return db.session.scalar(select(Tenant.id).limit(1)) is not None


def seed_demo(password: str, charger_key: str, hashes: tuple[str, str] | None = None) -> None:
    """Create tenants demo and acme with users, vendors, sites, chargers and connectors."""
    password_hash, key_hash = hashes or (hash_password(password), hash_password(charger_key))
    tenants = {
        "demo": create_tenant("demo", "Demo Charging Co.", "DEMO"),
        "acme": create_tenant("acme", "Acme Charge", "ACME"),
    }
    vendor = Vendor(
        tenant_id=tenants["demo"].id,
        name="Demo Field Services",
        contact_email="dispatch@demofield.test",
        phone="+44 20 7946 0000",
    )
    db.session.add(vendor)
    db.session.add(Vendor(tenant_id=tenants["acme"].id, name="Acme Field Crew"))
    db.session.flush()
    for slug, people in DEMO_USERS.items():
        for email, name, role in people:
            db.session.add(
                User(
                    tenant_id=tenants[slug].id,
                    email=email,
                    name=name,
                    role=role,
                    vendor_id=vendor.id if role == "vendor" else None,
                    password_hash=password_hash,
                )
            )
    counts = {"demo": 12, "acme": 4}
    for slug, site_rows in DEMO_SITES.items():
        tenant = tenants[slug]
        sites = []
        for name, address, lat, lon, tz in site_rows:
            site = Site(
                tenant_id=tenant.id,
                name=name,
                address=address,
                lat=Decimal(lat),
                lon=Decimal(lon),
                timezone=tz,
            )
            db.session.add(site)
            sites.append(site)
        db.session.flush()
        for n in range(1, counts[slug] + 1):
            manufacturer, model = MODELS[n % len(MODELS)]
            charger = Charger(
                tenant_id=tenant.id,
                ocpp_id=f"{slug.upper()}-CP-{n:04d}",
                site_id=sites[n % len(sites)].id,
                manufacturer=manufacturer,
                model=model,
                serial=f"{slug[:2].upper()}{2024000 + n}",
                asset_tag=f"{slug.upper()}-AT-{n:03d}",
                firmware="1.4.2",
                install_date=date(2024, 1 + n % 12, 1 + n),
                warranty_end=date(2027, 1 + n % 12, 1 + n),
                key_hash=key_hash,
            )
            db.session.add(charger)
            db.session.flush()
            for connector_no in (1, 2):
                db.session.add(
                    Connector(tenant_id=tenant.id, charger_id=charger.id, connector_no=connector_no)
                )
    db.session.commit()
