"""Benchmark: the SLA sweep over 100,000 open tickets in 20 tenants (issue 6, point 7).

Starts its own embedded PostgreSQL (durable commits, as shipped), migrates it, creates 20 tenants
through the tenant service (default calendars, SLA policies and workflow rules), and seeds with
COPY: users (managers, agents, engineers, vendor users), 100,000 open tickets and 100,000 closed
ones, and their clocks as the default policies give them (first response, on-site for P1/P2,
resolution, vendor for tickets with a vendor), due and warning instants computed with the
tenants' real business calendars, plus the clocks' earlier SLA events.

The clocks are left as a sweep at PREV would have left them (warnings, breaches and escalations
up to PREV done); PREV is chosen so that a share of the open tickets (7 % by default) have a
clock that warns or breaches between PREV and NOW. Then, in a child process that starts like
the scheduler (create_app, nothing else), it times the job as the scheduler runs it:
`run_locked(app, "sla_sweep", lambda: sweep(now=...))`, advisory lock and job_run included:

- catch-up: the sweep at NOW (every warning, breach, event, notification, escalation due);
- tick: the sweep at PREV + 30 s (what the 30-second schedule meets in this data);
- steady: the sweep at PREV, where nothing has changed since the last sweep;
- bare: one bare UPDATE with psycopg marking the same rows as the catch-up sweep.

Before every timed run the clocks are re-armed (one UPDATE from a snapshot), the rows earlier
runs added (events, notifications, job runs) deleted and the tables vacuumed, none of it timed,
so every run does the same work. The child's RSS is read from /proc/self/status (VmRSS; the peak
VmHWM, reset through /proc/self/clear_refs once the process has started).
Targets: catch-up sweep <= 1 s, RSS growth <= 50 MB; the ratio sweep / bare is reported.

Run: python tests/bench/bench_sla_sweep.py [--tickets 100000] [--runs 5] [--share 0.07]
     [--pgdata DIR] (keep the seeded database in DIR and reuse it) [--seed-only] [--explain]
Time it under the shared lock: flock /tmp/cass-bench.lock python tests/bench/bench_sla_sweep.py
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import benchkit
import psycopg
from benchkit import copy_rows, log

from cass.business_time import TWENTY_FOUR_SEVEN, Calendar

TENANTS = 20
MANAGERS, AGENTS, ENGINEERS, VENDORS, VENDOR_USERS = 4, 12, 40, 5, 2
# A Tuesday, 11:00 UTC: inside the default calendar's hours (Monday-Friday 08:00-18:00 UTC).
NOW = datetime(2026, 6, 2, 11, 0, tzinfo=UTC)
TICK = timedelta(seconds=30)
PRIORITY_WEIGHTS = (("P1", 5), ("P2", 20), ("P3", 50), ("P4", 25))
OPEN_STATUS_WEIGHTS = (("new", 25), ("assigned", 30), ("in_progress", 30), ("on_hold", 10))
OPEN_STATUS_WEIGHTS += (("reopened", 5),)
CATEGORIES = ("hardware", "connectivity", "payment", "firmware", "damage", "other")
CHANNELS = ("phone", "email", "web", "ocpp-auto", "api")
PARTS = ("screen", "cable", "holster", "connector", "RFID reader", "modem", "fan", "meter")
SYMPTOMS = ("broken", "not responding", "offline", "stuck", "damaged", "faulty", "error 51")
LIVE = ("running", "warning", "breached")
# The rows the catch-up sweep marks: SWEEP_SQL's two UPDATEs as one bare statement.
BARE_SQL = """
UPDATE sla_clock
SET state = CASE WHEN due_at <= %(now)s THEN 'breached' ELSE 'warning' END,
    updated_at = %(now)s
WHERE (state IN ('running', 'warning') AND due_at <= %(now)s)
   OR (state = 'running' AND warn_at <= %(now)s AND due_at > %(now)s)
