"""The SLA sweep, escalations, job runs and e-mail through a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select, text

from cass.extensions import db
from cass.models import JobRun, Notification, SlaClock, SlaEvent, Ticket, User
from cass.scheduler import run_locked
from cass.services import notifications, tickets
from cass.services.sla_sweep import sweep
from cass.services.tickets import NewTicket
from cass.tenancy import system_context, tenant_context
from tests.conftest import make_app


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def assigned_ticket(priority: str = "P2") -> Ticket:
    """A new ticket assigned to the demo engineer."""
    ticket = tickets.create(
        user("agent@demo.test"),
        NewTicket(title="Cable cut", category="damage", priority=priority, channel="phone"),
    )
    tickets.transition(
        ticket, user("manager@demo.test"), "assign", None, {"user": user("engineer@demo.test")}
    )
    return ticket


def shift(ticket_id: int, clock: str, **minutes_ago: int) -> None:
    """Move a clock's instants into the past, as if time had passed (system context)."""
    sets = ", ".join(
        f"{name} = now() - make_interval(mins => {m})" for name, m in minutes_ago.items()
    )
    db.session.execute(
        text(f"UPDATE sla_clock SET {sets} WHERE ticket_id = :t AND clock = :c"),
        {"t": ticket_id, "c": clock},
    )
    db.session.commit()


def states(ticket_id: int) -> dict[str, str]:
    return dict(
        db.session.execute(
            select(SlaClock.clock, SlaClock.state).where(SlaClock.ticket_id == ticket_id)
        ).all()
    )


def test_the_sweep_marks_warnings_and_breaches_once_and_tells_the_assignee(app, demo):
    with app.app_context():
        with tenant_context(demo["demo"]):
            ticket = assigned_ticket()
            ticket_id = ticket.id
        with system_context():
            shift(ticket_id, "resolution", warn_at=1)
            shift(ticket_id, "on_site", warn_at=10, due_at=1)
            first = sweep(run_rules=False)
            assert (first.warnings, first.breaches) >= (1, 1)
            assert states(ticket_id) | {"first_response": "met"} == {
                "first_response": "met",
                "resolution": "warning",
                "on_site": "breached",
            }
            kinds = db.session.scalars(
                select(SlaEvent.kind).where(
                    SlaEvent.ticket_id == ticket_id, SlaEvent.kind.in_(("warning", "breached"))
                )
            ).all()
            assert sorted(kinds) == ["breached", "warning"]
            notes = db.session.execute(
                select(Notification.channel, Notification.kind, Notification.urgent)
                .where(Notification.ticket_id == ticket_id)
                .order_by(Notification.kind, Notification.channel)
            ).all()
            assert notes == [
                ("email", "sla_breached", True),
                ("in_app", "sla_breached", True),
                ("email", "sla_warning", False),
                ("in_app", "sla_warning", False),
            ]
            engineer = user("engineer@demo.test")
            assert {
                n.user_id
                for n in db.session.scalars(
                    select(Notification).where(Notification.ticket_id == ticket_id)
                )
            } == {engineer.id}
            # Nothing new: the second sweep changes and queues nothing for this ticket.
            sweep(run_rules=False)
            assert (
                db.session.scalar(
                    select(func.count())
                    .select_from(Notification)
                    .where(Notification.ticket_id == ticket_id)
                )
                == 4
            )


def test_a_breach_escalates_to_the_managers_once(app, demo):
    with app.app_context():
        with tenant_context(demo["demo"]):
            ticket_id = assigned_ticket().id
        with system_context():
            # The P2 resolution clock notifies the managers at 100 %.
            shift(ticket_id, "resolution", warn_at=20, due_at=2, next_escalation_at=2)
            result = sweep(run_rules=False)
            assert result.escalations == 1
            managers = set(
                db.session.scalars(
                    select(User.id).where(User.tenant_id == demo["demo"], User.role == "as_manager")
                )
            )
            escalated = db.session.scalars(
                select(Notification.user_id).where(
                    Notification.ticket_id == ticket_id, Notification.kind == "sla_escalation"
                )
            ).all()
            assert set(escalated) == managers and len(escalated) == 2 * len(managers)
            clock = db.session.scalar(
                select(SlaClock).where(
                    SlaClock.ticket_id == ticket_id, SlaClock.clock == "resolution"
                )
            )
            assert (clock.escalation_level, clock.next_escalation_at) == (1, None)
            assert sweep(run_rules=False).escalations == 0


