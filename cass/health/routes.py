"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app, jsonify
from flask_migrate import Migrate
from sqlalchemy import text
from werkzeug.wrappers import Response

from cass.extensions import db
from cass.metrics import metrics_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Answer that the process is up."""
    return jsonify(status="ok")


def _head_revisions() -> set[str]:
    """Return the head revisions of the migration scripts (read once per process)."""
    heads = current_app.extensions.get("cass_migration_heads")
    if heads is None:
        migrate: Migrate = current_app.extensions["migrate"].migrate
        config = migrate.get_config()
        heads = set(ScriptDirectory.from_config(config).get_heads())
        current_app.extensions["cass_migration_heads"] = heads
    return heads


@bp.get("/readyz")
def readyz() -> Response:
    """Answer 200 when the database is reachable and migrated to head, else 503."""
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:  # any failure to reach the database means "not ready"
        return jsonify(status="unavailable", database=type(exc).__name__), 503
    heads = _head_revisions()
    if current != heads:
        return jsonify(status="migrating", current=sorted(current), head=sorted(heads)), 503
    return jsonify(status="ready", revision=sorted(current))


@bp.get("/metrics")
def metrics() -> Response:
    """Expose request counts and latencies in Prometheus text format."""
    return metrics_response()
