"""The board: columns by status, capped cards, moves offered by role, required fields asked in
place, and the board redrawn after a move."""

from __future__ import annotations

import re

from sqlalchemy import func, select

from cass.extensions import db
from cass.models import Ticket
from cass.services.board import BOARD_STATUSES, board
from cass.tenancy import system_context, tenant_context
from tests.conftest import as_user, page_token

HX = {"HX-Request": "true"}


def counts(app, tenant_id):
    with app.app_context(), system_context():
        rows = db.session.execute(
            select(Ticket.status, func.count())
            .where(Ticket.tenant_id == tenant_id)
            .group_by(Ticket.status)
        )
        return dict(rows.all())


def test_board_columns_match_the_database(app, demo):
    manager = as_user(app, "manager@demo.test")
    page = manager.get("/tickets/board").get_data(as_text=True)
    expected = counts(app, demo["demo"])
    for status in BOARD_STATUSES:
        match = re.search(rf'id="col-{status}">[^<]*<span class="muted">(\d+)</span>', page)
        assert match, status
        assert int(match.group(1)) == expected.get(status, 0)
    assert "ACME" not in page


def test_board_page_and_fragment(app, demo):
    manager = as_user(app, "manager@demo.test")
    assert "<html" in manager.get("/tickets/board").get_data(as_text=True)
    fragment = manager.get("/tickets/board", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="board"') and "<html" not in fragment


def test_cards_are_capped_per_column_with_totals(app, demo):
    from cass.models import User

    with app.app_context(), tenant_context(demo["demo"]):
        manager = db.session.get(User, demo["manager@demo.test"])
        columns = {c.status: c for c in board(manager, limit=2)}
        assert all(len(c.cards) <= 2 for c in columns.values())
        assert columns["new"].total > 2 and len(columns["new"].cards) == 2
        first, second = columns["new"].cards
        assert (first.ticket.priority, -first.ticket.updated_at.timestamp()) <= (
            second.ticket.priority,
            -second.ticket.updated_at.timestamp(),
        )


def test_vendor_board_shows_only_their_tickets(app, demo):
    vendor = as_user(app, "vendor@demo.test")
    page = vendor.get("/tickets/board").get_data(as_text=True)
    keys = set(re.findall(r'href="/tickets/(DEMO-\d+)"', page))
    with app.app_context(), system_context():
        theirs = {
            f"DEMO-{n}"
            for n in db.session.scalars(
                select(Ticket.number).where(
                    Ticket.assignee_vendor_id == demo["vendor:Demo Field Services"]
                )
            )
        }
    assert keys and keys <= theirs


def test_moves_offered_follow_the_role(app, demo):
    agent_page = as_user(app, "agent@demo.test").get("/tickets/board").get_data(as_text=True)
    assert "/transition/cancel" in agent_page and "/transition/assign" not in agent_page
    viewer_page = as_user(app, "viewer@demo.test").get("/tickets/board").get_data(as_text=True)
    assert "/transition/" not in viewer_page


def test_move_asks_required_fields_in_place_then_redraws_the_board(app, demo):
    manager = as_user(app, "manager@demo.test")
    with app.app_context(), system_context():
        ticket = db.session.scalar(
            select(Ticket)
            .where(Ticket.tenant_id == demo["demo"], Ticket.status == "new")
            .order_by(Ticket.id)
        )
        key, version, ticket_id = f"DEMO-{ticket.number}", ticket.version, ticket.id
    form = manager.get(f"/tickets/{key}/transition/assign?board=1", headers=HX)
    body = form.get_data(as_text=True)
    assert body.lstrip().startswith('<form method="post"') and 'name="board" value="1"' in body
    assert "Assign to" in body
    missing = manager.post(
        f"/tickets/{key}/transition/assign",
        headers=HX,
        data={
            "csrf_token": page_token(manager, "/tickets/board"),
            "version": version,
            "board": "1",
        },
    )
    assert missing.status_code == 422
    assert "Choose a user or a vendor" in missing.get_data(as_text=True)
    assert missing.get_data(as_text=True).lstrip().startswith('<form method="post"')
    done = manager.post(
        f"/tickets/{key}/transition/assign",
        headers=HX,
        data={
            "csrf_token": page_token(manager, "/tickets/board"),
            "version": version,
            "board": "1",
            "assignee": f"user:{demo['engineer@demo.test']}",
        },
    )
    assert done.status_code == 200
    assert done.headers["HX-Retarget"] == "#board" and done.headers["HX-Reswap"] == "outerHTML"
    assert done.get_data(as_text=True).lstrip().startswith('<div id="board"')
    with app.app_context(), system_context():
        assert db.session.get(Ticket, ticket_id).status == "assigned"
