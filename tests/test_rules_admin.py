"""Workflow rules admin (/admin/rules): list, create, edit, enable/disable, reorder, and the
rule-runs view with its filters; every htmx route with and without HX-Request."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.models import AuditLog, RuleRun, WorkflowRule
from cass.services import workflow
from cass.tenancy import system_context, tenant_context
from tests.conftest import login, page_token
from tests.ocpp_support import execute, query

HX = {"HX-Request": "true"}


@pytest.fixture
def admin(client, demo):
    assert login(client, "admin@demo.test").status_code == 303
    return client


def rules_of(app, tenant_id):
    """Return (id, name, event, conditions, actions, enabled, position) by event and position."""
    with app.app_context(), system_context():
        return [
            (r.id, r.name, r.event, r.conditions, r.actions, r.enabled, r.position)
            for r in db.session.scalars(
                select(WorkflowRule)
                .where(WorkflowRule.tenant_id == tenant_id)
                .order_by(WorkflowRule.event, WorkflowRule.position, WorkflowRule.id)
            )
        ]


def rule_named(app, demo, name):
    return next(r for r in rules_of(app, demo["demo"]) if r[1] == name)


def form(**fields):
    base = {
        "name": "Ground faults to the vendor",
        "event": "connector_faulted",
        "enabled": "y",
        "create_ticket": "y",
        "ticket_category": "hardware",
        "ticket_priority": "P1",
    }
    return base | fields


def post(client, path, data, headers=None):
    return client.post(path, data={"csrf_token": page_token(client), **data}, headers=headers)


# -- list -------------------------------------------------------------------------------------


def test_the_list_shows_the_tenants_rules_in_words(admin):
    page = admin.get("/admin/rules").get_data(as_text=True)
    assert "A connector fault opens a ticket" in page
    assert "Open a ticket (Hardware, P2)" in page
    assert "offline for 15 minutes" in page and "always" in page
    assert page.count('<tr id="rule-') == 4


def test_the_list_never_shows_another_tenants_rules(app, demo, admin):
    execute(
        app.config["DATABASE_URL"],
        "UPDATE workflow_rule SET name = 'Acme only' WHERE tenant_id = %s",
        (demo["acme"],),
    )
    assert "Acme only" not in admin.get("/admin/rules").get_data(as_text=True)


# -- create and edit ----------------------------------------------------------------------------


def test_create_a_rule_from_form_fields(app, demo, admin):
    [(site,)] = query(app.config["DATABASE_URL"], "SELECT min(id) FROM site WHERE tenant_id = %s",
                      (demo["demo"],))  # fmt: skip
    vendor = demo["vendor:Demo Field Services"]
    response = post(
        admin,
        "/admin/rules/new",
        form(
            site_ids=str(site),
            models="Terra 54, Eve Double",
            error_codes="GroundFailure",
            ticket_title="{charger}: {fault}",
            assign="y",
            assignee=f"vendor:{vendor}",
            add_worklog="y",
            worklog_body="Vendor informed",
            notify="y",
            notify_to="managers",
        ),
    )
    assert response.status_code == 303 and response.headers["Location"] == "/admin/rules"
    (rid, _, event, conditions, actions, enabled, position) = rule_named(
        app, demo, "Ground faults to the vendor"
    )
    assert (event, enabled) == ("connector_faulted", True)
    assert conditions == {
        "site_ids": [site],
        "models": ["Terra 54", "Eve Double"],
        "error_codes": ["GroundFailure"],
    }
    assert actions == [
        {"do": "create_ticket", "category": "hardware", "priority": "P1",
         "title": "{charger}: {fault}"},
        {"do": "assign", "vendor_id": vendor},
        {"do": "add_worklog", "body": "Vendor informed"},
        {"do": "notify", "to": "managers"},
    ]  # fmt: skip
    assert position > max(r[6] for r in rules_of(app, demo["demo"]) if r[0] != rid) - 1
    with app.app_context(), system_context():
        entry = db.session.scalar(
            select(AuditLog).where(AuditLog.entity == "workflow_rule", AuditLog.entity_id == rid)
        )
        assert entry.action == "create" and entry.actor_id == demo["admin@demo.test"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"priorities": "P1"}, "Does not apply to"),
        ({"create_ticket": ""}, "Choose at least one action."),
        ({"event": "charger_offline"}, "Required for this event."),
        ({"event": "ticket_created"}, "Only charger events open tickets"),
        ({"name": ""}, "This field is required."),
        ({"site_ids": "999999"}, "is not a valid choice"),
        ({"offline_minutes": "0", "event": "charger_offline"}, "between 1 and"),
        ({"assign": "y", "assignee": "user:999999"}, "Not a valid choice"),
    ],
)
def test_an_invalid_rule_is_refused_with_422(app, demo, admin, fields, message):
    before = rules_of(app, demo["demo"])
    response = post(admin, "/admin/rules/new", form(**fields))
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert rules_of(app, demo["demo"]) == before


def test_edit_shows_the_stored_rule_and_saves_changes(app, demo, admin):
    rid = rule_named(app, demo, "A charger offline for 15 minutes opens a ticket")[0]
    page = admin.get(f"/admin/rules/{rid}/edit").get_data(as_text=True)
    assert 'name="offline_minutes" type="number" value="15"' in page
    assert '<input checked id="create_ticket"' in page
    response = post(
        admin,
        f"/admin/rules/{rid}/edit",
        form(
            name="Offline for half an hour",
            event="charger_offline",
            offline_minutes="30",
            ticket_category="connectivity",
            set_priority="y",
            new_priority="P1",
        ),
    )
    assert response.status_code == 303
    (*_, conditions, actions, _, _) = rule_named(app, demo, "Offline for half an hour")
    assert conditions == {"offline_minutes": 30}
    assert [a["do"] for a in actions] == ["create_ticket", "set_priority"]


def test_another_tenants_rule_cannot_be_edited(app, demo, admin):
    acme_rule = rules_of(app, demo["acme"])[0][0]
    assert admin.get(f"/admin/rules/{acme_rule}/edit").status_code == 404
    assert post(admin, f"/admin/rules/{acme_rule}/toggle", {"enabled": "off"}).status_code == 404


# -- enable, disable, reorder -------------------------------------------------------------------


@pytest.mark.parametrize("htmx", [True, False])
def test_disable_and_enable_a_rule(app, demo, admin, htmx):
    rid = rule_named(app, demo, "A connector fault opens a ticket")[0]
    response = post(admin, f"/admin/rules/{rid}/toggle", {"enabled": "off"}, HX if htmx else None)
    if htmx:
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and body.lstrip().startswith(f'<tr id="rule-{rid}"')
        assert "disabled" in body and "<html" not in body
    else:
        assert response.status_code == 303
    assert rule_named(app, demo, "A connector fault opens a ticket")[5] is False
    post(admin, f"/admin/rules/{rid}/toggle", {"enabled": "on"}, HX if htmx else None)
    assert rule_named(app, demo, "A connector fault opens a ticket")[5] is True
    assert post(admin, f"/admin/rules/{rid}/toggle", {"enabled": "maybe"}).status_code == 422


@pytest.mark.parametrize("htmx", [True, False])
def test_reorder_rules_within_their_event(app, demo, admin, htmx):
    from cass.models import WorkflowRule as Rule

    with app.app_context(), system_context():
        for name in ("Second", "Third"):
            db.session.add(
                Rule(tenant_id=demo["demo"], name=name, event="connector_faulted",
                     actions=[{"do": "notify", "to": "managers"}], position=0)
            )  # fmt: skip
        db.session.commit()

    def order():
        return [r[1] for r in rules_of(app, demo["demo"]) if r[2] == "connector_faulted"]

    third = rule_named(app, demo, "Third")[0]
    response = post(admin, f"/admin/rules/{third}/move", {"direction": "up"}, HX if htmx else None)
    if htmx:
        body = response.get_data(as_text=True)
        assert response.status_code == 200 and body.lstrip().startswith('<div id="rules"')
    else:
        assert response.status_code == 303
    assert order()[0:3] in (["Third", "A connector fault opens a ticket", "Second"],
                            ["A connector fault opens a ticket", "Third", "Second"])  # fmt: skip
    before = order()
    post(admin, f"/admin/rules/{third}/move", {"direction": "down"})
    post(admin, f"/admin/rules/{third}/move", {"direction": "down"})
    assert order()[-1] == "Third" and order() != before
    # The engine evaluates in that order.
    with app.app_context(), tenant_context(demo["demo"]):
        assert [r.name for r in workflow._enabled_rules("connector_faulted")] == order()


# -- runs -------------------------------------------------------------------------------------


MISS = "the site is not one of the rule's sites"


def make_runs(app, demo):
    """Record a matched and an unmatched run of the fault rule, a week apart."""
    rid = rule_named(app, demo, "A connector fault opens a ticket")[0]
    with app.app_context(), system_context():
        db.session.add_all(
            [
                RuleRun(tenant_id=demo["demo"], rule_id=rid, event="connector_faulted",
                        charger_id=demo["DEMO-CP-0001"], matched=True,
                        outcome=[{"do": "create_ticket", "result": "opened DEMO-1"}]),
                RuleRun(tenant_id=demo["demo"], rule_id=rid, event="connector_faulted",
                        matched=False, outcome=[{"condition": "site_ids", "result": MISS}]),
            ]
        )  # fmt: skip
        db.session.commit()
    execute(
        app.config["DATABASE_URL"],
        "UPDATE rule_run SET at = '2026-01-10 12:00+00' WHERE matched = false",
    )
    return rid


def test_runs_show_every_evaluation_and_filter(app, demo, admin):
    rid = make_runs(app, demo)
    page = admin.get("/admin/rules/runs").get_data(as_text=True)
    assert "opened DEMO-1" in page and "the site is not one of the rule" in page
    assert "DEMO-CP-0001" in page
    matched = admin.get("/admin/rules/runs?matched=yes").get_data(as_text=True)
    assert "opened DEMO-1" in matched and "not one of the rule" not in matched
    missed = admin.get("/admin/rules/runs?matched=no").get_data(as_text=True)
    assert "opened DEMO-1" not in missed and "not one of the rule" in missed
    dated = admin.get("/admin/rules/runs?since=2026-01-10&until=2026-01-10").get_data(as_text=True)
    assert "not one of the rule" in dated and "opened DEMO-1" not in dated
    other = rule_named(app, demo, "A failed firmware update opens a ticket")[0]
    assert "opened DEMO-1" in admin.get(f"/admin/rules/runs?rule={rid}").get_data(as_text=True)
    assert "No rule runs match" in admin.get(f"/admin/rules/runs?rule={other}").get_data(
        as_text=True
    )


@pytest.mark.parametrize("htmx", [True, False])
def test_runs_filter_fragment_and_page(app, demo, admin, htmx):
    make_runs(app, demo)
    response = admin.get("/admin/rules/runs?matched=yes", headers=HX if htmx else None)
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "opened DEMO-1" in body
    assert body.lstrip().startswith('<div id="runs"') is htmx
    assert ("<html" in body) is not htmx
    assert response.headers["Vary"].count("HX-Request")


def test_bad_run_filters_are_a_422(admin):
    response = admin.get("/admin/rules/runs?since=yesterday&matched=perhaps")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "is not a date" in body and "Matched is yes or no" in body


def test_runs_load_more_by_keyset(app, demo, admin):
    rid = rule_named(app, demo, "A connector fault opens a ticket")[0]
    with app.app_context(), system_context():
        db.session.add_all(
            RuleRun(tenant_id=demo["demo"], rule_id=rid, event="connector_faulted", matched=True,
                    outcome=[{"do": "notify", "result": f"run {n}"}])
            for n in range(55)
        )  # fmt: skip
        db.session.commit()
    page = admin.get("/admin/rules/runs").get_data(as_text=True)
    assert page.count('<tr id="run-') == 50 and 'id="runs-more"' in page
    more = page.split('hx-get="')[-1].split('"')[0].replace("&amp;", "&")
    rows = admin.get(more, headers=HX).get_data(as_text=True)
    assert rows.count('<tr id="run-') == 5 and "<table" not in rows
