"""The demo data that `cass up` seeds on an empty database (and `cass seed-demo`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select

from cass.extensions import db
from cass.models import Charger, Connector, IdTag, Site, Tenant, User, Vendor
from cass.services.passwords import hash_password
from cass.services.tenants import create_tenant
from ocpp_bridge.keys import hash_key

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
    password_hash, key_hash = hashes or (hash_password(password), hash_key(charger_key))
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
    # RFID cards the demo chargers accept (and one blocked), for Authorize and transactions.
    for slug, tenant in tenants.items():
        for n in range(1, 4):
            db.session.add(IdTag(tenant_id=tenant.id, id_tag=f"{slug.upper()}-TAG-{n:04d}"))
        db.session.add(
            IdTag(tenant_id=tenant.id, id_tag=f"{slug.upper()}-TAG-BLOCKED", status="Blocked")
        )
    db.session.commit()
    # A few dozen tickets across statuses, priorities, sites and assignees.
    seed_demo_tickets("demo", rounds=4)
    seed_demo_tickets("acme", rounds=1)


DEMO_TICKETS = [
    # (title, category, priority, channel, charger no., path of transitions)
    ("Screen is black, cannot start a session", "hardware", "P2", "phone", 3, ["assign", "start"]),
    ("RFID card not accepted", "payment", "P3", "phone", 5, []),
    ("Charger offline since this morning", "connectivity", "P1", "ocpp-auto", 7, ["assign"]),
    ("Cable holster broken", "damage", "P3", "email", 2, ["assign", "start", "hold"]),
    ("Firmware update failed halfway", "firmware", "P2", "web", 9, ["assign", "start", "resolve"]),
    (
        "Connector 2 stuck in Preparing",
        "hardware",
        "P2",
        "phone",
        4,
        ["assign", "start", "resolve", "close"],
    ),
    ("Payment terminal shows error 51", "payment", "P2", "phone", 6, ["cancel"]),
    (
        "Slow charging reported by driver",
        "other",
        "P4",
        "email",
        8,
        ["assign", "start", "resolve", "reopen"],
    ),
    ("Bollard hit by a van", "damage", "P1", "phone", 11, ["assign", "start"]),
    ("App shows charger as available but it is occupied", "connectivity", "P3", "web", 12, []),
]
TRANSITION_FIELDS = {
    "hold": {"hold_reason": "waiting_parts"},
    "resolve": {"resolution_note": "Replaced the faulty part and tested a full session."},
    "cancel": {"cancel_reason": "Duplicate of an earlier call."},
    "reopen": {"note": "Driver called again: still slow."},
}


def seed_demo_tickets(tenant_slug: str, rounds: int) -> None:
    """Create `rounds` passes over DEMO_TICKETS for a tenant, each moved along its path."""
    from cass.services import tickets
    from cass.services.worklogs import add_worklog
    from cass.tenancy import tenant_context

    tenant = db.session.scalar(select(Tenant).where(Tenant.slug == tenant_slug))
    with tenant_context(tenant.id):
        people = {u.role: u for u in db.session.scalars(select(User).order_by(User.id))}
        vendor = db.session.scalar(select(Vendor).order_by(Vendor.id))
        chargers = list(db.session.scalars(select(Charger).order_by(Charger.ocpp_id)))
        priorities = ("P1", "P2", "P3", "P4")
        for n in range(rounds):
            for i, (title, category, priority, channel, charger_no, path) in enumerate(
                DEMO_TICKETS
            ):
                charger = chargers[(charger_no + n) % len(chargers)]
                ticket = tickets.create(
                    people.get("call_center"),
                    tickets.NewTicket(
                        title=title,
                        category=category,
                        channel=channel,
                        priority=priority if n == 0 else priorities[(i + n) % 4],
                        description=f"Reported on {charger.ocpp_id}.",
                        charger=charger,
                        connector=charger.connectors[(i + n) % len(charger.connectors)],
                        caller_name="Sam Driver",
                        caller_phone="+44 7700 900123",
                    ),
                )
                manager = people.get("as_manager") or people["admin"]
                worker = people.get("as_engineer") or people["admin"]
                for name in path:
                    fields = dict(TRANSITION_FIELDS.get(name, {}))
                    actor = worker
                    if name == "assign":
                        actor = manager
                        use_vendor = vendor is not None and (i + n) % 3 == 0
                        fields["vendor" if use_vendor else "user"] = (
                            vendor if use_vendor else worker
                        )
                    elif name in ("reopen", "close", "cancel"):
                        actor = people.get("call_center") or manager
                    tickets.transition(ticket, actor, name, ticket.version, fields)
                if "start" in path:
                    add_worklog(ticket, worker, "On site: checked power, cables and logs.", 45)
