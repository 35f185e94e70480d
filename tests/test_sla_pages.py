"""The at-risk view, the bell and the inbox (HTTP, with and without HX-Request)."""

from __future__ import annotations

from sqlalchemy import select, text

from cass.extensions import db
from cass.models import Notification, Ticket, User, Vendor
from cass.services import notifications, tickets
from cass.services.tickets import NewTicket
from cass.tenancy import system_context, tenant_context
from tests.conftest import as_user, page_token

HX = {"HX-Request": "true"}


def make_tickets(app, demo, count: int, vendor: bool = False) -> list[int]:
    """Create P2 tickets whose resolution clocks are due in 10..10+count minutes."""
    with app.app_context(), tenant_context(demo["demo"]):
        agent = db.session.scalar(select(User).where(User.email == "agent@demo.test"))
        manager = db.session.scalar(select(User).where(User.email == "manager@demo.test"))
        supplier = db.session.scalar(select(Vendor).where(Vendor.tenant_id == demo["demo"]))
        ids = []
        for n in range(count):
            ticket = tickets.create(
                agent,
                NewTicket(title=f"Risky {n}", category="hardware", priority="P2", channel="phone"),
            )
            if vendor:
                tickets.transition(ticket, manager, "assign", None, {"vendor": supplier})
            ids.append(ticket.id)
    with app.app_context(), system_context():
        db.session.execute(
            text(
                "UPDATE sla_clock"
                " SET due_at = now() + make_interval(mins => (10 + ticket_id % 1000)::int)"
                " WHERE ticket_id = ANY(:ids) AND clock = 'resolution'"
            ),
            {"ids": ids},
        )
        db.session.commit()
    return ids


def keys(html: str) -> list[str]:
    import re

    return re.findall(r'data-key="([A-Z]+-\d+)"', html)