def test_two_schedulers_sweep_each_clock_once(app, demo, database_url):
    with app.app_context():
        with tenant_context(demo["demo"]):
            ticket_ids = [assigned_ticket().id for _ in range(3)]
        with system_context():
            for ticket_id in ticket_ids:
                shift(ticket_id, "resolution", warn_at=30, due_at=1)
    apps = [make_app(database_url), make_app(database_url)]
    barrier = threading.Barrier(2)

    def scheduler(copy) -> None:
        barrier.wait()
        for _ in range(5):
            run_locked(copy, "sla_sweep", lambda: sweep(run_rules=False))

    threads = [threading.Thread(target=scheduler, args=(a,)) for a in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with app.app_context(), system_context():
        breaches = db.session.scalars(
            select(SlaEvent.ticket_id).where(
                SlaEvent.ticket_id.in_(ticket_ids), SlaEvent.kind == "breached"
            )
        ).all()
        assert sorted(breaches) == sorted(ticket_ids)
        runs = db.session.scalars(select(JobRun).where(JobRun.job == "sla_sweep")).all()
        assert runs and all(r.finished_at >= r.started_at and r.error is None for r in runs)
        assert sum(r.rows for r in runs) >= len(ticket_ids)


def test_a_failing_job_is_recorded_with_its_error(app):
    def broken() -> None:
        raise RuntimeError("disk on fire")

    assert run_locked(app, "broken-job", broken)
    with app.app_context(), system_context():
        run = db.session.scalar(select(JobRun).where(JobRun.job == "broken-job"))
        assert run.error == "RuntimeError: disk on fire"
        assert run.finished_at is not None


class Inbox:
    """An aiosmtpd handler that keeps messages and can refuse the first few."""

    def __init__(self, refuse: int = 0) -> None:
        self.refuse = refuse
        self.messages: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.refuse:
            self.refuse -= 1
            return "451 Try again later"
        self.messages.append((envelope.rcpt_tos[0], envelope.content.decode()))
        return "250 OK"


@pytest.fixture
def smtp_inbox():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, f"smtp://127.0.0.1:{port}"
    finally:
        controller.stop()


def queue_one(demo, urgent: bool = True) -> int:
    with tenant_context(demo["demo"]):
        engineer = user("engineer@demo.test")
        ticket = assigned_ticket()
        notifications.queue(
            engineer.id,
            "test",
            "DEMO: urgent news",
            "Body text",
            ticket_id=ticket.id,
            urgent=urgent,
            dedup_key=f"t:{ticket.id}",
            channels=("email",),
        )
        db.session.commit()
        return ticket.id


def test_email_reaches_a_real_smtp_server_once(database_url, demo, smtp_inbox):
    inbox, url = smtp_inbox
    app = make_app(database_url, SMTP_URL=url, CASS_BASE_URL="https://cass.example")
    with app.app_context():
        ticket_id = queue_one(demo)
        with system_context():
            assert notifications.deliver_due() == 1
            assert notifications.deliver_due() == 0
        assert len(inbox.messages) == 1
        to, content = inbox.messages[0]
        assert to == "engineer@demo.test"
        assert "Subject: DEMO: urgent news" in content
        with system_context():
            number = db.session.get(Ticket, ticket_id).number
        assert f"https://cass.example/tickets/DEMO-{number}" in content


def test_a_failing_smtp_server_is_retried_with_backoff_without_duplicates(
    database_url, demo, smtp_inbox
):
    inbox, url = smtp_inbox
    inbox.refuse = 2
    app = make_app(database_url, SMTP_URL=url)
    with app.app_context():
        queue_one(demo)
        with system_context():
            now = datetime.now(UTC)
            assert notifications.deliver_due(now) == 0
            note = db.session.scalar(select(Notification).where(Notification.kind == "test"))
            assert note.attempts == 1 and "451" in note.last_error
            assert note.next_attempt_at == now + timedelta(minutes=1)
            assert notifications.deliver_due(now) == 0  # not yet: it waits its backoff
            assert notifications.deliver_due(now + timedelta(minutes=1)) == 0
            db.session.refresh(note)
            assert note.next_attempt_at == now + timedelta(minutes=1) + timedelta(minutes=2)
            assert notifications.deliver_due(now + timedelta(minutes=3)) == 1
            assert notifications.deliver_due(now + timedelta(hours=2)) == 0
    assert len(inbox.messages) == 1


def test_non_urgent_email_waits_for_the_recipients_hours(database_url, demo, smtp_inbox):
    inbox, url = smtp_inbox
    app = make_app(database_url, SMTP_URL=url)
    with app.app_context():
        queue_one(demo, urgent=False)
        with system_context():
            saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
            db.session.execute(
                text("UPDATE notification SET next_attempt_at = :t"), {"t": saturday}
            )
            db.session.commit()
            assert notifications.deliver_due(saturday) == 0
            note = db.session.scalar(select(Notification).where(Notification.kind == "test"))
            # The default calendar opens on Monday at 08:00 UTC; no attempt was used.
            assert note.next_attempt_at == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)
            assert note.attempts == 0
            assert notifications.deliver_due(datetime(2026, 12, 7, 8, 0, tzinfo=UTC)) == 1
    assert len(inbox.messages) == 1


