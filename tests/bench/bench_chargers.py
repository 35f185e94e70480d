"""Benchmark: the charger list and the charger page at scale, and fault -> ticket (issue 5,
point 9).

Starts its own embedded PostgreSQL, migrates it, seeds the demo data, then with set-based SQL
(INSERT ... SELECT generate_series, the history tables' secondary indexes built after the
rows) gives each of the two tenants --chargers chargers (two connectors each, 200 sites) and
their history: --events charger events a charger over 30 days, --sessions sessions of
--samples meter values each (50 million meter values at the defaults), --messages OCPP
messages over 14 days in day partitions, and one chatty charger with 200,000 more events and
100,000 more messages; then VACUUM ANALYZE. Signed in as the demo agent through the Flask test
client, it times the list (first page, htmx table, filtered, searched, a later page, a live
refresh through 200 rows) and the charger page (a typical charger, its live part, the chatty
one, its timeline's faults and its message log filtered by a rare action): server time p50 /
p95, the web process's CPU per request, HTML size, and the CPU pressure while each ran (the
share of time some task waited for a CPU). Targets: list p95 <= 50 ms, page p95 <= 80 ms.

Then it measures fault -> ticket on the board (target <= 2 s): a real bridge (`python -m
ocpp_bridge`) and scheduler (`python -m cass scheduler`, whose workflow worker runs the
rules), --faults simulated chargers each sending a Faulted StatusNotification, timed until the
board's live channel announces the ticket.

Run: python tests/bench/bench_chargers.py [--chargers 10000] [--runs 50] [--faults 20]
     [--only REGEX] [--explain [--plans]] [--seed-only] (--pgdata DIR keeps the seeded
     database in DIR and reuses it; seeding the defaults takes about 12 minutes and 15 GB)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import benchkit
import psycopg
from benchkit import PASSWORD, ROOT, ServerClock, log, percentile

from cass.extensions import db

CHATTY = "BENCH-CP-000042"
TABLES = (
    "charger",
    "connector",
    "charger_event",
    "meter_value",
    "charging_session",
    "ocpp_message",
)


SEED_SQL = """
INSERT INTO site (tenant_id, name, address, lat, lon)
SELECT t.id, 'Bench site ' || g, g || ' Bench Road, Benchtown', 51 + g / 1000.0, -0.1
FROM tenant t, generate_series(1, 200) g;

INSERT INTO charger (tenant_id, ocpp_id, site_id, manufacturer, model, serial, asset_tag,
                     firmware, online, last_seen, warranty_end, install_date)
SELECT t.id, upper(t.slug) || '-BENCH-' || lpad(g::text, 6, '0'),
       (SELECT id FROM site s WHERE s.tenant_id = t.id AND s.name = 'Bench site ' || 1 + g %% 200),
       (ARRAY['ABB', 'Alpitronic', 'Kempower'])[1 + g %% 3],
       (ARRAY['Terra AC W22', 'HYC300', 'S-Series', 'Terra 184'])[1 + g %% 4],
       'SN' || t.id || lpad(g::text, 7, '0'), 'AT-' || t.id || '-' || g,
       (ARRAY['1.4.2', '1.5.0', '2.0.1'])[1 + g %% 3], g %% 10 <> 0,
       now() - make_interval(secs => g %% 600), current_date + (g %% 1000) - 300,
       current_date - 700
FROM tenant t, generate_series(1, %(chargers)s) g;
UPDATE charger SET ocpp_id = %(chatty)s
WHERE id = (SELECT min(id) FROM charger WHERE ocpp_id LIKE 'DEMO-BENCH-%%');

INSERT INTO connector (tenant_id, charger_id, connector_no, status, error_code)
SELECT c.tenant_id, c.id, n,
       CASE WHEN c.id %% 51 = 0 AND n = 2 THEN 'Faulted'
            WHEN c.id %% 7 = 0 THEN 'Charging' ELSE 'Available' END,
       CASE WHEN c.id %% 51 = 0 AND n = 2 THEN 'GroundFailure' ELSE 'NoError' END
