"""Ticket service: keys without races, the lifecycle as data, history, optimistic locking."""

from __future__ import annotations

import itertools
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from cass import lifecycle
from cass.extensions import db
from cass.models import AuditLog, Charger, Ticket, TicketEvent, User, Vendor
from cass.services import tickets
from cass.services.tickets import NewTicket, NotAllowed, StaleTicket, TicketError
from cass.tenancy import tenant_context
from tests.conftest import make_app

ROLE_EMAILS = {
    "admin": "admin@demo.test",
    "as_manager": "manager@demo.test",
    "call_center": "agent@demo.test",
    "as_engineer": "engineer@demo.test",
    "vendor": "vendor@demo.test",
    "viewer": "viewer@demo.test",
}


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def new_ticket(actor: User | None = None, **kw) -> Ticket:
    data = {"title": "Screen dead", "category": "hardware", "priority": "P2", "channel": "phone"}
    return tickets.create(actor, NewTicket(**(data | kw)))


def test_keys_are_per_tenant_and_sequential(app, demo):
    with app.app_context():
        with tenant_context(demo["demo"]):
            last = db.session.scalar(select(func.max(Ticket.number)))
            a, b = new_ticket(), new_ticket()
            assert (a.number, b.number) == (last + 1, last + 2)
            assert tickets.format_key(tickets.tenant_prefix(), b.number) == f"DEMO-{last + 2}"
        with tenant_context(demo["acme"]):
            acme_last = db.session.scalar(select(func.max(Ticket.number)))
            assert new_ticket().number == acme_last + 1
            assert tickets.tenant_prefix() == "ACME"


def test_concurrent_creation_never_repeats_a_key(database_url, demo):
    app = make_app(database_url)
    with app.app_context(), tenant_context(demo["demo"]):
        last = db.session.scalar(select(func.max(Ticket.number)))
    numbers: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with app.app_context(), tenant_context(demo["demo"]):
                for _ in range(10):
                    numbers.append(new_ticket().number)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(numbers) == list(range(last + 1, last + 81))


