"""Benchmark: the JSON API's ticket list against the web's, on the same data (issue 9).

Seeds (or reuses, with --pgdata) the ticket list benchmark's data: 20 tenants and 1,000,000
tickets with COPY (tests/bench/bench_ticket_list.py). Then, as a manager of one tenant, it times
GET /api/v1/tickets (bearer token, JSON) and the web list's htmx table (session cookie, HTML) for
the same filters, taking turns, server time measured around the Flask app. The API pays what
the web does not: the token's UPDATE (find it, count the call against the rate limit, stamp its
last use) and a commit; the web pays its session and its HTML. Also timed: a call the API
refuses at once (a read token writing: authentication and nothing else), the cost of the token.
Figures: p50/p95 per scenario and the ratio API p50 / web p50 (target: at most 1.25x).

Run: python tests/bench/bench_api.py [--tickets 1000000] [--runs 50] [--pgdata DIR]
"""

from __future__ import annotations

import argparse
import statistics

import benchkit
import psycopg
from bench_ticket_list import (
    SCENARIOS,
    TENANTS,
    seed,
    timed_together,
)
from benchkit import PASSWORD, ServerClock, log, percentile

EMAIL = "u1@t01.test"  # a manager of tenant 1, as in the ticket list benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--pgdata", help="keep the seeded database here and reuse it")
    args = parser.parse_args()
    if args.runs < 30:
        parser.error("--runs must be at least 30")
    with benchkit.embedded("cass-bench-api-", pgdata=args.pgdata) as bench:
        run_bench(bench.url, args)


def _seeded(url: str, tickets: int, pgdata: str | None) -> None:
    with psycopg.connect(url) as conn:
        count = conn.execute("SELECT count(*) FROM ticket").fetchone()[0]
    if count == tickets:
        log(f"Reusing {count:,} seeded tickets in {pgdata}")
        return
    if count:
        raise SystemExit(f"{url} holds {count:,} tickets; use a fresh --pgdata")
    from cass.services.passwords import hash_password

    log(f"Seeding {tickets:,} tickets over {TENANTS} tenants with COPY ...")
    seed(url, tickets, TENANTS, hash_password(PASSWORD))


def _token(app: object, scope: str) -> str:
    from sqlalchemy import select

    from cass.extensions import db
    from cass.models import User
    from cass.services import api_tokens
    from cass.tenancy import system_context, tenant_context

    with app.app_context():  # type: ignore[attr-defined]
        with system_context():
            user_id, tenant_id = db.session.execute(
                select(User.id, User.tenant_id).where(User.email == EMAIL)
            ).one()
        with tenant_context(tenant_id):
            return api_tokens.create(db.session.get(User, user_id), f"bench {scope}", scope)


def run_bench(url: str, args: argparse.Namespace) -> None:
    app = benchkit.migrated_app(url)
    _seeded(url, args.tickets, args.pgdata)
    app.config["CASS_API_RATE_LIMIT"] = 10**9
    clock = ServerClock(app.wsgi_app)
    app.wsgi_app = clock  # type: ignore[method-assign]
    web = benchkit.signed_in(app, EMAIL)
    api = app.test_client()
    write = {"Authorization": f"Bearer {_token(app, 'write')}"}
    read = {"Authorization": f"Bearer {_token(app, 'read')}"}

    def served(client: object, path: str, headers: dict[str, str], status: int = 200) -> float:
        answer = (
            client.get(path, headers=headers)
            if status == 200
            else client.post(  # type: ignore[attr-defined]
                path, json={}, headers=headers
            )
        )
        assert answer.status_code == status, (path, answer.status_code)
        answer.get_data()
        return clock.last

    log(f"{'scenario':<12} {'API p50':>8} {'p95':>7} {'web p50':>8} {'p95':>7} {'ratio':>6}")
    ratios = []
    for name, query in SCENARIOS.items():
        suffix = f"?{query}" if query else ""
        api_t, web_t = timed_together(
            [
                lambda s=suffix: served(api, f"/api/v1/tickets{s}", write),
                lambda s=suffix: served(web, f"/tickets{s}", {"HX-Request": "true"}),
            ],
            args.runs,
        )
        api_p50, web_p50 = statistics.median(api_t), statistics.median(web_t)
        ratios.append(api_p50 / web_p50)
        log(
            f"{name:<12} {api_p50:>6.1f}ms {percentile(api_t, 0.95):>5.1f}ms "
            f"{web_p50:>6.1f}ms {percentile(web_t, 0.95):>5.1f}ms {api_p50 / web_p50:>5.2f}x"
        )
    (refused,) = timed_together(
        [lambda: served(api, "/api/v1/tickets", read, status=403)], args.runs
    )
    log(
        f"token alone (a read token refused a POST): p50 {statistics.median(refused):.2f} ms, "
        f"p95 {percentile(refused, 0.95):.2f} ms"
    )
    log(f"API / web, median over scenarios: {statistics.median(ratios):.2f}x (target <= 1.25x)")


if __name__ == "__main__":
    main()
