"""Tariffs per site at /admin/tariffs (issue 5, point 6): create, edit and delete with htmx
and without, validation (overlaps, prices, currency, period) answered 422, site time zones,
audit, and tenant isolation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.models import AuditLog, Site, Tariff
from cass.tenancy import system_context
from tests.conftest import as_user, page_token
from tests.ocpp_support import execute

HX = {"HX-Request": "true"}


@pytest.fixture
def admin(app, demo):
    return as_user(app, "admin@demo.test")


@pytest.fixture
def sites(app, demo) -> dict[str, int]:
    with app.app_context(), system_context():
        return {s.name: s.id for s in db.session.scalars(select(Site))}


def tariffs(app) -> list[tuple]:
    """Return every tariff as (site, name, currency, kWh, minute, session, from, to)."""
    with app.app_context(), system_context():
        return [
            (
                t.site_id,
                t.name,
                t.currency,
                t.per_kwh,
                t.per_minute,
                t.per_session,
                t.valid_from,
                t.valid_to,
            )
            for t in db.session.scalars(select(Tariff).order_by(Tariff.id))
        ]


def form(site: int, **overrides: str) -> dict[str, str]:
    data = {
        "site_id": str(site),
        "name": "Standard",
        "currency": "eur",
        "per_kwh": "0.35",
        "per_minute": "0.02",
        "per_session": "1",
        "valid_from": "2026-07-01T00:00",
        "valid_to": "",
    }
    return data | overrides


def create(client, site: int, headers=None, **overrides: str):
    token = page_token(client, "/admin/tariffs")
    return client.post(
        "/admin/tariffs", data={"csrf_token": token, **form(site, **overrides)}, headers=headers
    )


def add_tariff(app, site: int, start: datetime, end: datetime | None = None, name="Old") -> int:
    with app.app_context(), system_context():
        tenant = db.session.get(Site, site).tenant_id
        tariff = Tariff(
            tenant_id=tenant,
            site_id=site,
            name=name,
            currency="EUR",
            valid_from=start,
            valid_to=end,
        )
        db.session.add(tariff)
        db.session.commit()
        return tariff.id


def test_create_stores_site_local_times_as_instants_and_redirects(app, admin, sites):
    harbour = sites["Harbour Car Park"]  # Europe/London: UTC+1 in July
    response = create(admin, harbour, valid_to="2027-01-01T00:00")
    assert response.status_code == 303 and response.headers["Location"] == "/admin/tariffs"
    assert tariffs(app) == [
        (
            harbour,
            "Standard",
            "EUR",
            Decimal("0.3500"),
            Decimal("0.0200"),
            Decimal("1.0000"),
            datetime(2026, 6, 30, 23, 0, tzinfo=UTC),
            datetime(2027, 1, 1, 0, 0, tzinfo=UTC),
        )
    ]
    page = admin.get("/admin/tariffs").get_data(as_text=True)
    assert "Tariff Standard created." in page
    # Shown in the site's time, as entered.
    assert "2026-07-01 00:00" in page and "2027-01-01 00:00" in page
    with app.app_context(), system_context():
        entry = db.session.scalar(select(AuditLog).where(AuditLog.entity == "tariff"))
        assert entry.action == "create" and entry.after["per_kwh"] == "0.35"


def test_create_with_htmx_answers_the_list_with_a_fresh_form(app, admin, sites):
    response = create(admin, sites["Harbour Car Park"], headers=HX)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="tariff-list">') and "<html" not in html
    assert "Tariff Standard created." in html and 'id="tariff-new-form"' in html
    assert len(tariffs(app)) == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"per_kwh": "-0.01"}, "A price cannot be negative."),
        ({"per_minute": "abc"}, "Not a valid decimal value."),
        ({"per_session": "NaN"}, "Enter a number."),
        ({"per_kwh": "0.123456"}, "At most 4 decimal places."),
        ({"per_kwh": "1000000"}, "At most 999999.9999."),
        ({"currency": "EURO"}, "Use an ISO 4217 code"),
        ({"currency": "XYZ"}, "Use an ISO 4217 code"),
        ({"valid_from": ""}, "This field is required."),
        ({"valid_from": "2026-13-01T00:00"}, "Not a valid datetime value."),
        ({"valid_to": "2026-07-01T00:00"}, "Must be after “Valid from”."),
        ({"valid_to": "2026-06-01T00:00"}, "Must be after “Valid from”."),
        ({"name": ""}, "This field is required."),
        ({"site_id": ""}, "Choose a site."),
    ],
)
def test_bad_input_is_422_with_the_form_and_stores_nothing(app, admin, sites, overrides, message):
    for headers in (None, HX):
        response = create(admin, sites["Harbour Car Park"], headers=headers, **overrides)
        assert response.status_code == 422
        html = response.get_data(as_text=True)
        assert message in html
        assert ("<html" in html) is (headers is None)
    assert tariffs(app) == []


def test_periods_of_one_site_may_not_overlap_but_may_touch(app, admin, sites):
    harbour, depot = sites["Harbour Car Park"], sites["Northgate Depot"]
    # Harbour: all of 2025 (UTC), then open-ended from 2026-03-01.
    add_tariff(app, harbour, datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    add_tariff(app, harbour, datetime(2026, 3, 1, tzinfo=UTC), name="Spring")
    clashes = [
        {"valid_from": "2025-06-01T00:00", "valid_to": "2025-07-01T00:00"},  # inside
        {"valid_from": "2024-06-01T00:00", "valid_to": "2025-01-01T00:01"},  # its start
        {"valid_from": "2025-12-31T23:59", "valid_to": "2026-02-01T00:00"},  # its end
        {"valid_from": "2024-01-01T00:00", "valid_to": ""},  # open, over both
        {"valid_from": "2030-01-01T00:00", "valid_to": ""},  # inside the open one
    ]
    for period in clashes:
        response = create(admin, harbour, **period)
        assert response.status_code == 422, period
        assert "The period overlaps tariff" in response.get_data(as_text=True)
    assert len(tariffs(app)) == 2
    # Touching is fine: from the end of one to the start of the next (UTC in winter).
    gap = create(admin, harbour, valid_from="2026-01-01T00:00", valid_to="2026-03-01T00:00")
    assert gap.status_code == 303
    # Another site is another timeline.
    assert create(admin, depot, valid_from="2025-06-01T00:00").status_code == 303
    assert len(tariffs(app)) == 4


def test_inline_edit_with_and_without_htmx(app, admin, sites):
    harbour = sites["Harbour Car Park"]
    ident = add_tariff(app, harbour, datetime(2026, 1, 1, tzinfo=UTC))
    edit = admin.get(f"/admin/tariffs/{ident}/edit", headers=HX)
    assert edit.status_code == 200
    html = edit.get_data(as_text=True)
    assert f'<tr id="tariff-{ident}" class="editing">' in html and "<html" not in html
    assert 'value="2026-01-01T00:00"' in html  # the site's time (UTC in winter)
    page = admin.get(f"/admin/tariffs/{ident}/edit")
    assert page.status_code == 200 and "<html" in page.get_data(as_text=True)

    token = page_token(admin, "/admin/tariffs")
    data = {"csrf_token": token, **form(harbour, name="Winter", valid_from="2026-01-01T00:00")}
    saved = admin.post(f"/admin/tariffs/{ident}/edit", data=data, headers=HX)
    assert saved.status_code == 200
    assert saved.get_data(as_text=True).lstrip().startswith(f'<tr id="tariff-{ident}">')
    data["name"] = "Winter 2"
    again = admin.post(f"/admin/tariffs/{ident}/edit", data=data)
    assert again.status_code == 303
    assert tariffs(app)[0][1:3] == ("Winter 2", "EUR")
    # Cancel: the row again, or its own page without htmx.
    row = admin.get(f"/admin/tariffs/{ident}", headers=HX).get_data(as_text=True)
    assert row.lstrip().startswith(f'<tr id="tariff-{ident}">')
    assert "<html" in admin.get(f"/admin/tariffs/{ident}").get_data(as_text=True)


def test_an_edit_may_not_create_an_overlap_or_break_the_rules(app, admin, sites):
    harbour = sites["Harbour Car Park"]
    first = add_tariff(
        app, harbour, datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    )
    add_tariff(app, harbour, datetime(2026, 1, 1, tzinfo=UTC), name="Now")
    token = page_token(admin, "/admin/tariffs")
    stretched = form(harbour, valid_from="2025-01-01T00:00", valid_to="2026-02-01T00:00")
    for headers in (None, HX):
        response = admin.post(
            f"/admin/tariffs/{first}/edit", data={"csrf_token": token, **stretched}, headers=headers
        )
        assert response.status_code == 422
        assert "The period overlaps tariff “Now”" in response.get_data(as_text=True)
    negative = form(
        harbour, valid_from="2025-01-01T00:00", valid_to="2026-01-01T00:00", per_kwh="-1"
    )
    response = admin.post(f"/admin/tariffs/{first}/edit", data={"csrf_token": token, **negative})
    assert response.status_code == 422
    assert tariffs(app)[0][6:] == (
        datetime(2025, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_delete_with_and_without_htmx_but_not_a_tariff_that_priced_sessions(
    app, admin, sites, database_url, demo
):
    harbour = sites["Harbour Car Park"]
    unused = add_tariff(
        app, harbour, datetime(2024, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC)
    )
    other = add_tariff(
        app, harbour, datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    )
    used = add_tariff(app, harbour, datetime(2026, 1, 1, tzinfo=UTC), name="Priced")
    execute(
        database_url,
        "INSERT INTO charging_session (tenant_id, charger_id, connector_no, started_at, tariff_id)"
        " VALUES (%s, %s, 1, now(), %s)",
        (demo["demo"], demo["DEMO-CP-0001"], used),
    )
    token = page_token(admin, "/admin/tariffs")
    gone = admin.post(f"/admin/tariffs/{unused}/delete", data={"csrf_token": token}, headers=HX)
    assert gone.status_code == 200 and gone.get_data(as_text=True) == ""
    redirected = admin.post(f"/admin/tariffs/{other}/delete", data={"csrf_token": token})
    assert redirected.status_code == 303
    kept = admin.post(f"/admin/tariffs/{used}/delete", data={"csrf_token": token}, headers=HX)
    assert kept.status_code == 422
    assert "Sessions were priced with this tariff" in kept.get_data(as_text=True)
    flashed = admin.post(f"/admin/tariffs/{used}/delete", data={"csrf_token": token})
    assert flashed.status_code == 303
    assert "Sessions were priced" in admin.get("/admin/tariffs").get_data(as_text=True)
    assert [t[1] for t in tariffs(app)] == ["Priced"]


def test_list_filters_by_site_and_htmx_gets_the_list_only(app, admin, sites):
    add_tariff(
        app, sites["Harbour Car Park"], datetime(2026, 1, 1, tzinfo=UTC), name="Harbour rate"
    )
    add_tariff(app, sites["Northgate Depot"], datetime(2026, 1, 1, tzinfo=UTC), name="Depot rate")
    page = admin.get("/admin/tariffs").get_data(as_text=True)
    assert "Harbour rate" in page and "Depot rate" in page and "<html" in page
    only = admin.get(f"/admin/tariffs?site={sites['Northgate Depot']}", headers=HX)
    html = only.get_data(as_text=True)
    assert only.status_code == 200 and "<html" not in html
    assert "Depot rate" in html and "Harbour rate" not in html


def test_readers_see_prices_without_the_forms(app, demo, sites):
    add_tariff(app, sites["Harbour Car Park"], datetime(2026, 1, 1, tzinfo=UTC), name="Visible")
    agent = as_user(app, "agent@demo.test")
    page = agent.get("/admin/tariffs").get_data(as_text=True)
    assert "Visible" in page and "New tariff" not in page and "Delete" not in page


def test_another_tenants_tariffs_and_sites_are_404(app, demo, sites):
    harbour = sites["Harbour Car Park"]
    ident = add_tariff(app, harbour, datetime(2026, 1, 1, tzinfo=UTC), name="Demo only")
    acme = as_user(app, "admin@acme.test")
    assert "Demo only" not in acme.get("/admin/tariffs").get_data(as_text=True)
    assert acme.get(f"/admin/tariffs/{ident}").status_code == 404
    assert acme.get(f"/admin/tariffs/{ident}/edit").status_code == 404
    token = page_token(acme, "/admin/tariffs")
    data = {"csrf_token": token, **form(sites["Acme HQ"])}
    assert acme.post(f"/admin/tariffs/{ident}/edit", data=data).status_code == 404
    assert (
        acme.post(f"/admin/tariffs/{ident}/delete", data={"csrf_token": token}).status_code == 404
    )
    # Naming the other tenant's site in a new tariff.
    assert create(acme, harbour).status_code == 404
    assert [t[1] for t in tariffs(app)] == ["Demo only"]
    # Its own site works.
    assert create(acme, sites["Acme HQ"]).status_code == 303