def test_create_links_charger_site_and_records_history(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        agent = user("agent@demo.test")
        charger = db.session.get(Charger, demo["DEMO-CP-0003"])
        connector = charger.connectors[1]
        ticket = new_ticket(agent, charger=charger, connector=connector, caller_email="A@B.test")
        assert ticket.site_id == charger.site_id and ticket.caller_email == "a@b.test"
        events = tickets.history(ticket)
        assert [(e.kind, e.to_value, e.actor_id) for e in events] == [("created", "new", agent.id)]
        assert (
            db.session.scalar(select(AuditLog.action).where(AuditLog.entity_id == ticket.id))
            == "create"
        )


def test_connector_must_belong_to_the_charger(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        one = db.session.get(Charger, demo["DEMO-CP-0001"])
        two = db.session.get(Charger, demo["DEMO-CP-0002"])
        before = db.session.scalar(select(func.count()).select_from(Ticket))
        with pytest.raises(TicketError, match="connector does not belong"):
            new_ticket(charger=one, connector=two.connectors[0])
        assert db.session.scalar(select(func.count()).select_from(Ticket)) == before


def test_transitions_require_their_fields(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        manager, engineer = user("manager@demo.test"), user("engineer@demo.test")
        ticket = new_ticket()
        with pytest.raises(TicketError, match="Choose a user or a vendor"):
            tickets.transition(ticket, manager, "assign", ticket.version, {})
        tickets.transition(ticket, manager, "assign", ticket.version, {"user": engineer})
        tickets.transition(ticket, engineer, "start", ticket.version)
        with pytest.raises(TicketError, match="Choose why"):
            tickets.transition(ticket, engineer, "hold", ticket.version, {"hold_reason": "bored"})
        with pytest.raises(TicketError, match="A resolution note is required"):
            tickets.transition(
                ticket, engineer, "resolve", ticket.version, {"resolution_note": " "}
            )
        db.session.rollback()
        tickets.transition(
            ticket,
            engineer,
            "resolve",
            ticket.version,
            {"resolution_note": "Replaced the RFID reader"},
        )
        assert ticket.status == "resolved" and ticket.resolved_at is not None
        with pytest.raises(NotAllowed):
            tickets.transition(ticket, engineer, "close", ticket.version)
        with pytest.raises(TicketError, match="not possible while the ticket is resolved"):
            tickets.transition(ticket, manager, "start", ticket.version)
        assert ticket.status == "resolved"


def test_stale_version_is_refused_with_fresh_values(database_url, demo):
    app = make_app(database_url)
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = new_ticket()
        ticket_id, version = ticket.id, ticket.version
    with app.app_context(), tenant_context(demo["demo"]):
        mine = db.session.get(Ticket, ticket_id)
        tickets.update_fields(mine, user("agent@demo.test"), version, {"title": "First save"})
    with app.app_context(), tenant_context(demo["demo"]):
        theirs = db.session.get(Ticket, ticket_id)
        with pytest.raises(StaleTicket) as info:
            tickets.update_fields(theirs, user("manager@demo.test"), version, {"title": "Second"})
        assert info.value.ticket.title == "First save"
    with app.app_context(), tenant_context(demo["demo"]):
        assert db.session.get(Ticket, ticket_id).title == "First save"


def test_concurrent_writers_lose_no_update(database_url, demo):
    """Two sessions load the same version; the second commit fails instead of overwriting."""
    app = make_app(database_url)
    with app.app_context(), tenant_context(demo["demo"]):
        ticket_id = new_ticket().id
    ready, results = threading.Barrier(2), []

    def edit(title: str) -> None:
        with app.app_context(), tenant_context(demo["demo"]):
            ticket = db.session.get(Ticket, ticket_id)
            ready.wait(10)
            try:
                tickets.update_fields(ticket, user("agent@demo.test"), None, {"title": title})
                results.append("saved")
            except StaleTicket:
                results.append("stale")

    threads = [threading.Thread(target=edit, args=(t,)) for t in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["saved", "stale"]


def test_vendor_sees_only_their_vendors_tickets(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        manager, vendor_user = user("manager@demo.test"), user("vendor@demo.test")
        vendor = db.session.get(Vendor, vendor_user.vendor_id)
        theirs, other = new_ticket(), new_ticket()
        tickets.transition(theirs, manager, "assign", theirs.version, {"vendor": vendor})
        seen = db.session.scalars(tickets.visible(vendor_user)).all()
        assert theirs.id in {t.id for t in seen} and other.id not in {t.id for t in seen}
        assert {t.assignee_vendor_id for t in seen} == {vendor.id}
        assert tickets.by_key(vendor_user, f"DEMO-{other.number}") is None
        assert tickets.by_key(vendor_user, f"demo-{theirs.number}").id == theirs.id


# --- the lifecycle, driven at random -------------------------------------------------------

moves = st.lists(
    st.tuples(
        st.sampled_from([t.name for t in lifecycle.TRANSITIONS]),
        st.sampled_from(sorted(ROLE_EMAILS)),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sequence=moves)
def test_random_transitions_keep_state_legal_and_history_complete(app, demo, sequence):
    with app.app_context(), tenant_context(demo["demo"]):
        actors = {role: user(email) for role, email in ROLE_EMAILS.items()}
        engineer = actors["as_engineer"]
        ticket = new_ticket()
        expected = ["new"]
        for name, role in sequence:
            move = lifecycle.BY_NAME[name]
            fields = {
                "user": engineer,
                "hold_reason": "waiting_parts",
                "resolution_note": "done",
                "cancel_reason": "duplicate",
                "note": "again",
            }
            legal = lifecycle.find(name, ticket.status, role) is not None
            try:
                tickets.transition(ticket, actors[role], name, ticket.version, fields)
            except (NotAllowed, TicketError):
                db.session.rollback()
                assert not legal, f"{role} could not {name} from {expected[-1]}"
            else:
                assert legal, f"{role} made {name} from {expected[-1]}"
                expected.append(move.target)
            assert ticket.status == expected[-1] and ticket.status in lifecycle.STATUSES
        events = db.session.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket.id, TicketEvent.field == "status")
            .order_by(TicketEvent.id)
        ).all()
        assert [e.to_value for e in events] == expected
        assert [e.from_value for e in events[1:]] == expected[:-1]
        assert all(a.at <= b.at for a, b in itertools.pairwise(events))
        # One version per saved change: the insert, then each legal move.
        assert ticket.version == len(expected)
