"""The access matrix of the JSON API: every route, every role, the other tenant, no token,
read from the app itself, so a new endpoint is in it the moment it exists (issue 9, point 6).

A call's rights are its token's user's: the same permission table as the web (cass.permissions).
Each cell is checked against that table: no token 401, a role without the action 403, the other
tenant 404 on a row of this one, everyone else gets through (the call's own answer, never 401,
403 or a server error). Bodies are valid, so what is tested is the permission, not the input.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.lifecycle import BY_NAME
from cass.permissions import PERMISSIONS
from tests.api_support import bearer, make_token
from tests.test_sessions_page import add_session

ACTORS = {
    "admin": "admin@demo.test",
    "as_manager": "manager@demo.test",
    "call_center": "agent@demo.test",
    "as_engineer": "engineer@demo.test",
    "vendor": "vendor@demo.test",
    "viewer": "viewer@demo.test",
    "other_tenant_admin": "admin@acme.test",
}
PARAM = re.compile(r"<(?:\w+:)?(\w+)>")
# A Monday in working hours, far enough ahead to be free.
MONDAY = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
SOON = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=2)

# Path parameters that name no row of a tenant (each tenant has its own report of a slug).
NOT_ROWS = {"slug"}
# A valid body for every route that takes one; "{version}" is the ticket's version then.
BODIES: dict[tuple[str, str], dict[str, object]] = {
    ("POST", "/api/v1/tickets"): {"title": "Matrix", "category": "hardware"},
    ("PATCH", "/api/v1/tickets/<ref>"): {"version": "{version}", "title": "Matrix edit"},
    ("POST", "/api/v1/tickets/<ref>/assign"): {"version": "{version}", "user": "{engineer}"},
    ("POST", "/api/v1/tickets/<ref>/transitions"): {
        "name": "cancel",
        "version": "{version}",
        "cancel_reason": "Matrix",
    },
    ("POST", "/api/v1/tickets/<ref>/worklogs"): {"body": "Matrix note", "minutes": 5},
    ("POST", "/api/v1/tickets/<ref>/visits"): {
        "engineer": "{engineer}",
        "starts_at": MONDAY.isoformat(),
        "ends_at": (MONDAY + timedelta(hours=1)).isoformat(),
    },
    ("POST", "/api/v1/visits/<int:visit_id>/status"): {"status": "confirmed"},
}


def api_routes(app) -> list[tuple[str, str, str]]:
    """Return (method, rule, action) of every API call that needs a token."""
    bearer_blueprints = set(app.extensions["flask-smorest"]["blp_name_to_api"])
    routes = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] not in bearer_blueprints:
            continue
        action = getattr(app.view_functions[rule.endpoint], "required_action", None)
        assert action in PERMISSIONS, f"{rule.rule} names no permission (@allowed)"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            routes.append((method, rule.rule, action))
    return sorted(routes)


@pytest.fixture
def objects(app, demo, database_url) -> dict[str, object]:
    """The demo rows the paths name: DEMO-1, a charger, a session, a visit."""
    from cass.models import Ticket, User
    from cass.services import visits
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        manager = db.session.get(User, demo["manager@demo.test"])
        visit_id = visits.book(
            ticket,
            manager,
            # Within the visit list's default range, the next 7 days.
            starts_at=SOON,
            ends_at=SOON + timedelta(hours=1),
            engineer_id=demo["engineer@demo.test"],
            override=True,
        ).id
        db.session.commit()
    session_id = add_session(
        database_url, "DEMO-CP-0001", datetime.now(UTC) - timedelta(days=2), 40, 9000
    )
    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        return {
            "ref": "DEMO-1",
            "ocpp_id": "DEMO-CP-0001",
            "slug": "sla",
            "visit_id": visit_id,
            "session_id": session_id,
            "version": ticket.version,
            "engineer": demo["engineer@demo.test"],
        }


def _fill(rule: str, objects: dict[str, object]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        assert objects.get(name) is not None, f"the matrix has no row for <{name}> in {rule}"
        return str(objects[name])

    return PARAM.sub(one, rule)


def _body(method: str, rule: str, objects: dict[str, object]) -> dict[str, object] | None:
    if method == "GET":
        return None
    assert (method, rule) in BODIES, f"give the matrix a valid body for {method} {rule}"
    return {
        k: objects[v[1:-1]] if isinstance(v, str) and v.startswith("{") else v
        for k, v in BODIES[(method, rule)].items()
    }


def expected(actor: str, rule: str, action: str) -> set[int] | str:
    """Return the status codes a cell may answer, or "through" for any answer of the call's."""
    role = "admin" if actor == "other_tenant_admin" else actor
    if role not in PERMISSIONS[action]:
        return {403}
    if actor == "other_tenant_admin" and set(PARAM.findall(rule)) - NOT_ROWS:
        return {404}
    if rule.endswith("/transitions") and role not in BY_NAME["cancel"].roles:
        # The lifecycle's finer rule: cancelling is the desk's (E_MOVE_NOT_ALLOWED); a vendor
        # does not even see DEMO-1, which is not its vendor's.
        return {404} if role == "vendor" else {403}
    return "through"