"""
SNAPSHOT_COLUMNS = (
    "state, warn_at, due_at, warned_at, breached_at, stopped_at, escalation_level,"
    " next_escalation_at, updated_at"
)


def ts(moment: datetime | None) -> str:
    return "\\N" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S.%f+00")


def weighted(pairs: tuple[tuple[str, int], ...]) -> list[str]:
    return [value for value, weight in pairs for _ in range(weight)]


# --------------------------------------------------------------------------------------------
# Seeding


class Tenancy:
    """What create_tenant gave each tenant: calendars and the default policies' targets."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.tenants = [r[0] for r in conn.execute("SELECT id FROM tenant ORDER BY id")]
        self.default_calendar: dict[int, int] = dict(
            conn.execute("SELECT tenant_id, id FROM business_calendar WHERE is_default")
        )
        self.calendars: dict[int, Calendar] = {}
        for ident, hours, always_open in conn.execute(
            "SELECT id, hours, always_open FROM business_calendar"
        ):
            self.calendars[ident] = (
                TWENTY_FOUR_SEVEN
                if always_open
                else Calendar(
                    timezone="UTC",
                    hours=tuple(tuple((int(a), int(b)) for a, b in day) for day in hours),
                )
            )
        # (tenant, priority, clock) -> (target id, minutes, calendar id, warn %, escalations)
        self.targets: dict[tuple[int, str, str], tuple[int, int, int, int, list]] = {}
        for row in conn.execute(
            "SELECT p.tenant_id, p.priority, t.clock, t.id, t.target_minutes, t.calendar_id,"
            " t.warn_percent, t.escalations FROM sla_target t JOIN sla_policy p"
            " ON p.id = t.policy_id"
        ):
            tenant, priority, clock, ident, minutes, calendar_id, warn, escalations = row
            calendar_id = calendar_id or self.default_calendar[tenant]
            self.targets[(tenant, priority, clock)] = (
                ident,
                minutes,
                calendar_id,
                warn,
                sorted(escalations, key=lambda e: e.get("percent", 100)),
            )


class Clock:
    """A clock as the SLA service would have written it, before the sweeps judged it."""

    __slots__ = (
        "calendar",
        "due",
        "escalate_at",
        "levels",
        "minutes",
        "name",
        "paused_seconds",
        "paused_since",
        "started",
        "state",
        "stopped",
        "target",
        "tenant",
        "ticket",
        "warn",
    )  # fmt: skip

    def row(self, prev: datetime) -> str:
        """The clock's COPY line as the sweeps up to `prev` have left it."""
        state, warned, breached = self.state, None, None
        level, next_escalation = 0, self.escalate_at
        if state == "running":  # not paused nor stopped: judge it at `prev`
            if self.due <= prev:
                state, warned, breached = "breached", self.warn, self.due
            elif self.warn <= prev:
                state, warned = "warning", self.warn
            if next_escalation is not None and next_escalation <= prev:
                level, next_escalation = 1, None  # the only default level: fired already
        elif state == "breached":  # stopped late
            warned, breached = self.warn, self.due
            level, next_escalation = (1 if self.levels else 0), None
        elif state == "met" and self.stopped is not None and self.stopped > self.warn:
            warned = self.warn
        return (
            "\t".join(
                (
                    str(self.tenant),
                    str(self.ticket),
                    self.name,
                    str(self.target),
                    str(self.calendar),
                    str(self.minutes),
                    ts(self.started),
                    str(self.paused_seconds),
                    ts(self.paused_since),
                    ts(self.warn),
                    ts(self.due),
                    state,
                    ts(self.stopped),
                    ts(warned),
                    ts(breached),
                    str(level),
                    ts(next_escalation),
                    ts(min(prev, self.stopped or self.paused_since or prev)),
                )
            )
            + "\n"
        )


CLOCK_COLUMNS = (
    "tenant_id, ticket_id, clock, target_id, calendar_id, target_minutes, started_at,"
    " paused_seconds, paused_since, warn_at, due_at, state, stopped_at, warned_at, breached_at,"
    " escalation_level, next_escalation_at, updated_at"
)


