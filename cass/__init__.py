"""CASS, the Charger After-Service System: the web application factory."""

from __future__ import annotations

from typing import Any

from flask import Flask

from cass.config import ROOT, Config, instance_dir, sqlalchemy_url
from cass.extensions import csrf, db, htmx, login_manager, migrate
from cass.pool import send_rollbacks_early, watch_connections


def create_app(config: Config | None = None, **overrides: Any) -> Flask:
    """Create and configure the CASS web application."""
    app = Flask(
        __name__,
        instance_path=str(instance_dir()),
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
    )
    app.config.from_object(config or Config())
    app.config.update(overrides)
    if not app.config.get("DATABASE_URL"):
        from cass.embedded_db import resolve_database_url

        app.config["DATABASE_URL"] = resolve_database_url()
    app.config["SQLALCHEMY_DATABASE_URI"] = sqlalchemy_url(app.config["DATABASE_URL"])

    db.init_app(app)
    with app.app_context():
        watch_connections(db.engine)
    send_rollbacks_early(app, db.session)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))
    csrf.init_app(app)
    htmx.init_app(app)
    login_manager.init_app(app)

    from cass import models  # noqa: F401  (registers the models with the metadata)
    from cass.admin.chargers import bp as charger_admin_bp
    from cass.admin.routes import bp as admin_bp
    from cass.api.admin_routes import bp as csms_admin_bp
    from cass.api.routes import bp as api_bp
    from cass.api_tokens.routes import bp as api_tokens_bp
    from cass.auth.routes import bp as auth_bp
    from cass.auth.session import init_sessions
    from cass.calendar_feeds.routes import bp as calendar_feeds_bp
    from cass.chargers import bp as chargers_bp
    from cass.errors import init_error_handlers
    from cass.health.routes import bp as health_bp
    from cass.live_routes import bp as live_bp
    from cass.main.routes import bp as main_bp
    from cass.metrics import init_metrics
    from cass.navigation import init_navigation
    from cass.notifications.routes import bp as notifications_bp
    from cass.rendering import init_rendering
    from cass.reports.presenting import init_presenting
    from cass.reports.routes import bp as reports_bp
    from cass.reports.schedules import bp as report_schedules_bp
    from cass.rules.routes import bp as rules_bp
    from cass.security import init_security_headers
    from cass.sessions.routes import bp as sessions_bp
    from cass.sites.routes import bp as sites_bp
    from cass.sla.at_risk import bp as at_risk_bp
    from cass.sla.routes import bp as sla_bp
    from cass.sla.routes import jobs_bp
    from cass.tariffs.routes import bp as tariffs_bp
    from cass.tickets import bp as tickets_bp
    from cass.tickets.export_routes import bp as export_bp
    from cass.visits.routes import bp as visits_bp
    from cass.webhooks.routes import bp as webhooks_bp

    init_metrics(app)
    init_sessions(app)
    init_security_headers(app)
    init_error_handlers(app)
    init_navigation(app)
    init_rendering(app)
    init_presenting(app)
    for blueprint in (health_bp, auth_bp, main_bp, admin_bp, live_bp, tickets_bp, export_bp):
        app.register_blueprint(blueprint)
    app.register_blueprint(chargers_bp)
    for blueprint in (sites_bp, charger_admin_bp):
        app.register_blueprint(blueprint)
    for blueprint in (sessions_bp, tariffs_bp, csms_admin_bp, api_bp):
        app.register_blueprint(blueprint)
    # The calendar feed (/calendar/<token>.ics) and its page under /account.
    app.register_blueprint(calendar_feeds_bp)
    # Personal API tokens (/account/api-tokens) and the admin's view of them (/admin/api-tokens).
    app.register_blueprint(api_tokens_bp)
    for blueprint in (rules_bp, sla_bp, jobs_bp, at_risk_bp, notifications_bp, visits_bp):
        app.register_blueprint(blueprint)
    # Outbound webhooks admin (/admin/webhooks).
    app.register_blueprint(webhooks_bp)
    # Scheduled exports and their files (cass.reports.schedules) register before the reports,
    # whose /reports/<slug> would otherwise also match /reports/schedules.
    for blueprint in (report_schedules_bp, reports_bp):
        app.register_blueprint(blueprint)
    csrf.exempt(health_bp)
    # The CSMS API authenticates each request by its HMAC signature, not by a session.
    csrf.exempt(api_bp)
    # The JSON API for integrations (/api/v1/…): bearer tokens, its OpenAPI document and docs.
    from cass.api.v1 import init_api

    init_api(app)
    return app