def test_the_at_risk_view_lists_soonest_first_with_time_left(app, demo):
    ids = make_tickets(app, demo, 3)
    client = as_user(app, "agent@demo.test")
    page = client.get("/sla/at-risk").get_data(as_text=True)
    with app.app_context(), system_context():
        numbers = dict(
            db.session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ids))).all()
        )
    expected = [f"DEMO-{numbers[i]}" for i in sorted(ids, key=lambda i: i % 1000)]
    assert [k for k in keys(page) if k in expected] == expected
    assert "min left" in page and "<html" in page
    fragment = client.get("/sla/at-risk?hours=1", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="at-risk"') and "<html" not in fragment


def test_load_more_pages_by_keyset(app, demo):
    from cass.sla import at_risk

    ids = make_tickets(app, demo, 5)
    client = as_user(app, "agent@demo.test")
    original = at_risk.PAGE
    at_risk.PAGE = 2
    try:
        first = client.get("/sla/at-risk?hours=24").get_data(as_text=True)
        seen = keys(first)
        assert len(seen) == 2 and "Load more" in first
        import re

        more = re.search(r'hx-get="(/sla/at-risk\?[^"]+after=[^"]+)"', first).group(1)
        more = more.replace("&amp;", "&")
        rows = client.get(more, headers=HX).get_data(as_text=True)
        assert "<table" not in rows and len(keys(rows)) == 2
        assert not set(keys(rows)) & set(seen)
        page = client.get(more).get_data(as_text=True)  # without htmx: a whole page
        assert "<html" in page
    finally:
        at_risk.PAGE = original
    assert len(ids) == 5


def test_vendors_see_only_their_tickets_at_risk(app, demo):
    others = make_tickets(app, demo, 2)
    theirs = make_tickets(app, demo, 1, vendor=True)
    page = as_user(app, "vendor@demo.test").get("/sla/at-risk").get_data(as_text=True)
    with app.app_context(), system_context():
        vendor_id = db.session.scalar(
            select(User.vendor_id).where(User.email == "vendor@demo.test")
        )
        shown = {
            n: v
            for n, v in db.session.execute(
                select(Ticket.number, Ticket.assignee_vendor_id).where(
                    Ticket.tenant_id == demo["demo"]
                )
            ).all()
        }
        number = {i: db.session.get(Ticket, i).number for i in others + theirs}
    seen = [int(k.split("-")[1]) for k in keys(page)]
    assert number[theirs[0]] in seen
    assert not {number[i] for i in others} & set(seen)
    assert all(shown[n] == vendor_id for n in seen)


def test_the_bell_counts_unread_and_the_inbox_marks_them_read(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        engineer = db.session.scalar(select(User).where(User.email == "engineer@demo.test"))
        for n in range(3):
            notifications.queue(engineer.id, "test", f"News {n}", dedup_key=f"n{n}")
        notifications.queue(engineer.id, "test", "News 0 again", dedup_key="n0")
        db.session.commit()
    client = as_user(app, "engineer@demo.test")
    bell = client.get("/notifications/bell", headers=HX).get_data(as_text=True)
    assert 'data-unread="3"' in bell and "<html" not in bell
    assert "<html" in client.get("/notifications/bell").get_data(as_text=True)
    inbox = client.get("/notifications").get_data(as_text=True)
    assert "News 2" in inbox and "News 0 again" not in inbox
    token = page_token(client, "/notifications")
    assert client.post("/notifications/read", data={"csrf_token": token}).status_code == 303
    assert "data-unread" not in client.get("/notifications/bell", headers=HX).get_data(as_text=True)
    # Another user's bell never counts them.
    other = as_user(app, "agent@demo.test").get("/notifications/bell", headers=HX)
    assert "data-unread" not in other.get_data(as_text=True)
    with app.app_context(), system_context():
        assert db.session.scalar(
            select(Notification.read_at).where(
                Notification.subject == "News 1", Notification.channel == "in_app"
            )
        )


def test_marking_read_answers_htmx_with_the_inbox_and_refuses_a_stale_form(app, demo):
    client = as_user(app, "engineer@demo.test")
    token = page_token(client, "/notifications")
    answer = client.post("/notifications/read", data={"csrf_token": token}, headers=HX)
    assert answer.status_code == 200
    assert client.post("/notifications/read", data={}).status_code in (400, 422)


def test_time_left_reads_naturally_and_a_breach_is_always_late():
    from datetime import timedelta

    from cass.sla.at_risk import business_left

    assert business_left(timedelta(minutes=65)) == "1 h 05 min left"
    assert business_left(timedelta(minutes=-20)) == "late by 20 min"
    assert business_left(timedelta(0), breached=True) == "late"
    assert business_left(None) == ""


def test_the_ticket_page_shows_its_clocks_with_time_left(app, demo):
    ids = make_tickets(app, demo, 1)
    with app.app_context(), system_context():
        number = db.session.get(Ticket, ids[0]).number
    client = as_user(app, "agent@demo.test")
    page = client.get(f"/tickets/DEMO-{number}").get_data(as_text=True)
    assert 'id="ticket-sla"' in page
    assert 'data-clock="first_response"' in page and 'data-clock="resolution"' in page
    assert "min left" in page
    # The live refresh (htmx) carries the same clocks, out of band with the other fields.
    live = client.get(f"/tickets/DEMO-{number}?part=live", headers=HX).get_data(as_text=True)
    assert 'id="ticket-sla"' in live and "<html" not in live


def test_the_ticket_page_links_its_charger(app, demo):
    client = as_user(app, "agent@demo.test")
    page = client.get("/tickets/DEMO-1").get_data(as_text=True)
    with app.app_context(), system_context():
        from cass.models import Charger

        ticket = db.session.scalar(
            select(Ticket).where(Ticket.tenant_id == demo["demo"], Ticket.number == 1)
        )
        ocpp_id = db.session.get(Charger, ticket.charger_id).ocpp_id
    assert f'href="/chargers/{ocpp_id}"' in page


def test_board_cards_show_their_most_urgent_clock(app, demo):
    ids = make_tickets(app, demo, 1)
    with app.app_context(), system_context():
        number = db.session.get(Ticket, ids[0]).number
        db.session.execute(
            text(
                "UPDATE sla_clock SET state = 'breached', breached_at = now()"
                " WHERE ticket_id = :t AND clock = 'on_site'"
            ),
            {"t": ids[0]},
        )
        db.session.commit()
    page = as_user(app, "manager@demo.test").get("/tickets/board").get_data(as_text=True)
    card = page.split(f'id="card-{ids[0]}"', 1)[1].split("</li>", 1)[0]
    assert f"DEMO-{number}" in card
    # Breached comes first, whatever is due sooner.
    assert 'data-clock="on_site"' in card and "sla-breached" in card and "late" in card
