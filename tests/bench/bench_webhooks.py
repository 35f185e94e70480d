"""Benchmark: what the webhook triggers (migration 0021) add to hot writes, and how fast the
delivery job empties its queue.

Run: python tests/bench/bench_webhooks.py [--writes 2000] [--deliveries 2000] [--runs 3]

Starts its own embedded PostgreSQL, migrates it and seeds with COPY 20 tenants, each with 200
chargers (two connectors) and 2,000 tickets. Then times, per write and in its own transaction
(a connection as the owner, as the bridge uses), two writes:

- a ticket update as the ticket service makes it: UPDATE ticket (priority, version) and one
  INSERT ticket_event;
- a bridge status write: ocpp_bridge.records' own status statement, alternating Faulted and
  Available on one connector, so every write inserts a charger_event (a fault or a recovery);

each three ways: the webhook trigger disabled (ALTER TABLE ... DISABLE TRIGGER, the cost
without webhooks), enabled with no endpoint anywhere, and enabled with one active endpoint of
the writer's tenant subscribed (the write then queues a delivery). Prints the median
microseconds per write and the ratio against the trigger disabled, medians over --runs.

Last, the delivery job's throughput: --deliveries queued pings to a local ThreadingHTTPServer
answering 204, delivered by cass.services.webhooks.deliver_due (CASS_WEBHOOK_CONCURRENCY
requests at a time); prints deliveries per second.
"""

from __future__ import annotations

import argparse
import io
import statistics
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import benchkit
import psycopg

from cass.extensions import db
from cass.services import webhooks
from cass.services.tenants import create_tenant
from cass.tenancy import system_context
from ocpp_bridge.records import _STATUS_SQL

TENANTS = 20
CHARGERS = 200
TICKETS = 2000
MODES = ("no trigger", "no endpoint", "1 endpoint")


def copy_rows(conn: psycopg.Connection, table: str, columns: str, rows: list[tuple]) -> None:
    """Load rows with COPY (text format)."""
    buffer = io.StringIO()
    for row in rows:
        buffer.write("\t".join("\\N" if v is None else str(v) for v in row) + "\n")
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        copy.write(buffer.getvalue())


def seed(app: Any, url: str) -> list[int]:
    """Create the tenants (services: calendars and policies) and COPY their fleet and tickets."""
    with app.app_context(), system_context():
        tenants = [
            create_tenant(f"t{n:02d}", f"Tenant {n}", f"T{n:02d}").id for n in range(TENANTS)
        ]
        db.session.commit()
    with psycopg.connect(url) as conn:
        copy_rows(conn, "site", "tenant_id, name", [(t, "Site") for t in tenants])
        sites = dict(conn.execute("SELECT tenant_id, id FROM site").fetchall())
        copy_rows(
            conn,
            "charger",
            "tenant_id, ocpp_id, site_id",
            [(t, f"T{t}-CP-{c:04d}", sites[t]) for t in tenants for c in range(CHARGERS)],
        )
        copy_rows(
            conn,
            "connector",
            "tenant_id, charger_id, connector_no",
            [
                (t, c, n)
                for t, c in conn.execute("SELECT tenant_id, id FROM charger")
                for n in (1, 2)
            ],
        )
        copy_rows(
            conn,
            "ticket",
            "tenant_id, number, title, category, priority, channel",
            [
                (t, n, f"Ticket {n}", "hardware", "P3", "phone")
                for t in tenants
                for n in range(1, TICKETS + 1)
            ],
        )
        conn.execute("ANALYZE")
    return tenants


def timed(conn: psycopg.Connection, writes: int, write: Callable[[int], None]) -> float:
    """Return the median microseconds of `writes` writes, each committed on its own."""
    times = []
    for n in range(writes):
        started = time.perf_counter()
        write(n)
        conn.commit()
        times.append((time.perf_counter() - started) * 1e6)
    return statistics.median(times)


def set_mode(conn: psycopg.Connection, mode: str, tenant: int) -> None:
    """Switch the webhook triggers and the tenant's endpoint for `mode`."""
    action = "DISABLE" if mode == "no trigger" else "ENABLE"
    for table, function in (
        ("ticket_event", "cass_webhook_ticket_event"),
        ("charger_event", "cass_webhook_charger_event"),
    ):
        conn.execute(f"ALTER TABLE {table} {action} TRIGGER {function}")
    conn.execute("DELETE FROM webhook_endpoint")
    if mode == "1 endpoint":
        conn.execute(
            "INSERT INTO webhook_endpoint (tenant_id, url, secret, events) VALUES "
            "(%s, 'https://hooks.example.com/x', 's', ARRAY['ticket.changed', 'charger.faulted', "
            "'charger.recovered'])",
            (tenant,),
        )
    conn.commit()


