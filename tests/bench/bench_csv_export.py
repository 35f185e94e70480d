"""Benchmark: the ticket list's CSV export of 1,000,000 tickets (issue 7, point 7).

Starts its own embedded PostgreSQL (benchkit), seeds 2 tenants of 1,000,000 tickets each with
COPY (the ticket-list benchmark's seeder: sites, chargers, connectors, users and vendors in
proportion; the two tenants' rows interleaved on disk), sets tenant 1's time zone, and runs the
web app as production does, a separate `gunicorn wsgi:app` process (gunicorn.conf.py: gthread),
with one worker, so that its memory can be watched. Signed in as a manager of tenant 1, it
downloads `/tickets.csv` (every one of the tenant's 1,000,000 tickets, in the list's default
order) over a plain socket and reports:
- time to the first byte of the body, and to the first ticket row;
- total time and MB/s;
- the worker's resident memory: idle (after sign-in and a page, before the first download) and
  the peak while downloading (VmRSS sampled every 10 ms; VmHWM alongside);
- the same query (its text taken from the app, values inlined, run under the same role, tenant
  binding and time zone) as `psql -c "\\copy (query) to stdout csv"` into /dev/null, timed in
  the same run, taking turns with the download: the ratio download / psql throughput.
Before the timed runs one download and one psql output are hashed: they must be the same bytes
(the download has a header row more).
Targets: first byte <= 500 ms, peak RSS <= 64 MB above idle, throughput >= 0.5x psql.

Run (benchmarks take turns on the machine):
    flock /tmp/cass-bench.lock python tests/bench/bench_csv_export.py [--tickets 1000000]
        [--tenants 2] [--runs 3] [--timezone America/New_York] [--pgdata DIR] [--seed-only]
        [--python]  (also time the CSV written by Python, the scheduled exports' path)
(--pgdata DIR keeps the seeded database in DIR and reuses it on the next run)
"""

from __future__ import annotations

import argparse
import hashlib
import http.cookiejar
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import benchkit
import psycopg
from bench_ticket_list import seed
from benchkit import CSRF_RE, PASSWORD, log

ROOT = benchkit.ROOT
MANAGER = "u1@t01.test"  # a manager of tenant 1 (u0 is its admin)
MB = 1024 * 1024


def psql_binary() -> str:
    """Return the psql that comes with the embedded server (the pgserver wheel)."""
    import pgserver

    path = Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql"
    if not path.exists():
        raise SystemExit(f"no psql at {path}")
    return str(path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss(pid: int) -> tuple[int, int]:
    """Return (VmRSS, VmHWM) of process `pid`, in kB."""
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, amount, _ = line.split()
                values[name] = int(amount)
    return values["VmRSS:"], values["VmHWM:"]


def pressure() -> str:
    """Return the machine's load average and CPU pressure (share of time a task waited)."""
    load = os.getloadavg()
    try:
        some = Path("/proc/pressure/cpu").read_text().split("\n")[0]
        avg60 = some.split("avg60=")[1].split()[0]
        extra = f", CPU pressure avg60 {avg60} %"
    except (OSError, IndexError):
        extra = ""
    return f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}{extra}"


