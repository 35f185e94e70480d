"""Benchmark: a bulk transition of 500 tickets (target ≤ 2 s), set-based, against the same
change made ticket by ticket through the single-ticket service, measured in the same run.

Run: python tests/bench/bench_bulk.py [--tickets 200000] [--runs 5]
Seeds with COPY (the ticket-list benchmark's seeder), 20 tenants; signs in as a manager of
tenant 1 and POSTs /tickets/bulk (cancel 500 new or assigned tickets) through the Flask test
client, so the figure is the whole request: form, permission, SQL, history, audit, commit.
"""

from __future__ import annotations

import argparse
import statistics
import time

import benchkit
import psycopg
from bench_ticket_list import TENANTS, seed
from benchkit import PASSWORD
from sqlalchemy import select

from cass.extensions import db
from cass.models import Ticket, User
from cass.services import tickets
from cass.services.passwords import hash_password
from cass.tenancy import tenant_context

BATCH = 500
MANAGER = "u1@t01.test"


def pick(app: object, count: int) -> list[tuple[int, str]]:
    """Return (id, status) of `count` cancellable (new or assigned) tickets of tenant 1."""
    with app.app_context(), tenant_context(1):  # type: ignore[attr-defined]
        rows = db.session.execute(
            select(Ticket.id, Ticket.status)
            .where(Ticket.tenant_id == 1, Ticket.status.in_(("new", "assigned")))
            .order_by(Ticket.id)
            .limit(count)
        )
        return [(r[0], r[1]) for r in rows]


def restore(url: str, chosen: list[tuple[int, str]]) -> None:
    """Put the tickets back as they were, so every run moves the same 500."""
    with psycopg.connect(url) as conn:
        conn.execute(
            "UPDATE ticket SET status = s.status, cancel_reason = NULL "
            "FROM unnest(%s::bigint[], %s::text[]) AS s(id, status) WHERE ticket.id = s.id",
            ([i for i, _ in chosen], [st for _, st in chosen]),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with benchkit.embedded("cass-bench-bulk-", durable=True) as bench:
        url = bench.url
        app = benchkit.migrated_app(url, secret="bench")
        print(f"seeding {args.tickets:,} tickets over {TENANTS} tenants with COPY…", flush=True)
        seed(url, args.tickets, TENANTS, hash_password(PASSWORD))
        client = benchkit.signed_in(app, MANAGER)
        # The session's CSRF token, from the list page's bulk form.
        token = benchkit.CSRF_RE.search(client.get("/tickets").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
        bulk_times, loop_times = [], []
        for run in range(args.runs):
            chosen = pick(app, BATCH)
            assert len(chosen) == BATCH, f"only {len(chosen)} new or assigned tickets"
            form = {
                "csrf_token": token,
                "action": "transition:cancel",
                "cancel_reason": "Duplicate of a site-wide outage ticket",
                "ticket": [str(i) for i, _ in chosen],
            }
            started = time.perf_counter()
            response = client.post("/tickets/bulk", data=form, headers={"HX-Request": "true"})
            bulk_times.append(time.perf_counter() - started)
            assert response.status_code == 200 and f"{BATCH} tickets changed" in response.get_data(
                as_text=True
            ), response.get_data(as_text=True)[:300]
            # The baseline: the same move, one ticket at a time through the service.
            restore(url, chosen)
            with app.app_context(), tenant_context(1):
                manager = db.session.scalar(select(User).where(User.email == MANAGER))
                started = time.perf_counter()
                for ident, _ in chosen:
                    ticket = db.session.get(Ticket, ident)
                    tickets.transition(
                        ticket,
                        manager,
                        "cancel",
                        ticket.version,
                        {"cancel_reason": "Duplicate of a site-wide outage ticket"},
                    )
                loop_times.append(time.perf_counter() - started)
            restore(url, chosen)
            print(
                f"run {run + 1}: bulk {bulk_times[-1]:.3f} s, one by one {loop_times[-1]:.3f} s",
                flush=True,
            )
        bulk, loop = statistics.median(bulk_times), statistics.median(loop_times)
        print(
            f"\nbulk transition of {BATCH} tickets: median {bulk:.3f} s, max "
            f"{max(bulk_times):.3f} s (target ≤ 2 s); one by one: median {loop:.3f} s; "
            f"ratio bulk / one-by-one {bulk / loop:.2f}"
        )
        with app.app_context():
            db.engine.dispose()


if __name__ == "__main__":
    main()
