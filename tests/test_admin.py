"""Admin pages: users and vendors with htmx inline edit (point 8), and every htmx route with
and without HX-Request."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.models import User, Vendor
from cass.tenancy import system_context
from tests.conftest import login, page_token

HX = {"HX-Request": "true"}


@pytest.fixture
def admin(client, demo):
    assert login(client, "admin@demo.test").status_code == 303
    return client


def user_row(app, email):
    """Return a snapshot of the user's columns, read as the owner."""
    with app.app_context(), system_context():
        user = db.session.scalar(select(User).where(User.email == email))
        return SimpleNamespace(
            role=user.role, vendor_id=user.vendor_id, is_active=user.is_active, name=user.name
        )


def count(app, model):
    with app.app_context(), system_context():
        return len(db.session.scalars(select(model)).all())


def new_user(**overrides):
    data = {
        "email": "nina@demo.test",
        "name": "Nina New",
        "role": "as_engineer",
        "password": "first-password-1",
        "vendor_id": "",
    }
    return data | overrides


# --- users ---------------------------------------------------------------------------------


def test_user_list_shows_the_tenants_users_only(admin):
    page = admin.get("/admin/users").get_data(as_text=True)
    assert "agent@demo.test" in page and "vendor@demo.test" in page
    assert "acme.test" not in page


def test_create_user_then_they_can_sign_in(app, admin):
    token = page_token(admin, "/admin/users/new")
    response = admin.post("/admin/users/new", data={"csrf_token": token, **new_user()})
    assert response.status_code == 303 and response.headers["Location"] == "/admin/users"
    assert "User nina@demo.test created." in admin.get("/admin/users").get_data(as_text=True)
    assert login(app.test_client(), "nina@demo.test", "first-password-1").status_code == 303


def test_create_vendor_user_needs_a_vendor_of_the_tenant(app, admin, demo):
    token = page_token(admin, "/admin/users/new")
    before = count(app, User)
    missing = admin.post("/admin/users/new", data={"csrf_token": token, **new_user(role="vendor")})
    assert missing.status_code == 422
    assert "A vendor user needs a vendor." in missing.get_data(as_text=True)
    ok = admin.post(
        "/admin/users/new",
        data={
            "csrf_token": token,
            **new_user(role="vendor", vendor_id=demo["vendor:Demo Field Services"]),
        },
    )
    assert ok.status_code == 303
    assert user_row(app, "nina@demo.test").vendor_id == demo["vendor:Demo Field Services"]
    assert count(app, User) == before + 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"email": "", "name": "", "password": ""}, "This field is required."),
        ({"email": "not-an-email"}, "Invalid email address."),
        ({"name": "x" * 121}, "Field cannot be longer than 120 characters."),
        ({"email": "a" * 250 + "@demo.test"}, "Field cannot be longer than 254 characters."),
        ({"password": "short"}, "Field must be between 10 and 200 characters long."),
        ({"role": "superuser"}, "Not a valid choice."),
        ({"email": "agent@demo.test"}, "A user with this email already exists."),
        ({"email": "admin@acme.test"}, "A user with this email already exists."),
    ],
)
def test_create_user_bad_input_is_422_and_creates_nothing(app, admin, overrides, message):
    token = page_token(admin, "/admin/users/new")
    before = count(app, User)
    response = admin.post("/admin/users/new", data={"csrf_token": token, **new_user(**overrides)})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert count(app, User) == before


@pytest.mark.parametrize("vendor_id", ["acme", "999999", "abc"])
def test_forged_vendor_id_is_404_and_creates_nothing(app, admin, demo, vendor_id):
    if vendor_id == "acme":
        vendor_id = str(demo["vendor:Acme Field Crew"])
    token = page_token(admin, "/admin/users/new")
    before = count(app, User)
    response = admin.post(
        "/admin/users/new",
        data={"csrf_token": token, **new_user(role="vendor", vendor_id=vendor_id)},
    )
    assert response.status_code == 404
    assert count(app, User) == before


def test_other_tenants_user_id_is_404(admin, demo):
    other = demo["admin@acme.test"]
    assert admin.get(f"/admin/users/{other}").status_code == 404
    assert admin.get(f"/admin/users/{other}/edit").status_code == 404
    token = page_token(admin, "/admin/users")
    assert (
        admin.post(f"/admin/users/{other}/deactivate", data={"csrf_token": token}).status_code
        == 404
    )


