"""The admin's charger registry (issue 5, point 1): list with filters and "load more", create
with key and connectors, htmx inline edit, key replacement, registration, CSV export; bad input
is 422 with nothing written, another tenant's ids are 404, and every change has an audit row."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from cass.extensions import db
from cass.models import AuditLog, Charger, Connector, Site
from cass.tenancy import system_context
from ocpp_bridge.keys import verify_key
from tests.conftest import CHARGER_KEY, login, page_token

HX = {"HX-Request": "true"}
NEW_KEY = "a-brand-new-key-0001"


@pytest.fixture
def admin(client, demo):
    assert login(client, "admin@demo.test").status_code == 303
    return client


def chargers(app) -> dict[str, SimpleNamespace]:
    """Every charger (all tenants) by OCPP id, as the owner reads them."""
    with app.app_context(), system_context():
        return {
            c.ocpp_id: SimpleNamespace(
                id=c.id,
                tenant_id=c.tenant_id,
                site_id=c.site_id,
                manufacturer=c.manufacturer,
                model=c.model,
                serial=c.serial,
                asset_tag=c.asset_tag,
                firmware=c.firmware,
                install_date=c.install_date,
                warranty_end=c.warranty_end,
                vendor_id=c.vendor_id,
                registration=c.registration,
                key_hash=c.key_hash,
            )
            for c in db.session.scalars(select(Charger))
        }


def connectors_of(app, charger_id: int) -> list[int]:
    with app.app_context(), system_context():
        return list(
            db.session.scalars(
                select(Connector.connector_no)
                .where(Connector.charger_id == charger_id)
                .order_by(Connector.connector_no)
            )
        )


def audit_rows(app) -> list[SimpleNamespace]:
    with app.app_context(), system_context():
        return [
            SimpleNamespace(
                action=r.action,
                entity_id=r.entity_id,
                actor_id=r.actor_id,
                before=r.before,
                after=r.after,
            )
            for r in db.session.scalars(
                select(AuditLog).where(AuditLog.entity == "charger").order_by(AuditLog.id)
            )
        ]


def site_id(app, name: str) -> int:
    with app.app_context(), system_context():
        return db.session.scalar(select(Site.id).where(Site.name == name))


def make_pending(app, ocpp_id: str) -> None:
    with app.app_context(), system_context():
        db.session.execute(
            update(Charger).where(Charger.ocpp_id == ocpp_id).values(registration="pending")
        )
        db.session.commit()


def new_charger(app, **overrides: str) -> dict[str, str]:
    data = {
        "ocpp_id": "DEMO-CP-0100",
        "site_id": str(site_id(app, "Northgate Depot")),
        "manufacturer": "Alpitronic",
        "model": "HYC150",
        "serial": "AP-150-0001",
        "asset_tag": "DEMO-AT-100",
        "firmware": "2.0.0",
        "install_date": "2025-03-01",
        "warranty_end": "2028-02-28",
        "vendor_id": "",
        "registration": "accepted",
        "key": NEW_KEY,
        "connectors": "2",
    }
    return data | overrides


def edit_data(app, charger: str = "DEMO-CP-0003", **overrides: str) -> dict[str, str]:
    data = new_charger(app, ocpp_id=charger, key="") | overrides
    data.pop("connectors")
    return data


# --- list ----------------------------------------------------------------------------------


def test_list_shows_the_tenants_chargers(admin):
    page = admin.get("/admin/chargers").get_data(as_text=True)
    assert "DEMO-CP-0001" in page and "DEMO-CP-0012" in page and "ACME-CP" not in page
    assert "New charger" in page and "Import CSV" in page and "Export CSV" in page
    assert "accepted (12)" in page and "pending (0)" in page
    assert "CHARGER_KEY" not in page and "pbkdf2" not in page
    nav = page.split("<nav", 1)[1].split("</nav>", 1)[0]
    assert "/admin/chargers" in nav and "/sites" in nav


def test_filters_answer_the_table_for_htmx(app, admin):
    make_pending(app, "DEMO-CP-0007")
    table = admin.get("/admin/chargers?registration=pending", headers=HX)
    body = table.get_data(as_text=True)
    assert table.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<div id="charger-table"')
    assert "DEMO-CP-0007" in body and "DEMO-CP-0001" not in body
    assert ">Accept</button>" in body and ">Reject</button>" in body
    page = admin.get("/admin/chargers?registration=pending").get_data(as_text=True)
    assert "<html" in page and "1 charger registered themselves" in page
    assert "pending (1)" in page


@pytest.mark.parametrize(
    ("query", "present", "absent"),
    [
        ({"q": "0003"}, "DEMO-CP-0003", "DEMO-CP-0004"),
        ({"q": "DE2024005"}, "DEMO-CP-0005", "DEMO-CP-0006"),
        ({"q": "demo-at-007"}, "DEMO-CP-0007", "DEMO-CP-0008"),
        ({"q": "harbour"}, "DEMO-CP-0003", "DEMO-CP-0001"),
        ({"q": "%"}, None, "DEMO-CP-0001"),
        ({"registration": "bogus"}, "DEMO-CP-0001", None),
        ({"site": "abc"}, "DEMO-CP-0001", None),
    ],
)
def test_filter_fields(app, admin, query, present, absent):
    body = admin.get("/admin/chargers", query_string=query, headers=HX).get_data(as_text=True)
    if present:
        assert present in body
    if absent:
        assert absent not in body
    assert "ACME-CP" not in body


def test_site_filter_and_another_tenants_site_finds_nothing(app, admin):
    body = admin.get(
        "/admin/chargers", query_string={"site": site_id(app, "Harbour Car Park")}, headers=HX
    ).get_data(as_text=True)
    assert "DEMO-CP-0003" in body and "DEMO-CP-0001" not in body
    body = admin.get(
        "/admin/chargers", query_string={"site": site_id(app, "Acme HQ")}, headers=HX
    ).get_data(as_text=True)
    assert "No charger matches." in body and "ACME-CP" not in body


def test_load_more_pages_by_ocpp_id(app, admin):
    with app.app_context(), system_context():
        tenant, site = db.session.execute(
            select(Site.tenant_id, Site.id).where(Site.name == "Northgate Depot")
        ).one()
        db.session.add_all(
            Charger(tenant_id=tenant, ocpp_id=f"DEMO-XP-{n:04d}", site_id=site) for n in range(60)
        )
        db.session.commit()
    first = admin.get("/admin/chargers").get_data(as_text=True)
    assert first.count('<tr id="charger-') == 50 and "Load more" in first
    more = admin.get("/admin/chargers?after=DEMO-XP-0037", headers=HX)
    body = more.get_data(as_text=True)
    assert more.status_code == 200 and body.lstrip().startswith('<tr id="charger-')
    assert body.count('<tr id="charger-') == 22 and "DEMO-XP-0038" in body
    assert "Load more" not in body and "DEMO-XP-0037" not in body


def test_manager_reads_the_registry_but_changes_nothing(app, client, demo):
    login(client, "manager@demo.test")
    page = client.get("/admin/chargers").get_data(as_text=True)
    assert "DEMO-CP-0001" in page and "Export CSV" in page
    assert "New charger" not in page and "Import CSV" not in page and ">Edit<" not in page
    charger = demo["DEMO-CP-0001"]
    assert client.get(f"/admin/chargers/{charger}").status_code == 200
    assert client.get(f"/admin/chargers/{charger}/edit").status_code == 403
    assert client.get("/admin/chargers.csv").status_code == 200


def test_agent_has_no_registry(client, demo):
    login(client, "agent@demo.test")
    assert client.get("/admin/chargers").status_code == 403
    assert client.get("/admin/chargers.csv").status_code == 403


# --- create --------------------------------------------------------------------------------


def test_create_charger_with_key_and_connectors(app, admin, demo):
    form = admin.get("/admin/chargers/new").get_data(as_text=True)
    assert "Northgate Depot" in form and "Demo Field Services" in form and "Acme HQ" not in form
    token = page_token(admin, "/admin/chargers/new")
    data = new_charger(app, vendor_id=str(demo["vendor:Demo Field Services"]), connectors="3")
    response = admin.post("/admin/chargers/new", data={"csrf_token": token, **data})
    assert response.status_code == 303
    saved = chargers(app)["DEMO-CP-0100"]
    assert response.headers["Location"] == f"/admin/chargers/{saved.id}"
    assert saved.tenant_id == demo["demo"] and saved.model == "HYC150"
    assert saved.vendor_id == demo["vendor:Demo Field Services"]
    assert str(saved.install_date) == "2025-03-01" and saved.registration == "accepted"
    assert verify_key(saved.key_hash, NEW_KEY) and NEW_KEY not in saved.key_hash
    assert connectors_of(app, saved.id) == [1, 2, 3]
    (row,) = audit_rows(app)
    assert row.action == "create" and row.entity_id == saved.id
    assert row.actor_id == demo["admin@demo.test"]
    assert row.after["key"] == "set" and row.after["connectors"] == 3
    assert saved.key_hash not in str(row.after) and NEW_KEY not in str(row.after)
    page = admin.get(response.headers["Location"]).get_data(as_text=True)
    assert "Charger DEMO-CP-0100 registered." in page and "Demo Field Services" in page
    assert NEW_KEY not in page and saved.key_hash not in page


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"ocpp_id": ""}, "ocpp_id", "This field is required."),
        ({"ocpp_id": "DEMO CP 1"}, "ocpp_id", "Use 1-64 letters, digits"),
        ({"ocpp_id": "DEMO/CP"}, "ocpp_id", "Use 1-64 letters, digits"),
        ({"ocpp_id": "X" * 65}, "ocpp_id", "Use 1-64 letters, digits"),
        ({"ocpp_id": "DEMO-CP-0001"}, "ocpp_id", "OCPP id DEMO-CP-0001 is already in use."),
        ({"ocpp_id": "ACME-CP-0001"}, "ocpp_id", "OCPP id ACME-CP-0001 is already in use."),
        ({"site_id": ""}, "site_id", "Choose a site."),
        ({"manufacturer": "x" * 81}, "manufacturer", "Field cannot be longer than 80"),
        ({"model": "x" * 81}, "model", "Field cannot be longer than 80"),
        ({"serial": "x" * 81}, "serial", "Field cannot be longer than 80"),
        ({"asset_tag": "x" * 81}, "asset_tag", "Field cannot be longer than 80"),
        ({"firmware": "x" * 81}, "firmware", "Field cannot be longer than 80"),
        ({"install_date": "2025-13-01"}, "install_date", "Not a valid date value."),
        ({"warranty_end": "01/02/2028"}, "warranty_end", "Not a valid date value."),
        ({"warranty_end": "2025-02-28"}, "warranty_end", "cannot end before the install"),
        ({"registration": "maybe"}, "registration", "Not a valid choice."),
        ({"key": ""}, "key", "This field is required."),
        ({"key": "short-key-15chrs"[:15]}, "key", "between 16 and 128 characters"),
        ({"key": "k" * 129}, "key", "between 16 and 128 characters"),
        ({"connectors": "11"}, "connectors", "Number must be between 0 and 10."),
        ({"connectors": "-1"}, "connectors", "Number must be between 0 and 10."),
        ({"connectors": "two"}, "connectors", "Not a valid integer value."),
    ],
)
def test_create_bad_input_is_422_and_writes_nothing(app, admin, overrides, field, message):
    token = page_token(admin, "/admin/chargers/new")
    before = chargers(app)
    response = admin.post(
        "/admin/chargers/new", data={"csrf_token": token, **new_charger(app, **overrides)}
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and "<html" in body
    assert f'id="{field}-error"' in body and message in body
    assert NEW_KEY not in body  # a refused form never echoes the key
    assert chargers(app) == before and audit_rows(app) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("site_id", "acme"), ("vendor_id", "acme"), ("site_id", "999999"), ("vendor_id", "x")],
)
def test_create_with_another_tenants_site_or_vendor_is_404(app, admin, demo, field, value):
    if value == "acme":
        value = str(
            site_id(app, "Acme HQ") if field == "site_id" else demo["vendor:Acme Field Crew"]
        )
    token = page_token(admin, "/admin/chargers/new")
    before = chargers(app)
    response = admin.post(
        "/admin/chargers/new", data={"csrf_token": token, **new_charger(app, **{field: value})}
    )
    assert response.status_code == 404
    assert chargers(app) == before


# --- page, inline edit, key ----------------------------------------------------------------


def test_charger_page_and_row(app, admin, demo):
    charger = demo["DEMO-CP-0003"]
    page = admin.get(f"/admin/chargers/{charger}").get_data(as_text=True)
    assert "<html" in page and "DEMO-CP-0003" in page and "Harbour Car Park" in page
    assert "<dt>Key</dt><dd>set</dd>" in page and "<dt>Connectors</dt><dd>2</dd>" in page
    assert '<a href="/chargers/DEMO-CP-0003">Live status and operations</a>' in page
    row = admin.get(f"/admin/chargers/{charger}", headers=HX).get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="charger-{charger}"') and "<html" not in row


def test_inline_edit_with_htmx_returns_the_row(app, admin, demo):
    charger = demo["DEMO-CP-0003"]
    form = admin.get(f"/admin/chargers/{charger}/edit", headers=HX)
    body = form.get_data(as_text=True)
    assert form.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith(f'<tr id="charger-{charger}" class="editing"')
    assert 'value="DEMO-CP-0003"' in body and "pbkdf2" not in body
    token = page_token(admin, "/admin/chargers")
    vendor = demo["vendor:Demo Field Services"]
    saved = admin.post(
        f"/admin/chargers/{charger}/edit",
        headers=HX,
        data={"csrf_token": token, **edit_data(app, vendor_id=str(vendor), model="HYC150")},
    )
    body = saved.get_data(as_text=True)
    assert saved.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith(f'<tr id="charger-{charger}"')
    assert "HYC150" in body and "Northgate Depot" in body and "Demo Field Services" in body
    after = chargers(app)["DEMO-CP-0003"]
    assert after.vendor_id == vendor and after.site_id == site_id(app, "Northgate Depot")
    assert verify_key(after.key_hash, CHARGER_KEY)  # a blank key keeps the key
    (row,) = audit_rows(app)
    assert row.action == "update" and row.before["model"] == "HYC300"
    assert row.after["model"] == "HYC150" and row.after["vendor_id"] == vendor
    assert row.before["key"] == row.after["key"] == "set"


def test_edit_without_htmx_is_a_page_and_redirects(app, admin, demo):
    charger = demo["DEMO-CP-0003"]
    page = admin.get(f"/admin/chargers/{charger}/edit").get_data(as_text=True)
    assert "<html" in page and "New key (leave blank to keep)" in page
    token = page_token(admin, "/admin/chargers")
    saved = admin.post(
        f"/admin/chargers/{charger}/edit",
        data={"csrf_token": token, **edit_data(app, ocpp_id="DEMO-CP-0003-B")},
    )
    assert saved.status_code == 303
    assert saved.headers["Location"] == f"/admin/chargers/{charger}"
    assert "DEMO-CP-0003-B" in chargers(app)


def test_replacing_the_key(app, admin, demo):
    charger = demo["DEMO-CP-0003"]
    token = page_token(admin, "/admin/chargers")
    response = admin.post(
        f"/admin/chargers/{charger}/edit",
        headers=HX,
        data={"csrf_token": token, **edit_data(app, key=NEW_KEY)},
    )
    assert response.status_code == 200 and NEW_KEY not in response.get_data(as_text=True)
    saved = chargers(app)["DEMO-CP-0003"]
    assert verify_key(saved.key_hash, NEW_KEY) and not verify_key(saved.key_hash, CHARGER_KEY)
    (row,) = audit_rows(app)
    assert row.before["key"] == "set" and row.after["key"] == "replaced"
    assert saved.key_hash not in str(row.after)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"ocpp_id": "DEMO-CP-0004"}, "ocpp_id", "OCPP id DEMO-CP-0004 is already in use."),
        ({"ocpp_id": "ACME-CP-0002"}, "ocpp_id", "OCPP id ACME-CP-0002 is already in use."),
        ({"ocpp_id": "bad id"}, "ocpp_id", "Use 1-64 letters, digits"),
        ({"key": "too-short"}, "key", "between 16 and 128 characters"),
        ({"install_date": "yesterday"}, "install_date", "Not a valid date value."),
        ({"registration": ""}, "registration", "Not a valid choice."),
    ],
)
@pytest.mark.parametrize("hx", [True, False])
def test_edit_bad_input_is_422_and_changes_nothing(app, admin, demo, overrides, field, message, hx):
    charger = demo["DEMO-CP-0003"]
    token = page_token(admin, "/admin/chargers")
    before = chargers(app)
    response = admin.post(
        f"/admin/chargers/{charger}/edit",
        headers=HX if hx else {},
        data={"csrf_token": token, **edit_data(app, **overrides)},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and ("<html" in body) is not hx
    assert f'id="{field}-error"' in body and message in body
    assert chargers(app) == before and audit_rows(app) == []


def test_another_tenants_charger_is_404(app, admin, demo):
    other = demo["ACME-CP-0001"]
    before = chargers(app)
    assert admin.get(f"/admin/chargers/{other}").status_code == 404
    assert admin.get(f"/admin/chargers/{other}", headers=HX).status_code == 404
    assert admin.get(f"/admin/chargers/{other}/edit").status_code == 404
    token = page_token(admin, "/admin/chargers")
    edit = admin.post(
        f"/admin/chargers/{other}/edit",
        data={"csrf_token": token, **edit_data(app, charger="ACME-CP-0001")},
    )
    assert edit.status_code == 404
    accept = admin.post(
        f"/admin/chargers/{other}/registration",
        data={"csrf_token": token, "registration": "rejected"},
    )
    assert accept.status_code == 404
    assert chargers(app) == before


def test_edit_moving_to_another_tenants_site_is_404(app, admin, demo):
    charger = demo["DEMO-CP-0003"]
    token = page_token(admin, "/admin/chargers")
    before = chargers(app)
    response = admin.post(
        f"/admin/chargers/{charger}/edit",
        headers=HX,
        data={"csrf_token": token, **edit_data(app, site_id=str(site_id(app, "Acme HQ")))},
    )
    assert response.status_code == 404 and chargers(app) == before


# --- registration ----------------------------------------------------------------------------


def test_accept_a_pending_charger_with_htmx(app, admin, demo):
    make_pending(app, "DEMO-CP-0007")
    charger = demo["DEMO-CP-0007"]
    token = page_token(admin, "/admin/chargers")
    response = admin.post(
        f"/admin/chargers/{charger}/registration",
        headers=HX,
        data={"csrf_token": token, "registration": "accepted"},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and body.lstrip().startswith(f'<tr id="charger-{charger}"')
    assert "accepted" in body and ">Accept</button>" not in body
    assert chargers(app)["DEMO-CP-0007"].registration == "accepted"
    (row,) = audit_rows(app)
    assert row.action == "registration"
    assert (row.before, row.after) == ({"registration": "pending"}, {"registration": "accepted"})


def test_reject_without_htmx_redirects(app, admin, demo):
    make_pending(app, "DEMO-CP-0007")
    token = page_token(admin, "/admin/chargers")
    response = admin.post(
        f"/admin/chargers/{demo['DEMO-CP-0007']}/registration",
        data={"csrf_token": token, "registration": "rejected"},
    )
    assert response.status_code == 303 and response.headers["Location"] == "/admin/chargers"
    assert chargers(app)["DEMO-CP-0007"].registration == "rejected"
    assert "Charger DEMO-CP-0007 is now rejected." in admin.get("/admin/chargers").get_data(
        as_text=True
    )


@pytest.mark.parametrize("hx", [True, False])
def test_bad_registration_is_422(app, admin, demo, hx):
    token = page_token(admin, "/admin/chargers")
    response = admin.post(
        f"/admin/chargers/{demo['DEMO-CP-0007']}/registration",
        headers=HX if hx else {},
        data={"csrf_token": token, "registration": "maybe"},
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and ("<html" in body) is not hx
    assert "Choose accepted, pending or rejected." in body
    assert chargers(app)["DEMO-CP-0007"].registration == "accepted"
    assert audit_rows(app) == []


# --- export --------------------------------------------------------------------------------


def test_export_streams_the_tenants_chargers_without_keys(app, admin, demo):
    with app.app_context(), system_context():
        db.session.execute(
            update(Charger).where(Charger.ocpp_id == "DEMO-CP-0002").values(model="=HYPERLINK()")
        )
        db.session.commit()
    response = admin.get("/admin/chargers.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="chargers-')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == [
        "ocpp_id",
        "site",
        "manufacturer",
        "model",
        "serial",
        "asset_tag",
        "install_date",
        "warranty_end",
    ]
    assert [r[0] for r in rows[1:]] == [f"DEMO-CP-{n:04d}" for n in range(1, 13)]
    third = rows[3]
    assert third[1] == "Harbour Car Park" and third[6] == "2024-04-04"
    assert rows[2][3] == "'=HYPERLINK()"  # no spreadsheet runs it as a formula
    assert "pbkdf2" not in response.get_data(as_text=True)
