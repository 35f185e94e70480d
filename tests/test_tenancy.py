"""Tenants, twice enforced: scoped queries and Postgres row-level security (issue 2, point 6)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from cass.extensions import db
from cass.models import (
    Attachment,
    AuditLog,
    BusinessCalendar,
    CalendarHoliday,
    Charger,
    ChargerCommand,
    ChargerEvent,
    ChargerModelSetting,
    ChargingSession,
    Connector,
    CsmsEvent,
    DataTransferRule,
    DiagnosticsRequest,
    FirmwareJob,
    IdTag,
    MeterValue,
    Notification,
    OcppMessage,
    ReportExport,
    ReportSchedule,
    ReportSnapshot,
    ReportSnapshotDirty,
    ReportSnapshotSpan,
    RuleRun,
    SavedView,
    Site,
    SiteLoad,
    SlaClock,
    SlaEvent,
    SlaPolicy,
    SlaTarget,
    Tariff,
    Tenant,
    Ticket,
    TicketEvent,
    User,
    Vendor,
    Visit,
    WorkflowRule,
    Worklog,
)
from cass.models.api_tokens import ApiToken
from cass.models.calendar_feeds import CalendarFeed
from cass.models.webhooks import WebhookDelivery, WebhookEndpoint
from cass.tenancy import bind_tenant, scoped, system_context, tenant_context

# Every tenant table, with one way to make a row of it for a given tenant (ids from `demo`).
TENANT_MODELS = [
    Tenant,
    Vendor,
    User,
    Site,
    Charger,
    Connector,
    Ticket,
    TicketEvent,
    Worklog,
    Attachment,
    SavedView,
    AuditLog,
    ChargerEvent,
    MeterValue,
    ChargingSession,
    IdTag,
    DataTransferRule,
    ChargerModelSetting,
    ChargerCommand,
    FirmwareJob,
    DiagnosticsRequest,
    OcppMessage,
    WorkflowRule,
    RuleRun,
    Tariff,
    CsmsEvent,
    BusinessCalendar,
    CalendarHoliday,
    SlaPolicy,
    SlaTarget,
    SlaClock,
    SlaEvent,
    Notification,
    ReportSchedule,
    ReportExport,
    ReportSnapshot,
    ReportSnapshotSpan,
    ReportSnapshotDirty,
    SiteLoad,
    Visit,
    CalendarFeed,
    ApiToken,
    WebhookEndpoint,
    WebhookDelivery,
]
# Rows of the bridge's tables for a tenant's charger (:t tenant, :c charger), as the bridge writes.
BRIDGE_ROWS = [
    "INSERT INTO charger_event (tenant_id, charger_id, kind) VALUES (:t, :c, 'boot')",
    "INSERT INTO meter_value (tenant_id, charger_id, connector_no, at, measurand, value) "
    "VALUES (:t, :c, 1, now(), 'Energy.Active.Import.Register', 1)",
    "INSERT INTO charging_session (tenant_id, charger_id, connector_no, started_at) "
    "VALUES (:t, :c, 1, now())",
    "INSERT INTO data_transfer_rule (tenant_id, vendor_id) VALUES (:t, 'acme.example')",
    "INSERT INTO charger_model_setting (tenant_id, manufacturer, model) VALUES (:t, 'X', 'Y')",
    "INSERT INTO charger_command (tenant_id, charger_id, action, expires_at) "
    "VALUES (:t, :c, 'Reset', now())",
    "INSERT INTO firmware_job (tenant_id, charger_id, location, retrieve_at) "
    "VALUES (:t, :c, 'https://fw.example/1.bin', now())",
    "INSERT INTO diagnostics_request (tenant_id, charger_id, location) "
    "VALUES (:t, :c, 'ftp://diag.example/')",
    "INSERT INTO ocpp_message (at, tenant_id, charger_id, direction, payload) "
    "VALUES (now(), :t, :c, 'in', '{}')",
    "INSERT INTO rule_run (tenant_id, rule_id, event, matched) "
    "SELECT :t, id, event, false FROM workflow_rule WHERE tenant_id = :t LIMIT 1",
    "INSERT INTO tariff (tenant_id, site_id, name, valid_from) "
    "SELECT :t, site_id, 'Standard', now() FROM charger WHERE id = :c",
    "INSERT INTO csms_event (tenant_id, event_id, kind, payload) VALUES (:t, 'e-1', 'fault', '{}')",
    # Calendars, policies and targets come with every tenant (cass.sla_defaults).
    "INSERT INTO calendar_holiday (tenant_id, calendar_id, day, name) "
    "SELECT :t, id, '2026-12-25', 'Christmas' FROM business_calendar WHERE tenant_id = :t LIMIT 1",
    "INSERT INTO sla_clock (tenant_id, ticket_id, clock, target_minutes, started_at) "
    "SELECT :t, id, 'on_site', 60, now() FROM ticket WHERE tenant_id = :t LIMIT 1 "
    "ON CONFLICT DO NOTHING",
    "INSERT INTO sla_event (tenant_id, ticket_id, clock, kind) "
    "SELECT :t, id, 'resolution', 'started' FROM ticket WHERE tenant_id = :t LIMIT 1",
    "INSERT INTO notification (tenant_id, user_id, channel, kind, subject) "
    "SELECT :t, id, 'in_app', 'test', 'Hello' FROM app_user WHERE tenant_id = :t LIMIT 1",
    "INSERT INTO report_schedule (tenant_id, owner_id, name, slug, frequency, at_time) "
    "SELECT :t, id, 'Daily', 'tickets', 'daily', '06:00' FROM app_user WHERE tenant_id = :t "
    "LIMIT 1",
    "INSERT INTO report_export (tenant_id, schedule_id, owner_id, slug, title, expires_at) "
    "SELECT :t, id, owner_id, slug, name, now() FROM report_schedule WHERE tenant_id = :t",
    "INSERT INTO report_snapshot (tenant_id, report, variant, day, key, figures) "
    "VALUES (:t, 'sla', 'zone=UTC', '2025-01-01', '', '{1}')",
    "INSERT INTO report_snapshot_span (tenant_id, report, variant) VALUES (:t, 'sla', 'zone=UTC')",
    "INSERT INTO report_snapshot_dirty (tenant_id, day) VALUES (:t, '2025-01-01')",
    "INSERT INTO site_load (tenant_id, site_id, q, w, wh) "
    "SELECT :t, site_id, '2025-01-01', 1000, 250 FROM charger WHERE id = :c",
    "INSERT INTO visit (tenant_id, ticket_id, vendor_id, starts_at, ends_at) "
    "SELECT :t, t.id, v.id, now(), now() + interval '1 hour' FROM ticket t "
    "JOIN vendor v ON v.tenant_id = t.tenant_id WHERE t.tenant_id = :t LIMIT 1",
    "INSERT INTO calendar_feed (tenant_id, user_id, token_hash) "
    "SELECT :t, id, encode(sha256(('feed-' || id)::bytea), 'hex') FROM app_user "
    "WHERE tenant_id = :t LIMIT 1",
    "INSERT INTO api_token (tenant_id, user_id, name, scope, prefix, token_hash) "
    "SELECT :t, id, 'tenancy', 'read', 'cass_tenancy', "
    "encode(sha256(('api-' || id)::bytea), 'hex') FROM app_user WHERE tenant_id = :t LIMIT 1",
    "INSERT INTO webhook_endpoint (tenant_id, url, secret, events) "
    "VALUES (:t, 'https://hooks.example/x', 's', ARRAY['sla.warning'])",
    "INSERT INTO webhook_delivery (tenant_id, endpoint_id, event_type, payload) "
    "SELECT :t, id, 'ping', '{}' FROM webhook_endpoint WHERE tenant_id = :t",
]


@pytest.fixture
def every_table(app, demo):
    """Make sure each tenant has a row in every tenant table (the demo seed lacks a few)."""
    with app.app_context(), system_context():
        for slug in ("demo", "acme"):
            tenant = demo[slug]
            ticket = db.session.scalar(select(Ticket).where(Ticket.tenant_id == tenant).limit(1))
            owner = db.session.scalar(select(User.id).where(User.tenant_id == tenant).limit(1))
            if not db.session.scalar(
                select(Worklog.id).where(Worklog.tenant_id == tenant).limit(1)
            ):
                db.session.add(Worklog(tenant_id=tenant, ticket_id=ticket.id, body="note"))
            db.session.add(
                Attachment(
                    tenant_id=tenant,
                    ticket_id=ticket.id,
                    filename="a.png",
                    content_type="image/png",
                    size=1,
                    storage_key=f"t{tenant}/a.png",
                )
            )
            db.session.add(SavedView(tenant_id=tenant, owner_id=owner, name="Mine", query="q="))
            charger = db.session.scalar(
                select(Charger.id).where(Charger.tenant_id == tenant).limit(1)
            )
            for sql in BRIDGE_ROWS:
                db.session.execute(text(sql), {"t": tenant, "c": charger})
        db.session.commit()
    return demo


def tenant_column(model) -> str:
    return "id" if model is Tenant else "tenant_id"


def test_every_tenant_table_is_listed_here(app):
    """A new table with tenant_id must join the isolation tests below."""
    with app.app_context():
        tables = {t.name for t in db.metadata.sorted_tables if "tenant_id" in t.c} | {"tenant"}
    assert tables == {m.__tablename__ for m in TENANT_MODELS}


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__tablename__)
def test_tenant_id_is_not_null_and_indexed(app, model):
    with app.app_context():
        column = tenant_column(model)
        table = model.__table__
        assert not table.c[column].nullable
        if model is not Tenant:
            # The leading column of each index (expression indexes have none).
            indexed = {i.columns.keys()[0] for i in table.indexes if i.columns}
            indexed |= {
                c.columns.keys()[0]
                for c in table.constraints
                if hasattr(c, "columns") and c.columns
            }
            assert column in indexed


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__tablename__)
def test_rls_is_enabled_with_a_policy(app, model):
    with app.app_context(), system_context():
        row = db.session.execute(
            text(
                "SELECT c.relrowsecurity, count(p.*) FROM pg_class c "
                "LEFT JOIN pg_policy p ON p.polrelid = c.oid WHERE c.relname = :t GROUP BY 1"
            ),
            {"t": model.__tablename__},
        ).one()
        assert row == (True, 1)


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__tablename__)
def test_forgotten_filter_still_returns_only_the_current_tenant(app, every_table, model):
    """A query without any tenant filter sees one tenant's rows, and none with no tenant."""
    demo = every_table
    column = tenant_column(model)
    with app.app_context():
        with system_context():
            everyone = db.session.scalars(select(getattr(model, column))).all()
        assert {demo["demo"], demo["acme"]} <= set(everyone)
        for slug in ("demo", "acme"):
            with tenant_context(demo[slug]):
                seen = db.session.scalars(select(getattr(model, column))).all()
                assert seen, f"{model.__tablename__}: tenant {slug} sees nothing"
                assert set(seen) == {demo[slug]}
                assert len(seen) == everyone.count(demo[slug])
        bind_tenant(None)
        db.session.rollback()
        assert db.session.scalars(select(model)).all() == []
        assert (
            db.session.execute(text(f'SELECT count(*) FROM "{model.__tablename__}"')).scalar() == 0
        )


