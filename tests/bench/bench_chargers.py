"""Benchmark: the charger list and the charger page at scale (issue 5, points 2 and 3).

Starts its own embedded PostgreSQL in a temporary folder, migrates it, seeds the demo data,
then with set-based SQL gives tenant demo --chargers chargers (two connectors each, 200 sites)
and the other tenant as many, with their history: charger events, meter values, sessions and
OCPP messages (--events per charger on average, one chatty charger with far more), and
ANALYZEs. Signed in as the demo agent through the Flask test client, it times the list (first
page, htmx table, filtered, searched, a later page, a live refresh through 200 rows) and the
charger page (a typical charger, the chatty one, its message log filtered by a rare action):
server time p50 / p95 and HTML size. Targets: list p95 <= 50 ms, page p95 <= 80 ms.

Run: python tests/bench/bench_chargers.py [--chargers 10000] [--events 200] [--runs 50]
     [--explain] (--pgdata DIR keeps the seeded database in DIR and reuses it)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cass import create_app
from cass.config import Config
from cass.embedded_db import ensure_database, start_embedded
from cass.extensions import db

PASSWORD = "bench-password-1"
CHATTY = "BENCH-CP-000042"
TABLES = (
    "charger",
    "connector",
    "charger_event",
    "meter_value",
    "charging_session",
    "ocpp_message",
)
CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def log(message: str) -> None:
    print(message, flush=True)


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

INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status, error_code,
                           handled_at)
SELECT c.tenant_id, c.id, 1 + g %% 2, now() - make_interval(mins => g * 7),
       (ARRAY['status', 'status', 'status', 'online', 'offline'])[1 + g %% 5],
       (ARRAY['Available', 'Charging', 'Faulted', NULL, NULL])[1 + g %% 5],
       CASE WHEN g %% 5 = 2 AND g %% 40 = 7 THEN 'GroundFailure' ELSE 'NoError' END, now()
FROM charger c, generate_series(1, %(events)s) g;
INSERT INTO charger_event (tenant_id, charger_id, connector_no, at, kind, status, error_code,
                           handled_at)
SELECT c.tenant_id, c.id, 1, now() - make_interval(secs => g), 'status', 'Charging', 'NoError',
       now()
FROM charger c, generate_series(1, 200000) g WHERE c.ocpp_id = %(chatty)s;

INSERT INTO meter_value (tenant_id, charger_id, connector_no, at, measurand, unit, value)
SELECT c.tenant_id, c.id, 1, now() - make_interval(mins => g), 'Energy.Active.Import.Register',
       'Wh', g * 100
FROM charger c, generate_series(1, %(events)s) g;

INSERT INTO charging_session (tenant_id, charger_id, connector_no, id_tag, started_at,
                              stopped_at, meter_start, meter_stop, energy_wh, cost, currency)
SELECT c.tenant_id, c.id, 1 + g %% 2, 'TAG-' || g, now() - make_interval(hours => g * 5),
       now() - make_interval(hours => g * 5) + interval '50 minutes', 0, 20000 + g, 20000 + g,
       7.5, 'EUR'
FROM charger c, generate_series(1, greatest(%(events)s / 20, 1)) g;

INSERT INTO ocpp_message (at, tenant_id, charger_id, direction, message_type, message_id,
                          action, payload)
SELECT now() - make_interval(secs => g * 17 %% 86000), c.tenant_id, c.id,
       CASE WHEN g %% 2 = 0 THEN 'in' ELSE 'out' END, 2 + g %% 2, 'm' || g,
       (ARRAY['Heartbeat', 'MeterValues', 'StatusNotification', 'Heartbeat'])[1 + g %% 4],
       jsonb_build_object('connectorId', 1, 'meterValue',
                          jsonb_build_array(jsonb_build_object('value', g)))
FROM charger c, generate_series(1, greatest(%(events)s / 4, 1)) g;
INSERT INTO ocpp_message (at, tenant_id, charger_id, direction, message_type, message_id,
                          action, payload)
SELECT now() - make_interval(secs => g %% 86000) - interval '1 ms' * g, c.tenant_id, c.id,
       'in', 2, 'c' || g, CASE WHEN g = 99000 THEN 'BootNotification' ELSE 'Heartbeat' END,
       '{}'::jsonb
FROM charger c, generate_series(1, 100000) g WHERE c.ocpp_id = %(chatty)s;
"""


