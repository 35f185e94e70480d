"""Sites (issue 5, point 1): the list at /sites, a site's page, create and htmx inline edit,
validation (422 and nothing written), tenancy (404) and audit rows."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.models import AuditLog, Site
from cass.tenancy import system_context
from tests.conftest import login, page_token

HX = {"HX-Request": "true"}


@pytest.fixture
def admin(client, demo):
    assert login(client, "admin@demo.test").status_code == 303
    return client


def site_id(app, name: str) -> int:
    with app.app_context(), system_context():
        return db.session.scalar(select(Site.id).where(Site.name == name))


def sites(app) -> dict[str, dict]:
    """Every site (all tenants) by name, as the owner reads them."""
    with app.app_context(), system_context():
        return {
            s.name: {
                "address": s.address,
                "lat": s.lat,
                "lon": s.lon,
                "timezone": s.timezone,
                "contact_email": s.contact_email,
                "tenant_id": s.tenant_id,
            }
            for s in db.session.scalars(select(Site))
        }


def audit_rows(app, entity: str = "site") -> list[SimpleNamespace]:
    with app.app_context(), system_context():
        return [
            SimpleNamespace(action=r.action, entity_id=r.entity_id, before=r.before, after=r.after)
            for r in db.session.scalars(select(AuditLog).where(AuditLog.entity == entity))
        ]


def new_site(**overrides: str) -> dict[str, str]:
    data = {
        "name": "Canal Wharf",
        "address": "2 Canal Wharf, Leeds",
        "lat": "53.79",
        "lon": "-1.55",
        "timezone": "Europe/London",
        "contact_name": "Sam Site",
        "contact_phone": "+44 113 496 0000",
        "contact_email": "Sam@Wharf.test",
    }
    return data | overrides


# --- list and page -----------------------------------------------------------------------


def test_list_shows_the_tenants_sites_with_charger_counts(admin):
    page = admin.get("/sites").get_data(as_text=True)
    assert "Harbour Car Park" in page and "1 Quay Street" in page and "Acme HQ" not in page
    assert "New site" in page and 'id="timezones"' in page
    # 12 demo chargers over 3 sites: 4 each.
    assert page.count("<td>4</td>") == 3


def test_site_page_lists_its_chargers_and_the_row_for_htmx(app, admin):
    harbour = site_id(app, "Harbour Car Park")
    page = admin.get(f"/sites/{harbour}")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "<html" in body and "Europe/London" in body
    assert "DEMO-CP-0003" in body and "DEMO-CP-0001" not in body
    assert "Position 51.507400, -0.127800" in body
    row = admin.get(f"/sites/{harbour}", headers=HX).get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="site-{harbour}"') and "<html" not in row


def test_agent_reads_sites_but_cannot_change_them(app, client, demo):
    login(client, "agent@demo.test")
    page = client.get("/sites").get_data(as_text=True)
    assert "Harbour Car Park" in page and "New site" not in page and ">Edit<" not in page
    assert 'id="timezones"' not in page
    nav = page.split("<nav", 1)[1].split("</nav>", 1)[0]
    assert "/sites" in nav and "/admin/chargers" not in nav
    # The agent may not open the registry, so charger ids on a site page are plain text.
    harbour = client.get(f"/sites/{site_id(app, 'Harbour Car Park')}").get_data(as_text=True)
    assert "/admin/chargers/" not in harbour
    assert 'href="/chargers/DEMO-CP-0003"' in harbour  # the chargers area's page


def test_vendor_has_no_sites(client, demo):
    login(client, "vendor@demo.test")
    assert client.get("/sites").status_code == 403


# --- create ------------------------------------------------------------------------------


def test_create_site_with_audit(app, admin):
    form = admin.get("/sites/new").get_data(as_text=True)
    assert 'list="timezones"' in form and "Europe/Berlin" in form
    token = page_token(admin, "/sites/new")
    response = admin.post("/sites/new", data={"csrf_token": token, **new_site()})
    assert response.status_code == 303 and response.headers["Location"] == "/sites"
    assert "Site Canal Wharf created." in admin.get("/sites").get_data(as_text=True)
    saved = sites(app)["Canal Wharf"]
    assert saved["lat"] == Decimal("53.79") and saved["timezone"] == "Europe/London"
    assert saved["contact_email"] == "sam@wharf.test"
    (row,) = audit_rows(app)
    assert row.action == "create" and row.before is None
    assert row.after["name"] == "Canal Wharf" and row.after["lat"] == "53.790000"


def test_create_site_without_position(app, admin):
    token = page_token(admin, "/sites/new")
    data = new_site(lat="", lon="", contact_email="", address="")
    assert admin.post("/sites/new", data={"csrf_token": token, **data}).status_code == 303
    saved = sites(app)["Canal Wharf"]
    assert saved["lat"] is None and saved["address"] is None and saved["contact_email"] is None


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"name": ""}, "name", "This field is required."),
        ({"name": "x" * 121}, "name", "Field cannot be longer than 120 characters."),
        ({"name": "harbour car park"}, "name", "A site with this name already exists."),
        ({"address": "x" * 301}, "address", "Field cannot be longer than 300 characters."),
        ({"lat": "90.5"}, "lat", "Number must be between -90 and 90."),
        ({"lat": "-91"}, "lat", "Number must be between -90 and 90."),
        ({"lon": "180.01"}, "lon", "Number must be between -180 and 180."),
        ({"lat": "north"}, "lat", "Not a valid decimal value."),
        ({"lat": "NaN"}, "lat", "Number must be between -90 and 90."),
        ({"lon": "Infinity"}, "lon", "Number must be between -180 and 180."),
        ({"lon": ""}, "lon", "Give both latitude and longitude, or neither."),
        ({"timezone": "Mars/Olympus"}, "timezone", "Not a known time zone"),
        ({"timezone": ""}, "timezone", "This field is required."),
        ({"contact_email": "nope"}, "contact_email", "Invalid email address."),
        ({"contact_phone": "1" * 41}, "contact_phone", "Field cannot be longer than 40"),
        ({"contact_name": "x" * 121}, "contact_name", "Field cannot be longer than 120"),
    ],
)
def test_create_bad_input_is_422_and_writes_nothing(app, admin, overrides, field, message):
    token = page_token(admin, "/sites/new")
    before = sites(app)
    response = admin.post("/sites/new", data={"csrf_token": token, **new_site(**overrides)})
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" in body
    assert f'id="{field}-error"' in body and message in body
    assert sites(app) == before and audit_rows(app) == []


def test_name_of_another_tenants_site_is_free(app, admin):
    token = page_token(admin, "/sites/new")
    data = new_site(name="Acme HQ")
    assert admin.post("/sites/new", data={"csrf_token": token, **data}).status_code == 303
    owners = {s.tenant_id for s in db_sites_named(app, "Acme HQ")}
    assert len(owners) == 2


def db_sites_named(app, name):
    with app.app_context(), system_context():
        return [
            SimpleNamespace(tenant_id=s.tenant_id)
            for s in db.session.scalars(select(Site).where(Site.name == name))
        ]


# --- inline edit -------------------------------------------------------------------------


def test_inline_edit_with_htmx_returns_the_row(app, admin):
    harbour = site_id(app, "Harbour Car Park")
    form = admin.get(f"/sites/{harbour}/edit", headers=HX)
    body = form.get_data(as_text=True)
    assert form.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith(f'<tr id="site-{harbour}" class="editing"')
    assert 'value="Europe/London"' in body and 'value="51.507400"' in body
    token = page_token(admin, "/sites")
    saved = admin.post(
        f"/sites/{harbour}/edit",
        headers=HX,
        data={"csrf_token": token, **new_site(name="Harbour Car Park (Level 2)")},
    )
    body = saved.get_data(as_text=True)
    assert saved.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith(f'<tr id="site-{harbour}"') and "Level 2" in body
    assert "<td>4</td>" in body  # the row keeps its charger count
    assert sites(app)["Harbour Car Park (Level 2)"]["timezone"] == "Europe/London"
    (row,) = audit_rows(app)
    assert row.action == "update" and row.entity_id == harbour
    assert row.before["name"] == "Harbour Car Park"
    assert row.after["name"] == "Harbour Car Park (Level 2)"


def test_edit_without_htmx_is_a_page_and_redirects(app, admin):
    harbour = site_id(app, "Harbour Car Park")
    page = admin.get(f"/sites/{harbour}/edit").get_data(as_text=True)
    assert "<html" in page and 'id="timezones"' in page
    token = page_token(admin, "/sites")
    saved = admin.post(
        f"/sites/{harbour}/edit",
        data={"csrf_token": token, **new_site(name="Harbour Car Park", timezone="UTC")},
    )
    assert saved.status_code == 303 and saved.headers["Location"] == f"/sites/{harbour}"
    assert sites(app)["Harbour Car Park"]["timezone"] == "UTC"


def test_saving_unchanged_values_writes_no_audit_row(app, admin):
    northgate = site_id(app, "Northgate Depot")
    token = page_token(admin, "/sites")
    data = {
        "name": "Northgate Depot",
        "address": "45 Northgate Road, Millbrook",
        "lat": "51.5201",
        "lon": "-0.101",
        "timezone": "Europe/London",
    }
    response = admin.post(
        f"/sites/{northgate}/edit", headers=HX, data={"csrf_token": token, **data}
    )
    assert response.status_code == 200
    assert audit_rows(app) == []


@pytest.mark.parametrize("hx", [True, False])
def test_edit_bad_input_is_422_and_changes_nothing(app, admin, hx):
    harbour = site_id(app, "Harbour Car Park")
    token = page_token(admin, "/sites")
    before = sites(app)
    response = admin.post(
        f"/sites/{harbour}/edit",
        headers=HX if hx else {},
        data={"csrf_token": token, **new_site(name="Northgate Depot")},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and ("<html" in body) is not hx
    assert "A site with this name already exists." in body
    assert sites(app) == before and audit_rows(app) == []


def test_cancel_returns_the_row(app, admin):
    harbour = site_id(app, "Harbour Car Park")
    row = admin.get(f"/sites/{harbour}", headers=HX).get_data(as_text=True)
    assert "Edit</a>" in row and "<html" not in row


def test_other_tenants_site_is_404(app, admin):
    acme = site_id(app, "Acme HQ")
    before = sites(app)
    assert admin.get(f"/sites/{acme}").status_code == 404
    assert admin.get(f"/sites/{acme}", headers=HX).status_code == 404
    assert admin.get(f"/sites/{acme}/edit").status_code == 404
    token = page_token(admin, "/sites")
    response = admin.post(f"/sites/{acme}/edit", data={"csrf_token": token, **new_site()})
    assert response.status_code == 404
    assert admin.get("/sites/999999").status_code == 404
    assert sites(app) == before


def test_manager_reads_but_cannot_edit(app, client, demo):
    login(client, "manager@demo.test")
    harbour = site_id(app, "Harbour Car Park")
    assert client.get("/sites").status_code == 200
    assert client.get(f"/sites/{harbour}/edit").status_code == 403
    assert client.get("/sites/new").status_code == 403