def test_the_api_matrix(app, demo, objects):
    """Every call, every role: the permission table decides, the other tenant sees nothing."""
    client = app.test_client()
    tokens = {actor: make_token(app, email) for actor, email in ACTORS.items()}
    routes = api_routes(app)
    assert len(routes) >= 10
    wrong = []
    for method, rule, action in routes:
        url = _fill(rule, objects)
        body = _body(method, rule, objects)
        answer = client.open(url, method=method, json=body)
        if answer.status_code != 401 or answer.get_json()["error"] != "E_UNAUTHORIZED":
            wrong.append(f"no token {method} {rule}: {answer.status_code}")
        for actor in ACTORS:
            # Each actor gets the rows as the fixture left them (a cancel moves DEMO-1 on).
            fresh = _body(method, rule, {**objects, "version": _version(app, demo)})
            answer = client.open(url, method=method, json=fresh, headers=bearer(tokens[actor]))
            want = expected(actor, rule, action)
            status = answer.status_code
            if want == "through":
                if status in (401, 403) or status >= 500:
                    wrong.append(f"{actor} {method} {rule}: {status} {answer.get_data()[:200]}")
            elif status not in want:
                wrong.append(f"{actor} {method} {rule}: {status}, want {want}")
            else:
                assert set(answer.get_json()) == {"error", "message", "details"}
    assert not wrong, "\n".join(wrong)


def _version(app, demo) -> int:
    from cass.models import Ticket
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        return db.session.scalar(select(Ticket.version).where(Ticket.number == 1))


def test_a_read_token_only_reads(app, demo, objects):
    """A read-scoped token of an admin: every GET goes through, every change is a 403."""
    client = app.test_client()
    token = make_token(app, "admin@demo.test", scope="read")
    for method, rule, _action in api_routes(app):
        url = _fill(rule, objects)
        answer = client.open(
            url, method=method, json=_body(method, rule, objects), headers=bearer(token)
        )
        if method == "GET":
            assert answer.status_code == 200, (rule, answer.get_json())
        else:
            assert answer.status_code == 403, (method, rule)
            assert answer.get_json()["error"] == "E_READ_ONLY_TOKEN"


def test_the_other_tenant_reads_nothing_of_this_one(app, demo, objects):
    """Every GET of the API, as each tenant's admin: the demo tenant's answers name its rows
    (keys DEMO-…, chargers DEMO-CP-…), the acme tenant's never do. Lists, reports and each row
    the paths name (a 404 for acme) alike."""
    client = app.test_client()
    tokens = {
        slug: make_token(app, f"admin@{slug}.test", scope="read") for slug in ("demo", "acme")
    }
    lists_naming_demo = 0
    for method, rule, _action in api_routes(app):
        if method != "GET":
            continue
        url = _fill(rule, objects)
        ours = client.get(url, headers=bearer(tokens["demo"]))
        theirs = client.get(url, headers=bearer(tokens["acme"]))
        assert ours.status_code == 200, (url, ours.get_json())
        if "<" in rule and set(PARAM.findall(rule)) - NOT_ROWS:
            # A row of the demo tenant: not found (its message may echo the id asked for).
            assert theirs.status_code == 404 and theirs.get_json()["error"] == "E_NOT_FOUND", url
        else:
            assert theirs.status_code == 200, url
            assert "DEMO" not in theirs.get_data(as_text=True), url
        if "<" not in rule and "DEMO" in ours.get_data(as_text=True):
            lists_naming_demo += 1
    # The check can fail: the demo tenant's own lists do name its rows.
    assert lists_naming_demo >= 4
