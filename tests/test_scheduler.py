"""Scheduler jobs run once across copies, under a Postgres advisory lock."""

from __future__ import annotations

from datetime import timedelta

import psycopg
from sqlalchemy import func, select, text

from cass.extensions import db
from cass.models import LoginAttempt
from cass.scheduler import lock_key, run_locked
from cass.services.auth import prune_login_attempts
from cass.tenancy import system_context


def test_job_runs_when_the_lock_is_free(app):
    calls = []
    assert run_locked(app, "demo-job", lambda: calls.append(1))
    assert calls == [1]


def test_job_is_skipped_while_another_copy_holds_the_lock(app, database_url):
    calls = []
    with psycopg.connect(database_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (lock_key("demo-job"),))
        assert not run_locked(app, "demo-job", lambda: calls.append(1))
        other.execute("SELECT pg_advisory_unlock(%s)", (lock_key("demo-job"),))
    assert calls == []
    assert run_locked(app, "demo-job", lambda: calls.append(1))


def test_prune_login_attempts_keeps_recent_ones(app):
    with app.app_context(), system_context():
        db.session.add_all(
            [
                LoginAttempt(email="a@x.test", ip="1.1.1.1", succeeded=False),
                LoginAttempt(email="b@x.test", ip="1.1.1.1", succeeded=False),
            ]
        )
        db.session.commit()
        db.session.execute(
            text("UPDATE login_attempt SET at = now() - interval '8 days' WHERE email = 'a@x.test'")
        )
        db.session.commit()
        assert prune_login_attempts(timedelta(days=7)) == 1
        assert db.session.scalar(select(func.count()).select_from(LoginAttempt)) == 1


def test_missed_runs_are_coalesced_into_one_late_run(app):
    """A scheduler that was busy (here: paused) for several intervals runs the job once."""
    import time

    from apscheduler.schedulers.background import BackgroundScheduler

    from cass.scheduler import add_jobs

    calls: list[float] = []
    scheduler = BackgroundScheduler(timezone="UTC")
    add_jobs(
        scheduler,
        app,
        {"tick": (lambda: calls.append(time.monotonic()), {"trigger": "interval", "seconds": 2})},
    )
    scheduler.start(paused=True)
    try:
        time.sleep(4.5)  # two runs missed
        scheduler.resume()
        time.sleep(0.7)  # the next regular run is over a second away
        assert len(calls) == 1
    finally:
        scheduler.shutdown()
    with app.app_context(), system_context():
        from cass.models import JobRun

        assert (
            db.session.scalar(select(func.count()).select_from(JobRun).where(JobRun.job == "tick"))
            == 1
        )
