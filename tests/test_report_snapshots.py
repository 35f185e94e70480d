"""Report snapshots (issue 7, point 5): the nightly job stores each report's figures per day, the
reports read them over long periods, and a report over any period equals the raw computation,
before and after late changes to old days (marked stale by the triggers of migration 0014).

Three months of history (January to March 2025) in a tenant whose day is New York's; the raw
figures are computed with `snapshots.raw()`.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import text

from cass.extensions import db
from cass.models import JobRun
from cass.scheduler import _jobs, run_locked
from cass.services import reports
from cass.services.reports import snapshots
from cass.tenancy import system_context, tenant_context
from tests.ocpp_support import execute, query
from tests.test_reports import Desk

NOW = datetime(2025, 4, 2, 12, tzinfo=UTC)  # the job's clock: every fixture day has ended
ENGINEER, MANAGER = "engineer@demo.test", "manager@demo.test"
# The periods asked for: all three months, and one that starts and ends mid-month.
RANGES = [("2025-01-01", "2025-03-31"), ("2025-01-15", "2025-02-20")]


@pytest.fixture
def history(database_url, demo) -> Desk:
    """Seed three months of tickets, clocks, worklogs, events and sessions (set-based)."""
    execute(database_url, "UPDATE tenant SET timezone = 'America/New_York' WHERE slug = 'demo'")
    desk = Desk(database_url, demo)
    chargers = [demo[f"DEMO-CP-000{n}"] for n in (1, 2, 5)]
    people = [demo[ENGINEER], demo[MANAGER]]
    vendor = next(v for k, v in demo.items() if k.startswith("vendor:"))
    execute(
        database_url,
        """
        INSERT INTO ticket (tenant_id, number, title, category, priority, status, channel,
                            charger_id, site_id, assignee_user_id, assignee_vendor_id,
                            created_at, updated_at, resolved_at)
        SELECT %(t)s, 80000 + i, 'History',
               (ARRAY['hardware','connectivity','payment'])[1 + i %% 3],
               'P' || (1 + i %% 4),
               (ARRAY['new','assigned','in_progress','resolved','closed','cancelled','on_hold'])
                   [1 + i %% 7],
               (ARRAY['phone','email','web'])[1 + i %% 3],
               c.id, c.site_id,
               CASE WHEN i %% 3 = 2 THEN NULL ELSE (%(people)s::bigint[])[1 + i %% 2] END,
               CASE WHEN i %% 5 = 0 THEN %(vendor)s END,
               created, created,
               CASE WHEN i %% 7 IN (3, 4) THEN created + (i %% 50) * interval '1 hour' END
        FROM generate_series(1, 300) AS i
        CROSS JOIN LATERAL (SELECT timestamptz '2025-01-01 02:00+00' + i * interval '7 hours'
                            AS created) AS w
        JOIN charger c ON c.id = (%(chargers)s::bigint[])[1 + i %% 3]
        """,
        {"t": demo["demo"], "people": people, "vendor": vendor, "chargers": chargers},
    )
    execute(
        database_url,
        """
        INSERT INTO sla_clock (tenant_id, ticket_id, clock, target_minutes, started_at, state,
                               stopped_at)
        SELECT t.tenant_id, t.id, k.clock, 60, t.created_at,
               CASE WHEN t.status = 'cancelled' THEN 'cancelled'
                    WHEN t.status = 'new' THEN (ARRAY['running','warning','paused'])[1 + t.id % 3]
                    WHEN t.id % 4 = 0 THEN 'breached' ELSE 'met' END,
               CASE WHEN t.status NOT IN ('new', 'cancelled')
                    THEN t.created_at + (t.id % 30) * interval '1 hour' END
        FROM ticket t CROSS JOIN (VALUES ('first_response'), ('resolution')) AS k(clock)
        WHERE t.number > 80000
        """,
    )
    execute(
        database_url,
        """
        INSERT INTO worklog (tenant_id, ticket_id, author_id, body, minutes, created_at)
        SELECT t.tenant_id, t.id, (%(people)s::bigint[])[1 + t.id %% 2], 'work', 15 + t.id %% 60,
               t.created_at + (t.id %% 20) * interval '1 hour'
        FROM ticket t WHERE t.number > 80000 AND t.id %% 2 = 0
        """,
        {"people": people},
    )
    execute(
        database_url,
        """
        INSERT INTO ticket_event (tenant_id, ticket_id, actor_id, at, kind, field, from_value,
                                  to_value)
        SELECT t.tenant_id, t.id, (%(people)s::bigint[])[1 + t.id %% 2],
               t.created_at + interval '3 hours', 'status', 'status', 'new', 'assigned'
        FROM ticket t WHERE t.number > 80000 AND t.status <> 'new'
        """,
        {"people": people},
    )
    execute(
        database_url,
        """
        INSERT INTO charging_session (tenant_id, charger_id, connector_no, started_at,
                                      stopped_at, energy_wh, cost, currency)
        SELECT c.tenant_id, c.id, 1, s, s + interval '1 hour', 1000 + i * 37,
               CASE WHEN i %% 9 = 0 THEN NULL ELSE round(i * 0.37, 4) END,
               CASE WHEN i %% 9 = 0 THEN NULL WHEN i %% 11 = 0 THEN 'USD' ELSE 'EUR' END
        FROM generate_series(1, 250) AS i
        CROSS JOIN LATERAL (SELECT timestamptz '2025-01-01 03:00+00' + i * interval '8 hours'
                            AS s) AS w
        JOIN charger c ON c.id = (%(chargers)s::bigint[])[1 + i %% 3]
        """,
        {"chargers": chargers},
    )
    return desk


def variants(desk: Desk) -> list[tuple[str, dict[str, str]]]:
    """Return each snapshotted report with each grouping, unfiltered and with filters."""
    site = str(desk.site("DEMO-CP-0002"))
    engineer = str(desk.demo[ENGINEER])
    asked = []
    for slug in snapshots.FACTS:
        report = reports.REPORTS[slug]
        for by in report.groupings:
            for filters in ({}, {"priority": "P2"}, {"site": site}, {"engineer": engineer}):
                if all(name in report.filters for name in filters):
                    asked.append((slug, {"by": by, **filters}))
    return asked


def tables(app, desk: Desk, raw: bool = False) -> dict[str, Any]:
    """Return every asked report over every range: its rows and totals."""
    out = {}
    with app.app_context(), tenant_context(desk.tenant):
        for slug, params in variants(desk):
            for start, end in RANGES:
                args = {**params, "start": start, "end": end}
                if raw:
                    with snapshots.raw():
                        _, _, table = reports.run(slug, args)
                else:
                    _, _, table = reports.run(slug, args)
                out[f"{slug} {sorted(args.items())}"] = (table.rows, table.totals)
    return out


def refresh(app, now: datetime = NOW) -> int:
    with app.app_context():
        return snapshots.refresh(now)


def stored(database_url: str, tenant: int) -> dict[str, Any]:
    rows = query(
        database_url,
        "SELECT report, count(DISTINCT variant), count(*), min(day), max(day)"
        " FROM report_snapshot WHERE tenant_id = %s GROUP BY 1",
        (tenant,),
    )
    return {r[0]: r[1:] for r in rows}


def marks(database_url: str, tenant: int) -> set[date]:
    rows = query(
        database_url, "SELECT day FROM report_snapshot_dirty WHERE tenant_id = %s", (tenant,)
    )
    return {r[0] for r in rows}


def differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [k for k in a if a[k] != b.get(k)]


def test_reports_read_snapshots_and_equal_the_raw_computation(app, history, database_url):
    desk = history
    raw = tables(app, desk, raw=True)
    assert len(raw) > 140
    # Asking registers the filtered variants; with nothing stored yet the figures are raw.
    assert differences(tables(app, desk), raw) == []
    assert refresh(app) > 0

    kept = stored(database_url, desk.tenant)
    assert set(kept) == {"tickets-by", "sla", "resolution", "workload", "sessions", "utilization"}
    # The defaults (each grouping, unfiltered) and the filtered variants asked for; utilization
    # groups in Python, so its groupings share one variant (unfiltered, and the site asked for).
    assert kept["tickets-by"][0] == 7 * 4 and kept["workload"][0] == 3
    assert kept["utilization"][0] == 2
    assert kept["tickets-by"][2] == date(2025, 1, 1) and kept["sessions"][3] <= date(2025, 3, 31)
    spans = query(
        database_url,
        "SELECT DISTINCT first_day, last_day FROM report_snapshot_span WHERE tenant_id = %s",
        (desk.tenant,),
    )
    assert spans == [(snapshots.FLOOR, date(2025, 4, 1))]
    assert differences(tables(app, desk), raw) == []

    # The stored days are what the reports read: change one and the report shows it.
    execute(
        database_url,
        "UPDATE report_snapshot SET figures[1] = figures[1] + 1000 WHERE tenant_id = %s"
        " AND report = 'tickets-by' AND variant = 'zone=America%%2FNew_York&by=status'"
        " AND day = '2025-02-03' AND key = 'closed'",
        (desk.tenant,),
    )
    changed = tables(app, desk)
    assert sorted(differences(changed, raw)) == [
        "tickets-by [('by', 'status'), ('end', '2025-02-20'), ('start', '2025-01-15')]",
        "tickets-by [('by', 'status'), ('end', '2025-03-31'), ('start', '2025-01-01')]",
    ]


def test_late_changes_mark_their_days_and_reports_stay_exact(app, history, database_url):
    desk = history
    tables(app, desk)  # registers the filtered variants
    refresh(app)
    assert marks(database_url, desk.tenant) == set()
    tenant = desk.tenant
    other_site = query(
        database_url,
        "SELECT id FROM site WHERE tenant_id = %s AND id <> %s ORDER BY id LIMIT 1",
        (tenant, desk.site("DEMO-CP-0001")),
    )[0][0]
    # Late changes to January and February, as the app and the bridge make them.
    execute(
        database_url,
        "UPDATE ticket SET status = 'resolved', resolved_at = timestamptz '2025-02-10 15:00+00'"
        " WHERE number = 80010",  # created 4 January (in progress until now)
    )
    execute(
        database_url,
        "UPDATE ticket SET priority = 'P2', site_id = %s, assignee_user_id = %s"
        " WHERE number IN (80020, 80021)",
        (other_site, desk.demo[MANAGER]),
    )
    execute(
        database_url,
        "UPDATE sla_clock SET state = 'breached' WHERE clock = 'resolution' AND ticket_id ="
        " (SELECT id FROM ticket WHERE number = 80030)",
    )
    execute(
        database_url,
        "DELETE FROM worklog WHERE ticket_id IN"
        " (SELECT id FROM ticket WHERE number BETWEEN 80040 AND 80043)",
    )
    ticket = query(database_url, "SELECT id FROM ticket WHERE number = 80050")[0][0]
    desk.worklog(ticket, ENGINEER, datetime(2025, 1, 20, 4, tzinfo=UTC), 90)
    desk.event(ticket, MANAGER, datetime(2025, 2, 2, 12, tzinfo=UTC))
    execute(
        database_url,
        "UPDATE charging_session SET cost = cost + 1, energy_wh = energy_wh + 5"
        " WHERE started_at = timestamptz '2025-01-01 03:00+00' + 40 * interval '8 hours'",
    )
    execute(
        database_url,
        "UPDATE charger SET site_id = %s WHERE id = %s",
        (other_site, desk.demo["DEMO-CP-0002"]),
    )
    # Today's rows mark nothing: today is never stored.
    desk.ticket(datetime.now(UTC), "new")

    stale = marks(database_url, tenant)
    # The worklog at 04:00 UTC on 20 January is 19 January in New York.
    assert {date(2025, 1, 4), date(2025, 2, 10), date(2025, 1, 19), date(2025, 2, 2)} <= stale
    # (The moved charger marks every day since its history began, up to yesterday.)
    assert all(day < date.today() for day in stale)

    raw = tables(app, desk, raw=True)
    # Stored days, stale days computed raw: equal.
    assert differences(tables(app, desk), raw) == []
    refresh(app)
    assert marks(database_url, tenant) == set()
    assert differences(tables(app, desk), raw) == []


def test_a_mark_written_while_the_job_runs_is_kept_for_the_next_run(
    app, history, database_url, monkeypatch
):
    desk = history
    refresh(app)
    execute(database_url, "UPDATE ticket SET priority = 'P1' WHERE number = 80011")
    first = marks(database_url, desk.tenant)
    assert first
    store, writes = snapshots._store, []

    def store_then_write(facts, variant, f):
        if not writes:
            # Another request changes a late-January ticket while the job recomputes.
            execute(database_url, "UPDATE ticket SET priority = 'P4' WHERE number = 80100")
            writes.append(marks(database_url, desk.tenant) - first)
        return store(facts, variant, f)

    monkeypatch.setattr(snapshots, "_store", store_then_write)
    refresh(app)
    assert writes[0]
    assert marks(database_url, desk.tenant) == writes[0]
    monkeypatch.setattr(snapshots, "_store", store)
    assert differences(tables(app, desk), tables(app, desk, raw=True)) == []


def test_the_days_are_added_as_they_end(app, history, database_url):
    desk = history
    refresh(app, datetime(2025, 2, 1, 5, 30, tzinfo=UTC))  # 00:30 in New York: 31 Jan not done
    spans = query(
        database_url,
        "SELECT DISTINCT last_day FROM report_snapshot_span WHERE tenant_id = %s",
        (desk.tenant,),
    )
    assert spans == [(date(2025, 1, 30),)]
    refresh(app, datetime(2025, 2, 1, 6, 30, tzinfo=UTC))
    spans = query(
        database_url,
        "SELECT DISTINCT last_day FROM report_snapshot_span WHERE tenant_id = %s",
        (desk.tenant,),
    )
    assert spans == [(date(2025, 1, 31),)]
    refresh(app)
    assert differences(tables(app, desk), tables(app, desk, raw=True)) == []


def test_a_new_timezone_drops_the_snapshots_and_reports_follow_it(app, history, database_url):
    desk = history
    refresh(app)
    assert stored(database_url, desk.tenant)
    execute(database_url, "UPDATE tenant SET timezone = 'Asia/Tokyo' WHERE id = %s", (desk.tenant,))
    assert stored(database_url, desk.tenant) == {}
    assert query(
        database_url,
        "SELECT count(*) FROM report_snapshot_span WHERE tenant_id = %s",
        (desk.tenant,),
    ) == [(0,)]
    refresh(app)
    assert stored(database_url, desk.tenant)["tickets-by"]
    assert differences(tables(app, desk), tables(app, desk, raw=True)) == []


def test_a_zone_postgres_does_not_know_marks_the_neighbouring_days(app, history, database_url):
    desk = history
    execute(
        database_url,
        "UPDATE tenant SET timezone = 'America/Coyhaique' WHERE id = %s",  # tzdata 2025b
        (desk.tenant,),
    )
    ticket = query(database_url, "SELECT id FROM ticket WHERE number = 80050")[0][0]
    desk.worklog(ticket, ENGINEER, datetime(2025, 1, 20, 4, tzinfo=UTC), 90)
    assert {date(2025, 1, 19), date(2025, 1, 20), date(2025, 1, 21)} <= marks(
        database_url, desk.tenant
    )


def test_the_scheduler_runs_the_job_and_other_tenants_are_untouched(app, history, database_url):
    desk = history
    job, trigger = _jobs(app)["report_snapshots"]
    assert trigger == {"trigger": "interval", "hours": 1}
    assert run_locked(app, "report_snapshots", job)
    with app.app_context(), system_context():
        run = db.session.execute(
            text("SELECT rows, error FROM job_run WHERE job = 'report_snapshots'")
        ).one()
        assert run.error is None and run.rows > 0
        assert db.session.query(JobRun).count() >= 1
    acme = desk.demo["acme"]
    demo_keys = query(
        database_url,
        "SELECT DISTINCT report, variant FROM report_snapshot WHERE tenant_id = %s",
        (desk.tenant,),
    )
    acme_keys = query(
        database_url,
        "SELECT DISTINCT report, variant FROM report_snapshot_span WHERE tenant_id = %s",
        (acme,),
    )
    # Each tenant has its own defaults; the demo tenant's rows are its own.
    assert acme_keys and demo_keys
    with app.app_context(), tenant_context(acme):
        seen = db.session.execute(text("SELECT DISTINCT tenant_id FROM report_snapshot")).all()
        assert seen in ([], [(acme,)])


def test_only_changes_a_report_counts_mark_days(app, history, database_url):
    desk = history
    clock = "SELECT id FROM sla_clock WHERE clock = 'resolution' AND ticket_id ="
    ticket = "(SELECT id FROM ticket WHERE number = 80007)"  # new, created 2 January in NY
    execute(database_url, f"UPDATE sla_clock SET state = 'running' WHERE id = ({clock} {ticket})")
    execute(database_url, "DELETE FROM report_snapshot_dirty")
    # A warning, a pause, a title: the sweep's and the desk's everyday writes count for nothing.
    execute(database_url, f"UPDATE sla_clock SET state = 'warning' WHERE id = ({clock} {ticket})")
    execute(database_url, f"UPDATE sla_clock SET state = 'paused' WHERE id = ({clock} {ticket})")
    execute(database_url, "UPDATE ticket SET title = 'Renamed' WHERE number = 80007")
    assert marks(database_url, desk.tenant) == set()
    # A breach does: the ticket's day of creation holds the clock in the SLA report.
    execute(database_url, f"UPDATE sla_clock SET state = 'breached' WHERE id = ({clock} {ticket})")
    assert marks(database_url, desk.tenant) == {date(2025, 1, 2)}


def test_the_sla_sweep_marks_its_breaches_days_once(app, history, database_url):
    from cass.services.sla_sweep import sweep

    desk = history
    past = datetime(2025, 4, 1, tzinfo=UTC)
    clock = "SELECT id FROM sla_clock WHERE ticket_id = (SELECT id FROM ticket WHERE number = %s)"
    # 80007 (2 January in New York) breaches, 80014 (4 January) only warns.
    execute(
        database_url,
        f"UPDATE sla_clock SET state = 'running', due_at = %s, warn_at = %s"
        f" WHERE id IN ({clock} AND clock = 'resolution')",
        (past, past, 80007),
    )
    execute(
        database_url,
        f"UPDATE sla_clock SET state = 'running', due_at = %s, warn_at = %s"
        f" WHERE id IN ({clock} AND clock = 'resolution')",
        (datetime(2099, 1, 1, tzinfo=UTC), past, 80014),
    )
    execute(database_url, "DELETE FROM report_snapshot_dirty")
    with app.app_context(), system_context():
        result = sweep(now=datetime.now(UTC), run_rules=False)
    assert result.breaches >= 1 and result.warnings >= 1
    rows = query(
        database_url,
        "SELECT day, count(*) FROM report_snapshot_dirty WHERE tenant_id = %s GROUP BY 1",
        (desk.tenant,),
    )
    # Marked by the sweep's own statement, not again by the clock trigger; a warning marks nothing.
    assert (date(2025, 1, 2), 1) in rows and date(2025, 1, 4) not in dict(rows)
    # The setting lasted the statement only: a later write is marked by the trigger as ever.
    execute(
        database_url,
        f"UPDATE sla_clock SET state = 'met' WHERE id IN ({clock} AND clock = 'resolution')",
        (80014,),
    )
    assert date(2025, 1, 4) in marks(database_url, desk.tenant)
