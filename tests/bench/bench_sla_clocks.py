"""Benchmark: the SLA work of one ticket write (issue 6 point 3: due times computed on every
relevant write, <= 2 ms per ticket).

Run: python tests/bench/bench_sla_clocks.py [--tickets 500] [--runs 3]

Starts its own embedded PostgreSQL, migrates it and creates a tenant with the default calendars
and policies (cass.sla_defaults), then makes the default calendar realistic: split shifts in
Europe/Berlin and 30 holidays. Creates --tickets tickets through the ticket service and then,
per ticket, times the SLA step alone, as the services call it inside their transaction: start (a
new ticket's clocks, timed inside `tickets.create`), pause (on hold), resume (credit the paused
business time, recompute due and warning), and recompute after a priority change. Before each of
the last three the ticket is loaded as a request loads it (`tickets.by_key`, which brings its
clocks in the same round trip) and its own UPDATE flushed: both are the ticket service's work,
not the SLA step's. Also the business-time arithmetic of one ticket's clocks alone ("due times":
due, warning and escalation instants, no database). Prints p50 / p95 / max per step in
milliseconds, medians over the runs; the calendar cache is cold for the first ticket only, as in
a long-running web process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import benchkit
from sqlalchemy import delete, select

from cass.business_time import parse_hours
from cass.extensions import db
from cass.models import BusinessCalendar, CalendarHoliday, SlaClock, Ticket, User
from cass.services import sla, tickets
from cass.services.tenants import create_tenant
from cass.services.tickets import NewTicket
from cass.tenancy import system_context, tenant_context

ACTOR = "manager@bench.test"
STEPS = ("start", "pause", "resume", "recompute", "due times")
CLOCK = time.perf_counter  # wall time; --cpu switches to this process's CPU time


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def prepare(app: object) -> int:
    """Create the tenant and make its default calendar realistic; return the tenant id."""
    with app.app_context(), system_context():  # type: ignore[attr-defined]
        tenant = create_tenant("bench", "Bench Charging", "BENCH")
        calendar = db.session.scalar(
            select(BusinessCalendar).where(
                BusinessCalendar.tenant_id == tenant.id, BusinessCalendar.is_default
            )
        )
        calendar.timezone = "Europe/Berlin"
        hours = parse_hours("mon-fri 07:30-12:00 12:45-18:30; sat 09:00-13:00")
        calendar.hours = [list(map(list, day)) for day in hours]
        calendar.version += 1
        for n in range(30):
            db.session.add(
                CalendarHoliday(
                    tenant_id=tenant.id,
                    calendar_id=calendar.id,
                    day=date(2026, 1, 1) + timedelta(days=12 * n),
                    name=f"Holiday {n}",
                )
            )
        db.session.add(
            User(
                tenant_id=tenant.id,
                email=ACTOR,
                name="Bench manager",
                role="as_manager",
                password_hash="-",
            )
        )
        db.session.commit()
        return tenant.id


def run(app: object, tenant_id: int, count: int) -> dict[str, list[float]]:
    """Time each SLA step for `count` fresh tickets; return milliseconds per step."""
    spent: dict[str, list[float]] = {step: [] for step in STEPS}
    on_created, recompute = sla.on_created, sla.recompute

    def timed(step: Callable[..., None], name: str) -> Callable[..., None]:
        """Time `step` as a service calls it (its flush included)."""

        def run_step(*args: object, **kwargs: object) -> None:
            started = CLOCK()
            step(*args, **kwargs)
            db.session.flush()
            spent[name].append(CLOCK() - started)

        return run_step

    with app.app_context(), tenant_context(tenant_id):  # type: ignore[attr-defined]
        # The start step as tickets.create runs it: the policy came with the ticket's INSERT.
        sla.on_created = timed(on_created, "start")  # type: ignore[assignment]
        try:
            made = [
                tickets.create(
                    None,
                    NewTicket(
                        title=f"Bench {n}", category="hardware", priority="P3", channel="phone"
                    ),
                ).id
                for n in range(count)
            ]
        finally:
            sla.on_created = on_created  # type: ignore[assignment]
        now = datetime(2026, 11, 27, 16, 45, tzinfo=UTC)  # a Friday afternoon
        actor = db.session.scalars(select(User).where(User.email == ACTOR)).one()
        prefix = tickets.tenant_prefix()
        keys = {
            i: tickets.format_key(prefix, n)
            for i, n in db.session.execute(
                select(Ticket.id, Ticket.number).where(Ticket.id.in_(made))
            )
        }
        for ticket_id in made:
            ticket = db.session.get(Ticket, ticket_id)
            db.session.execute(delete(SlaClock).where(SlaClock.ticket_id == ticket_id))

            sla.on_created(ticket, now)  # the clocks again, from a Friday afternoon
            db.session.flush()

            ticket = tickets.by_key(actor, keys[ticket_id])  # as a request loads it
            ticket.status = "on_hold"
            db.session.flush()  # the ticket's own write, not the SLA step
            started = CLOCK()
            sla.on_status(ticket, "new", "on_hold", now + timedelta(minutes=20))
            db.session.flush()
            spent["pause"].append(CLOCK() - started)

            ticket = tickets.by_key(actor, keys[ticket_id])
            ticket.status = "in_progress"
            db.session.flush()  # the ticket's own write, not the SLA step
            started = CLOCK()
            sla.on_status(ticket, "on_hold", "in_progress", now + timedelta(days=3, hours=1))
            db.session.flush()
            spent["resume"].append(CLOCK() - started)

            # The business-time arithmetic alone: due, warning and escalation instants of every
            # clock, as each of the steps above computes them (no database).
            rows = list(sla._clocks(ticket).values())
            started = CLOCK()
            for row in rows:
                sla._schedule(row, now + timedelta(days=3, hours=1), fresh=True)
            spent["due times"].append(CLOCK() - started)

            # As tickets.update_fields runs it: the ticket's UPDATE flushed with the new policy
            # riding along (the service's work), then the clocks recomputed (timed).
            ticket = tickets.by_key(actor, keys[ticket_id])
            sla.recompute = timed(recompute, "recompute")  # type: ignore[assignment]
            try:
                tickets.update_fields(ticket, actor, None, {"priority": "P4"})
            finally:
                sla.recompute = recompute  # type: ignore[assignment]
            db.session.commit()
    return {step: [s * 1000 for s in values] for step, values in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time this process's CPU (Python, SQLAlchemy) instead of wall time",
    )
    args = parser.parse_args()
    global CLOCK
    if args.cpu:
        CLOCK = time.process_time
    with benchkit.embedded("cass-bench-sla-clocks-", durable=True) as bench:
        app = benchkit.migrated_app(bench.url, secret="bench")
        tenant_id = prepare(app)
        results = [run(app, tenant_id, args.tickets) for _ in range(args.runs)]
        load = os.getloadavg()[0]
        kind = "process CPU" if args.cpu else "wall"
        print(f"\n{args.tickets} tickets x {args.runs} runs, {kind} time; load {load:.2f}")
        print("target <= 2 ms per ticket write")
        print(f"{'step':<10} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        total = 0.0
        for step in STEPS:
            if step == "due times":
                print(f"{'all four':<10} {total:8.2f} (p50 sum)")
            p50 = statistics.median(percentile(r[step], 0.5) for r in results)
            p95 = statistics.median(percentile(r[step], 0.95) for r in results)
            worst = statistics.median(max(r[step]) for r in results)
            total += p50
            print(f"{step:<10} {p50:8.2f} {p95:8.2f} {worst:8.2f}")


if __name__ == "__main__":
    main()
