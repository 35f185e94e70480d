"""Benchmark: the ticket list at scale (issue 3, point 12).

Starts its own embedded PostgreSQL in a temporary folder, migrates it, seeds 20 tenants and
1,000,000 tickets (200,000 open) with COPY, plus sites, chargers, connectors, users and vendors
in proportion, and ANALYZEs. Then, signed in once as a manager of one tenant through the Flask
test client, it times the 50-row list page (first page, filtered, searched for a common word and
for rarer ones): server time p50/p95 of the whole page and of the htmx table, and HTML size; and
the very same SQL statements (text and parameters as the page sends them) run bare with psycopg,
p50, taking turns with the page so that outside load hits both alike. It also times a signed-in
page that reads nothing but the user, the floor under any page.
Targets: page p95 <= 50 ms, HTML <= 100 KB, page p50 <= 3x bare p50.

Run: python tests/bench/bench_ticket_list.py [--tickets 1000000] [--runs 50] [--explain]
     (--pgdata DIR keeps the seeded database in DIR and reuses it on the next run)
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import benchkit
import psycopg
from benchkit import PASSWORD, ServerClock, copy_rows, log, percentile

from cass.extensions import db

TENANTS = 20
OPEN_SHARE = 5  # every 5th ticket is open: 200,000 of 1,000,000
SITES_PER_TENANT = 100
CHARGERS_PER_SITE = 10
ENGINEERS, AGENTS, MANAGERS, VENDORS, VENDOR_USERS = 40, 12, 4, 5, 2
SEARCH_WORD = "holster"
SCENARIOS = {
    "first page": "",
    "filtered": "status=open&priority=P1",
    "searched": f"q={SEARCH_WORD}",  # in 1 of 16 tickets
    "rare word": "q=E42",  # in 1 of 200
    "rarer word": "q=P4242",  # in 1 of 5,000
}
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

PARTS = ["screen", "display", "cable", "holster", "connector", "plug", "RFID reader", "terminal"]
PARTS += ["modem", "power module", "fan", "contactor", "meter", "door", "card slot", "button"]
SYMPTOMS = ["broken", "not responding", "offline", "flickering", "stuck", "damaged", "faulty"]
SYMPTOMS += ["overheating", "error 51", "rejects cards", "intermittent", "noisy", "wet"]
WORDS = (  # noqa: SIM905 (a sentence reads better than fifty quoted words)
    "driver called about the charger session stopped early tried again later no luck "
    "engineer visited replaced part tested full session customer happy remote reset done "
    "firmware updated logs attached waiting for parts vendor informed site owner notified "
    "payment declined twice app shows available occupied bay blocked by car cones placed"
).split()
STATUSES_OPEN = ("new", "assigned", "in_progress", "on_hold", "reopened")
PRIORITY_WEIGHTS = (("P1", 5), ("P2", 20), ("P3", 50), ("P4", 25))
CATEGORIES = ("hardware", "connectivity", "payment", "firmware", "damage", "other")
CHANNELS = ("phone", "email", "web", "ocpp-auto", "api")


def ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S+00")


class Ids:
    """Explicit ids, so that rows can point at each other without reading anything back."""

    def __init__(self, tenants: int) -> None:
        self.tenants = tenants
        self.users_per_tenant = 1 + MANAGERS + AGENTS + ENGINEERS + VENDOR_USERS
        self.chargers_per_tenant = SITES_PER_TENANT * CHARGERS_PER_SITE

    def vendor(self, t: int, v: int) -> int:
        return t * VENDORS + v + 1

    def user(self, t: int, u: int) -> int:
        return t * self.users_per_tenant + u + 1

    def site(self, t: int, s: int) -> int:
        return t * SITES_PER_TENANT + s + 1

    def charger(self, t: int, c: int) -> int:
        return t * self.chargers_per_tenant + c + 1

    def connector(self, t: int, c: int, n: int) -> int:
        return 2 * (self.charger(t, c) - 1) + n


def seed(url: str, total: int, tenants: int, password_hash: str) -> None:
    """Fill the database: tenants, vendors, users, sites, chargers, connectors, tickets."""
    ids = Ids(tenants)
    per_tenant = total // tenants
    rng = random.Random(42)
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        # Foreign-key triggers off while loading (the data is made consistent here).
        conn.execute("SET session_replication_role = replica")
        copy_rows(
            conn,
            "tenant",
            "id, slug, name, key_prefix, last_ticket_number",
            (
                f"{t + 1}\tt{t + 1:02d}\tOperator {t + 1}\tT{t + 1:02d}\t{per_tenant}\n"
                for t in range(tenants)
            ),
        )
        copy_rows(
            conn,
            "vendor",
            "id, tenant_id, name",
            (
                f"{ids.vendor(t, v)}\t{t + 1}\tField crew {v + 1}\n"
                for t in range(tenants)
                for v in range(VENDORS)
            ),
        )

        def users() -> Iterator[str]:
            for t in range(tenants):
                roles = (
                    ["admin"]
                    + ["as_manager"] * MANAGERS
                    + ["call_center"] * AGENTS
                    + ["as_engineer"] * ENGINEERS
                    + ["vendor"] * VENDOR_USERS
                )
                for u, role in enumerate(roles):
                    vendor = str(ids.vendor(t, u % VENDORS)) if role == "vendor" else "\\N"
                    yield (
                        f"{ids.user(t, u)}\t{t + 1}\tu{u}@t{t + 1:02d}.test\tPerson {u} of "
                        f"{t + 1}\t{role}\t{vendor}\t{password_hash}\ttoken-{t}-{u}\n"
                    )

        copy_rows(
            conn,
            "app_user",
            "id, tenant_id, email, name, role, vendor_id, password_hash, session_token",
            users(),
        )
        copy_rows(
            conn,
            "site",
            "id, tenant_id, name, address",
            (
                f"{ids.site(t, s)}\t{t + 1}\tSite {s + 1:03d}\t{s + 1} High Street, Town {t + 1}\n"
                for t in range(tenants)
                for s in range(SITES_PER_TENANT)
            ),
        )
        copy_rows(
            conn,
            "charger",
            "id, tenant_id, ocpp_id, site_id, manufacturer, model, serial",
            (
                f"{ids.charger(t, c)}\t{t + 1}\tT{t + 1:02d}-CP-{c + 1:05d}\t"
                f"{ids.site(t, c // CHARGERS_PER_SITE)}\tABB\tTerra\tSN{t:02d}{c:06d}\n"
                for t in range(tenants)
                for c in range(ids.chargers_per_tenant)
            ),
        )
        copy_rows(
            conn,
            "connector",
            "id, tenant_id, charger_id, connector_no",
            (
                f"{ids.connector(t, c, n)}\t{t + 1}\t{ids.charger(t, c)}\t{n}\n"
                for t in range(tenants)
                for c in range(ids.chargers_per_tenant)
                for n in (1, 2)
            ),
        )
        log(f"  reference data in {time.perf_counter() - started:.1f} s")

        # Bulk load without the secondary indexes, then build them once.
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ticket' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        conn.commit()
        priorities = [p for p, weight in PRIORITY_WEIGHTS for _ in range(weight)]
        span = timedelta(days=3 * 365).total_seconds()

        def tickets() -> Iterator[str]:
            ident = 0
            # Tenants' tickets arrive interleaved over time, as in real life, so no tenant's
            # rows sit together on disk; numbers and ids follow creation time.
            for k in range(per_tenant):
                for t in range(tenants):
                    ident += 1
                    created = NOW - timedelta(seconds=span * (1 - (k + rng.random()) / per_tenant))
                    is_open = k % OPEN_SHARE == 0
                    if is_open:
                        status = STATUSES_OPEN[rng.randrange(5)]
                        # Open tickets get touched: updated in the last 30 days.
                        updated = max(created, NOW - timedelta(seconds=rng.random() * 2592000))
                    else:
                        status = "closed" if rng.random() < 0.9 else "cancelled"
                        if rng.random() < 0.25:
                            status = "resolved"
                        updated = min(NOW, created + timedelta(seconds=rng.random() * 1728000))
                    c = rng.randrange(ids.chargers_per_tenant)
                    with_charger = rng.random() < 0.85
                    assignee, vendor = "\\N", "\\N"
                    if status != "new" and status != "cancelled":
                        if rng.random() < 0.8:
                            offset = 1 + MANAGERS + AGENTS + rng.randrange(ENGINEERS)
                            assignee = str(ids.user(t, offset))
                        else:
                            vendor = str(ids.vendor(t, rng.randrange(VENDORS)))
                    part, symptom = rng.choice(PARTS), rng.choice(SYMPTOMS)
                    words = " ".join(rng.choices(WORDS, k=12))
                    yield (
                        "\t".join(
                            (
                                str(ident),
                                str(t + 1),
                                str(k + 1),
                                f"{part.capitalize()} {symptom}",
                                f"{words}. {part} {symptom} at bay {rng.randrange(1, 9)}, "
                                f"code E{rng.randrange(200)}, part P{rng.randrange(5000)}",
                                rng.choice(CATEGORIES),
                                rng.choice(priorities),
                                status,
                                rng.choice(CHANNELS),
                                str(ids.charger(t, c)) if with_charger else "\\N",
                                str(ids.connector(t, c, 1 + rng.randrange(2)))
                                if with_charger
                                else "\\N",
                                str(ids.site(t, c // CHARGERS_PER_SITE)),
                                "Sam Driver",
                                "+44 7700 900123",
                                assignee,
                                vendor,
                                ts(created),
                                ts(updated),
                                ts(updated) if status in ("resolved", "closed") else "\\N",
                            )
                        )
                        + "\n"
                    )

        loading = time.perf_counter()
        copy_rows(
            conn,
            "ticket",
            "id, tenant_id, number, title, description, category, priority, status, channel,"
            " charger_id, connector_id, site_id, caller_name, caller_phone, assignee_user_id,"
            " assignee_vendor_id, created_at, updated_at, resolved_at",
            tickets(),
        )
        conn.commit()
        log(f"  {total:,} tickets copied in {time.perf_counter() - loading:.1f} s")
        building = time.perf_counter()
        conn.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            conn.execute(definition)
        conn.commit()
        log(f"  {len(indexes)} ticket indexes built in {time.perf_counter() - building:.1f} s")
        benchkit.reset_sequences(
            conn, ("tenant", "vendor", "app_user", "site", "charger", "connector", "ticket")
        )
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    log(f"  seeded and analysed in {time.perf_counter() - started:.1f} s")


def timed_together(
    runs_of: list[Callable[[], float | None]], runs: int, warmup: int = 5
) -> list[list[float]]:
    """Time each callable `runs` times (ms; a callable may return its own measure), taking
    turns, after `warmup` untimed turns."""
    times: list[list[float]] = [[] for _ in runs_of]
    for turn in range(warmup + runs):
        for run, spent in zip(runs_of, times, strict=True):
            started = time.perf_counter()
            own = run()
            if turn >= warmup:
                spent.append(own if own is not None else (time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=TENANTS)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--pgdata", help="keep the seeded database here and reuse it")
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--profile", action="store_true", help="cProfile the page runs")
    args = parser.parse_args()
    if args.runs < 30:
        parser.error("--runs must be at least 30")

    with benchkit.embedded("cass-bench-", pgdata=args.pgdata) as bench:
        run_bench(bench.url, args)


def run_bench(url: str, args: argparse.Namespace) -> None:
    app = benchkit.migrated_app(url)
    with psycopg.connect(url) as conn:
        count = conn.execute("SELECT count(*) FROM ticket").fetchone()[0]
    if count != args.tickets:
        if count:
            raise SystemExit(f"{url} holds {count:,} tickets; use a fresh --pgdata")
        from cass.services.passwords import hash_password

        log(f"Seeding {args.tickets:,} tickets over {args.tenants} tenants with COPY ...")
        seed(url, args.tickets, args.tenants, hash_password(PASSWORD))
    else:
        log(f"Reusing {count:,} seeded tickets in {args.pgdata}")
    with psycopg.connect(url) as conn:
        summary = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status IN "
            "('new','assigned','in_progress','on_hold','reopened')), count(DISTINCT tenant_id) "
            "FROM ticket"
        ).fetchone()
        log(f"Data: {summary[0]:,} tickets, {summary[1]:,} open, {summary[2]} tenants")

    clock = ServerClock(app.wsgi_app)
    app.wsgi_app = clock  # type: ignore[method-assign]
    email = "u1@t01.test"  # a manager of tenant 1
    client = benchkit.signed_in(app, email)

    def served(path: str, **headers: str) -> float:
        client.get(path, headers=headers).get_data()
        return clock.last

    results = []
    floor: list[float] = []
    for name, query in SCENARIOS.items():
        url_path = f"/tickets?{query}" if query else "/tickets"
        response = client.get(url_path)
        assert response.status_code == 200, response.status_code
        body = response.get_data()
        rows = body.count(b'<tr id="ticket-')
        statements = page_sql(app, email, query)
        with _bound(url, tenant_id=1) as conn:
            # Round robin, so that load from elsewhere on the machine hits all alike.
            page_t, fragment_t, bare_t, floor_t = timed_together(
                [
                    lambda u=url_path: served(u),
                    lambda u=url_path: served(u, **{"HX-Request": "true"}),
                    lambda s=statements, c=conn: bare(c, s),
                    # The floor: a signed-in page that reads nothing but the user.
                    lambda: served("/account/password"),
                ],
                args.runs,
            )
        floor += floor_t
        results.append((name, query, rows, len(body), page_t, fragment_t, bare_t))
        if args.explain:
            explain(url, statements, tenant_id=1)
    if args.profile:
        profile(client, args.runs)
    report(results, floor, args)


def page_sql(app: object, email: str, query: str) -> list[tuple[str, dict]]:
    """Return the SQL statements (text and parameters, as sent to psycopg) that the list
    service runs for `query`: the page select, and for a search the charger and match probes.
    """
    from urllib.parse import parse_qsl

    from flask import g
    from sqlalchemy import event, select
    from werkzeug.datastructures import MultiDict

    from cass.models import User
    from cass.services import ticket_queries
    from cass.tenancy import system_context

    sent: list[tuple[str, dict]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if "set_config" not in statement:  # the per-transaction tenant binding
            sent.append((statement, dict(parameters or {})))

    with app.test_request_context():  # type: ignore[attr-defined]
        with system_context():
            user = db.session.scalar(select(User).where(User.email == email))
            db.session.expunge(user)
        g.tenant_id = user.tenant_id
        query_obj = ticket_queries.parse_list_query(MultiDict(parse_qsl(query)))
        event.listen(db.engine, "before_cursor_execute", capture)
        try:
            ticket_queries.list_page(user, query_obj)
        finally:
            event.remove(db.engine, "before_cursor_execute", capture)
        db.session.remove()
    return sent


def _bound(url: str, tenant_id: int) -> psycopg.Connection:
    conn = psycopg.connect(url)
    conn.execute(
        "SELECT set_config('role', 'cass_app', true), set_config('app.tenant_id', %s, true)",
        (str(tenant_id),),
    )
    return conn


def bare(conn: psycopg.Connection, statements: list[tuple[str, dict]]) -> None:
    """Run the page's SQL statements with psycopg, fetching every row."""
    for sql, params in statements:
        conn.execute(sql, params).fetchall()


