"""Calendar feeds: a per-user secret iCalendar URL of their site visits, revocable.

The token is shown once and only its SHA-256 is stored. The feed request has no session: the
token is looked up across tenants by its hash (as the owning role), and the calendar is then
built inside the feed's tenant, under row-level security like any request.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app, url_for
from icalendar import Calendar, Event, vDuration
from sqlalchemy import func, or_, select, update

from cass.extensions import db
from cass.models import Charger, Site, Tenant, Ticket, User, Visit
from cass.models.calendar_feeds import CalendarFeed
from cass.models.visits import VISIT_STATUSES
from cass.permissions import can
from cass.services.audit import audit
from cass.services.passwords import token_hash
from cass.services.tickets import format_key
from cass.tenancy import current_tenant_id, system_context, tenant_context

PRODID = "-//CASS//Site visits//EN"
PAST = timedelta(days=30)
AHEAD = timedelta(days=180)
# Calendar apps poll every few minutes; the "last used" time need not be finer than this.
TOUCH_EVERY = timedelta(minutes=1)
# Asked of calendar apps that honour it (Apple, Outlook); Google polls on its own timetable.
REFRESH = timedelta(hours=1)
# token_urlsafe(32) gives 43 characters; anything much longer is not one of ours.
LONGEST_TOKEN = 100


def _now() -> datetime:
    return datetime.now(UTC)


def current(user: User) -> CalendarFeed | None:
    """Return the user's live feed, if they have one."""
    return db.session.scalar(
        select(CalendarFeed).where(
            CalendarFeed.tenant_id == current_tenant_id(),
            CalendarFeed.user_id == user.id,
            CalendarFeed.revoked_at.is_(None),
        )
    )


def create(user: User) -> str:
    """Give the user a new feed, revoking any earlier one; return its token (shown once)."""
    # Two clicks at once: the user's row lock puts one after the other (one live feed a user).
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
    _revoke_live(user)
    token = secrets.token_urlsafe(32)
    feed_row = CalendarFeed(
        tenant_id=current_tenant_id(), user_id=user.id, token_hash=token_hash(token)
    )
    db.session.add(feed_row)
    db.session.flush()
    audit(user.id, "calendar_feed", feed_row.id, "create", None, {"user_id": user.id})
    db.session.commit()
    return token


def revoke(user: User) -> bool:
    """Revoke the user's feed: its URL answers 404 from now on. Return whether one was live."""
    revoked = _revoke_live(user)
    db.session.commit()
    return revoked


def _revoke_live(user: User) -> bool:
    ids = db.session.scalars(
        update(CalendarFeed)
        .where(
            CalendarFeed.tenant_id == current_tenant_id(),
            CalendarFeed.user_id == user.id,
            CalendarFeed.revoked_at.is_(None),
        )
        .values(revoked_at=func.now())
        .returning(CalendarFeed.id)
    ).all()
    for feed_id in ids:
        audit(user.id, "calendar_feed", feed_id, "revoke", {"revoked": False}, {"revoked": True})
    return bool(ids)


def feed(token: str, now: datetime | None = None) -> bytes | None:
    """Return the iCalendar of the visits of the feed's user, or None for a token that is
    unknown or revoked (or whose user may no longer have a feed)."""
    if not token or len(token) > LONGEST_TOKEN:
        return None
    now = now or _now()
    with system_context():
        found = db.session.execute(
            select(CalendarFeed.id, CalendarFeed.tenant_id, CalendarFeed.user_id).where(
                CalendarFeed.token_hash == token_hash(token), CalendarFeed.revoked_at.is_(None)
            )
        ).first()
    if found is None:
        return None
    with tenant_context(found.tenant_id):
        user = db.session.get(User, found.user_id)
        if user is None or not user.is_active or not can(user.role, "visits.feed"):
            return None
        body = calendar(user, now)
        # At most one write a minute however often the feed is polled.
        db.session.execute(
            update(CalendarFeed)
            .where(
                CalendarFeed.id == found.id,
                or_(
                    CalendarFeed.last_used_at.is_(None),
                    CalendarFeed.last_used_at < now - TOUCH_EVERY,
                ),
            )
            .values(last_used_at=now)
        )
        db.session.commit()
    return body


