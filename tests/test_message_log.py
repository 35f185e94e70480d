"""The OCPP message log: daily partitions, made ahead and dropped after retention (point 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cass.scheduler import _jobs, run_locked
from cass.services.message_log import apply_retention
from cass.tenancy import system_context
from tests.ocpp_support import execute, query


def partitions(database_url: str) -> set[str]:
    rows = query(
        database_url,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'ocpp_message'::regclass",
    )
    return {r[0] for r in rows}


def day_name(days_from_today: int) -> str:
    day = datetime.now(UTC).date() + timedelta(days=days_from_today)
    return f"ocpp_message_{day:%Y%m%d}"


def old_partition(database_url: str, days_ago: int) -> str:
    day = datetime.now(UTC).date() - timedelta(days=days_ago)
    name = f"ocpp_message_{day:%Y%m%d}"
    execute(
        database_url,
        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF ocpp_message FOR VALUES FROM "
        f"('{day} 00:00+00') TO ('{day + timedelta(days=1)} 00:00+00')",
    )
    return name


def test_retention_drops_whole_old_days_and_makes_the_coming_ones(app, demo, database_url):
    keep, drop = old_partition(database_url, 29), old_partition(database_url, 31)
    charger = demo["DEMO-CP-0001"]
    old_day = datetime.now(UTC) - timedelta(days=31)
    execute(
        database_url,
        "INSERT INTO ocpp_message (at, tenant_id, charger_id, direction, payload) "
        "VALUES (%s, %s, %s, 'in', '{}'), (now(), %s, %s, 'out', '{}')",
        (old_day, demo["demo"], charger, demo["demo"], charger),
    )
    with app.app_context(), system_context():
        assert apply_retention(30) == 1
    names = partitions(database_url)
    assert keep in names and drop not in names
    assert {day_name(n) for n in range(0, 4)} <= names
    assert query(database_url, "SELECT direction FROM ocpp_message") == [("out",)]


def test_retention_refuses_to_keep_nothing(app):
    with app.app_context(), system_context(), pytest.raises(ValueError, match="at least one day"):
        apply_retention(0)


def test_the_scheduler_runs_retention_with_the_configured_days(app, database_url):
    drop = old_partition(database_url, 8)
    app.config["CASS_OCPP_LOG_RETENTION_DAYS"] = 7
    name = "ocpp_message_retention"
    job, trigger = _jobs(app)[name]
    assert trigger == {"trigger": "interval", "hours": 6}
    assert run_locked(app, name, job)
    assert drop not in partitions(database_url)