def test_inline_edit_with_htmx_returns_the_row(app, admin, demo):
    agent = demo["agent@demo.test"]
    form = admin.get(f"/admin/users/{agent}/edit", headers=HX)
    body = form.get_data(as_text=True)
    assert form.status_code == 200 and "<html" not in body and f'id="user-{agent}"' in body
    token = page_token(admin, "/admin/users")
    saved = admin.post(
        f"/admin/users/{agent}/edit",
        headers=HX,
        data={
            "csrf_token": token,
            "name": "Alex Agent-Smith",
            "role": "as_manager",
            "vendor_id": "",
        },
    )
    body = saved.get_data(as_text=True)
    assert saved.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith(f'<tr id="user-{agent}"') and "Alex Agent-Smith" in body
    assert user_row(app, "agent@demo.test").role == "as_manager"


def test_edit_without_htmx_is_a_page_and_redirects(app, admin, demo):
    agent = demo["agent@demo.test"]
    page = admin.get(f"/admin/users/{agent}/edit")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)
    token = page_token(admin, "/admin/users")
    saved = admin.post(
        f"/admin/users/{agent}/edit",
        data={"csrf_token": token, "name": "Alex Agent", "role": "viewer", "vendor_id": ""},
    )
    assert saved.status_code == 303 and saved.headers["Location"] == "/admin/users"
    assert user_row(app, "agent@demo.test").role == "viewer"


@pytest.mark.parametrize("hx", [True, False])
def test_edit_bad_input_is_422_and_changes_nothing(app, admin, demo, hx):
    agent = demo["agent@demo.test"]
    token = page_token(admin, "/admin/users")
    response = admin.post(
        f"/admin/users/{agent}/edit",
        headers=HX if hx else {},
        data={"csrf_token": token, "name": "", "role": "as_manager", "vendor_id": ""},
    )
    assert response.status_code == 422
    assert ("<html" in response.get_data(as_text=True)) is not hx
    assert user_row(app, "agent@demo.test").role == "call_center"


def test_cancel_edit_returns_the_row_or_the_user_page(admin, demo):
    agent = demo["agent@demo.test"]
    row = admin.get(f"/admin/users/{agent}", headers=HX).get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="user-{agent}"')
    page = admin.get(f"/admin/users/{agent}").get_data(as_text=True)
    assert "<html" in page and "Alex Agent" in page


@pytest.mark.parametrize("hx", [True, False])
def test_deactivate_and_reactivate(app, admin, demo, hx):
    agent = demo["agent@demo.test"]
    token = page_token(admin, "/admin/users")
    off = admin.post(
        f"/admin/users/{agent}/deactivate", data={"csrf_token": token}, headers=HX if hx else {}
    )
    assert off.status_code == (200 if hx else 303)
    if hx:
        assert "deactivated" in off.get_data(as_text=True) and "<html" not in off.get_data(
            as_text=True
        )
    assert not user_row(app, "agent@demo.test").is_active
    assert login(app.test_client(), "agent@demo.test").status_code == 422
    on = admin.post(
        f"/admin/users/{agent}/activate", data={"csrf_token": token}, headers=HX if hx else {}
    )
    assert on.status_code == (200 if hx else 303)
    assert user_row(app, "agent@demo.test").is_active
    assert login(app.test_client(), "agent@demo.test").status_code == 303


def test_no_hard_delete_route(admin, demo):
    token = page_token(admin, "/admin/users")
    agent = demo["agent@demo.test"]
    assert admin.delete(f"/admin/users/{agent}", headers={"X-CSRFToken": token}).status_code == 405


@pytest.mark.parametrize("hx", [True, False])
def test_admin_cannot_deactivate_themselves(app, admin, demo, hx):
    token = page_token(admin, "/admin/users")
    response = admin.post(
        f"/admin/users/{demo['admin@demo.test']}/deactivate",
        data={"csrf_token": token},
        headers=HX if hx else {},
    )
    if hx:
        assert response.status_code == 422
        assert "You cannot deactivate your own account." in response.get_data(as_text=True)
    else:
        assert response.status_code == 303
        assert "You cannot deactivate your own account." in admin.get("/admin/users").get_data(
            as_text=True
        )
    assert user_row(app, "admin@demo.test").is_active


def test_the_last_admin_cannot_be_demoted(app, admin, demo):
    token = page_token(admin, "/admin/users")
    response = admin.post(
        f"/admin/users/{demo['admin@demo.test']}/edit",
        headers=HX,
        data={"csrf_token": token, "name": "Ada", "role": "viewer", "vendor_id": ""},
    )
    assert response.status_code == 422
    assert "The tenant needs at least one active admin." in response.get_data(as_text=True)
    assert user_row(app, "admin@demo.test").role == "admin"


# --- vendors -------------------------------------------------------------------------------