class Web:
    """`gunicorn wsgi:app` as production runs it, with one worker."""

    def __init__(self, url: str, root: Path) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "SECRET_KEY": "bench-secret",
            "CASS_INSTANCE_DIR": str(root / "instance"),
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                str(ROOT / "gunicorn.conf.py"),
                "--workers",
                "1",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--pythonpath",
                str(ROOT),
                "wsgi:app",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(root / "gunicorn.log", "w"),  # noqa: SIM115 (closed with the process)
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"gunicorn did not start; see {root / 'gunicorn.log'}")
            time.sleep(0.2)
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if len(children) != 1:
            raise SystemExit(f"expected one gunicorn worker, found {children}")
        self.worker = int(children[0])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def sign_in(base: str) -> str:
    """Sign in through the form as the manager; return the Cookie header of the session."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/login").read().decode()
    token = CSRF_RE.search(page).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"csrf_token": token, "email": MANAGER, "password": PASSWORD})
    opener.open(f"{base}/login", data=form.encode()).read()
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    # A page, so that the worker is warm (imports, templates, pool) before "idle" is read.
    request = urllib.request.Request(f"{base}/tickets", headers={"Cookie": cookie})  # noqa: S310
    with opener.open(request) as answer:
        body = answer.read()
        if b"Download CSV" not in body:
            raise SystemExit("sign-in failed, or the manager cannot export")
    return cookie


class Sampler(threading.Thread):
    """Samples a process's VmRSS every `interval` seconds until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, rss(self.pid)[0])
            self.samples += 1
            time.sleep(self.interval)

    def stop(self) -> int:
        self.done.set()
        self.join()
        self.peak = max(self.peak, rss(self.pid)[0])
        return self.peak


def download(base: str, path: str, cookie: str, digest: bool = False) -> dict:
    """GET `path` over a plain socket (HTTP/1.0: the body ends with the connection), reading
    and discarding it; return its timings (ms to the body's first byte and to its first row
    after the header row, s in all), its size and, with `digest`, the body's hash."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\nCookie: {cookie}\r\n\r\n".encode()
    hasher = hashlib.sha256() if digest else None
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    head = bytearray()
    start_of_body = bytearray()  # until the first row after the header row is in
    in_body = False
    first_byte = first_row = None
    size = 0
    started = time.perf_counter()
    sock.sendall(request)
    while got := sock.recv_into(buffer):
        chunk = view[:got]
        if not in_body:
            head += chunk
            end = head.find(b"\r\n\r\n")
            if end < 0:
                continue
            status = bytes(head.split(b"\r\n", 1)[0])
            if b" 200 " not in status:
                raise SystemExit(f"{path}: {status.decode()}")
            in_body = True
            chunk = memoryview(bytes(head[end + 4 :]))
            if not chunk:
                continue
        now = time.perf_counter()
        if first_byte is None:
            first_byte = now
        size += len(chunk)
        if first_row is None:
            start_of_body += chunk
            cut = start_of_body.find(b"\n")
            if 0 <= cut < len(start_of_body) - 1:
                first_row = now
                start_of_body = bytearray()
        if hasher is not None:
            hasher.update(chunk)
    finished = time.perf_counter()
    sock.close()
    return {
        "first_byte": (first_byte - started) * 1000 if first_byte else float("nan"),
        "first_row": (first_row - started) * 1000 if first_row else float("nan"),
        "total": finished - started,
        "bytes": size,
        "digest": hasher.hexdigest() if hasher else None,
    }


def export_sql(app: object, tenant_id: int) -> tuple[str, str]:
    """Return the select that /tickets.csv runs for the manager (values inlined, as COPY gets
    it) and the CSV's header row."""
    from flask import g
    from sqlalchemy import select

    from cass.csv_download import literal_select, write_rows
    from cass.extensions import db
    from cass.models import User
    from cass.services import ticket_queries
    from cass.tenancy import system_context

    with app.test_request_context("/tickets.csv"):  # type: ignore[attr-defined]
        with system_context():
            user = db.session.scalar(select(User).where(User.email == MANAGER))
            db.session.expunge(user)
        g.tenant_id = tenant_id
        export = ticket_queries.export_copy(user, ticket_queries.ListQuery())
        with db.engine.connect() as conn:
            sql = literal_select(export.statement, conn.connection.driver_connection)
        db.session.remove()
    return sql, write_rows([export.header])


