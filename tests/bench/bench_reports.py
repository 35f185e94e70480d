"""Benchmark: every report page over 1,000,000 tickets (issue 7, point 7).

Starts its own embedded PostgreSQL (benchkit), seeds one tenant with 1,000,000 tickets over
three years with COPY (the ticket-list benchmark's seeder: 100 sites, 1,000 chargers, 63 users,
5 vendors), then the history the reports read, made in bulk from the tickets by INSERT ... SELECT
inside the server: 2,000,000 SLA clocks, 2,000,000 ticket events, 1,000,000 worklogs, 300,000
faults and 60,000 online/offline events, 1,000,000 charging sessions; and ANALYZEs. Then it runs
the snapshot job (cass.services.reports.snapshots) and times it: the first run over all history,
a run with nothing new, and one after 1,000 late changes to recent tickets.

Signed in as a manager through the Flask test client, it times each report page (whole page,
server time) for the last 30 days, the last year and the whole three years (read from the
snapshots, as the pages are served), and one day computed raw (what today, or a day a late
change made stale, costs), taking turns, and prints p50 and p95 per report and range.
Target: every report page p95 <= 300 ms.
Run: python tests/bench/bench_reports.py [--tickets 1000000] [--runs 30] [--pgdata DIR]
     [--only SLUG] (--pgdata DIR keeps the seeded database in DIR and reuses it)
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import benchkit
import psycopg
from bench_ticket_list import NOW, seed, timed_together
from benchkit import PASSWORD, ServerClock, log, percentile

END = (NOW - timedelta(days=1)).date()
RANGES = {
    "1 day, raw": END,
    "30 days": END - timedelta(days=29),
    "1 year": END - timedelta(days=364),
    "3 years": END - timedelta(days=3 * 365 - 1),
}
REPORTS = ("tickets-by", "sla", "resolution", "workload", "chargers", "sessions")
TARGET_P95_MS = 300.0

# The history the reports read, made from the tickets in the server (set-based: one statement
# a table). Closed tickets' clocks are decided (85 % met); open tickets' still run.
HISTORY = [
    (
        "sla_clock",
        "SELECT count(*) FROM sla_clock",
        """
        INSERT INTO sla_clock (tenant_id, ticket_id, clock, target_minutes, started_at, state,
                               stopped_at, due_at, updated_at)
        SELECT t.tenant_id, t.id, c.clock, c.minutes, t.created_at,
               CASE WHEN t.status IN ('resolved', 'closed', 'cancelled')
                         OR c.clock = 'first_response' AND t.status <> 'new'
                    THEN CASE WHEN t.status = 'cancelled' THEN 'cancelled'
                              WHEN (t.id * 7919 + c.n) %% 100 < 85 THEN 'met' ELSE 'breached' END
                    ELSE (ARRAY['running', 'warning', 'paused'])[1 + t.id %% 3] END,
               CASE WHEN t.status <> 'new' OR c.clock = 'resolution' AND t.resolved_at IS NOT NULL
                    THEN CASE c.clock WHEN 'resolution' THEN t.resolved_at
                              ELSE t.created_at + (t.id %% 240) * interval '1 minute' END END,
               t.created_at + c.minutes * interval '1 minute', t.updated_at
        FROM ticket t
        CROSS JOIN (VALUES (1, 'first_response', 60), (2, 'resolution', 2880))
            AS c(n, clock, minutes)
        """,
    ),
    (
        "ticket_event",
        "SELECT count(*) FROM ticket_event",
        """
        INSERT INTO ticket_event (tenant_id, ticket_id, actor_id, at, kind, field, from_value,
                                  to_value)
        SELECT t.tenant_id, t.id, coalesce(t.assignee_user_id, 2), t.created_at + e.after,
               'status', 'status', e.old, e.new
        FROM ticket t
        CROSS JOIN (VALUES ('new', 'assigned', interval '40 minutes'),
                           ('assigned', 'in_progress', interval '5 hours')) AS e(old, new, after)
        WHERE t.status <> 'new'
        """,
    ),
    (
        "worklog",
        "SELECT count(*) FROM worklog",
        """
        INSERT INTO worklog (tenant_id, ticket_id, author_id, body, minutes, created_at)
        SELECT t.tenant_id, t.id, t.assignee_user_id, 'Checked the unit on site.', 15 + t.id %% 90,
               t.created_at + interval '3 hours'
        FROM ticket t WHERE t.assignee_user_id IS NOT NULL
        """,
    ),
    (
        "charger_event (faults)",
        "SELECT count(*) FROM charger_event WHERE kind = 'status'",
        """
        INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status,
                                   error_code, handled_at)
        SELECT c.tenant_id, c.id, 1 + g %% 2,
               %(now)s - (g * 7919 %% 94608000) * interval '1 second',
               'status', 'Faulted',
               (ARRAY['GroundFailure', 'PowerMeterFailure', 'OverCurrentFailure',
                      'ConnectorLockFailure', 'OtherError', 'HighTemperature'])[1 + g %% 6], %(now)s
        FROM generate_series(CAST(1 AS bigint), 300000) AS g
        JOIN charger c ON c.id = 1 + (g * 31) %% (SELECT count(*) FROM charger)
        """,
    ),
    (
        "charger_event (online/offline)",
        "SELECT count(*) FROM charger_event WHERE kind IN ('online', 'offline')",
        """
        INSERT INTO charger_event (tenant_id, charger_id, at, kind, handled_at)
        SELECT c.tenant_id, c.id,
               %(now)s - interval '3 years' + (g * interval '1 day' * 1095 / 60)
                 + (c.id %% 1440) * interval '1 minute',
               CASE WHEN g %% 2 = 0 THEN 'online' ELSE 'offline' END, %(now)s
        FROM charger c CROSS JOIN generate_series(0, 59) AS g
        """,
    ),
    (
        "charging_session",
        "SELECT count(*) FROM charging_session",
        """
        INSERT INTO charging_session (tenant_id, charger_id, connector_no, id_tag, started_at,
                                      stopped_at, meter_start, meter_stop, energy_wh, cost,
                                      currency)
        SELECT c.tenant_id, c.id, 1 + g %% 2, 'TAG' || g %% 5000,
               %(now)s - (g * 104729 %% 94608000) * interval '1 second',
               %(now)s - (g * 104729 %% 94608000) * interval '1 second' + interval '50 minutes',
               0, 5000 + g %% 40000, 5000 + g %% 40000,
               round((5000 + g %% 40000) * 0.00035, 4), 'EUR'
        FROM generate_series(CAST(1 AS bigint), 1000000) AS g
        JOIN charger c ON c.id = 1 + (g * 17) %% (SELECT count(*) FROM charger)
        """,
    ),
]


def seed_history(url: str) -> None:
    """Add the reports' history that is missing, made from the seeded tickets and chargers;
    ANALYZE."""
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")
        added = False
        for name, present, sql in HISTORY:
            if conn.execute(present).fetchone()[0]:
                continue  # made by an earlier run over the same --pgdata
            added = True
            started = time.perf_counter()
            rows = conn.execute(sql, {"now": NOW}).rowcount
            conn.commit()
            log(f"  {rows:,} {name} rows in {time.perf_counter() - started:.1f} s")
    if added:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pgdata", help="keep the seeded database here and reuse it")
    parser.add_argument("--only", choices=REPORTS, help="time just this report")
    args = parser.parse_args()

    with benchkit.embedded("cass-bench-reports-", pgdata=args.pgdata) as bench:
        app = benchkit.migrated_app(bench.url)
        count = benchkit.scalar(bench.url, "SELECT count(*) FROM ticket")
        if count != args.tickets:
            if count:
                raise SystemExit(f"{bench.url} holds {count:,} tickets; use a fresh --pgdata")
            from cass.services.passwords import hash_password

            log(f"Seeding {args.tickets:,} tickets in one tenant with COPY ...")
            seed(bench.url, args.tickets, 1, hash_password(PASSWORD))
        else:
            log(f"Reusing {count:,} seeded tickets in {args.pgdata}")
        log("Adding the history the reports read (what is missing) ...")
        seed_history(bench.url)
        build_snapshots(app, bench.url)
        run(app, args)


def build_snapshots(app: object, url: str) -> None:
    """Run the snapshot job (all history at first), then again after late changes; print times."""
    from cass.services.reports import snapshots

    def refresh(what: str) -> None:
        with app.app_context():  # type: ignore[attr-defined]
            started = time.perf_counter()
            rows = snapshots.refresh()
        log(f"  snapshot job, {what}: {rows:,} rows in {time.perf_counter() - started:.1f} s")

    log("Report snapshots (the hourly job) ...")
    refresh("first run or catching up")
    refresh("nothing new")
    # A day's worth of late changes: 1,000 tickets of the last 30 days re-prioritised (which also
    # marks their worklogs', events' and first responses' days), with the marking triggers and,
    # as the baseline, 1,000 others without them (session_replication_role = replica).
    change = """
        UPDATE ticket SET priority = CASE priority WHEN 'P1' THEN 'P2' ELSE 'P1' END
        WHERE id IN (SELECT id FROM ticket WHERE created_at >= %(since)s AND id %% 2 = %(half)s
                     ORDER BY md5(id::text) LIMIT 1000)
    """
    spent = {}
    with psycopg.connect(url) as conn:
        for half, role in ((1, "replica"), (0, "origin")):
            conn.execute(f"SET session_replication_role = {role}")
            started = time.perf_counter()
            conn.execute(change, {"since": NOW - timedelta(days=30), "half": half})
            conn.commit()
            spent[role] = time.perf_counter() - started
        days = conn.execute("SELECT count(DISTINCT day) FROM report_snapshot_dirty").fetchone()
    log(
        f"  1,000 late changes in one statement: {spent['origin'] * 1000:.0f} ms with the"
        f" triggers, {spent['replica'] * 1000:.0f} ms without; {days[0]} days stale"
    )
    refresh("1,000 late changes")


def run(app: object, args: argparse.Namespace) -> None:
    """Sign in as a manager and time every report over every range; print the figures."""
    clock = ServerClock(app.wsgi_app)  # type: ignore[attr-defined]
    app.wsgi_app = clock  # type: ignore[attr-defined]
    client = benchkit.signed_in(app, "u1@t01.test")

    from cass.services.reports import snapshots

    paths = []
    for slug in (args.only,) if args.only else REPORTS:
        for name, start in RANGES.items():
            path = f"/reports/{slug}?start={start}&end={END}"
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
            paths.append((slug, name, path, len(response.get_data())))

    def served(path: str, raw: bool) -> float:
        if raw:
            # What a day not stored costs (today, or one a late change made stale).
            with snapshots.raw():
                client.get(path).get_data()
        else:
            client.get(path).get_data()
        return clock.last

    times = timed_together(
        [lambda p=p: served(p[2], raw=p[1].endswith("raw")) for p in paths], args.runs, warmup=2
    )
    log(
        f"\n{'report':<12} {'range':<10} {'p50 ms':>8} {'p95 ms':>8}  {'HTML':>8}"
        "  target p95 <= 300"
    )
    worst = 0.0
    for (slug, name, _, size), spent in zip(paths, times, strict=True):
        p95 = percentile(spent, 0.95)
        worst = max(worst, p95)
        mark = "ok" if p95 <= TARGET_P95_MS else "MISSED"
        log(
            f"{slug:<12} {name:<10} {percentile(spent, 0.5):8.1f} {p95:8.1f}  "
            f"{size / 1024:6.1f} KB  {mark}"
        )
    log(f"\nworst p95: {worst:.1f} ms ({'met' if worst <= TARGET_P95_MS else 'missed'})")


if __name__ == "__main__":
    main()