def test_vendor_list_and_create(app, admin):
    page = admin.get("/admin/vendors").get_data(as_text=True)
    assert "Demo Field Services" in page and "Acme Field Crew" not in page
    token = page_token(admin, "/admin/vendors")
    response = admin.post(
        "/admin/vendors",
        data={
            "csrf_token": token,
            "name": "Volt Repairs",
            "contact_email": "ops@volt.test",
            "is_active": "y",
        },
    )
    assert response.status_code == 303
    assert "Volt Repairs" in admin.get("/admin/vendors").get_data(as_text=True)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "x" * 121}, "Field cannot be longer than 120 characters."),
        ({"name": "demo field services"}, "A vendor with this name already exists."),
        ({"name": "Okay", "contact_email": "nope"}, "Invalid email address."),
    ],
)
@pytest.mark.parametrize("hx", [True, False])
def test_vendor_create_bad_input_is_422(app, admin, data, message, hx):
    token = page_token(admin, "/admin/vendors")
    before = count(app, Vendor)
    response = admin.post(
        "/admin/vendors", data={"csrf_token": token, **data}, headers=HX if hx else {}
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert message in body and ("<html" in body) is not hx
    assert count(app, Vendor) == before


def test_vendor_inline_edit(app, admin, demo):
    vendor = demo["vendor:Demo Field Services"]
    form = admin.get(f"/admin/vendors/{vendor}/edit", headers=HX).get_data(as_text=True)
    assert "<html" not in form and f'id="vendor-{vendor}"' in form
    assert "<html" in admin.get(f"/admin/vendors/{vendor}/edit").get_data(as_text=True)
    token = page_token(admin, "/admin/vendors")
    row = admin.post(
        f"/admin/vendors/{vendor}/edit",
        headers=HX,
        data={"csrf_token": token, "name": "Demo Field Services Ltd"},
    )
    assert row.status_code == 200 and "Demo Field Services Ltd" in row.get_data(as_text=True)
    assert "inactive" in row.get_data(as_text=True)  # the unchecked box deactivates it
    page = admin.post(
        f"/admin/vendors/{vendor}/edit",
        data={"csrf_token": token, "name": "Demo Field Services", "is_active": "y"},
    )
    assert page.status_code == 303
    assert (
        admin.get(f"/admin/vendors/{vendor}", headers=HX)
        .get_data(as_text=True)
        .lstrip()
        .startswith(f'<tr id="vendor-{vendor}"')
    )
    assert "<html" in admin.get(f"/admin/vendors/{vendor}").get_data(as_text=True)


def test_other_tenants_vendor_is_404(admin, demo):
    other = demo["vendor:Acme Field Crew"]
    assert admin.get(f"/admin/vendors/{other}").status_code == 404
    token = page_token(admin, "/admin/vendors")
    response = admin.post(
        f"/admin/vendors/{other}/edit", data={"csrf_token": token, "name": "Mine"}
    )
    assert response.status_code == 404


def test_manager_sees_vendors_read_only(client, demo):
    login(client, "manager@demo.test")
    page = client.get("/admin/vendors").get_data(as_text=True)
    assert "Demo Field Services" in page and "New vendor" not in page and ">Edit<" not in page


# --- home ----------------------------------------------------------------------------------


def test_charger_search_fragment_and_page(client, demo):
    login(client, "agent@demo.test")
    fragment = client.get("/?q=0003", headers=HX).get_data(as_text=True)
    assert fragment.lstrip().startswith('<div id="charger-results"')
    assert "DEMO-CP-0003" in fragment and "DEMO-CP-0004" not in fragment
    page = client.get("/?q=0003").get_data(as_text=True)
    assert "<html" in page and "DEMO-CP-0003" in page and 'value="0003"' in page


@pytest.mark.parametrize(
    ("query", "expect"),
    [
        ("harbour", "DEMO-CP-0003"),
        ("Quay Street", "DEMO-CP-0003"),
        ("DE2024005", "DEMO-CP-0005"),
        ("DEMO-AT-007", "DEMO-CP-0007"),
        ("ACME", None),
        ("%", None),
        ("x" * 500, None),
    ],
)
def test_charger_search_fields_and_tenant(client, demo, query, expect):
    login(client, "agent@demo.test")
    response = client.get("/", query_string={"q": query}, headers=HX)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "ACME-CP" not in body
    if expect:
        assert expect in body
    else:
        assert "No charger matches" in body


def test_home_per_role(client, demo):
    login(client, "vendor@demo.test")
    page = client.get("/").get_data(as_text=True)
    assert "Demo Field Services" in page and "Find a charger" not in page
    nav = page.split("<nav", 1)[1].split("</nav>", 1)[0]
    assert "Users" not in nav and "Vendors" not in nav


def test_admin_navigation(admin):
    nav = admin.get("/").get_data(as_text=True).split("<nav", 1)[1].split("</nav>", 1)[0]
    assert "/admin/users" in nav and "/admin/vendors" in nav