def explain(url: str, statements: list[tuple[str, dict]], tenant_id: int) -> None:
    with _bound(url, tenant_id) as conn:
        for sql, params in statements:
            plan = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()
            log(sql.split("\n")[0][:100] + " ...")
            log("\n".join(row[0] for row in plan) + "\n")


def profile(client: object, runs: int) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(runs):
        client.get("/tickets").get_data()  # type: ignore[attr-defined]
    profiler.disable()
    pstats.Stats(profiler).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(40)


def report(results: list[tuple], floor: list[float], args: argparse.Namespace) -> None:
    log(
        f"\nTicket list: {args.tickets:,} tickets, {args.tenants} tenants; {args.runs} runs "
        "each; server time in ms (the Flask app's WSGI call, in process); bare = the same SQL "
        "statements with psycopg\n"
    )
    header = (
        f"{'scenario':<12} {'rows':>4} {'page p50':>9} {'page p95':>9} {'htmx p50':>9} "
        f"{'bare p50':>9} {'page/bare':>9} {'HTML KB':>8}  p95<=50  HTML<=100KB  ratio<=3"
    )
    log(header)
    log("-" * len(header))
    verdicts = []
    for name, _, rows, size, page_t, fragment_t, bare_t in results:
        p50, p95 = statistics.median(page_t), percentile(page_t, 0.95)
        bare50 = statistics.median(bare_t)
        checks = (p95 <= 50, size <= 100 * 1024, p50 / bare50 <= 3)
        verdicts.append(checks)
        marks = [
            ("ok" if good else "MISSED").center(width)
            for good, width in zip(checks, (7, 11, 8), strict=True)
        ]
        log(
            f"{name:<12} {rows:>4} {p50:>9.2f} {p95:>9.2f} {statistics.median(fragment_t):>9.2f} "
            f"{bare50:>9.2f} {p50 / bare50:>8.1f}x {size / 1024:>8.1f}  " + "  ".join(marks)
        )
    log(
        f"\nFloor: a signed-in page that reads only the user (/account/password) takes "
        f"{statistics.median(floor):.2f} ms p50 here."
    )
    log("Scenarios: " + "; ".join(f"{n}: /tickets?{q}" for n, q, *_ in results))
    for i, target in enumerate(("p95 <= 50 ms", "HTML <= 100 KB", "page p50 <= 3x bare p50")):
        missed = [r[0] for r, v in zip(results, verdicts, strict=True) if not v[i]]
        log(f"{target}: " + (f"missed by {', '.join(missed)}" if missed else "met"))


if __name__ == "__main__":
    main()