def bench_writes(url: str, tenant: int, writes: int, runs: int) -> dict[tuple[str, str], float]:
    """Time the ticket update and the bridge status write in each mode; return medians (µs)."""
    results: dict[tuple[str, str], list[float]] = {}
    with psycopg.connect(url) as conn:
        tickets = [
            r[0] for r in conn.execute("SELECT id FROM ticket WHERE tenant_id = %s", (tenant,))
        ]
        charger_id = conn.execute(
            "SELECT id FROM charger WHERE tenant_id = %s LIMIT 1", (tenant,)
        ).fetchone()[0]

        def ticket_update(n: int) -> None:
            ticket = tickets[n % len(tickets)]
            priority = ("P1", "P2", "P3", "P4")[n % 4]
            conn.execute(
                "UPDATE ticket SET priority = %s, version = version + 1, updated_at = now() "
                "WHERE id = %s",
                (priority, ticket),
            )
            conn.execute(
                "INSERT INTO ticket_event (tenant_id, ticket_id, kind, field, from_value, to_value)"
                " VALUES (%s, %s, 'field', 'priority', 'P3', %s)",
                (tenant, ticket, priority),
            )

        # The bridge passes the message's time; now() here.
        status_sql_at = _STATUS_SQL.replace("%(at)s", "now()")

        def status_write(n: int) -> None:
            faulted = n % 2 == 0
            conn.execute(
                status_sql_at,
                {
                    "tenant_id": tenant,
                    "charger_id": charger_id,
                    "no": 1,
                    "status": "Faulted" if faulted else "Available",
                    "error_code": "GroundFailure" if faulted else "NoError",
                    "info": None,
                    "vendor_error_code": None,
                    "channel": "cass_bench",
                    "live": "{}",
                },
            )

        for _ in range(runs):
            for mode in MODES:
                set_mode(conn, mode, tenant)
                for name, write in (
                    ("ticket update", ticket_update),
                    ("status write", status_write),
                ):
                    timed(conn, 50, write)  # warm the plans and caches
                    results.setdefault((name, mode), []).append(timed(conn, writes, write))
        set_mode(conn, "no endpoint", tenant)
        conn.execute("DELETE FROM webhook_delivery")
        conn.commit()
    return {key: statistics.median(values) for key, values in results.items()}


def bench_delivery(app: Any, url: str, tenant: int, count: int) -> tuple[float, float]:
    """Queue `count` pings to a local receiver and deliver them; return (seconds, per second)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        # The listen backlog (5 by default) would drop concurrent connections' SYNs.
        request_queue_size = 128
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with psycopg.connect(url) as conn:
            endpoint = conn.execute(
                "INSERT INTO webhook_endpoint (tenant_id, url, secret, events) VALUES "
                "(%s, %s, 'bench-secret', ARRAY['ticket.changed']) RETURNING id",
                (tenant, f"http://127.0.0.1:{server.server_port}/hook"),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO webhook_delivery (tenant_id, endpoint_id, event_type, payload) "
                "SELECT %s, %s, 'ping', jsonb_build_object('n', n, 'data', repeat('x', 300)) "
                "FROM generate_series(1, %s) n",
                (tenant, endpoint, count),
            )
        app.config["CASS_WEBHOOK_ALLOW_PRIVATE"] = True
        with app.app_context(), system_context():
            started = time.perf_counter()
            sent = webhooks.deliver_due()
            seconds = time.perf_counter() - started
        delivered = benchkit.scalar(
            url, "SELECT count(*) FROM webhook_delivery WHERE status = 'delivered'"
        )
        assert sent == count == delivered, (sent, count, delivered)
        return seconds, count / seconds
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=2000)
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with benchkit.embedded("cass-bench-webhooks-") as bench:
        app = benchkit.migrated_app(bench.url)
        benchkit.log(
            f"Seeding {TENANTS} tenants, {TENANTS * CHARGERS:,} chargers, "
            f"{TENANTS * TICKETS:,} tickets with COPY …"
        )
        tenants = seed(app, bench.url)
        benchkit.log(f"Timing {args.writes:,} writes per kind and mode, {args.runs} runs …")
        results = bench_writes(bench.url, tenants[0], args.writes, args.runs)
        benchkit.log(f"{'write':<15} {'mode':<12} {'median µs':>10} {'ratio':>6}")
        for name in ("ticket update", "status write"):
            base = results[(name, "no trigger")]
            for mode in MODES:
                value = results[(name, mode)]
                benchkit.log(f"{name:<15} {mode:<12} {value:>10.0f} {value / base:>6.2f}")
        seconds, rate = bench_delivery(app, bench.url, tenants[1], args.deliveries)
        benchkit.log(
            f"delivery: {args.deliveries:,} deliveries in {seconds:.2f} s = {rate:,.0f} per second"
        )


if __name__ == "__main__":
    main()
