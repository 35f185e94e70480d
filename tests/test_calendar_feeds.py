"""Calendar feeds (issue 8, point 4): a per-user secret iCalendar URL of their visits, revocable,
read back with a real iCalendar parser; whose visits it holds; the token kept only as a hash."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from icalendar import Calendar
from sqlalchemy import select, text

from cass.extensions import db
from cass.models import Charger, Site, Ticket, User, Vendor, Visit
from cass.models.calendar_feeds import CalendarFeed
from cass.services import calendar_feeds, tickets, visits
from cass.services.tickets import NewTicket
from cass.tenancy import system_context, tenant_context
from tests.conftest import as_user, page_token

URL_RE = re.compile(r'id="calendar-feed-url" value="([^"]+)"')
# Whole minutes from now, so that times compare exactly after the round trip through the feed.
NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def ticket_at_a_site(title: str = "Cable cut") -> Ticket:
    """A new ticket on DEMO-CP-0003 at its site."""
    charger = db.session.scalar(select(Charger).where(Charger.ocpp_id == "DEMO-CP-0003"))
    site = db.session.get(Site, charger.site_id)
    return tickets.create(
        user("agent@demo.test"),
        NewTicket(
            title=title,
            category="damage",
            priority="P2",
            channel="phone",
            charger=charger,
            site=site,
        ),
    )


def book(ticket: Ticket, start: datetime, **kw) -> Visit:
    return visits.book(
        ticket,
        user("manager@demo.test"),
        starts_at=start,
        ends_at=start + timedelta(hours=2),
        override=True,
        **kw,
    )


def parse(body: bytes) -> tuple[Calendar, dict[str, object]]:
    """Parse a feed; return the calendar and its events by UID."""
    cal = Calendar.from_ical(body)
    return cal, {str(e["UID"]): e for e in cal.walk("VEVENT")}


@pytest.fixture
def booked(app, demo):
    """Visits of the demo tenant: the engineer's (one cancelled, one far ahead, one long ago),
    the vendor's alone, and one of the manager as the engineer; their ids by name."""
    with app.app_context(), tenant_context(demo["demo"]):
        engineer = user("engineer@demo.test")
        vendor = db.session.scalar(select(Vendor).where(Vendor.name == "Demo Field Services"))
        ticket = ticket_at_a_site()
        ids = {
            "soon": book(ticket, NOW + timedelta(days=1), engineer_id=engineer.id, notes="Ladder"),
            "cancelled": book(ticket, NOW + timedelta(days=2), engineer_id=engineer.id),
            "past": book(ticket, NOW - timedelta(days=3), engineer_id=engineer.id),
            "too_far": book(ticket, NOW + timedelta(days=200), engineer_id=engineer.id),
            "too_old": book(ticket, NOW - timedelta(days=40), engineer_id=engineer.id),
            "vendor": book(ticket, NOW + timedelta(days=1), vendor_id=vendor.id),
            "both": book(
                ticket, NOW + timedelta(days=3), engineer_id=engineer.id, vendor_id=vendor.id
            ),
            "manager": book(
                ticket, NOW + timedelta(days=1), engineer_id=user("manager@demo.test").id
            ),
        }
        visits.set_status(ids["cancelled"], user("manager@demo.test"), "cancelled")
        db.session.commit()
        return {name: visit.id for name, visit in ids.items()} | {"ticket": ticket.number}


def token_of(app, tenant: int, email: str) -> str:
    with app.app_context(), tenant_context(tenant):
        return calendar_feeds.create(user(email))


def feed(app, token: str, now: datetime | None = None) -> bytes | None:
    with app.app_context():
        return calendar_feeds.feed(token, now)