def make_clock(
    tenancy: Tenancy,
    tenant: int,
    ticket: int,
    priority: str,
    name: str,
    started: datetime,
    credit: int = 0,
) -> Clock | None:
    target = tenancy.targets.get((tenant, priority, name))
    if target is None:
        return None
    ident, minutes, calendar_id, warn_percent, levels = target
    cal = tenancy.calendars[calendar_id]
    clock = Clock()
    clock.tenant, clock.ticket, clock.name = tenant, ticket, name
    clock.target, clock.calendar, clock.minutes = ident, calendar_id, minutes
    clock.started, clock.paused_seconds, clock.paused_since = started, credit, None
    budget, extra = timedelta(minutes=minutes), timedelta(seconds=credit)
    clock.due = cal.add(started, budget + extra)
    clock.warn = cal.add(started, budget * warn_percent / 100 + extra)
    clock.levels = levels
    clock.escalate_at = (
        cal.add(started, budget * levels[0].get("percent", 100) / 100 + extra) if levels else None
    )
    clock.stopped, clock.state = None, "running"
    return clock


def stop(clock: Clock, at: datetime) -> None:
    clock.stopped, clock.escalate_at = at, None
    clock.state = "breached" if at > clock.due else "met"


def seed(app: object, url: str, args: argparse.Namespace) -> None:
    """Tenants through the service; users, tickets, clocks and events with COPY."""
    from cass.extensions import db
    from cass.services.passwords import hash_password
    from cass.services.tenants import create_tenant
    from cass.tenancy import system_context

    started = time.perf_counter()
    with app.app_context(), system_context():  # type: ignore[attr-defined]
        for t in range(args.tenants):
            create_tenant(f"t{t + 1:02d}", f"Operator {t + 1}", f"T{t + 1:02d}")
        db.engine.dispose()
    password_hash = hash_password("bench-password-1")
    rng = random.Random(42)
    with psycopg.connect(url) as conn:
        tenancy = Tenancy(conn)
        tenants = tenancy.tenants
        conn.execute("SET session_replication_role = replica")  # no FK triggers while loading
        users_per_tenant = 1 + MANAGERS + AGENTS + ENGINEERS + VENDOR_USERS
        base_user = conn.execute("SELECT coalesce(max(id), 0) FROM app_user").fetchone()[0]
        base_vendor = conn.execute("SELECT coalesce(max(id), 0) FROM vendor").fetchone()[0]

        def user_id(t: int, u: int) -> int:
            return base_user + t * users_per_tenant + u + 1

        def vendor_id(t: int, v: int) -> int:
            return base_vendor + t * VENDORS + v + 1

        copy_rows(
            conn,
            "vendor",
            "id, tenant_id, name",
            (
                f"{vendor_id(t, v)}\t{tenant}\tField crew {v + 1}\n"
                for t, tenant in enumerate(tenants)
                for v in range(VENDORS)
            ),
        )
        roles = ["admin"] + ["as_manager"] * MANAGERS + ["call_center"] * AGENTS
        roles += ["as_engineer"] * ENGINEERS + ["vendor"] * VENDOR_USERS
        copy_rows(
            conn,
            "app_user",
            "id, tenant_id, email, name, role, vendor_id, password_hash, session_token",
            (
                f"{user_id(t, u)}\t{tenant}\tu{u}@t{tenant:02d}.test\tPerson {u} of {tenant}\t"
                f"{role}\t{vendor_id(t, u % VENDORS) if role == 'vendor' else chr(92) + 'N'}\t"
                f"{password_hash}\ttoken-{tenant}-{u}\n"
                for t, tenant in enumerate(tenants)
                for u, role in enumerate(roles)
            ),
        )
        # Bulk load without the secondary indexes of the big tables, then build them once.
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN"
            " ('ticket', 'sla_clock', 'sla_event') AND indexname NOT IN"
            " (SELECT conname FROM pg_constraint)"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        log(f"  tenants (service) and users in {time.perf_counter() - started:.1f} s")

        priorities = weighted(PRIORITY_WEIGHTS)
        open_statuses = weighted(OPEN_STATUS_WEIGHTS)
        per_tenant_open = args.tickets // len(tenants)
        per_tenant_closed = args.closed // len(tenants)
        clocks: list[Clock] = []
        tickets: list[str] = []
        building = time.perf_counter()
        ident = conn.execute("SELECT coalesce(max(id), 0) FROM ticket").fetchone()[0]
        for k in range(per_tenant_closed + per_tenant_open):
            is_open = k >= per_tenant_closed
            for t, tenant in enumerate(tenants):
                ident += 1
                priority = rng.choice(priorities)
                if is_open:
                    # Open tickets: mostly recent, a long tail of old ones (mean age 3 days).
                    age = min(rng.expovariate(1 / 3), 60)
                    status = rng.choice(open_statuses)
                else:
                    age = 60 + rng.random() * 305
                    status = rng.choice(("closed",) * 8 + ("resolved", "cancelled"))
                created = NOW - timedelta(days=age)
                assignee = vendor = None
                if status not in ("new", "cancelled"):
                    if rng.random() < 0.8:
                        assignee = user_id(t, 1 + MANAGERS + AGENTS + rng.randrange(ENGINEERS))
                    else:
                        vendor = vendor_id(t, rng.randrange(VENDORS))
                answered = created + timedelta(minutes=rng.expovariate(1 / 40))
                ended = None
                if not is_open:
                    ended = min(NOW, created + timedelta(days=rng.expovariate(1 / 2)))
                    answered = min(answered, ended)
                updated = ended or min(NOW, created + timedelta(days=age * rng.random()))
                paused = status == "on_hold"
                credit = int(rng.expovariate(1 / 3600)) if status == "reopened" else 0
                mine: list[Clock] = []
                for name in ("first_response", "on_site", "resolution", "vendor"):
                    if name == "vendor" and vendor is None:
                        continue
                    clock = make_clock(
                        tenancy,
                        tenant,
                        ident,
                        priority,
                        name,
                        created,
                        credit if name == "resolution" else 0,
                    )
                    if clock is None:
                        continue
                    mine.append(clock)
                    if name == "first_response" and status != "new":
                        stop(clock, answered)
                    elif not is_open:
                        if status == "cancelled" or (name == "on_site" and rng.random() < 0.5):
                            clock.stopped, clock.state, clock.escalate_at = ended, "cancelled", None
                        else:
                            stop(clock, ended)  # type: ignore[arg-type]
                    elif paused:
                        clock.state, clock.paused_since, clock.escalate_at = "paused", updated, None
                clocks += mine
                title = f"{rng.choice(PARTS).capitalize()} {rng.choice(SYMPTOMS)}"
                tickets.append(
                    "\t".join(
                        (
                            str(ident),
                            str(tenant),
                            str(k + 1),
                            title,
                            f"{title} at bay {rng.randrange(1, 9)}, code E{rng.randrange(200)}",
                            rng.choice(CATEGORIES),
                            priority,
                            status,
                            rng.choice(CHANNELS),
                            "Sam Driver",
                            "+44 7700 900123",
                            str(assignee) if assignee else "\\N",
                            str(vendor) if vendor else "\\N",
                            "waiting_parts" if status == "on_hold" else "\\N",
                            ts(created),
                            ts(updated),
                            ts(ended) if status in ("resolved", "closed") else "\\N",
                            ts(ended) if status == "closed" else "\\N",
                        )
                    )
                    + "\n"
                )
        prev = choose_prev(clocks, args.share, args.tickets)
        log(
            f"  {len(tickets):,} tickets and {len(clocks):,} clocks computed in "
            f"{time.perf_counter() - building:.1f} s; PREV = NOW - "
            f"{(NOW - prev).total_seconds() / 60:.1f} min"
        )
        loading = time.perf_counter()
        copy_rows(
            conn,
            "ticket",
            "id, tenant_id, number, title, description, category, priority, status, channel,"
            " caller_name, caller_phone, assignee_user_id, assignee_vendor_id, hold_reason,"
            " created_at, updated_at, resolved_at, closed_at",
            iter(tickets),
        )
        copy_rows(conn, "sla_clock", CLOCK_COLUMNS, (c.row(prev) for c in clocks))
        del tickets, clocks
        # The clocks' history, as the service and the earlier sweeps wrote it.
        conn.execute(
            "INSERT INTO sla_event (tenant_id, ticket_id, clock, kind, at, detail)"
            " SELECT tenant_id, ticket_id, clock, 'started', started_at,"
            " jsonb_build_object('due_at', due_at) FROM sla_clock"
        )
        conn.execute(
            "INSERT INTO sla_event (tenant_id, ticket_id, clock, kind, at, detail)"
            " SELECT tenant_id, ticket_id, clock, 'warning', warned_at,"
            " jsonb_build_object('due_at', due_at) FROM sla_clock WHERE warned_at IS NOT NULL"
            " UNION ALL SELECT tenant_id, ticket_id, clock, 'breached', breached_at,"
            " jsonb_build_object('due_at', due_at) FROM sla_clock WHERE breached_at IS NOT NULL"
        )
        for table in ("ticket", "sla_clock", "sla_event", "app_user", "vendor"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.execute(
            "UPDATE tenant SET last_ticket_number = (SELECT max(number) FROM ticket"
            " WHERE ticket.tenant_id = tenant.id)"
        )
        conn.commit()
        log(f"  copied in {time.perf_counter() - loading:.1f} s")
        building = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '256MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute(
            "CREATE TABLE bench_sla_meta (prev timestamptz, now timestamptz, seeded_s float8)"
        )
        conn.execute(
            "INSERT INTO bench_sla_meta VALUES (%s, %s, %s)",
            (prev, NOW, time.perf_counter() - started),
        )
        # What re-arming restores: every clock a sweep or escalation at NOW may change.
        conn.execute(
            f"CREATE TABLE bench_sla_armed AS SELECT id, {SNAPSHOT_COLUMNS} FROM sla_clock"
            " WHERE state IN ('running', 'warning', 'breached') AND (warn_at <= %(now)s"
            " OR due_at <= %(now)s OR next_escalation_at <= %(now)s)",
            {"now": NOW},
        )
        conn.commit()
        log(f"  {len(indexes)} indexes built in {time.perf_counter() - building:.1f} s")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        seconds = time.perf_counter() - started
        conn.execute("UPDATE bench_sla_meta SET seeded_s = %s", (seconds,))
    log(f"  seeded and analysed in {seconds:.1f} s")