def python_path(app: object, tenant_id: int) -> tuple[float, int, str]:
    """Write the same CSV the way the app did before COPY: SQLAlchemy rows through a
    server-side cursor, cells by csv_cell, csv.writer (ticket_queries.export_rows, which the
    scheduled exports use), in this process without HTTP; return seconds, bytes and hash."""
    from flask import g
    from sqlalchemy import select

    from cass.csv_download import write_chunks
    from cass.extensions import db
    from cass.models import User
    from cass.services import ticket_queries
    from cass.tenancy import system_context

    hasher = hashlib.sha256()
    size = 0
    with app.test_request_context("/tickets.csv"):  # type: ignore[attr-defined]
        with system_context():
            user = db.session.scalar(select(User).where(User.email == MANAGER))
            db.session.expunge(user)
        g.tenant_id = tenant_id
        started = time.perf_counter()
        for chunk in write_chunks(ticket_queries.export_rows(user, ticket_queries.ListQuery())):
            hasher.update(chunk)
            size += len(chunk)
        elapsed = time.perf_counter() - started
        db.session.remove()
    return elapsed, size, hasher.hexdigest()


def psql_copy(url: str, sql: str, zone: str, tenant_id: int, digest_with: str | None = None):
    """Run the select as `psql -c "\\copy (...) to stdout csv"` under the app's role, tenant
    binding and time zone, into /dev/null; return seconds (and, given the header row to put
    first, the hash of the header and the output)."""
    one_line = " ".join(sql.split("\n"))
    command = [
        psql_binary(),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-d",
        url,
        "-c",
        f"SET role cass_app; SET app.tenant_id = '{tenant_id}'; SET timezone = '{zone}'",
        "-c",
        f"\\copy ({one_line}) to stdout csv",
    ]
    started = time.perf_counter()
    if digest_with is None:
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started, None
    hasher = hashlib.sha256(digest_with.encode())
    size = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE) as process:
        while chunk := process.stdout.read(1 << 20):  # type: ignore[union-attr]
            hasher.update(chunk)
            size += len(chunk)
    if process.returncode:
        raise SystemExit(f"psql failed ({process.returncode})")
    return time.perf_counter() - started, hasher.hexdigest()