def calendar(user: User, now: datetime) -> bytes:
    """Return the iCalendar of the user's visits from PAST before `now` to AHEAD after it: an
    engineer's own visits, a vendor user's their vendor's."""
    tenant = db.session.get(Tenant, user.tenant_id)
    assert tenant is not None
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", f"CASS visits · {user.name}")
    cal.add("x-wr-caldesc", f"Site visits of {user.name} at {tenant.name}")
    cal.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    cal.add("x-published-ttl", vDuration(REFRESH))
    links = _ticket_links()
    for visit, ticket, site, charger in _visits(user, now):
        cal.add_component(_event(visit, ticket, site, charger, tenant.key_prefix, links))
    return cal.to_ical()


def _visits(user: User, now: datetime) -> list[tuple[Visit, Ticket, Site | None, str | None]]:
    if user.role == "vendor":
        if user.vendor_id is None:
            return []
        whose = Visit.vendor_id == user.vendor_id
    else:
        whose = Visit.engineer_id == user.id
    rows = db.session.execute(
        select(Visit, Ticket, Site, Charger.ocpp_id)
        .join(Ticket, Ticket.id == Visit.ticket_id)
        .outerjoin(Charger, Charger.id == Ticket.charger_id)
        # A visit keeps the ticket's site; a ticket without one may still name a charger's.
        .outerjoin(Site, Site.id == func.coalesce(Visit.site_id, Charger.site_id))
        .where(
            Visit.tenant_id == user.tenant_id,
            whose,
            Visit.ends_at > now - PAST,
            Visit.starts_at < now + AHEAD,
        )
        .order_by(Visit.starts_at, Visit.id)
    ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def _ticket_links() -> dict[str, str] | None:
    """Return a maker of ticket URLs on CASS_BASE_URL, or None when it is not configured."""
    base = current_app.config.get("CASS_BASE_URL")
    if not base:
        return None
    with current_app.test_request_context(base_url=base):
        # The rest of the URL is the key's: built once, then filled per ticket.
        template = url_for("tickets.detail", key="KEY", _external=True)
    head, _, tail = template.rpartition("KEY")
    return {"head": head, "tail": tail}


def _event(
    visit: Visit,
    ticket: Ticket,
    site: Site | None,
    charger: str | None,
    prefix: str,
    links: dict[str, str] | None,
) -> Event:
    key = format_key(prefix, ticket.number)
    cancelled = visit.status == "cancelled"
    event = Event()
    event.add("uid", f"visit-{visit.id}@cass")
    # Without a METHOD of iTIP, DTSTAMP is when the visit was last changed (RFC 5545 3.8.7.2):
    # the same visit gives the same event, so a calendar app sees nothing new to fetch.
    event.add("dtstamp", visit.updated_at.astimezone(UTC))
    event.add("last-modified", visit.updated_at.astimezone(UTC))
    event.add("created", visit.created_at.astimezone(UTC))
    event.add("dtstart", visit.starts_at.astimezone(UTC))
    event.add("dtend", visit.ends_at.astimezone(UTC))
    # Google Calendar shows no STATUS in subscribed calendars: the summary says it too.
    event.add("summary", f"{'Cancelled: ' if cancelled else ''}{key} {ticket.title}")
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if site is not None:
        event.add("location", ", ".join(part for part in (site.name, site.address) if part))
    lines = [f"Ticket {key}: {ticket.title}", f"Visit: {VISIT_STATUSES[visit.status]}"]
    if charger:
        lines.append(f"Charger: {charger}")
    if site is not None and site.contact_name:
        contact = ", ".join(p for p in (site.contact_name, site.contact_phone) if p)
        lines.append(f"Site contact: {contact}")
    if visit.notes:
        lines += ["", visit.notes]
    if links is not None:
        url = f"{links['head']}{key}{links['tail']}"
        event.add("url", url)
        lines += ["", url]
    event.add("description", "\n".join(lines))
    return event