def test_the_app_role_does_not_bypass_rls(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        row = db.session.execute(
            text(
                "SELECT current_user, rolsuper, rolbypassrls FROM pg_roles "
                "WHERE rolname = current_user"
            )
        ).one()
        assert row == ("cass_app", False, False)


def test_cannot_write_a_row_into_another_tenant(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        db.session.add(Vendor(tenant_id=demo["acme"], name="Smuggled"))
        with pytest.raises(DBAPIError, match="row-level security"):
            db.session.flush()
        db.session.rollback()
    with app.app_context(), system_context():
        assert db.session.scalar(select(Vendor).where(Vendor.name == "Smuggled")) is None


def test_cannot_move_a_row_to_another_tenant(app, demo):
    with app.app_context(), tenant_context(demo["demo"]):
        with pytest.raises(DBAPIError, match="row-level security"):
            db.session.execute(text("UPDATE site SET tenant_id = :other"), {"other": demo["acme"]})
        db.session.rollback()


def test_cannot_link_to_another_tenants_parent(app, demo):
    """Foreign keys carry tenant_id, so a charger cannot hang off another tenant's site."""
    with app.app_context(), system_context():
        acme_site = db.session.scalar(select(Site.id).where(Site.tenant_id == demo["acme"]))
        charger = Charger(tenant_id=demo["demo"], ocpp_id="X-1", site_id=acme_site)
        db.session.add(charger)
        with pytest.raises(IntegrityError, match="fk_charger_site"):
            db.session.flush()


def test_scoped_helper_filters_by_tenant_and_404s_without_one(app, demo):
    from werkzeug.exceptions import NotFound

    with app.app_context():
        with tenant_context(demo["acme"]):
            sql = str(scoped(Site).compile())
            assert "site.tenant_id =" in sql
            assert {s.tenant_id for s in db.session.scalars(scoped(Site))} == {demo["acme"]}
        bind_tenant(None)
        with pytest.raises(NotFound):
            scoped(Site)


def test_tenant_setting_is_per_transaction(app, demo):
    """After commit the next transaction is bound again; nothing leaks across connections."""
    with app.app_context(), tenant_context(demo["demo"]):
        db.session.commit()
        assert db.session.execute(text("SELECT current_setting('app.tenant_id')")).scalar() == str(
            demo["demo"]
        )
    with app.app_context(), system_context():
        value = db.session.execute(text("SELECT current_setting('app.tenant_id', true)")).scalar()
        assert value in (None, "")


def test_model_columns_match_inspection(app):
    """Every mapped model lives in the migrated schema."""
    with app.app_context():
        names = set(inspect(db.engine).get_table_names())
    assert {m.__tablename__ for m in TENANT_MODELS} <= names