def explain(url: str, sql: str, zone: str, tenant_id: int) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(
            "SELECT set_config('role', 'cass_app', true), set_config('app.tenant_id', %s, true),"
            " set_config('timezone', %s, true)",
            (str(tenant_id), zone),
        )
        plan = conn.execute("EXPLAIN " + sql).fetchall()  # type: ignore[arg-type]
    log("Plan of the export's select (EXPLAIN, under the app's role and tenant):")
    log("\n".join("  " + row[0] for row in plan))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000, help="tickets a tenant")
    parser.add_argument("--tenants", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timezone", default="America/New_York", help="tenant 1's zone")
    parser.add_argument("--pgdata", help="keep the seeded database here and reuse it")
    parser.add_argument("--seed-only", action="store_true", help="seed (with --pgdata) and stop")
    parser.add_argument(
        "--python",
        action="store_true",
        help="also time the rows written by Python (the scheduled exports' path), in process",
    )
    args = parser.parse_args()
    total = args.tickets * args.tenants
    with benchkit.embedded("cass-bench-csv-", pgdata=args.pgdata) as bench:
        app = benchkit.migrated_app(bench.url)
        count = benchkit.scalar(bench.url, "SELECT count(*) FROM ticket")
        if count != total:
            if count:
                raise SystemExit(f"{bench.url} holds {count:,} tickets; use a fresh --pgdata")
            from cass.services.passwords import hash_password

            log(f"Seeding {total:,} tickets over {args.tenants} tenants with COPY ...")
            seed(bench.url, total, args.tenants, hash_password(PASSWORD))
        else:
            log(f"Reusing {count:,} seeded tickets in {args.pgdata}")
        with psycopg.connect(bench.url) as conn:
            conn.execute("UPDATE tenant SET timezone = %s WHERE id = 1", (args.timezone,))
            mine = conn.execute("SELECT count(*) FROM ticket WHERE tenant_id = 1").fetchone()[0]
        if args.seed_only:
            return
        run(app, bench, args, mine)


def run(app: object, bench: benchkit.Bench, args: argparse.Namespace, mine: int) -> None:
    sql, header = export_sql(app, tenant_id=1)
    explain(bench.url, sql, args.timezone, tenant_id=1)
    web = Web(bench.url, bench.root)
    try:
        cookie = sign_in(web.base)
        idle, _ = rss(web.worker)
        log(f"gunicorn worker {web.worker}: idle RSS {idle / 1024:.1f} MB; {pressure()}")

        log("Checking that the download and psql give the same bytes ...")
        got = download(web.base, "/tickets.csv", cookie, digest=True)
        _, expected = psql_copy(bench.url, sql, args.timezone, 1, digest_with=header)
        if got["digest"] != expected:
            raise SystemExit("the download and psql's output differ")
        log(f"  same {got['bytes'] / MB:.1f} MB ({mine:,} tickets and the header row)")

        results = []
        for turn in range(args.runs):
            before, _ = rss(web.worker)
            sampler = Sampler(web.worker)
            sampler.start()
            got = download(web.base, "/tickets.csv", cookie)
            peak = sampler.stop()
            _, hwm = rss(web.worker)
            base_s, _ = psql_copy(bench.url, sql, args.timezone, 1)
            ratio = base_s / got["total"]
            results.append({**got, "before": before, "peak": peak, "hwm": hwm, "psql": base_s})
            log(
                f"run {turn + 1}: first byte {got['first_byte']:.1f} ms, first row "
                f"{got['first_row']:.1f} ms, total {got['total']:.2f} s "
                f"({got['bytes'] / MB / got['total']:.1f} MB/s); RSS before {before / 1024:.1f}"
                f" MB, peak {peak / 1024:.1f} MB ({sampler.samples} samples), VmHWM "
                f"{hwm / 1024:.1f} MB; psql {base_s:.2f} s "
                f"({got['bytes'] / MB / base_s:.1f} MB/s); throughput ratio {ratio:.2f}; "
                f"{pressure()}"
            )
        report(results, idle, mine, args)
    finally:
        web.stop()
    if args.python:
        log("\nThe same CSV written by Python (rows by a server-side cursor, csv_cell, csv.writer;")
        log("in this process, no HTTP), taking turns with psql:")
        for turn in range(args.runs):
            spent, size, digest = python_path(app, tenant_id=1)
            base_s, _ = psql_copy(bench.url, sql, args.timezone, 1)
            same = "same bytes" if digest == expected else "DIFFERENT bytes"
            log(
                f"run {turn + 1}: {spent:.2f} s ({size / MB / spent:.1f} MB/s, {same}); psql "
                f"{base_s:.2f} s; ratio {base_s / spent:.2f}; {pressure()}"
            )


def report(results: list[dict], idle: int, rows: int, args: argparse.Namespace) -> None:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    size = median("bytes") / MB
    first_byte, first_row = median("first_byte"), median("first_row")
    total, base = median("total"), median("psql")
    peak = max(r["peak"] for r in results)
    above = (peak - idle) / 1024
    ratio = statistics.median(r["psql"] / r["total"] for r in results)
    log(
        f"\nCSV export of {rows:,} tickets ({size:.1f} MB), medians of {len(results)} runs:\n"
        f"  first byte {first_byte:.1f} ms (first ticket row {first_row:.1f} ms)\n"
        f"  download {total:.2f} s = {size / total:.1f} MB/s; psql \\copy {base:.2f} s = "
        f"{size / base:.1f} MB/s; ratio {ratio:.2f}\n"
        f"  worker RSS idle {idle / 1024:.1f} MB, peak {peak / 1024:.1f} MB "
        f"(+{above:.1f} MB; highest of the runs)"
    )
    for text, ok in (
        (f"first byte <= 500 ms: {first_byte:.1f} ms", first_byte <= 500),
        (f"peak RSS <= 64 MB above idle: +{above:.1f} MB", above <= 64),
        (f"throughput >= 0.5x psql: {ratio:.2f}x", ratio >= 0.5),
    ):
        log(f"  [{'met' if ok else 'MISSED'}] {text}")


if __name__ == "__main__":
    main()