def test_a_running_scheduler_finds_a_breach_within_seconds(database_url, demo, tmp_path):
    """A real `cass scheduler` process with the sweep shortened to one second by configuration."""
    import os
    import subprocess
    import sys

    app = make_app(database_url)
    with app.app_context():
        with tenant_context(demo["demo"]):
            ticket_id = assigned_ticket().id
        with system_context():
            db.session.execute(
                text(
                    "UPDATE sla_clock SET warn_at = now(), due_at = now() + interval '2 seconds'"
                    " WHERE ticket_id = :t AND clock = 'resolution'"
                ),
                {"t": ticket_id},
            )
            db.session.commit()
    env = dict(os.environ, DATABASE_URL=database_url, CASS_SLA_SWEEP_SECONDS="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "cass", "scheduler"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        state = None
        while time.monotonic() < deadline:
            with app.app_context(), system_context():
                state = states(ticket_id).get("resolution")
            if state == "breached":
                break
            time.sleep(0.5)
        assert state == "breached"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_sweep_tells_live_pages_and_rings_the_bells(app, demo, database_url):
    import json

    import psycopg

    from cass import live

    with app.app_context():
        with tenant_context(demo["demo"]):
            ticket_id = assigned_ticket().id
            engineer = user("engineer@demo.test").id
        with system_context():
            shift(ticket_id, "resolution", warn_at=20, due_at=1)
            with psycopg.connect(database_url, autocommit=True) as listener:
                listener.execute(f"LISTEN {live.CHANNEL}")
                sweep(run_rules=False)
                heard = []
                for note in listener.notifies(timeout=2, stop_after=50):
                    heard += live.unpack(json.loads(note.payload))
    tenant = demo["demo"]
    # One `ticket` event per tenant tells lists and boards to redraw, whichever ticket it names
    # (the lowest id: other demo tickets' clocks may come due while a long run goes on).
    assert [e for e in heard if e["kind"] == "ticket"] == [
        {
            "t": tenant,
            "kind": "ticket",
            "id": min(e["id"] for e in heard if e["kind"].startswith("ticket-")),
        }
    ]
    assert {"t": tenant, "kind": f"ticket-{ticket_id}", "id": ticket_id} in heard
    assert {"t": tenant, "kind": f"bell-{engineer}", "id": engineer} in heard


def test_escalation_levels_notify_reassign_and_raise_priority_in_turn(app, demo):
    from cass.models import SlaTarget

    with app.app_context():
        with tenant_context(demo["demo"]):
            ticket_id = assigned_ticket("P3").id
            engineer = user("engineer@demo.test").id
            manager = user("manager@demo.test").id
        with system_context():
            clock = db.session.scalar(
                select(SlaClock).where(
                    SlaClock.ticket_id == ticket_id, SlaClock.clock == "resolution"
                )
            )
            target = db.session.get(SlaTarget, clock.target_id)
            target.escalations = [
                {"percent": 100, "notify_role": "as_manager"},
                {"percent": 101, "reassign_user_id": manager},
                {"percent": 102, "notify_user_id": engineer},
                {"percent": 103, "raise_priority": True},
            ]
            db.session.commit()
            shift(ticket_id, "resolution", warn_at=20, due_at=2, next_escalation_at=2)
            for level in range(1, 5):
                assert sweep(run_rules=False).escalations == 1, level
                db.session.rollback()
                if level == 2:
                    assert db.session.get(Ticket, ticket_id).assignee_user_id == manager
                if level < 4:  # as if time reached the next level
                    shift(ticket_id, "resolution", next_escalation_at=1)
            assert db.session.get(Ticket, ticket_id).priority == "P2"
            keys = {
                (n.user_id, n.dedup_key.rsplit(":", 1)[1])
                for n in db.session.scalars(
                    select(Notification).where(Notification.kind == "sla_escalation")
                )
            }
            assert {(manager, "1"), (engineer, "3")} <= keys
            levels = db.session.scalars(
                select(SlaEvent.detail)
                .where(SlaEvent.ticket_id == ticket_id, SlaEvent.kind == "escalated")
                .order_by(SlaEvent.id)
            ).all()
            assert [d["level"] for d in levels] == [1, 2, 3, 4]
            assert sweep(run_rules=False).escalations == 0


def test_a_tenants_rule_on_sla_breach_runs(app, demo):
    from cass.models import RuleRun, WorkflowRule

    with app.app_context():
        with tenant_context(demo["demo"]):
            ticket_id = assigned_ticket("P3").id
        with system_context():
            db.session.add(
                WorkflowRule(
                    tenant_id=demo["demo"],
                    position=99,
                    name="A breach raises the priority",
                    event="sla_breach",
                    conditions={},
                    actions=[{"do": "set_priority", "priority": "P1"}],
                )
            )
            db.session.commit()
            shift(ticket_id, "resolution", warn_at=20, due_at=2)
            assert sweep(run_rules=True).breaches >= 1
            assert db.session.get(Ticket, ticket_id).priority == "P1"
            assert db.session.scalar(
                select(RuleRun.id).where(RuleRun.event == "sla_breach", RuleRun.matched)
            )