FROM charger c, generate_series(1, 2) n
WHERE NOT EXISTS (SELECT 1 FROM connector k WHERE k.charger_id = c.id);

-- Charger events: --events a charger over the last 30 days (a fifth of them Faulted, one in
-- 200 with an error code), and 200,000 more for the chatty charger over its last 2.3 days.
INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status, error_code,
                           handled_at)
SELECT c.tenant_id, c.id, 1 + g %% 2,
       now() - make_interval(secs => g * (2592000 / %(events)s) + c.id %% 997),
       (ARRAY['status', 'status', 'status', 'online', 'offline'])[1 + g %% 5],
       (ARRAY['Available', 'Charging', 'Faulted', NULL, NULL])[1 + g %% 5],
       CASE WHEN g %% 5 = 2 AND g %% 40 = 7 THEN 'GroundFailure' ELSE 'NoError' END, now()
FROM charger c, generate_series(1, %(events)s) g;
INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status, error_code,
                           handled_at)
SELECT c.tenant_id, c.id, 1, now() - make_interval(secs => g), 'status', 'Charging', 'NoError',
       now()
FROM charger c, generate_series(1, 200000) g WHERE c.ocpp_id = %(chatty)s;

-- Sessions: --sessions a charger over the last 30 days, each --samples minutes long with one
-- energy reading a minute in meter_value (the transaction's id on each).
INSERT INTO charging_session (tenant_id, charger_id, connector_no, id_tag, started_at,
                              stopped_at, meter_start, meter_stop, energy_wh, cost, currency,
                              stop_reason)
SELECT c.tenant_id, c.id, 1 + g %% 2, 'TAG-' || (c.id * 7 + g) %% 5000,
       date_trunc('minute', now()) - make_interval(secs => g * (2592000 / %(sessions)s))
           - make_interval(mins => (c.id %% 60)::int),
       date_trunc('minute', now()) - make_interval(secs => g * (2592000 / %(sessions)s))
           - make_interval(mins => (c.id %% 60)::int) + make_interval(mins => %(samples)s),
       0, 400 * %(samples)s, 400 * %(samples)s, 0.30 * 0.4 * %(samples)s, 'EUR', 'EVDisconnected'
FROM charger c, generate_series(1, %(sessions)s) g;

INSERT INTO meter_value (tenant_id, charger_id, connector_no, transaction_id, at, measurand,
                         unit, context, value)
SELECT s.tenant_id, s.charger_id, s.connector_no, s.id, s.started_at + make_interval(mins => m),
       'Energy.Active.Import.Register', 'Wh', 'Sample.Periodic', 400 * m
FROM charging_session s, generate_series(1, %(samples)s) m;

-- OCPP messages: --messages a charger over the last 14 days (in day partitions), and 100,000
-- more for the chatty charger over its last day, one of them a BootNotification.
INSERT INTO ocpp_message (at, tenant_id, charger_id, direction, message_type, message_id,
                          action, payload)
SELECT now() - make_interval(secs => g * (1209600 / %(messages)s) + c.id %% 1000), c.tenant_id,
       c.id, CASE WHEN g %% 2 = 0 THEN 'in' ELSE 'out' END, 2 + g %% 2, 'm' || g,
       (ARRAY['Heartbeat', 'MeterValues', 'StatusNotification', 'Heartbeat'])[1 + g %% 4],
       jsonb_build_object('connectorId', 1, 'meterValue',
                          jsonb_build_array(jsonb_build_object('value', g)))
FROM charger c, generate_series(1, %(messages)s) g;
INSERT INTO ocpp_message (at, tenant_id, charger_id, direction, message_type, message_id,
                          action, payload)
SELECT now() - make_interval(secs => g %% 86000) - interval '1 ms' * g, c.tenant_id, c.id,
       'in', 2, 'c' || g, CASE WHEN g = 99000 THEN 'BootNotification' ELSE 'Heartbeat' END,
       '{}'::jsonb
FROM charger c, generate_series(1, 100000) g WHERE c.ocpp_id = %(chatty)s;
"""


BULK_TABLES = ("charger_event", "charging_session", "meter_value", "ocpp_message")
PARTITIONS_SQL = """
DO $$
DECLARE day date;
BEGIN
  FOR day IN SELECT generate_series(current_date - 16, current_date, interval '1 day')::date LOOP
    EXECUTE format(
      'CREATE TABLE IF NOT EXISTS %I PARTITION OF ocpp_message FOR VALUES FROM (%L) TO (%L)',
      'ocpp_message_' || to_char(day, 'YYYYMMDD'),
      day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
  END LOOP;
END $$
"""


def seed(app: object, url: str, args: argparse.Namespace) -> None:
    """Seed the demo data, then the bench's fleet and history with set-based SQL.

    The history tables' secondary indexes are dropped first and built again after the rows are
    in (sorting once is far cheaper than 60 million index insertions), and foreign-key and other
    triggers are off for the session (session_replication_role = replica; the rows are made
    consistent by construction). Primary keys and unique constraints stay.
    """
    from cass.services.demo import seed_demo
    from cass.tenancy import system_context

    with app.app_context(), system_context():  # type: ignore[attr-defined]
        seed_demo(PASSWORD, "bench-charger-key")
    params = {
        "chargers": args.chargers,
        "events": args.events,
        "sessions": args.sessions,
        "samples": args.samples,
        "messages": args.messages,
        "chatty": CHATTY,
    }
    with psycopg.connect(url, autocommit=True) as conn:
        # The day partitions first: their tables' indexes are built over them afterwards.
        conn.execute(PARTITIONS_SQL)
        with benchkit.bulk_load(conn, BULK_TABLES):
            for statement in SEED_SQL.split(";\n"):
                if statement.strip():
                    started = time.monotonic()
                    conn.execute(statement, params)
                    what = re.search(r"(INSERT INTO|UPDATE) (\w+)", statement).group(0)  # type: ignore[union-attr]
                    log(f"  {what}: {time.monotonic() - started:.0f} s")


def cpu_pressure() -> float:
    """Return the total time (s) some task waited for a CPU, from /proc/pressure/cpu."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return 0.0
    return int(line.rsplit("total=", 1)[1]) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=250, help="charger events a charger")
    parser.add_argument("--sessions", type=int, default=50, help="sessions a charger")
    parser.add_argument("--samples", type=int, default=50, help="meter values a session")
    parser.add_argument("--messages", type=int, default=500, help="OCPP messages a charger")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--pgdata", help="keep the seeded database here and reuse it")
    parser.add_argument("--faults", type=int, default=20, help="fault -> ticket samples (0: none)")
    parser.add_argument("--seed-only", action="store_true", help="seed (with --pgdata), no timing")
    parser.add_argument("--explain", action="store_true", help="print the plans of the pages")
    parser.add_argument("--plans", action="store_true", help="with --explain: the whole plans")
    parser.add_argument("--only", help="run the scenarios whose name matches this regex")
    args = parser.parse_args()
    with benchkit.embedded(
        "cass-bench-",
        database="cass_bench_chargers",
        pgdata=args.pgdata,
        settings={"max_wal_size": "8GB"},  # fewer checkpoints while seeding tens of gigabytes
    ) as bench:
        args.workdir = bench.root
        run(bench.url, args)


def run(url: str, args: argparse.Namespace) -> None:
    app = benchkit.migrated_app(url)
    with psycopg.connect(url) as conn:
        seeded = conn.execute("SELECT count(*) FROM charger WHERE ocpp_id LIKE 'DEMO-BENCH-%'")
        seeded = seeded.fetchone()[0]
    if not seeded:
        log(
            f"Seeding {args.chargers:,} chargers a tenant, {args.events} events, "
            f"{args.sessions} sessions of {args.samples} meter values and {args.messages} "
            "OCPP messages each ..."
        )
        started = time.monotonic()
        seed(app, url, args)
        log(f"Seeded in {time.monotonic() - started:.0f} s")
    if args.seed_only:
        return
    with psycopg.connect(url) as conn:
        # Row counts as of the last VACUUM ANALYZE (exact for what it scanned; counting 50
        # million rows on every run would take longer than the benchmark).
        counts = {
            table: int(
                conn.execute(
                    "SELECT coalesce(sum(c.reltuples), 0) FROM pg_class c WHERE c.relkind = 'r' AND"
                    " (c.oid = %s::regclass OR c.oid IN"
                    " (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass))",
                    (table, table),
                ).fetchone()[0]
            )
            for table in TABLES
        }
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        serial = conn.execute(
            "SELECT serial FROM charger WHERE ocpp_id LIKE 'DEMO-BENCH-%' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        site = conn.execute(
            "SELECT min(site_id) FROM charger WHERE ocpp_id LIKE 'DEMO-BENCH-%'"
        ).fetchone()[0]
        # Sign-in is rate limited per address and e-mail; this database is reused run after run.
        conn.execute("DELETE FROM login_attempt")
    log("Data: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()))
    log(f"Database size: {size / 1e9:.1f} GB")

    clock = ServerClock(app.wsgi_app)
    app.wsgi_app = clock  # type: ignore[method-assign]
    client = benchkit.signed_in(app, "agent@demo.test")
    hx = {"HX-Request": "true"}
    typical = "DEMO-BENCH-005000"
    rare = "BootNotification"  # one message of the chatty charger's 100,000
    scenarios = [
        ("list: first page", "/chargers", {}),
        ("list: htmx table", "/chargers", hx),
        ("list: offline & faulted", "/chargers?online=no&faulted=1", hx),
        ("list: site", f"/chargers?site={site}", hx),
        ("list: search serial", f"/chargers?q={serial.lower()}", hx),
        ("list: search site name", "/chargers?q=bench%20site%2017", hx),
        ("list: later page", "/chargers?after=DEMO-BENCH-007000", hx),
        ("list: live refresh (200 rows)", "/chargers?through=DEMO-BENCH-000200", hx),
        ("page: typical charger", f"/chargers/{typical}", {}),
        ("page: live part", f"/chargers/{typical}?part=live", hx),
        ("page: chatty charger", f"/chargers/{CHATTY}", {}),
        ("page: chatty, faults only", f"/chargers/{CHATTY}?part=timeline&tl=faults", hx),
        ("page: chatty, rare action", f"/chargers/{CHATTY}?part=messages&msg_action={rare}", hx),
    ]
    if args.only:
        scenarios = [s for s in scenarios if re.search(args.only, s[0])]
    results = []
    for name, path, headers in scenarios:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.status_code)
        size = len(response.get_data())
        times, cpu = [], []
        waited, started = cpu_pressure(), time.monotonic()
        for _ in range(args.runs):
            client.get(path, headers=headers).get_data()
            times.append(clock.last)
            cpu.append(clock.last_cpu)
        pressure = (cpu_pressure() - waited) / (time.monotonic() - started) * 100
        results.append(
            (
                name,
                statistics.median(times),
                percentile(times, 0.95),
                statistics.median(cpu),
                size,
                pressure,
            )
        )
        if args.explain:
            explain(app, path, headers, client, args.plans)
    log(
        f"\n{'scenario':34} {'p50 ms':>7} {'p95 ms':>7} {'CPU ms':>7} {'HTML KB':>8}"
        f" {'CPU pressure':>12}"
    )
    for name, p50, p95, cpu_ms, size, pressure in results:
        log(f"{name:34} {p50:7.1f} {p95:7.1f} {cpu_ms:7.1f} {size / 1024:8.1f} {pressure:11.0f}%")
    log(f"load average: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    if args.faults:
        with app.app_context():
            db.engine.dispose()
        latencies = fault_to_ticket(url, args.faults, args.workdir)
        log(
            f"\nfault -> ticket on the board ({len(latencies)} faults, target <= 2,000 ms): "
            f"p50 {statistics.median(latencies):.0f} ms, p95 {percentile(latencies, 0.95):.0f} ms,"
            f" max {max(latencies):.0f} ms"
        )


def explain(app: object, path: str, headers: dict, client: object, whole: bool) -> None:
    """Print EXPLAIN ANALYZE of every select a request makes, as the request ran it: in one
    transaction bound to the tenant as the request's was (its role, so row-level security)."""
    from sqlalchemy import event

    with app.app_context():  # type: ignore[attr-defined]
        engine = db.engine
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    client.get(path, headers=headers)  # type: ignore[attr-defined]
    event.remove(engine, "before_cursor_execute", capture)
    log(f"\n=== {path}")
    with engine.connect() as conn:
        for statement, parameters in captured:
            if "set_config" in statement:
                conn.exec_driver_sql(statement, parameters)
                continue
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS OFF) " + statement, parameters)
            lines = [row[0] for row in plan]
            log(f"--- {lines[-1].strip()}  {statement.split(chr(10))[0][:90]}")
            if whole:
                log(statement % {k: repr(v) for k, v in (parameters or {}).items()})
                log("\n".join(lines))


# --- fault -> ticket on the board -----------------------------------------------------------

CHARGER_KEY = "bench-charger-key"  # seed_demo's charger key, given to the fault chargers too


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def service(argv: list[str], env: dict[str, str], logfile: Path) -> Iterator[subprocess.Popen]:
    """Run a process for the block (its output in `logfile`); SIGTERM it after."""
    with logfile.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_until(check: Callable[[], bool], what: str, proc: subprocess.Popen, timeout=30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise RuntimeError(f"{what}: the process exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.1)


class RawCharger:
    """A simulated OCPP 1.6 charger sending pre-built OCPP-J frames over a real WebSocket;
    any CALL from the bridge is answered NotImplemented."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.sent = 0
        self.pending: dict[str, asyncio.Future] = {}
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if message[0] == 2:
                await self.ws.send(json.dumps([4, message[1], "NotImplemented", "bench", {}]))
            elif message[1] in self.pending:
                self.pending.pop(message[1]).set_result(message)

    async def call(self, action: str, payload: dict[str, Any]) -> list[Any]:
        self.sent += 1
        ident = f"b{self.sent}"
        future = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        await self.ws.send(json.dumps([2, ident, action, payload]))
        answer = await asyncio.wait_for(future, 10)
        assert answer[0] == 3, answer
        return answer

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def status(connector: int, state: str, error: str = "NoError") -> dict[str, Any]:
    return {"connectorId": connector, "errorCode": error, "status": state}


async def fault_samples(url: str, ws_base: str, chargers: list[str], tenant: int) -> list[float]:
    """For each charger: boot, Available, then time a Faulted StatusNotification until the
    board's live channel announces the ticket the rules opened for it; then recover."""
    from websockets.asyncio.client import connect

    from cass.live import CHANNEL

    listener = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await listener.execute(f"LISTEN {CHANNEL}")
    tickets: asyncio.Queue[tuple[float, int]] = asyncio.Queue()

    async def listen() -> None:
        async for note in listener.notifies():
            event = json.loads(note.payload)
            if event.get("kind") == "ticket" and event.get("t") == tenant:
                tickets.put_nowait((time.perf_counter(), int(event["id"])))

    listening = asyncio.ensure_future(listen())
    latencies = []
    try:
        for ocpp_id in chargers:
            token = base64.b64encode(f"{ocpp_id}:{CHARGER_KEY}".encode()).decode()
            ws = await connect(
                f"{ws_base}/ocpp/{ocpp_id}",
                subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Basic {token}"},
                open_timeout=10,
            )
            charger = RawCharger(ws)
            boot = {"chargePointVendor": "ABB", "chargePointModel": "Terra AC W22"}
            await charger.call("BootNotification", boot)
            await charger.call("StatusNotification", status(1, "Available"))
            await asyncio.sleep(0.3)
            while not tickets.empty():  # announcements of earlier tickets, if any
                tickets.get_nowait()
            started = time.perf_counter()
            await charger.call("StatusNotification", status(1, "Faulted", "GroundFailure"))
            arrived, ticket = await asyncio.wait_for(tickets.get(), 10)
            async with await psycopg.AsyncConnection.connect(url) as check:
                cursor = await check.execute(
                    "SELECT c.ocpp_id, t.channel FROM ticket t JOIN charger c "
                    "ON c.id = t.charger_id WHERE t.id = %s",
                    (ticket,),
                )
                assert await cursor.fetchone() == (ocpp_id, "ocpp-auto"), ticket
            latencies.append((arrived - started) * 1000)
            await charger.call("StatusNotification", status(1, "Available"))
            await asyncio.sleep(0.2)
            await charger.close()
    finally:
        listening.cancel()
        await listener.close()
    return latencies


def fault_to_ticket(url: str, samples: int, workdir: Path) -> list[float]:
    """Measure fault -> ticket on the board with a real bridge (`python -m ocpp_bridge`) and
    the scheduler process whose workflow worker runs the rules (`python -m cass scheduler`),
    on the seeded database: `samples` chargers never ticketed before, one fault each."""
    from ocpp_bridge.keys import hash_key

    with psycopg.connect(url) as conn:
        tenant = conn.execute("SELECT id FROM tenant WHERE slug = 'demo'").fetchone()[0]
        chargers = [
            row[0]
            for row in conn.execute(
                "SELECT ocpp_id FROM charger c WHERE tenant_id = %s"
                " AND ocpp_id LIKE 'DEMO-BENCH-%%'"
                " AND NOT EXISTS (SELECT 1 FROM ticket t WHERE t.charger_id = c.id)"
                " AND NOT EXISTS (SELECT 1 FROM connector k WHERE k.charger_id = c.id"
                "                 AND k.status = 'Faulted')"
                " ORDER BY ocpp_id DESC LIMIT %s",
                (tenant, samples),
            )
        ]
        conn.execute(
            "UPDATE charger SET key_hash = %s WHERE ocpp_id = ANY(%s)",
            (hash_key(CHARGER_KEY), chargers),
        )
    env = dict(
        os.environ,
        DATABASE_URL=url,
        SECRET_KEY="bench-secret",
        CASS_INSTANCE_DIR=str(workdir / "instance"),
    )
    port = free_port()
    bridge_argv = [sys.executable, "-m", "ocpp_bridge", "--port", str(port)]
    scheduler_argv = [sys.executable, "-m", "cass", "scheduler"]

    def worker_listening() -> bool:
        with psycopg.connect(url, autocommit=True) as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = 'cass-workflow'"
                " AND query ILIKE 'LISTEN%'"
            ).fetchone()
        return found is not None

    def bridge_up() -> bool:
        health = f"http://127.0.0.1:{port}/healthz"
        with contextlib.suppress(OSError), urllib.request.urlopen(health, timeout=2) as answer:
            return bool(answer.status == 200)
        return False

    with (
        service(bridge_argv, env, workdir / "bridge.log") as bridge,
        service(scheduler_argv, env, workdir / "scheduler.log") as scheduler,
    ):
        wait_until(bridge_up, "bridge", bridge)
        wait_until(worker_listening, "workflow worker", scheduler)
        return asyncio.run(fault_samples(url, f"ws://127.0.0.1:{port}", chargers, tenant))


if __name__ == "__main__":
    main()