def test_the_feed_is_a_valid_calendar_of_the_engineers_visits(app, demo, booked):
    token = token_of(app, demo["demo"], "engineer@demo.test")
    body = feed(app, token)
    cal, events = parse(body)
    assert (str(cal["VERSION"]), str(cal["PRODID"])) == ("2.0", calendar_feeds.PRODID)
    assert str(cal["X-WR-CALNAME"]).startswith("CASS visits")
    assert b"REFRESH-INTERVAL;VALUE=DURATION:PT1H\r\n" in body
    assert b"X-PUBLISHED-TTL:PT1H\r\n" in body
    uid = "visit-{}@cass".format
    assert set(events) == {uid(booked[k]) for k in ("soon", "cancelled", "past", "both")}
    # RFC 5545 lines: CRLF, folded at 75 octets; each event has its UID and DTSTAMP.
    assert all(len(line) <= 75 for line in body.split(b"\r\n"))
    assert b"\n" not in body.replace(b"\r\n", b"")
    soon = events[uid(booked["soon"])]
    assert soon["DTSTART"].dt == NOW + timedelta(days=1)
    assert soon["DTEND"].dt == NOW + timedelta(days=1, hours=2)
    assert soon["DTSTART"].dt.utcoffset() == timedelta(0)
    assert b"DTSTART:" + (NOW + timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ").encode() in body
    assert soon["DTSTAMP"].dt.tzinfo is not None and soon["LAST-MODIFIED"].dt.tzinfo is not None
    key = f"DEMO-{booked['ticket']}"
    assert str(soon["SUMMARY"]) == f"{key} Cable cut"
    assert str(soon["STATUS"]) == "CONFIRMED"
    with app.app_context(), system_context():
        charger = db.session.scalar(select(Charger).where(Charger.ocpp_id == "DEMO-CP-0003"))
        site = db.session.get(Site, charger.site_id)
        assert str(soon["LOCATION"]).startswith(site.name)
        if site.address:
            assert site.address in str(soon["LOCATION"])
    description = str(soon["DESCRIPTION"])
    assert "Ladder" in description and "DEMO-CP-0003" in description
    assert str(soon["URL"]) == f"{app.config['CASS_BASE_URL']}/tickets/{key}"
    cancelled = events[uid(booked["cancelled"])]
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert str(cancelled["SUMMARY"]).startswith("Cancelled: ")
    # The same visits give the same bytes: nothing changes for a calendar app to fetch.
    assert feed(app, token) == body


def test_a_vendor_user_sees_their_vendors_visits_and_the_other_tenant_nothing(app, demo, booked):
    _, events = parse(feed(app, token_of(app, demo["demo"], "vendor@demo.test")))
    assert set(events) == {f"visit-{booked[k]}@cass" for k in ("vendor", "both")}
    _, events = parse(feed(app, token_of(app, demo["demo"], "manager@demo.test")))
    assert set(events) == {f"visit-{booked['manager']}@cass"}
    cal, events = parse(feed(app, token_of(app, demo["acme"], "admin@acme.test")))
    assert events == {} and str(cal["VERSION"]) == "2.0"


def test_without_a_base_url_events_have_no_link(app, demo, booked):
    app.config["CASS_BASE_URL"] = ""
    _, events = parse(feed(app, token_of(app, demo["demo"], "engineer@demo.test")))
    assert all("URL" not in event for event in events.values())


def test_revoked_replaced_and_unknown_tokens_give_nothing(app, demo, booked):
    first = token_of(app, demo["demo"], "engineer@demo.test")
    second = token_of(app, demo["demo"], "engineer@demo.test")  # replaces the first
    assert feed(app, first) is None and feed(app, second) is not None
    for token in ("", "x" * 500, "no-such-token"):
        assert feed(app, token) is None
    with app.app_context(), tenant_context(demo["demo"]):
        assert calendar_feeds.revoke(user("engineer@demo.test")) is True
        assert calendar_feeds.revoke(user("engineer@demo.test")) is False
    assert feed(app, second) is None
    client = app.test_client()
    assert client.get(f"/calendar/{second}.ics").status_code == 404
    assert client.get("/calendar/no-such-token.ics").status_code == 404


def test_a_deactivated_user_or_one_without_the_right_gets_nothing(app, demo, booked):
    token = token_of(app, demo["demo"], "engineer@demo.test")
    with app.app_context(), system_context():
        db.session.execute(
            text("UPDATE app_user SET role = 'viewer' WHERE email = 'engineer@demo.test'")
        )
        db.session.commit()
    assert feed(app, token) is None
    with app.app_context(), system_context():
        db.session.execute(
            text(
                "UPDATE app_user SET role = 'as_engineer', is_active = false "
                "WHERE email = 'engineer@demo.test'"
            )
        )
        db.session.commit()
    assert feed(app, token) is None


def test_the_token_is_stored_only_as_its_hash(app, demo, database_url):
    token = token_of(app, demo["demo"], "engineer@demo.test")
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT row_to_json(f)::text, token_hash FROM calendar_feed f"
        ).fetchall()
        audit = conn.execute(
            "SELECT string_agg(row_to_json(a)::text, '') FROM audit_log a"
        ).fetchone()
    assert len(rows) == 1
    assert token not in rows[0][0] and token not in (audit[0] or "")
    assert rows[0][1] == hashlib.sha256(token.encode()).hexdigest()
    assert len(token) >= 40  # 256 bits of randomness, URL-safe