def choose_prev(clocks: list[Clock], share: float, open_tickets: int) -> datetime:
    """Return PREV such that `share` of the open tickets have a clock warning or breaching
    after PREV and by NOW (each ticket counted at its latest such instant)."""
    latest: dict[int, datetime] = {}
    for clock in clocks:
        if clock.state != "running":
            continue
        for moment in (clock.warn, clock.due):
            if moment <= NOW and moment > latest.get(
                clock.ticket, datetime.min.replace(tzinfo=UTC)
            ):
                latest[clock.ticket] = moment
    ordered = sorted(latest.values(), reverse=True)
    wanted = min(len(ordered) - 1, math.ceil(share * open_tickets))
    return ordered[wanted] if ordered else NOW - TICK


# --------------------------------------------------------------------------------------------
# Measuring (in the child process)


def rss_kb(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class Rearm:
    """Put the clocks back as seeded and drop what earlier runs added (not timed)."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.marks = {
            table: self.conn.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]
            for table in ("sla_event", "notification", "job_run", "ticket_event")
        }
        self.cols = [c.strip() for c in SNAPSHOT_COLUMNS.split(",")]

    def __call__(self) -> int:
        sets = ", ".join(f"{c} = a.{c}" for c in self.cols)
        mine = ", ".join(f"c.{c}" for c in self.cols)
        theirs = ", ".join(f"a.{c}" for c in self.cols)
        with self.conn.transaction():
            restored = self.conn.execute(
                f"UPDATE sla_clock c SET {sets} FROM bench_sla_armed a WHERE c.id = a.id"
                f" AND ({mine}) IS DISTINCT FROM ({theirs})"
            ).rowcount
            for table, mark in self.marks.items():
                self.conn.execute(f"DELETE FROM {table} WHERE id > %s", (mark,))
        for table in ("sla_clock", "sla_event", "notification", "job_run"):
            self.conn.execute(f"VACUUM {table}")
        self.conn.execute("CHECKPOINT")
        return restored


def child(url: str, runs: int, explain: bool) -> None:
    """Time the sweep as the scheduler runs it; print one JSON line of results."""
    from cass import create_app
    from cass.config import Config
    from cass.scheduler import run_locked
    from cass.services import sla_sweep

    app = create_app(Config(DATABASE_URL=url, SECRET_KEY="bench"))
    started_kb = rss_kb()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        hwm_reset = True
    except OSError:
        hwm_reset = False
    rearm = Rearm(url)
    prev, now = rearm.conn.execute("SELECT prev, now FROM bench_sla_meta").fetchone()

    outcome: dict[str, object] = {}

    def job(at: datetime) -> Callable[[], object]:
        def run() -> object:
            result = sla_sweep.sweep(now=at)
            outcome["result"] = result
            return result

        return run

    def timed_sweep(at: datetime) -> tuple[float, dict[str, int]]:
        rearm()
        t0 = time.perf_counter()
        ran = run_locked(app, "sla_sweep", job(at))
        spent = time.perf_counter() - t0
        assert ran, "the sweep did not run (advisory lock held elsewhere?)"
        r = outcome.pop("result")
        counts = {
            "warnings": r.warnings,  # type: ignore[attr-defined]
            "breaches": r.breaches,  # type: ignore[attr-defined]
            "tickets": len({c[1] for c in r.changed}),  # type: ignore[attr-defined]
            "notifications": r.notifications,  # type: ignore[attr-defined]
            "escalations": r.escalations,  # type: ignore[attr-defined]
        }
        errors = rearm.conn.execute(
            "SELECT count(*) FROM job_run WHERE id > %s AND error IS NOT NULL",
            (rearm.marks["job_run"],),
        ).fetchone()[0]
        assert not errors, "the sweep failed: see job_run.error"
        return spent, counts

    bare_conn = psycopg.connect(url)

    def timed_bare() -> tuple[float, int]:
        rearm()
        t0 = time.perf_counter()
        rows = bare_conn.execute(BARE_SQL, {"now": now}).rowcount
        bare_conn.commit()
        return time.perf_counter() - t0, rows

    times: dict[str, list[float]] = {"catchup": [], "tick": [], "steady": [], "bare": []}
    counts: dict[str, dict[str, int]] = {}
    rss_after_warmup = 0
    for turn in range(1 + runs):  # the first turn warms caches and is not counted
        for name, at in (("steady", prev), ("tick", prev + TICK), ("catchup", now)):
            spent, counts[name] = timed_sweep(at)
            if turn:
                times[name].append(spent)
        catchup = spent
        spent, bare_rows = timed_bare()
        if turn:
            times["bare"].append(spent)
        else:
            rss_after_warmup = rss_kb()
        print(
            f"  turn {turn}{' (warm-up)' if not turn else ''}: catch-up {catchup:.3f} s "
            f"({counts['catchup']['tickets']:,} tickets, {counts['catchup']['escalations']} "
            f"escalations), tick {counts['tick']['tickets']} tickets, bare {spent:.3f} s",
            file=sys.stderr,
            flush=True,
        )
    if explain:
        rearm()
        sql = re.sub(r"(?<!:):now\b", "%(now)s", sla_sweep.SWEEP_SQL)
        with psycopg.connect(url) as conn:
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, {"now": now}).fetchall()
            conn.rollback()
        print("\n".join(r[0] for r in plan), file=sys.stderr, flush=True)
    rearm()
    print(
        json.dumps(
            {
                "times": times,
                "counts": counts,
                "bare_rows": bare_rows,
                "rss_started_kb": started_kb,
                "rss_after_warmup_kb": rss_after_warmup,
                "rss_end_kb": rss_kb(),
                "rss_peak_kb": rss_kb("VmHWM"),
                "hwm_reset": hwm_reset,
            }
        ),
        flush=True,
    )


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000, help="open tickets")
    parser.add_argument("--closed", type=int, default=100_000, help="closed history")
    parser.add_argument("--tenants", type=int, default=TENANTS)
    parser.add_argument("--share", type=float, default=0.07, help="open tickets that change")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pgdata", help="keep the seeded database here and reuse it")
    parser.add_argument("--seed-only", action="store_true", help="seed (or check) and stop")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the sweep SQL")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the database URL, in the child
    args = parser.parse_args()
    if args.child:
        child(args.child, args.runs, args.explain)
        return
    if args.runs < 5:
        parser.error("--runs must be at least 5")

    with benchkit.embedded("cass-bench-sla-", pgdata=args.pgdata, durable=True) as bench:
        run(bench.url, args)


def run(url: str, args: argparse.Namespace) -> None:
    app = benchkit.migrated_app(url, secret="bench")
    with psycopg.connect(url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM ticket WHERE status IN"
            " ('new','assigned','in_progress','on_hold','reopened')"
        ).fetchone()[0]
    if count != args.tickets:
        if count:
            raise SystemExit(f"{url} holds {count:,} open tickets; use a fresh --pgdata")
        log(f"Seeding {args.tickets:,} open tickets over {args.tenants} tenants with COPY ...")
        seed(app, url, args)
    else:
        log(f"Reusing {count:,} seeded open tickets in {args.pgdata}")
    with psycopg.connect(url) as conn:
        prev, now, seeded_s = conn.execute("SELECT * FROM bench_sla_meta").fetchone()
        summary = conn.execute(
            "SELECT (SELECT count(*) FROM ticket), (SELECT count(DISTINCT tenant_id) FROM ticket),"
            " (SELECT count(*) FROM sla_clock),"
            " (SELECT count(*) FROM sla_clock WHERE state IN ('running','warning','breached')),"
            " (SELECT count(*) FROM sla_event), (SELECT count(*) FROM app_user)"
        ).fetchone()
    log(
        f"Data: {summary[0]:,} tickets ({count or args.tickets:,} open) in {summary[1]} tenants, "
        f"{summary[2]:,} clocks ({summary[3]:,} live), {summary[4]:,} SLA events, "
        f"{summary[5]:,} users; seeded in {seeded_s:.0f} s; catch-up window "
        f"{(now - prev).total_seconds() / 60:.1f} min"
    )
    if args.seed_only:
        return
    load = os.getloadavg()
    log(f"Timing {args.runs} runs in a child process (load {load[0]:.2f} {load[1]:.2f} ...)")
    command = [sys.executable, __file__, "--child", url, "--runs", str(args.runs)]
    if args.explain:
        command.append("--explain")
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    report(json.loads(done.stdout.strip().splitlines()[-1]), count or args.tickets, args)


def report(data: dict, open_tickets: int, args: argparse.Namespace) -> None:
    times, counts = data["times"], data["counts"]
    p50 = {name: statistics.median(values) for name, values in times.items()}
    top = {name: max(values) for name, values in times.items()}
    log(
        f"\nSLA sweep: {open_tickets:,} open tickets, {args.tenants} tenants; {args.runs} runs "
        f"each, seconds, the job as the scheduler runs it (run_locked + sweep + job_run)\n"
    )
    header = (
        f"{'scenario':<9} {'p50 s':>7} {'max s':>7} {'tickets':>8} {'warnings':>9} "
        f"{'breaches':>9} {'notified':>9} {'escalated':>9}"
    )
    log(header)
    log("-" * len(header))
    for name in ("catchup", "tick", "steady"):
        c = counts[name]
        log(
            f"{name:<9} {p50[name]:>7.3f} {top[name]:>7.3f} {c['tickets']:>8,} "
            f"{c['warnings']:>9,} {c['breaches']:>9,} {c['notifications']:>9,} "
            f"{c['escalations']:>9,}"
        )
    log(f"{'bare':<9} {p50['bare']:>7.3f} {top['bare']:>7.3f} {'':>8} ({data['bare_rows']:,} rows)")
    ratio = p50["catchup"] / p50["bare"]
    growth = (data["rss_peak_kb"] - data["rss_started_kb"]) / 1024
    log(
        f"\ncatch-up share: {counts['catchup']['tickets'] / open_tickets:.1%} of open tickets; "
        f"ratio sweep / bare UPDATE (p50): {ratio:.1f}x"
    )
    log(
        f"RSS (child, /proc/self/status): {data['rss_started_kb'] / 1024:.1f} MB after start, "
        f"{data['rss_after_warmup_kb'] / 1024:.1f} MB after the warm-up turn, "
        f"{data['rss_end_kb'] / 1024:.1f} MB at the end, peak "
        f"{data['rss_peak_kb'] / 1024:.1f} MB"
        f"{'' if data['hwm_reset'] else ' (VmHWM not reset: includes start-up)'}; "
        f"growth {growth:.1f} MB"
    )
    load = os.getloadavg()
    log(f"load after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    log(f"catch-up sweep <= 1 s: {'met' if p50['catchup'] <= 1 else 'MISSED'} (p50)")
    log(f"RSS growth <= 50 MB: {'met' if growth <= 50 else 'MISSED'}")


if __name__ == "__main__":
    main()