def seed(app: object, url: str, chargers: int, events: int) -> None:
    from cass.services.demo import seed_demo
    from cass.tenancy import system_context

    with app.app_context(), system_context():  # type: ignore[attr-defined]
        seed_demo(PASSWORD, "bench-charger-key")
    params = {"chargers": chargers, "events": events, "chatty": CHATTY}
    with psycopg.connect(url) as conn:
        for statement in SEED_SQL.split(";\n"):
            if statement.strip():
                conn.execute(statement, params)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


class ServerClock:
    """WSGI middleware timing each request until its body is produced."""

    def __init__(self, wsgi_app: Callable[..., object]) -> None:
        self.wsgi_app = wsgi_app
        self.last = 0.0

    def __call__(self, environ: dict, start_response: Callable[..., object]) -> object:
        started = time.perf_counter()
        body = list(self.wsgi_app(environ, start_response))  # type: ignore[call-overload]
        self.last = (time.perf_counter() - started) * 1000
        return body


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chargers", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--pgdata", help="keep the seeded database here and reuse it")
    parser.add_argument("--explain", action="store_true", help="print the plans of the pages")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="cass-bench-"))
    os.environ["CASS_INSTANCE_DIR"] = str(root / "instance")
    pgdata = Path(args.pgdata).resolve() if args.pgdata else root / "pgdata"
    server = start_embedded(pgdata, cleanup_mode="stop" if args.pgdata else "delete")
    try:
        run(server, args)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def run(server: object, args: argparse.Namespace) -> None:
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:  # type: ignore[attr-defined]
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            conn.execute(f"ALTER SYSTEM SET {setting} = off")
        conn.execute("SELECT pg_reload_conf()")
    url = ensure_database(server.get_uri(), "cass_bench_chargers")  # type: ignore[attr-defined]
    app = create_app(Config(DATABASE_URL=url, SECRET_KEY="bench-secret"))
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
        db.engine.dispose()
    with psycopg.connect(url) as conn:
        seeded = conn.execute("SELECT count(*) FROM charger WHERE ocpp_id LIKE 'DEMO-BENCH-%'")
        seeded = seeded.fetchone()[0]
    if not seeded:
        log(f"Seeding {args.chargers:,} chargers a tenant, ~{args.events} events each ...")
        started = time.monotonic()
        seed(app, url, args.chargers, args.events)
        log(f"Seeded in {time.monotonic() - started:.0f} s")
    with psycopg.connect(url) as conn:
        counts = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES
        }
        serial = conn.execute(
            "SELECT serial FROM charger WHERE ocpp_id LIKE 'DEMO-BENCH-%' ORDER BY id DESC LIMIT 1"
        ).fetchone()[0]
        site = conn.execute(
            "SELECT min(site_id) FROM charger WHERE ocpp_id LIKE 'DEMO-BENCH-%'"
        ).fetchone()[0]
    log("Data: " + ", ".join(f"{n:,} {t}" for t, n in counts.items()))

    clock = ServerClock(app.wsgi_app)
    app.wsgi_app = clock  # type: ignore[method-assign]
    client = app.test_client()
    token = CSRF_RE.search(client.get("/login").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    signed = client.post(
        "/login", data={"csrf_token": token, "email": "agent@demo.test", "password": PASSWORD}
    )
    assert signed.status_code == 303, "sign-in failed"
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
    results = []
    for name, path, headers in scenarios:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, (path, response.status_code)
        size = len(response.get_data())
        times = []
        for _ in range(args.runs):
            client.get(path, headers=headers).get_data()
            times.append(clock.last)
        results.append((name, statistics.median(times), percentile(times, 0.95), size))
        if args.explain:
            explain(app, path, headers, client)
    log(f"\n{'scenario':40} {'p50 ms':>8} {'p95 ms':>8} {'HTML KB':>8}")
    for name, p50, p95, size in results:
        log(f"{name:40} {p50:8.1f} {p95:8.1f} {size / 1024:8.1f}")


def explain(app: object, path: str, headers: dict, client: object) -> None:
    """Print EXPLAIN ANALYZE of every select a request makes (as the request ran it)."""
    from sqlalchemy import event

    with app.app_context():  # type: ignore[attr-defined]
        engine = db.engine
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        if (
            statement.lstrip().upper().startswith(("SELECT", "WITH"))
            and "set_config" not in statement
        ):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    client.get(path, headers=headers)  # type: ignore[attr-defined]
    event.remove(engine, "before_cursor_execute", capture)
    log(f"\n=== {path}")
    with engine.connect() as conn:
        for statement, parameters in captured:
            plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS OFF) " + statement, parameters)
            lines = [row[0] for row in plan]
            log(f"--- {lines[-1].strip()}  {statement.split(chr(10))[0][:90]}")


if __name__ == "__main__":
    main()