def test_last_used_is_recorded_at_most_once_a_minute(app, demo):
    token = token_of(app, demo["demo"], "engineer@demo.test")

    def last_used() -> datetime | None:
        with app.app_context(), system_context():
            return db.session.scalar(select(CalendarFeed.last_used_at))

    assert last_used() is None
    feed(app, token, NOW)
    assert last_used() == NOW
    feed(app, token, NOW + timedelta(seconds=30))
    assert last_used() == NOW
    feed(app, token, NOW + timedelta(seconds=61))
    assert last_used() == NOW + timedelta(seconds=61)


def test_the_feed_route_headers(app, demo, booked):
    token = token_of(app, demo["demo"], "engineer@demo.test")
    response = app.test_client().get(f"/calendar/{token}.ics")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert response.headers["Cache-Control"] == "private, max-age=300"
    assert "Set-Cookie" not in response.headers
    parse(response.data)


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_the_account_page_makes_shows_once_and_revokes(app, demo, booked, htmx):
    client = as_user(app, "engineer@demo.test")
    headers = {"HX-Request": "true"} if htmx else {}
    page = client.get("/account/calendar", headers=headers)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "You have no calendar feed" in html
    assert ("<html" in html) is not htmx and 'id="calendar-feed"' in html
    assert "HX-Request" in page.headers["Vary"]
    token = page_token(client, "/account/calendar")

    made = client.post("/account/calendar", data={"csrf_token": token}, headers=headers)
    html = made.get_data(as_text=True)
    assert made.status_code == 200 and ("<html" in html) is not htmx
    assert made.headers["Cache-Control"] == "no-store"
    url = URL_RE.search(html).group(1)
    assert url.startswith("http://localhost/calendar/") and url.endswith(".ics")
    assert f'href="webcal://{url.split("://", 1)[1]}"' in html
    path = url.removeprefix("http://localhost")
    assert client.get(path).status_code == 200
    # Shown once: the page afterwards says there is a feed but not its address.
    again = client.get("/account/calendar").get_data(as_text=True)
    assert 'badge ok">active' in again and path not in again and "calendar-feed-url" not in again

    revoked = client.post("/account/calendar/revoke", data={"csrf_token": token}, headers=headers)
    if htmx:
        assert revoked.status_code == 200
        html = revoked.get_data(as_text=True)
        assert "<html" not in html and "You have no calendar feed" in html
    else:
        assert revoked.status_code == 303
        assert revoked.headers["Location"] == "/account/calendar"
        assert "is revoked" in client.get("/account/calendar").get_data(as_text=True)
    assert client.get(path).status_code == 404


def test_only_the_roles_with_visits_have_the_page(app, demo):
    assert as_user(app, "agent@demo.test").get("/account/calendar").status_code == 403
    assert as_user(app, "viewer@demo.test").get("/account/calendar").status_code == 403
    assert as_user(app, "vendor@demo.test").get("/account/calendar").status_code == 200
