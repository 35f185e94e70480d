"""The scheduler process: periodic jobs, each run once across any number of copies."""

from __future__ import annotations

import logging
import os
import signal
import socket
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask
from sqlalchemy import text

from cass.extensions import db
from cass.models import JobRun
from cass.tenancy import system_context

log = logging.getLogger("cass.scheduler")
RUNNER = f"{socket.gethostname()}:{os.getpid()}"


def lock_key(name: str) -> int:
    """Return a stable advisory-lock key for a job name."""
    return zlib.crc32(f"cass.job.{name}".encode())


def run_locked(app: Flask, name: str, job: Callable[[], Any]) -> bool:
    """Run `job` only if no other scheduler holds the job's advisory lock; return whether it ran."""
    with app.app_context(), system_context():
        got = db.session.execute(
            text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key(name)}
        ).scalar()
        if not got:
            log.info("job %s is running elsewhere; skipped", name)
            return False
        # The lock lives as long as this transaction; the job commits its own work in a session
        # of its own (a nested app context), and leaving system_context() releases the lock.
        started = datetime.now(UTC)
        result: Any = None
        error: str | None = None
        with app.app_context(), system_context():
            try:
                result = job()
            except Exception as exc:
                db.session.rollback()
                error = f"{type(exc).__name__}: {exc}"[:2000]
                log.exception("job %s failed", name)
            db.session.add(
                JobRun(
                    job=name,
                    runner=RUNNER,
                    started_at=started,
                    finished_at=datetime.now(UTC),
                    rows=_rows(result),
                    error=error,
                )
            )
            db.session.commit()
        if error is None:
            log.info("job %s done: %s", name, result)
        return True


def _rows(result: Any) -> int | None:
    """Return how many rows a job's result says it touched, when it says."""
    if isinstance(result, bool) or result is None:
        return None
    if isinstance(result, int):
        return result
    rows = getattr(result, "rows", None)
    return rows if isinstance(rows, int) else None


def _jobs(app: Flask) -> dict[str, tuple[Callable[[], Any], dict[str, Any]]]:
    from cass.services.auth import prune_login_attempts
    from cass.services.message_log import apply_retention
    from cass.services.notifications import deliver_due
    from cass.services.report_exports import apply_retention as export_retention
    from cass.services.report_exports import run_due as run_exports
    from cass.services.reports.snapshots import refresh as refresh_snapshots
    from cass.services.sla_sweep import sweep
    from cass.services.webhooks import apply_retention as webhook_retention
    from cass.services.webhooks import deliver_due as deliver_webhooks
    from cass.services.workflow import check_offline

    keep_days = app.config["CASS_OCPP_LOG_RETENTION_DAYS"]
    webhook_days = app.config["CASS_WEBHOOK_RETENTION_DAYS"]
    return {
        "sla_sweep": (
            sweep,
            {"trigger": "interval", "seconds": app.config["CASS_SLA_SWEEP_SECONDS"]},
        ),
        "deliver_notifications": (
            deliver_due,
            {"trigger": "interval", "seconds": app.config["CASS_NOTIFY_SECONDS"]},
        ),
        "prune_login_attempts": (
            lambda: prune_login_attempts(timedelta(days=7)),
            {"trigger": "interval", "hours": 1},
        ),
        "ocpp_message_retention": (
            lambda: apply_retention(keep_days),
            {"trigger": "interval", "hours": 6},
        ),
        # Chargers offline longer than a charger_offline rule's N minutes.
        "workflow_offline_check": (check_offline, {"trigger": "interval", "seconds": 30}),
        # Due schedules are queued, then queued exports (run now, background) are written.
        "report_exports": (
            run_exports,
            {"trigger": "interval", "seconds": app.config["CASS_EXPORT_SECONDS"]},
        ),
        "report_export_retention": (export_retention, {"trigger": "interval", "hours": 1}),
        # Each tenant's finished days, an hour after its midnight, and the days made stale.
        "report_snapshots": (refresh_snapshots, {"trigger": "interval", "hours": 1}),
        # Outbound webhooks queued by the triggers of migration 0021, and their log's retention.
        "deliver_webhooks": (
            deliver_webhooks,
            {"trigger": "interval", "seconds": app.config["CASS_WEBHOOK_SECONDS"]},
        ),
        "webhook_retention": (
            lambda: webhook_retention(webhook_days),
            {"trigger": "interval", "hours": 1},
        ),
    }


def add_jobs(
    scheduler: BaseScheduler,
    app: Flask,
    jobs: dict[str, tuple[Callable[[], Any], dict[str, Any]]],
) -> dict[str, tuple[Callable[[], Any], dict[str, Any]]]:
    """Schedule each job under its advisory lock; return the jobs."""
    for name, (job, trigger) in jobs.items():
        scheduler.add_job(
            run_locked,
            args=(app, name, job),
            id=name,
            name=name,
            # Runs missed while the process was busy or down collapse into one, run late.
            coalesce=True,
            misfire_grace_time=None,
            max_instances=1,
            **trigger,
        )
    return jobs


def run_scheduler() -> None:
    """Run the jobs until SIGTERM or SIGINT."""
    from cass import create_app
    from cass.workflow_worker import WorkflowWorker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(message)s")
    app = create_app()
    scheduler = BlockingScheduler(timezone="UTC")
    jobs = add_jobs(scheduler, app, _jobs(app))

    # Charger and CSMS events reach the workflow rules through this thread, as they arrive.
    worker = WorkflowWorker(app)

    def _stop(signum: int, frame: Any) -> None:
        worker.stop(timeout=0)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.info("scheduler started with jobs: %s", ", ".join(jobs))
    worker.start()
    try:
        scheduler.start()
    finally:
        worker.stop()
