"""The access matrix: every route, every role, and a user of the other tenant (point 7).

Each cell is the exact status code. POSTs carry a valid CSRF token and valid data, so what is
tested is the permission, not the form.
"""

from __future__ import annotations

import pytest

from cass.permissions import PERMISSIONS
from tests.conftest import DEMO_PASSWORD, csrf_from, login

ACTORS = {
    "anonymous": None,
    "admin": "admin@demo.test",
    "as_manager": "manager@demo.test",
    "call_center": "agent@demo.test",
    "as_engineer": "engineer@demo.test",
    "vendor": "vendor@demo.test",
    "viewer": "viewer@demo.test",
    "other_tenant_admin": "admin@acme.test",
}

# (method, path template, action or None for public, object route?, form data)
ROUTES = [
    ("GET", "/", "home.view", False, None),
    ("GET", "/login", None, False, None),
    ("POST", "/login", None, False, {"email": "agent@demo.test", "password": DEMO_PASSWORD}),
    ("POST", "/logout", "signed_in", False, {}),
    ("GET", "/account/password", "account.change_password", False, None),
    (
        "POST",
        "/account/password",
        "account.change_password",
        False,
        {"current": DEMO_PASSWORD, "new": "another-password-1", "confirm": "another-password-1"},
    ),
    ("GET", "/admin/users", "users.view", False, None),
    ("GET", "/admin/users/new", "users.manage", False, None),
    (
        "POST",
        "/admin/users/new",
        "users.manage",
        False,
        {
            "email": "new@demo.test",
            "name": "New Person",
            "role": "viewer",
            "password": "first-password-1",
            "vendor_id": "",
        },
    ),
    ("GET", "/admin/users/{agent}", "users.view", True, None),
    ("GET", "/admin/users/{agent}/edit", "users.manage", True, None),
    (
        "POST",
        "/admin/users/{agent}/edit",
        "users.manage",
        True,
        {"name": "Alex A. Agent", "role": "call_center", "vendor_id": ""},
    ),
    ("POST", "/admin/users/{agent}/deactivate", "users.manage", True, {}),
    ("POST", "/admin/users/{agent}/activate", "users.manage", True, {}),
    ("GET", "/admin/vendors", "vendors.view", False, None),
    ("POST", "/admin/vendors", "vendors.manage", False, {"name": "Brand New Vendor"}),
    ("GET", "/admin/vendors/{vendor}", "vendors.view", True, None),
    ("GET", "/admin/vendors/{vendor}/edit", "vendors.manage", True, None),
    (
        "POST",
        "/admin/vendors/{vendor}/edit",
        "vendors.manage",
        True,
        {"name": "Demo Field Services", "is_active": "y"},
    ),
]


def expected(actor: str, method: str, path: str, action: str | None, is_object: bool) -> int:
    """Return the status code the matrix demands."""
    ok = 303 if method == "POST" else 200
    if action is None:  # the sign-in page
        if actor == "anonymous":
            return ok
        return 302  # signed-in users are sent home
    if actor == "anonymous":
        return 302
    role = "admin" if actor == "other_tenant_admin" else actor
    if action != "signed_in" and role not in PERMISSIONS[action]:
        return 403
    if actor == "other_tenant_admin" and is_object:
        return 404
    return ok


CASES = [
    pytest.param(actor, *route, id=f"{actor}-{route[0]}-{route[1]}")
    for route in ROUTES
    for actor in ACTORS
]


@pytest.mark.parametrize(("actor", "method", "path", "action", "is_object", "data"), CASES)
def test_access_matrix(app, demo, actor, method, path, action, is_object, data):
    client = app.test_client()
    if ACTORS[actor]:
        assert login(client, ACTORS[actor]).status_code == 303
    token = csrf_from(
        client.get("/login" if not ACTORS[actor] else "/account/password").get_data(as_text=True)
    )
    url = path.format(agent=demo["agent@demo.test"], vendor=demo["vendor:Demo Field Services"])
    if method == "GET":
        response = client.get(url)
    else:
        response = client.post(url, data={"csrf_token": token, **(data or {})})
    want = expected(actor, method, path, action, is_object)
    assert response.status_code == want, response.get_data(as_text=True)[:500]
    if want == 302 and actor == "anonymous":
        assert response.headers["Location"].startswith("/login")


def test_every_route_is_in_the_matrix(app):
    covered = {
        (m, p.replace("{agent}", "<int:user_id>").replace("{vendor}", "<int:vendor_id>"))
        for m, p, *_ in ROUTES
    }
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith("health.")
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == covered


def test_every_action_is_used_by_a_route(app):
    used = {getattr(view, "required_action", None) for view in app.view_functions.values()}
    assert set(PERMISSIONS) <= used
