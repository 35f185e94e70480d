"""The access matrix: every route, every role, and a user of the other tenant (point 7).

Each cell is the exact status code. POSTs carry a valid CSRF token and valid data, so what is
tested is the permission, not the form.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import select

from cass.extensions import db
from cass.lifecycle import BY_NAME
from cass.permissions import PERMISSIONS
from tests.conftest import DEMO_PASSWORD, csrf_from, login

FIELD_ROLES = BY_NAME["hold"].roles
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
# The CSMS API authenticates by signature: no session counts (unsigned: 401).
SIGNED = "signature"
# Open to everyone, signed in or not.
PUBLIC = "public"
# The new CSMS secret is shown in the answer itself, once (no redirect), and so
# is a new calendar feed's URL (/account/calendar).
SHOWN_ONCE = {("POST", "/admin/csms/secret"): 200, ("POST", "/account/calendar"): 200}
# A new API token too (/account/api-tokens).
SHOWN_ONCE[("POST", "/account/api-tokens")] = 200
# A new webhook endpoint's secret, and a rotated one, are shown in the answer once too.
SHOWN_ONCE |= {
    ("POST", "/admin/webhooks/new"): 200,
    ("POST", "/admin/webhooks/{webhook}/secret"): 200,
}
WEBHOOK_FORM = {"url": "https://hooks.example.com/matrix", "events": "ticket.created"}
CSV = b"ocpp_id,site,key\nMATRIX-CP-1,Matrix Site,matrix-key-0123456\n"

RULE_FORM = {
    "name": "Matrix rule",
    "event": "connector_faulted",
    "enabled": "y",
    "create_ticket": "y",
    "ticket_category": "hardware",
    "ticket_priority": "P2",
}

POLICY_FORM = {
    "name": "Matrix policy",
    "priority": "P4",
    "category": "payment",
    "active": "y",
    "resolution_minutes": "120",
    "resolution_warn": "80",
    "first_response_warn": "80",
    "on_site_warn": "80",
    "vendor_warn": "80",
}
SCHEDULE_FORM = {
    "name": "Matrix schedule",
    "slug": "tickets",
    "query": "status=open",
    "frequency": "daily",
    "at_time": "06:00",
    "weekday": "0",
    "month_day": "1",
    "retention_days": "30",
    "active": "y",
}
# A Monday in working hours (the demo tenant's default calendar: Mon-Fri 08:00-18:00).
VISIT_FORM = {"assignee": "{engineer}", "starts_at": "2027-01-04T10:00", "minutes": "60"}
ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//m//m//EN\r\nBEGIN:VEVENT\r\nUID:m@m\r\n"
    b"DTSTART;VALUE=DATE:20271225\r\nSUMMARY:Matrix day\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)
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
    ("GET", "/events", "signed_in", False, None),
    ("GET", "/", "home.view", False, None),
    ("GET", "/dashboard/tickets", "tickets.view", False, None),
    ("GET", "/dashboard/fleet", "chargers.view", False, None),
    ("GET", "/events/dashboard", "home.view", False, None),
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
    # Tickets. {ticket} is DEMO-1: in progress and assigned to the vendor, so the vendor sees it.
    ("GET", "/tickets/new", "tickets.create", False, None),
    (
        "POST",
        "/tickets/new",
        "tickets.create",
        False,
        {"title": "Matrix", "category": "other", "priority": "P3", "channel": "phone"},
    ),
    ("GET", "/tickets/lookup", "tickets.create", False, None),
    ("GET", "/tickets/{ticket}", "tickets.view", True, None),
    ("GET", "/tickets/{ticket}/edit", "tickets.edit", True, None),
    (
        "POST",
        "/tickets/{ticket}/edit",
        "tickets.edit",
        True,
        {"title": "Edited", "category": "hardware", "priority": "P2", "version": "{version}"},
    ),
    # The lifecycle narrows tickets.transition: "hold" is for field roles only.
    ("GET", "/tickets/{ticket}/transition/<name>", FIELD_ROLES, True, None),
    (
        "POST",
        "/tickets/{ticket}/transition/<name>",
        FIELD_ROLES,
        True,
        {"hold_reason": "waiting_parts", "version": "{version}"},
    ),
    (
        "POST",
        "/tickets/{ticket}/assign",
        "tickets.assign",
        True,
        {"assignee": "", "version": "{version}"},
    ),
    ("POST", "/tickets/{ticket}/worklogs", "tickets.worklog", True, {"body": "On my way"}),
    ("POST", "/tickets/{ticket}/attachments", "tickets.attach", True, "file"),
    ("GET", "/tickets/{ticket}/attachments/{attachment}", "tickets.view", True, None),
    ("GET", "/admin/audit", "audit.view", False, None),
    (
        "POST",
        "/tickets/bulk",
        "tickets.bulk",
        False,
        {"action": "priority", "priority": "P2", "ticket": "{ticket_id}"},
    ),
    ("GET", "/tickets/board", "tickets.view", False, None),
    # The ticket list, its CSV and saved views; {view} is a saved view of the signed-in user.
    ("GET", "/tickets", "tickets.view", False, None),
    ("GET", "/tickets.csv", "tickets.export", False, None),
    ("GET", "/reports", "reports.view", False, None),
    ("GET", "/reports/{report}", "reports.view", False, None),
    ("GET", "/reports/{report}.csv", "reports.export", False, None),
    ("GET", "/reports/{report}.pdf", "reports.export", False, None),
    ("POST", "/tickets/views", "views.save", False, {"name": "Matrix", "query": "status=open"}),
    ("POST", "/tickets/views/{view}/share", "views.share", True, {"shared": "y"}),
    ("POST", "/tickets/views/{view}/delete", "views.save", True, {}),
    # Sites and the charger registry; {site_id} is Harbour Car Park, {charger_id} DEMO-CP-0003.
    ("GET", "/sites", "sites.view", False, None),
    ("GET", "/sites/new", "sites.manage", False, None),
    ("POST", "/sites/new", "sites.manage", False, {"name": "Matrix Site", "timezone": "UTC"}),
    ("GET", "/sites/{site_id}", "sites.view", True, None),
    ("GET", "/sites/{site_id}/edit", "sites.manage", True, None),
    ("GET", "/sites/{site_id}/utilization", "sites.view", True, None),
    ("GET", "/sites/{site_id}/peak-load", "sites.view", True, None),
    (
        "POST",
        "/sites/{site_id}/edit",
        "sites.manage",
        True,
        {"name": "Harbour Car Park", "timezone": "Europe/London"},
    ),
    ("GET", "/admin/chargers", "assets.view", False, None),
    ("GET", "/admin/chargers.csv", "assets.view", False, None),
    ("GET", "/admin/chargers/new", "assets.manage", False, None),
    (
        "POST",
        "/admin/chargers/new",
        "assets.manage",
        True,  # names a demo site: the other tenant's admin gets 404
        {
            "ocpp_id": "DEMO-CP-0999",
            "site_id": "{site_id}",
            "registration": "accepted",
            "key": "matrix-key-0123456",
            "connectors": "2",
        },
    ),
    ("GET", "/admin/chargers/{charger_id}", "assets.view", True, None),
    ("GET", "/admin/chargers/{charger_id}/edit", "assets.manage", True, None),
    (
        "POST",
        "/admin/chargers/{charger_id}/edit",
        "assets.manage",
        True,
        {"ocpp_id": "DEMO-CP-0003", "site_id": "{site_id}", "registration": "accepted"},
    ),
    (
        "POST",
        "/admin/chargers/{charger_id}/registration",
        "assets.manage",
        True,
        {"registration": "accepted"},
    ),
    ("GET", "/admin/chargers/import", "assets.manage", False, None),
    ("POST", "/admin/chargers/import", "assets.manage", False, "csv"),
    # The chargers area; {charger} is DEMO-1's charger (the vendor's ticket: the vendor sees
    # it), {command} a pending command on it.
    ("GET", "/chargers", "chargers.view", False, None),
    ("GET", "/chargers/{charger}", "chargers.view", True, None),
    ("GET", "/chargers/{charger}/utilization", "chargers.view", True, None),
    ("GET", "/chargers/{charger}/peak-load", "chargers.view", True, None),
    ("GET", "/events/chargers", "chargers.view", False, None),
    ("GET", "/events/chargers/{charger}", "chargers.view", True, None),
    ("GET", "/chargers/{charger}/commands/<action>", "chargers.command", True, None),
    (
        "POST",
        "/chargers/{charger}/commands/<action>",
        "chargers.command",
        True,
        {"type": "Soft", "confirmed": "1"},
    ),
    ("POST", "/chargers/{charger}/commands/{command}/cancel", "chargers.command", True, {}),
    # The message log as a file; a site's needs sites.view too (a site holds every vendor's).
    ("GET", "/chargers/{charger}/messages.csv", "messages.export", True, None),
    ("GET", "/chargers/{charger}/messages.jsonl", "messages.export", True, None),
    (
        "GET",
        "/sites/{site_id}/messages.csv",
        PERMISSIONS["messages.export"] & PERMISSIONS["sites.view"],
        True,
        None,
    ),
    (
        "GET",
        "/sites/{site_id}/messages.jsonl",
        PERMISSIONS["messages.export"] & PERMISSIONS["sites.view"],
        True,
        None,
    ),
    # Workflow rules; {rule} is the demo tenant's connector-fault rule.
    ("GET", "/admin/rules", "rules.view", False, None),
    ("GET", "/admin/rules/runs", "rules.view", False, None),
    ("GET", "/admin/rules/new", "rules.manage", False, None),
    ("POST", "/admin/rules/new", "rules.manage", False, RULE_FORM),
    ("GET", "/admin/rules/{rule}/edit", "rules.manage", True, None),
    ("POST", "/admin/rules/{rule}/edit", "rules.manage", True, RULE_FORM),
    ("POST", "/admin/rules/{rule}/toggle", "rules.manage", True, {"enabled": "off"}),
    ("POST", "/admin/rules/{rule}/move", "rules.manage", True, {"direction": "down"}),
    # Tariffs, sessions and the CSMS integration; {tariff} is a 2020 tariff of Harbour Car Park.
    ("GET", "/admin/tariffs", "tariffs.view", False, None),
    (
        "POST",
        "/admin/tariffs",
        "tariffs.manage",
        True,  # names a demo site: the other tenant's admin gets 404
        {
            "site_id": "{tariff_site}",
            "name": "Matrix",
            "currency": "EUR",
            "per_kwh": "0.3",
            "per_minute": "0",
            "per_session": "0",
            "valid_from": "2030-01-01T00:00",
        },
    ),
    ("GET", "/admin/tariffs/{tariff}", "tariffs.view", True, None),
    ("GET", "/admin/tariffs/{tariff}/edit", "tariffs.manage", True, None),
    (
        "POST",
        "/admin/tariffs/{tariff}/edit",
        "tariffs.manage",
        True,
        {
            "site_id": "{tariff_site}",
            "name": "Matrix 2020",
            "currency": "GBP",
            "per_kwh": "0.25",
            "per_minute": "0",
            "per_session": "1",
            "valid_from": "2020-01-01T00:00",
            "valid_to": "2021-01-01T00:00",
        },
    ),
    ("POST", "/admin/tariffs/{tariff}/delete", "tariffs.manage", True, {}),
    ("GET", "/sessions", "sessions.view", False, None),
    ("GET", "/sessions.csv", "sessions.export", False, None),
    ("GET", "/admin/csms", "csms.manage", False, None),
    ("POST", "/admin/csms/secret", "csms.manage", False, {}),
    ("POST", "/admin/csms/secret/delete", "csms.manage", False, {}),
    ("POST", "/api/v1/csms/events", SIGNED, False, {}),
    # The JSON API's document and reference are public; its calls answer to bearer tokens
    # alone, and have their own matrix (tests/test_api_permissions.py).
    ("GET", "/api/v1/openapi.json", PUBLIC, False, None),
    ("GET", "/api/v1/docs", PUBLIC, False, None),
    # SLA admin. {calendar} is a fresh calendar of the demo tenant, named by no policy.
    ("GET", "/admin/sla", "sla.view", False, None),
    ("GET", "/admin/sla/preview", "sla.view", False, None),
    ("GET", "/admin/sla/calendars/new", "sla.manage", False, None),
    (
        "POST",
        "/admin/sla/calendars/new",
        "sla.manage",
        False,
        {"name": "Brand new hours", "timezone": "UTC", "hours": "mon-fri 09:00-17:00"},
    ),
    ("GET", "/admin/sla/calendars/{calendar}", "sla.view", True, None),
    ("GET", "/admin/sla/calendars/{calendar}/edit", "sla.manage", True, None),
    (
        "POST",
        "/admin/sla/calendars/{calendar}/edit",
        "sla.manage",
        True,
        {"name": "Matrix hours", "timezone": "UTC", "hours": "mon 09:00-17:00"},
    ),
    ("POST", "/admin/sla/calendars/{calendar}/delete", "sla.manage", True, {}),
    (
        "POST",
        "/admin/sla/calendars/{calendar}/holidays",
        "sla.manage",
        True,
        {"day": "2027-01-01", "name": "New Year"},
    ),
    (
        "POST",
        "/admin/sla/calendars/{calendar}/holidays/{holiday}/delete",
        "sla.manage",
        True,
        {},
    ),
    ("POST", "/admin/sla/calendars/{calendar}/import", "sla.manage", True, "ics"),
    ("GET", "/admin/sla/policies/new", "sla.manage", False, None),
    ("POST", "/admin/sla/policies/new", "sla.manage", False, POLICY_FORM),
    ("GET", "/admin/sla/policies/{policy}/edit", "sla.manage", True, None),
    ("POST", "/admin/sla/policies/{policy}/edit", "sla.manage", True, POLICY_FORM),
    ("POST", "/admin/sla/policies/{policy}/delete", "sla.manage", True, {}),
    ("GET", "/admin/jobs", "jobs.view", False, None),
    ("GET", "/sla/at-risk", "tickets.view", False, None),
    ("GET", "/notifications", "home.view", False, None),
    ("GET", "/notifications/bell", "home.view", False, None),
    ("POST", "/notifications/read", "home.view", False, {}),
    # Site visits; {visit} is the demo engineer's visit for DEMO-1 with the demo vendor.
    ("POST", "/tickets/{ticket}/visits", "visits.book", True, VISIT_FORM),
    ("GET", "/visits/week", "visits.book", False, None),
    ("GET", "/visits/day", "visits.view", False, None),
    ("POST", "/visits/{visit}/move", "visits.book", True, {"starts_at": "2027-01-05T10:00"}),
    ("POST", "/visits/{visit}/status", "visits.work", True, {"status": "en_route"}),
    # Scheduled exports and their files; {schedule} is the demo manager's, {export} its file.
    ("GET", "/reports/schedules", "reports.schedule", False, None),
    ("GET", "/reports/schedules/new", "reports.schedule", False, None),
    ("POST", "/reports/schedules/new", "reports.schedule", False, SCHEDULE_FORM),
    ("GET", "/reports/schedules/{schedule}/edit", "reports.schedule", True, None),
    ("POST", "/reports/schedules/{schedule}/edit", "reports.schedule", True, SCHEDULE_FORM),
    ("POST", "/reports/schedules/{schedule}/run", "reports.schedule", True, {}),
    ("POST", "/reports/schedules/{schedule}/delete", "reports.schedule", True, {}),
    ("GET", "/reports/files", "reports.export", False, None),
    ("POST", "/reports/files", "reports.export", False, {"slug": "tickets", "query": "x=1"}),
    ("GET", "/reports/files/{export}", "reports.export", True, None),
    ("GET", "/reports/files/{export}/download", "reports.export", True, None),
    # The calendar feed's page: make a feed URL (shown once), revoke it.
    ("GET", "/account/calendar", "visits.feed", False, None),
    ("POST", "/account/calendar", "visits.feed", False, {}),
    ("POST", "/account/calendar/revoke", "visits.feed", False, {}),
    # API tokens; {api_token} is a live token of the signed-in user (the agent's for anonymous
    # and the other tenant).
    ("GET", "/account/api-tokens", "api_tokens.own", False, None),
    ("POST", "/account/api-tokens", "api_tokens.own", False, {"name": "Matrix", "scope": "read"}),
    ("POST", "/account/api-tokens/{api_token}/revoke", "api_tokens.own", True, {}),
    ("GET", "/admin/api-tokens", "api_tokens.manage", False, None),
    ("POST", "/admin/api-tokens/{api_token}/revoke", "api_tokens.manage", True, {}),
    # Outbound webhooks; {webhook} is a demo endpoint, {delivery} a failed delivery to it.
    ("GET", "/admin/webhooks", "webhooks.manage", False, None),
    ("GET", "/admin/webhooks/new", "webhooks.manage", False, None),
    ("POST", "/admin/webhooks/new", "webhooks.manage", False, WEBHOOK_FORM),
    ("GET", "/admin/webhooks/{webhook}", "webhooks.manage", True, None),
    ("GET", "/admin/webhooks/{webhook}/edit", "webhooks.manage", True, None),
    ("POST", "/admin/webhooks/{webhook}/edit", "webhooks.manage", True, WEBHOOK_FORM),
    ("POST", "/admin/webhooks/{webhook}/secret", "webhooks.manage", True, {}),
    ("POST", "/admin/webhooks/{webhook}/active", "webhooks.manage", True, {"active": "off"}),
    ("POST", "/admin/webhooks/{webhook}/delete", "webhooks.manage", True, {}),
    ("POST", "/admin/webhooks/{webhook}/test", "webhooks.manage", True, {}),
    ("POST", "/admin/webhooks/deliveries/{delivery}/redeliver", "webhooks.manage", True, {}),
]


ALL = frozenset(PERMISSIONS["home.view"])


def expected(actor: str, method: str, path: str, action: str | None, is_object: bool) -> int:
    """Return the status code the matrix demands."""
    if action == SIGNED:
        return 401
    if action == PUBLIC:
        return 200
    ok = SHOWN_ONCE.get((method, path), 303 if method == "POST" else 200)
    if action is None:  # the sign-in page
        if actor == "anonymous":
            return ok
        return 302  # signed-in users are sent home
    if actor == "anonymous":
        return 302
    role = "admin" if actor == "other_tenant_admin" else actor
    roles = action if isinstance(action, frozenset) else PERMISSIONS.get(action, ALL)
    if role not in roles:
        return 403
    if actor == "other_tenant_admin" and is_object:
        return 404
    return ok


CASES = [
    pytest.param(actor, *route, id=f"{actor}-{route[0]}-{route[1]}")
    for route in ROUTES
    for actor in ACTORS
]


def ticket_fixture(app, demo) -> dict[str, int]:
    """Give DEMO-1 an attachment; return its version and the attachment id."""
    from cass.models import Ticket, User
    from cass.services.attachments import attach
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        engineer = db.session.get(User, demo["engineer@demo.test"])
        item = attach(ticket, engineer, io.BytesIO(PNG), "matrix.png")
        return {"version": ticket.version, "attachment": item.id, "id": ticket.id}


def saved_view_fixture(app, demo, actor) -> int:
    """Save a view of the actor (the demo agent's for anonymous and the other tenant)."""
    from cass.models import SavedView
    from cass.tenancy import tenant_context

    owner = ACTORS[actor] if actor not in ("anonymous", "other_tenant_admin") else None
    with app.app_context(), tenant_context(demo["demo"]):
        view = SavedView(
            tenant_id=demo["demo"],
            owner_id=demo[owner or "agent@demo.test"],
            name="Mine",
            query="status=open",
        )
        db.session.add(view)
        db.session.commit()
        return view.id


def harbour_site(app) -> int:
    """Return the id of the demo site Harbour Car Park."""
    from cass.models import Site
    from cass.tenancy import system_context

    with app.app_context(), system_context():
        return db.session.scalar(select(Site.id).where(Site.name == "Harbour Car Park"))


def tariff_fixture(app, demo) -> tuple[int, int]:
    """Give Harbour Car Park a tariff for 2020; return its id and the site's."""
    from datetime import UTC, datetime

    from cass.models import Site, Tariff
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        site = db.session.scalar(select(Site).where(Site.name == "Harbour Car Park"))
        tariff = Tariff(
            tenant_id=demo["demo"],
            site_id=site.id,
            name="Matrix",
            currency="EUR",
            valid_from=datetime(2020, 1, 1, tzinfo=UTC),
            valid_to=datetime(2021, 1, 1, tzinfo=UTC),
        )
        db.session.add(tariff)
        db.session.commit()
        return tariff.id, site.id


def charger_fixture(app, demo) -> tuple[str, int]:
    """Return the OCPP id of DEMO-1's charger and the id of a new pending command on it."""
    from datetime import UTC, datetime, timedelta

    from cass.models import Charger, ChargerCommand, Ticket
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        charger = db.session.get(Charger, ticket.charger_id)
        command = ChargerCommand(
            tenant_id=demo["demo"],
            charger_id=charger.id,
            action="ClearCache",
            payload={},
            expires_at=datetime.now(UTC) + timedelta(hours=1),
        )
        db.session.add(command)
        db.session.commit()
        return charger.ocpp_id, command.id


def sla_fixture(app, demo) -> dict[str, int]:
    """Give the demo tenant a calendar no policy names, with a holiday, and a P4 policy."""
    from datetime import date

    from cass.models import BusinessCalendar, CalendarHoliday, SlaPolicy, SlaTarget
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        calendar = BusinessCalendar(
            tenant_id=demo["demo"], name="Matrix", hours=[[[540, 1020]]] * 5 + [[], []]
        )
        policy = SlaPolicy(tenant_id=demo["demo"], name="Matrix P4", priority="P4", site_id=None)
        db.session.add_all([calendar, policy])
        db.session.flush()
        holiday = CalendarHoliday(
            tenant_id=demo["demo"], calendar_id=calendar.id, day=date(2027, 5, 1), name="May"
        )
        target = SlaTarget(
            tenant_id=demo["demo"], policy_id=policy.id, clock="resolution", target_minutes=60
        )
        db.session.add_all([holiday, target])
        db.session.commit()
        return {"calendar": calendar.id, "holiday": holiday.id, "policy": policy.id}


def rule_fixture(app, demo) -> int:
    """Return the id of the demo tenant's connector-fault rule."""
    from cass.models import WorkflowRule
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        return db.session.scalar(
            select(WorkflowRule.id).where(WorkflowRule.event == "connector_faulted")
        )


def visit_fixture(app, demo) -> int:
    """Book the demo engineer (with the demo vendor) for DEMO-1; return the visit's id."""
    from datetime import UTC, datetime

    from cass.models import Ticket, User
    from cass.services import visits
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        ticket = db.session.scalar(select(Ticket).where(Ticket.number == 1))
        start = datetime(2027, 1, 4, 14, tzinfo=UTC)
        visit = visits.book(
            ticket,
            db.session.get(User, demo["manager@demo.test"]),
            starts_at=start,
            ends_at=start.replace(hour=15),
            engineer_id=demo["engineer@demo.test"],
            vendor_id=demo["vendor:Demo Field Services"],
        )
        db.session.commit()
        return visit.id


def api_token_fixture(app, demo, actor) -> int:
    """Give the actor (the demo agent for anonymous and the other tenant) a live API token;
    return its id."""
    from cass.models import ApiToken, User
    from cass.services import api_tokens
    from cass.tenancy import tenant_context

    owner = ACTORS[actor] if actor not in ("anonymous", "other_tenant_admin") else None
    with app.app_context(), tenant_context(demo["demo"]):
        api_tokens.create(db.session.get(User, demo[owner or "agent@demo.test"]), "Matrix", "read")
        return db.session.scalar(select(ApiToken.id).order_by(ApiToken.id.desc()).limit(1))


def report_fixture(app, demo) -> dict[str, int]:
    """Give the demo manager a daily schedule and a written file of it; return their ids."""
    from datetime import UTC, datetime, time, timedelta

    from cass.models import ReportExport, ReportSchedule
    from cass.storage import get_storage
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        schedule = ReportSchedule(
            tenant_id=demo["demo"],
            owner_id=demo["manager@demo.test"],
            name="Matrix",
            slug="tickets",
            frequency="daily",
            at_time=time(6, 0),
        )
        db.session.add(schedule)
        db.session.flush()
        key = f"t{demo['demo']}/matrix/{schedule.id}/matrix.csv"
        get_storage(app).put(key, io.BytesIO(b"key\n"), "text/csv", 4)
        export = ReportExport(
            tenant_id=demo["demo"],
            schedule_id=schedule.id,
            owner_id=demo["manager@demo.test"],
            slug="tickets",
            title="Matrix",
            status="done",
            storage_key=key,
            filename="matrix.csv",
            size=4,
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        db.session.add(export)
        db.session.commit()
        return {"schedule": schedule.id, "export": export.id}


def webhook_fixture(app, demo) -> dict[str, int]:
    """Give the demo tenant an endpoint with one failed delivery; return their ids."""
    from sqlalchemy import update

    from cass.models import User, WebhookDelivery
    from cass.services import webhooks
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        admin = db.session.get(User, demo["admin@demo.test"])
        endpoint, _ = webhooks.create_endpoint(
            admin, "https://hooks.example.com/m", "", ["sla.warning"]
        )
        delivery = webhooks.send_test(admin, endpoint)
        db.session.execute(
            update(WebhookDelivery).where(WebhookDelivery.id == delivery.id).values(status="failed")
        )
        db.session.commit()
        return {"webhook": endpoint.id, "delivery": delivery.id}


@pytest.mark.parametrize(("actor", "method", "path", "action", "is_object", "data"), CASES)
def test_access_matrix(app, demo, actor, method, path, action, is_object, data):
    client = app.test_client()
    if ACTORS[actor]:
        assert login(client, ACTORS[actor]).status_code == 303
    token = csrf_from(
        client.get("/login" if not ACTORS[actor] else "/account/password").get_data(as_text=True)
    )
    ticket = ticket_fixture(app, demo)
    tariff = tariff_fixture(app, demo) if "tariff" in path else (0, 0)
    charger = charger_fixture(app, demo) if "{charger}" in path else ("", 0)
    sla_ids = sla_fixture(app, demo) if "/admin/sla/" in path else {}
    report_ids = report_fixture(app, demo) if "{schedule}" in path or "{export}" in path else {}
    hooks = webhook_fixture(app, demo) if "{webhook}" in path or "{delivery}" in path else {}
    url = (
        path.replace("<name>", "hold")
        .replace("<action>", "Reset")
        .format(
            agent=demo["agent@demo.test"],
            vendor=demo["vendor:Demo Field Services"],
            ticket="DEMO-1",
            visit=visit_fixture(app, demo) if "{visit}" in path else "",
            api_token=api_token_fixture(app, demo, actor) if "{api_token}" in path else "",
            attachment=ticket["attachment"],
            view=saved_view_fixture(app, demo, actor) if "{view}" in path else "",
            rule=rule_fixture(app, demo) if "{rule}" in path else "",
            tariff=tariff[0],
            site_id=harbour_site(app),
            charger_id=demo["DEMO-CP-0003"],
            charger=charger[0],
            command=charger[1],
            calendar=sla_ids.get("calendar"),
            holiday=sla_ids.get("holiday"),
            policy=sla_ids.get("policy"),
            schedule=report_ids.get("schedule"),
            export=report_ids.get("export"),
            report="sla",
            webhook=hooks.get("webhook"),
            delivery=hooks.get("delivery"),
        )
    )
    if method == "GET":
        response = client.get(
            url, query_string={"q": "harbour"} if url.endswith("lookup") else None
        )
    elif data == "csv":
        response = client.post(
            url,
            data={"csrf_token": token, "file": (io.BytesIO(CSV), "chargers.csv")},
            content_type="multipart/form-data",
        )
    elif data == "ics":
        response = client.post(
            url,
            data={"csrf_token": token, "file": (io.BytesIO(ICS), "days.ics")},
            content_type="multipart/form-data",
        )
    elif data == "file":
        response = client.post(
            url,
            data={"csrf_token": token, "file": (io.BytesIO(PNG), "a.png")},
            content_type="multipart/form-data",
        )
    else:
        fill = {
            "{version}": str(ticket["version"]),
            "{ticket_id}": str(ticket["id"]),
            "{site_id}": str(harbour_site(app)),
            "{engineer}": f"user:{demo['engineer@demo.test']}",
        }
        form = {k: fill.get(v, v) for k, v in (data or {}).items()}
        form = {k: str(tariff[1]) if v == "{tariff_site}" else v for k, v in form.items()}
        response = client.post(url, data={"csrf_token": token, **form})
    want = expected(actor, method, path, action, is_object)
    assert response.status_code == want, response.get_data(as_text=True)[:500]
    if want == 302 and actor == "anonymous":
        assert response.headers["Location"].startswith("/login")


def test_every_route_is_in_the_matrix(app):
    covered = {
        (
            m,
            p.replace("{agent}", "<int:user_id>")
            .replace("{vendor}", "<int:vendor_id>")
            .replace("{ticket}", "<key>")
            .replace("{attachment}", "<int:attachment_id>")
            .replace("{tariff}", "<int:tariff_id>")
            .replace("{view}", "<int:view_id>")
            .replace("{rule}", "<int:rule_id>")
            .replace("{site_id}", "<int:site_id>")
            .replace("{charger}", "<ocpp_id>")
            .replace("{command}", "<int:command_id>")
            .replace("{charger_id}", "<int:charger_id>")
            .replace("{calendar}", "<int:calendar_id>")
            .replace("{holiday}", "<int:holiday_id>")
            .replace("{policy}", "<int:policy_id>")
            .replace("{schedule}", "<int:schedule_id>")
            .replace("{export}", "<int:export_id>")
            .replace("{visit}", "<int:visit_id>")
            .replace("{api_token}", "<int:token_id>")
            .replace("{report}", "<slug>")
            .replace("{webhook}", "<int:endpoint_id>")
            .replace("{delivery}", "<int:delivery_id>"),
        )
        for m, p, *_ in ROUTES
    }
    # The JSON API's blueprints (flask-smorest's): tests/test_api_permissions.py covers them.
    bearer = set(app.extensions["flask-smorest"]["blp_name_to_api"])
    routes = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
        and not rule.endpoint.startswith("health.")
        and rule.endpoint.partition(".")[0] not in bearer
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert routes == covered


def test_every_action_is_used_by_a_route(app):
    from cass.navigation import NAV

    used = {getattr(view, "required_action", None) for view in app.view_functions.values()}
    used |= {action for *_, action in NAV}
    assert set(PERMISSIONS) <= used


# The calendar feed answers to the secret token in its URL, not to a session: every actor, signed
# in or not, of either tenant, gets the feed for a live token and 404 for any other. Its cells are
# the test below; the row joins ROUTES after CASES are made, for the census of routes only.
ROUTES.append(("GET", "/calendar/<token>.ics", "token", False, None))


@pytest.mark.parametrize("actor", ACTORS)
def test_calendar_feed_answers_to_its_token_alone(app, demo, actor):
    from cass.models import User
    from cass.services import calendar_feeds
    from cass.tenancy import tenant_context

    with app.app_context(), tenant_context(demo["demo"]):
        live = calendar_feeds.create(db.session.get(User, demo["engineer@demo.test"]))
        manager = db.session.get(User, demo["manager@demo.test"])
        revoked = calendar_feeds.create(manager)
        calendar_feeds.revoke(manager)
    client = app.test_client()
    if ACTORS[actor]:
        assert login(client, ACTORS[actor]).status_code == 303
    response = client.get(f"/calendar/{live}.ics")
    assert response.status_code == 200
    assert response.content_type == "text/calendar; charset=utf-8"
    assert client.get(f"/calendar/{revoked}.ics").status_code == 404
    assert client.get("/calendar/not-a-token.ics").status_code == 404
