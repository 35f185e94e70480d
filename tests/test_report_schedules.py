"""Scheduled and background exports (issue 7, point 4): timetables in the tenant's timezone,
files written by a real scheduler run, atomic publishing, retention, e-mailed links, who may
see what, and the progress row that htmx polls."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from cass.csv_download import CopyExport, copy_chunks, write_chunks
from cass.extensions import db
from cass.models import AuditLog, JobRun, ReportExport, ReportSchedule, User
from cass.scheduler import _jobs, run_locked
from cass.services import exports, report_exports
from cass.services.report_exports import ScheduleData, ScheduleError, Timetable, next_run
from cass.storage import get_storage
from cass.tenancy import current_tenant_id, system_context, tenant_context
from tests.conftest import as_user, make_app, page_token
from tests.ocpp_support import execute
from tests.test_sla_sweep import smtp_inbox  # noqa: F401  (a real SMTP server, aiosmtpd)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
HX = {"HX-Request": "true"}


# --- timetables ------------------------------------------------------------------------------


def runs(timetable: Timetable, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    """The next `count` runs after `after`, in UTC, each worked out from the one before."""
    found = []
    for _ in range(count):
        after = next_run(timetable, tz, after)
        found.append(after)
    return found


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_daily_runs_keep_their_local_time_across_the_spring_change():
    # Berlin moves from +01:00 to +02:00 on 2026-03-29: 06:00 local is 05:00, then 04:00 UTC.
    daily = Timetable("daily", at_time=time(6, 0))
    assert runs(daily, BERLIN, utc(2026, 3, 27, 12), 3) == [
        utc(2026, 3, 28, 5),
        utc(2026, 3, 29, 4),
        utc(2026, 3, 30, 4),
    ]


def test_a_time_the_spring_change_skips_runs_once_that_day():
    # 02:30 does not exist in Berlin on 2026-03-29; the run comes an hour later, once.
    daily = Timetable("daily", at_time=time(2, 30))
    assert runs(daily, BERLIN, utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 1, 30),
        utc(2026, 3, 30, 0, 30),
    ]


def test_a_time_the_autumn_change_repeats_runs_once_that_day():
    # 02:30 comes twice in Berlin on 2026-10-25 (at +02:00 and at +01:00): one run, not two.
    daily = Timetable("daily", at_time=time(2, 30))
    assert runs(daily, BERLIN, utc(2026, 10, 24, 12), 3) == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
        utc(2026, 10, 27, 1, 30),
    ]


def test_weekly_runs_on_its_weekday_in_the_tenants_zone():
    # Mondays 07:00 in New York; the US change is on Sunday 2026-03-08.
    weekly = Timetable("weekly", at_time=time(7, 0), weekday=0)
    assert runs(weekly, NEW_YORK, utc(2026, 2, 25, 12), 3) == [
        utc(2026, 3, 2, 12),  # EST, -05:00
        utc(2026, 3, 9, 11),  # EDT, -04:00
        utc(2026, 3, 16, 11),
    ]


def test_monthly_runs_on_a_day_or_the_last_day():
    last = Timetable("monthly", at_time=time(18, 0), month_day="last")
    assert runs(last, LONDON, utc(2026, 2, 10), 3) == [
        utc(2026, 2, 28, 18),
        utc(2026, 3, 31, 17),  # BST from 2026-03-29
        utc(2026, 4, 30, 17),
    ]
    fifteenth = Timetable("monthly", at_time=time(9, 30), month_day="15")
    assert runs(fifteenth, ZoneInfo("UTC"), utc(2026, 1, 15, 9, 30), 2) == [
        utc(2026, 2, 15, 9, 30),
        utc(2026, 3, 15, 9, 30),
    ]


def test_cron_weekdays_count_from_sunday_as_crontab_does():
    # APScheduler 3 numbers weekdays from Monday; "1-5" must still mean Monday to Friday.
    weekdays = Timetable("cron", cron="30 7 * * 1-5")
    friday = utc(2026, 3, 6, 8)
    assert runs(weekdays, ZoneInfo("UTC"), friday, 2) == [
        utc(2026, 3, 9, 7, 30),  # Monday
        utc(2026, 3, 10, 7, 30),
    ]
    for sunday in ("0 9 * * 0", "0 9 * * 7", "0 9 * * sun"):
        (first,) = runs(Timetable("cron", cron=sunday), ZoneInfo("UTC"), friday, 1)
        assert first == utc(2026, 3, 8, 9), sunday


def test_cron_runs_in_the_tenants_zone_across_a_change():
    hourly_nine = Timetable("cron", cron="0 9 * * *")
    assert runs(hourly_nine, BERLIN, utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 7),
        utc(2026, 3, 30, 7),
    ]


def test_the_next_run_is_strictly_after_the_one_just_queued():
    daily = Timetable("daily", at_time=time(6, 0))
    assert next_run(daily, ZoneInfo("UTC"), utc(2026, 5, 1, 6)) == utc(2026, 5, 2, 6)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("bogus", "five fields"),
        ("61 * * * *", "Not a valid cron expression"),
        ("0 6 * * 8", "Not a valid cron expression"),
        ("* * * * *", "more often than every 15 minutes"),
        ("0 0 30 2 *", "never runs"),
        ("0 6 1 * 1", "not both"),
    ],
)
def test_invalid_cron_expressions_are_refused(expr, message):
    with pytest.raises(ScheduleError, match=message):
        report_exports.cron_trigger(expr, BERLIN)


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("", ""),
        ("status=open&priority=P1", "status=open&priority=P1"),
        ("?status=open", "status=open"),
        ("https://cass.example/tickets?status=open&q=cable+cut#top", "status=open&q=cable+cut"),
        ("/tickets?site=3&status=open&status=new", "site=3&status=open&status=new"),
        ("q=a%20b&empty=", "q=a+b"),
    ],
)
def test_filters_are_stored_as_a_normalized_query_string(raw, normalized):
    assert report_exports.normalize_query(raw) == normalized


def test_filters_that_are_not_a_query_string_are_refused():
    with pytest.raises(ScheduleError, match="query string"):
        report_exports.normalize_query("status")
    with pytest.raises(ScheduleError, match="at most"):
        report_exports.normalize_query("q=" + "x" * 2100)


# --- helpers --------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def own_storage(app, tmp_path):
    """Give each test an empty storage folder, so that it sees only the files it made."""
    app.config["CASS_STORAGE_URL"] = f"file://{tmp_path / 'files'}"
    app.extensions.pop("cass_storage", None)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def make_schedule(app, demo, email="manager@demo.test", **changes) -> int:
    """Save a schedule through the service as `email`; return its id."""
    fields = {
        "name": "Open tickets",
        "slug": "tickets",
        "query": "status=open",
        "timetable": Timetable("daily", at_time=time(6, 0)),
        "email_to": [],
        "retention_days": 30,
        "active": True,
    } | changes
    with app.app_context(), tenant_context(demo["demo"]):
        return report_exports.save_schedule(None, user(email), ScheduleData(**fields)).id


def make_due(app, schedule_id: int) -> None:
    with app.app_context(), system_context():
        db.session.execute(
            text(
                "UPDATE report_schedule SET next_run_at = now() - interval '1 minute' WHERE id = :s"
            ),
            {"s": schedule_id},
        )
        db.session.commit()


def run_job(app, name: str = "report_exports") -> None:
    """Run a job as the scheduler does: from its registry, under its advisory lock."""
    job, _trigger = _jobs(app)[name]
    assert run_locked(app, name, job)


def exports_of(app) -> list[ReportExport]:
    with app.app_context(), system_context():
        rows = db.session.scalars(select(ReportExport).order_by(ReportExport.id)).all()
        db.session.expunge_all()
        return rows


def stored(app) -> list[Path]:
    """Every file in local storage."""
    root = get_storage(app).root
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def stored_bytes(app, key: str) -> bytes:
    with get_storage(app).open(key) as stream:
        return stream.read()


def expected_csv(app, demo, email: str, slug: str, query: str) -> bytes:
    """What export_rows gives for the same parameters, written by the downloads' writer."""
    with app.app_context(), tenant_context(demo["demo"]):
        source = exports.export_rows(user(email), slug, report_exports.query_args(query))
        if isinstance(source, CopyExport):
            return b"".join(copy_chunks(source))
        items = list(source)
    if items and isinstance(items[0], bytes | str):
        return b"".join(c.encode() if isinstance(c, str) else c for c in items)
    return b"".join(write_chunks(items))


def rows_of(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


# --- a real scheduler run -------------------------------------------------------------------


def test_a_due_schedule_is_exported_by_a_real_scheduler_run(app, demo):
    schedule_id = make_schedule(app, demo)
    make_due(app, schedule_id)
    run_job(app)

    (export,) = exports_of(app)
    assert export.status == "done", export.error
    assert export.schedule_id == schedule_id
    assert export.owner_id == demo["manager@demo.test"]
    assert export.filename.startswith("Open_tickets-") and export.filename.endswith(".csv")
    content = stored_bytes(app, export.storage_key)
    assert export.size == len(content)
    assert content == expected_csv(app, demo, "manager@demo.test", "tickets", "status=open")
    assert export.row_count == len(rows_of(content)) - 1 > 0
    assert export.expires_at - export.finished_at == timedelta(days=30)
    with app.app_context(), system_context():
        schedule = db.session.get(ReportSchedule, schedule_id)
        assert schedule.next_run_at > datetime.now(UTC)
        assert schedule.last_run_at is not None
        run = db.session.scalar(select(JobRun).where(JobRun.job == "report_exports"))
        assert run.error is None and run.rows == 1
    # Nothing more is due: a second run writes nothing.
    run_job(app)
    assert len(exports_of(app)) == 1


def test_the_file_holds_what_the_download_gives_for_the_same_parameters(app, demo):
    make_due(app, make_schedule(app, demo, query="status=open&sort=priority"))
    run_job(app)
    (export,) = exports_of(app)
    download = as_user(app, "manager@demo.test").get("/tickets.csv?status=open&sort=priority")
    assert download.status_code == 200
    assert stored_bytes(app, export.storage_key) == download.data


def test_a_scheduled_report_holds_what_its_download_gives(app, demo, database_url):
    """A report over "the last 7 days" (days=7): the file is the report's CSV of that day."""
    execute(database_url, "UPDATE tenant SET timezone = 'Europe/Berlin' WHERE slug = 'demo'")
    schedule_id = make_schedule(
        app, demo, name="SLA weekly", slug="sla", query="by=priority&days=7"
    )
    make_due(app, schedule_id)
    run_job(app)
    (export,) = exports_of(app)
    assert export.status == "done", export.error
    download = as_user(app, "manager@demo.test").get("/reports/sla.csv?by=priority&days=7")
    assert download.status_code == 200
    content = stored_bytes(app, export.storage_key)
    assert content == download.data
    assert rows_of(content)[0] == [
        "Priority",
        "Clocks",
        "Met",
        "Breached",
        "Still running",
        "Compliance",
    ]
    assert rows_of(content)[-1][0] == "Total"


def test_the_export_runs_as_its_owner_inside_the_tenant(app, demo, monkeypatch):
    seen = {}

    def spy(actor, slug, args):
        role = db.session.execute(text("SELECT current_user")).scalar()
        seen.update(actor=actor.email, tenant=current_tenant_id(), role=role, args=args)
        return iter([["key", "title"], ["DEMO-1", "Cable"]])

    monkeypatch.setattr(exports, "export_rows", spy)
    schedule_id = make_schedule(app, demo, query="priority=P1&status=open")
    make_due(app, schedule_id)
    run_job(app)
    assert seen["actor"] == "manager@demo.test"
    assert seen["tenant"] == demo["demo"]
    assert seen["role"] == "cass_app"  # under row-level security, not the owning role
    assert seen["args"].getlist("status") == ["open"] and seen["args"]["priority"] == "P1"
    (export,) = exports_of(app)
    assert stored_bytes(app, export.storage_key).decode().splitlines() == [
        "key,title",
        "DEMO-1,Cable",
    ]


def test_csv_already_written_is_stored_as_it_comes(app, demo, monkeypatch):
    """An exporter may hand over CSV chunks instead of rows; the rows are still counted."""
    chunks = [b"key,title\n", b'DEMO-1,"two\nlines"\nDEMO-2,', b'"say ""hi"""\n']
    monkeypatch.setattr(exports, "export_rows", lambda actor, slug, args: iter(chunks))
    make_due(app, make_schedule(app, demo))
    run_job(app)
    (export,) = exports_of(app)
    assert stored_bytes(app, export.storage_key) == b"".join(chunks)
    assert export.row_count == 2


def test_missed_runs_collapse_into_one(app, demo):
    schedule_id = make_schedule(app, demo)
    with app.app_context(), system_context():
        db.session.execute(
            text("UPDATE report_schedule SET next_run_at = now() - interval '5 days'")
        )
        db.session.commit()
    run_job(app)
    assert len(exports_of(app)) == 1
    with app.app_context(), system_context():
        assert db.session.get(ReportSchedule, schedule_id).next_run_at > datetime.now(UTC)


def test_a_deactivated_owner_stops_the_schedule(app, demo):
    schedule_id = make_schedule(app, demo)
    make_due(app, schedule_id)
    with app.app_context(), system_context():
        db.session.execute(
            text("UPDATE app_user SET is_active = false WHERE email = 'manager@demo.test'")
        )
        db.session.commit()
    run_job(app)
    (export,) = exports_of(app)
    assert export.status == "failed"
    assert "may no longer export" in export.error
    with app.app_context(), system_context():
        schedule = db.session.get(ReportSchedule, schedule_id)
        assert not schedule.active and schedule.next_run_at is None


# --- atomic publishing ----------------------------------------------------------------------


def crashing_rows(after: int):
    """An exporter that dies after `after` rows, as a lost connection or a bug would."""

    def export_rows(actor, slug, args):
        yield ["key", "title"]
        for n in range(after):
            yield [f"DEMO-{n}", "x" * 200]
        raise ConnectionError("server closed the connection unexpectedly")

    return export_rows


def test_a_crash_mid_write_publishes_nothing(app, demo, monkeypatch):
    monkeypatch.setattr(exports, "export_rows", crashing_rows(5000))
    schedule_id = make_schedule(app, demo)
    make_due(app, schedule_id)
    run_job(app)
    (export,) = exports_of(app)
    assert export.status == "failed"
    assert "ConnectionError" in export.error
    assert export.storage_key is None
    assert stored(app) == []  # no file, not even a partial or temporary one
    spool = report_exports.spool_dir(app)
    assert list(spool.iterdir()) == []  # the local temporary file is gone too


def test_a_failure_after_the_upload_takes_the_file_back(app, demo, monkeypatch):
    """The file reached storage, then marking the row done failed: nothing stays published."""

    def broken(export, tz):
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(report_exports, "_queue_emails", broken)
    make_due(app, make_schedule(app, demo))
    run_job(app)
    (export,) = exports_of(app)
    assert export.status == "failed" and "outbox unavailable" in export.error
    assert export.storage_key is None
    assert stored(app) == []


def test_the_next_run_cleans_up_after_a_crashed_scheduler(app, demo):
    """A scheduler killed between publishing and marking done left a running row, its
    published file and a spool file; the next run marks the row failed and removes both."""
    make_schedule(app, demo)
    storage = get_storage(app)
    key = f"t{demo['demo']}/2026/11/abc/Open_tickets.csv"
    storage.put(key, io.BytesIO(b"key\n"), "text/csv", 4)
    with app.app_context(), tenant_context(demo["demo"]):
        db.session.add(
            ReportExport(
                tenant_id=demo["demo"],
                owner_id=demo["manager@demo.test"],
                slug="tickets",
                title="Open tickets",
                status="running",
                storage_key=key,
                expires_at=datetime.now(UTC) + timedelta(days=1),
            )
        )
        db.session.commit()
    spool = report_exports.spool_dir(app)
    spool.mkdir(parents=True, exist_ok=True)
    (spool / "export-1-dead.csv.part").write_bytes(b"key\nDEMO-1")
    run_job(app)
    (export,) = exports_of(app)
    assert export.status == "failed" and export.error.startswith("Interrupted")
    assert not storage.exists(key)
    assert list(spool.iterdir()) == []


# --- retention ------------------------------------------------------------------------------


def test_retention_deletes_expired_files_and_their_rows(app, demo):
    make_due(app, make_schedule(app, demo, retention_days=1))
    run_job(app)
    make_due(app, make_schedule(app, demo, name="Kept", retention_days=30))
    run_job(app)
    old, kept = exports_of(app)
    assert old.status == kept.status == "done"
    with app.app_context(), system_context():
        db.session.execute(
            text("UPDATE report_export SET expires_at = now() - interval '1 minute' WHERE id = :e"),
            {"e": old.id},
        )
        db.session.commit()
    run_job(app, "report_export_retention")
    assert [e.id for e in exports_of(app)] == [kept.id]
    storage = get_storage(app)
    assert not storage.exists(old.storage_key)
    assert storage.exists(kept.storage_key)


# --- e-mail ---------------------------------------------------------------------------------


def test_the_file_link_is_emailed_through_the_outbox(database_url, demo, smtp_inbox):  # noqa: F811
    inbox, url = smtp_inbox
    app = make_app(database_url, SMTP_URL=url, CASS_BASE_URL="https://cass.example")
    schedule_id = make_schedule(
        app, demo, email_to=[demo["manager@demo.test"], demo["admin@demo.test"]]
    )
    make_due(app, schedule_id)
    run_job(app)
    (export,) = exports_of(app)
    run_job(app, "deliver_notifications")
    assert sorted(to for to, _ in inbox.messages) == ["admin@demo.test", "manager@demo.test"]
    link = f"https://cass.example/reports/files/{export.id}/download"
    for _to, content in inbox.messages:
        assert "Subject: Export ready: Open tickets" in content
        assert link in content
    # The link downloads the file for a signed-in manager.
    response = as_user(app, "manager@demo.test").get(link.removeprefix("https://cass.example"))
    assert response.status_code == 200
    assert response.data == stored_bytes(app, export.storage_key)
    run_job(app, "deliver_notifications")
    assert len(inbox.messages) == 2  # sent once


def test_only_people_who_may_download_are_emailed(app, demo):
    """An agent cannot be chosen as a recipient, and the service drops one it is given."""
    schedule_id = make_schedule(
        app, demo, email_to=[demo["agent@demo.test"], demo["manager@demo.test"]]
    )
    with app.app_context(), system_context():
        assert db.session.get(ReportSchedule, schedule_id).email_to == [demo["manager@demo.test"]]
    make_due(app, schedule_id)
    run_job(app)
    with app.app_context(), system_context():
        notes = db.session.execute(
            text("SELECT user_id, channel FROM notification WHERE kind = 'report_export'")
        ).all()
    assert notes == [(demo["manager@demo.test"], "email")]


# --- the pages --------------------------------------------------------------------------------


def schedule_form(**changes: str) -> dict[str, str]:
    return {
        "name": "Morning P1s",
        "slug": "tickets",
        "query": "?priority=P1&status=open",
        "frequency": "daily",
        "at_time": "06:30",
        "weekday": "0",
        "month_day": "1",
        "cron": "",
        "retention_days": "14",
        "active": "y",
    } | changes


def test_a_manager_creates_a_schedule_from_the_form(app, demo):
    manager = as_user(app, "manager@demo.test")
    page = manager.get("/reports/schedules/new?slug=tickets&query=status%3Dopen")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'value="status=open"' in html and 'value="06:00"' in html
    token = page_token(manager, "/reports/schedules/new")
    response = manager.post(
        "/reports/schedules/new",
        data={"csrf_token": token, **schedule_form(email_to=str(demo["manager@demo.test"]))},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/reports/schedules"
    with app.app_context(), system_context():
        schedule = db.session.scalar(select(ReportSchedule))
        assert schedule.query == "priority=P1&status=open"
        assert schedule.at_time == time(6, 30)
        assert schedule.email_to == [demo["manager@demo.test"]]
        assert schedule.owner_id == demo["manager@demo.test"]
        assert schedule.next_run_at > datetime.now(UTC)
        assert db.session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.entity == "report_schedule")
        )
    listing = manager.get("/reports/schedules").get_data(as_text=True)
    assert "Morning P1s" in listing and "Daily at 06:30" in listing


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"frequency": "cron", "cron": "61 * * * *"}, "Not a valid cron expression"),
        ({"frequency": "cron", "cron": "* * * * *"}, "more often than every 15 minutes"),
        ({"frequency": "cron", "cron": ""}, "Write a cron expression"),
        ({"slug": "no-such-report"}, "Not a valid choice"),
        ({"slug": "sla", "query": "by=weather"}, "These filters do not make the report: by"),
        ({"slug": "sessions", "query": "days=0"}, "days: Give a number of days"),
        ({"query": "status"}, "query string"),
        ({"at_time": ""}, "Choose a time of day"),
        ({"retention_days": "0"}, "between 1 and 366"),
    ],
)
def test_an_invalid_schedule_is_a_422_and_writes_nothing(app, demo, changes, message):
    manager = as_user(app, "manager@demo.test")
    token = page_token(manager, "/reports/schedules/new")
    response = manager.post(
        "/reports/schedules/new", data={"csrf_token": token, **schedule_form(**changes)}
    )
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context(), system_context():
        assert db.session.scalar(select(func.count()).select_from(ReportSchedule)) == 0


def test_a_valid_cron_schedule_is_saved(app, demo):
    manager = as_user(app, "manager@demo.test")
    token = page_token(manager, "/reports/schedules/new")
    response = manager.post(
        "/reports/schedules/new",
        data={"csrf_token": token, **schedule_form(frequency="cron", cron=" 30  7 * * 1-5 ")},
    )
    assert response.status_code == 303
    with app.app_context(), system_context():
        schedule = db.session.scalar(select(ReportSchedule))
        assert schedule.cron == "30 7 * * 1-5" and schedule.at_time is None
        assert schedule.next_run_at.astimezone(UTC).weekday() < 5


def test_only_the_owner_or_an_admin_changes_a_schedule(app, demo):
    schedule_id = make_schedule(app, demo, email="admin@demo.test")
    manager = as_user(app, "manager@demo.test")
    assert "Open tickets" in manager.get("/reports/schedules").get_data(as_text=True)
    assert manager.get(f"/reports/schedules/{schedule_id}/edit").status_code == 403
    token = page_token(manager, "/reports/schedules")
    assert (
        manager.post(f"/reports/schedules/{schedule_id}/run", data={"csrf_token": token})
    ).status_code == 403
    assert (
        manager.post(f"/reports/schedules/{schedule_id}/delete", data={"csrf_token": token})
    ).status_code == 403

    mine = make_schedule(app, demo, name="Mine")
    admin = as_user(app, "admin@demo.test")
    token = page_token(admin, "/reports/schedules")
    response = admin.post(
        f"/reports/schedules/{mine}/edit",
        data={"csrf_token": token, **schedule_form(name="Renamed", active="")},
    )
    assert response.status_code == 303
    with app.app_context(), system_context():
        changed = db.session.get(ReportSchedule, mine)
        # An admin's change keeps the owner: the export still runs as the manager.
        assert changed.name == "Renamed" and changed.owner_id == demo["manager@demo.test"]
        assert not changed.active and changed.next_run_at is None


def test_run_now_queues_a_file_and_delete_keeps_the_files(app, demo):
    schedule_id = make_schedule(app, demo)
    manager = as_user(app, "manager@demo.test")
    token = page_token(manager, "/reports/schedules")
    response = manager.post(f"/reports/schedules/{schedule_id}/run", data={"csrf_token": token})
    assert response.status_code == 303
    assert response.headers["Location"] == "/reports/files"
    (export,) = exports_of(app)
    assert export.status == "queued" and export.schedule_id == schedule_id
    run_job(app)
    (export,) = exports_of(app)
    assert export.status == "done"
    response = manager.post(f"/reports/schedules/{schedule_id}/delete", data={"csrf_token": token})
    assert response.status_code == 303
    (export,) = exports_of(app)
    assert export.schedule_id is None and export.status == "done"
    assert manager.get(f"/reports/files/{export.id}/download").status_code == 200


@pytest.mark.parametrize(
    "email",
    ["agent@demo.test", "engineer@demo.test", "vendor@demo.test", "viewer@demo.test"],
)
def test_other_roles_may_not_see_schedules_or_files(app, demo, email):
    make_due(app, make_schedule(app, demo))
    run_job(app)
    (export,) = exports_of(app)
    client = as_user(app, email)
    for path in (
        "/reports/schedules",
        "/reports/schedules/new",
        "/reports/files",
        f"/reports/files/{export.id}",
        f"/reports/files/{export.id}/download",
    ):
        assert client.get(path).status_code == 403, path


def test_another_tenant_gets_404_for_a_file_or_schedule(app, demo):
    schedule_id = make_schedule(app, demo)
    make_due(app, schedule_id)
    run_job(app)
    (export,) = exports_of(app)
    acme = as_user(app, "admin@acme.test")
    assert acme.get(f"/reports/files/{export.id}").status_code == 404
    assert acme.get(f"/reports/files/{export.id}/download").status_code == 404
    assert acme.get(f"/reports/schedules/{schedule_id}/edit").status_code == 404
    listing = acme.get("/reports/files").get_data(as_text=True)
    assert f"export-{export.id}" not in listing
    assert "Open tickets" not in acme.get("/reports/schedules").get_data(as_text=True)


def test_every_manager_and_admin_of_the_tenant_sees_its_files(app, demo):
    make_due(app, make_schedule(app, demo))
    run_job(app)
    (export,) = exports_of(app)
    admin = as_user(app, "admin@demo.test")
    assert f'id="export-{export.id}"' in admin.get("/reports/files").get_data(as_text=True)
    assert admin.get(f"/reports/files/{export.id}/download").status_code == 200


def test_a_file_not_yet_written_cannot_be_downloaded(app, demo):
    manager = as_user(app, "manager@demo.test")
    token = page_token(manager, "/reports/files")
    manager.post("/reports/files", data={"csrf_token": token, "slug": "tickets", "query": ""})
    (export,) = exports_of(app)
    assert manager.get(f"/reports/files/{export.id}/download").status_code == 404


# --- background exports and their progress (htmx) --------------------------------------------


def test_background_export_without_htmx_redirects_to_the_files(app, demo):
    manager = as_user(app, "manager@demo.test")
    token = page_token(manager, "/reports/files")
    response = manager.post(
        "/reports/files", data={"csrf_token": token, "slug": "tickets", "query": "status=open"}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/reports/files"
    (export,) = exports_of(app)
    assert (export.status, export.owner_id, export.query) == (
        "queued",
        demo["manager@demo.test"],
        "status=open",
    )
    assert export.title == "Ticket list" and export.schedule_id is None


def test_background_export_with_htmx_returns_the_panel_with_a_polling_row(app, demo):
    manager = as_user(app, "manager@demo.test")
    token = page_token(manager, "/reports/files")
    response = manager.post(
        "/reports/files",
        data={"csrf_token": token, "slug": "tickets", "query": "status=open"},
        headers=HX,
    )
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    assert html.startswith('<div id="export-files">') and "<html" not in html
    (export,) = exports_of(app)
    assert f'id="export-{export.id}"' in html and 'hx-trigger="every 1s"' in html


@pytest.mark.parametrize("headers", [{}, HX], ids=["page", "htmx"])
def test_an_invalid_background_export_is_a_422(app, demo, headers):
    manager = as_user(app, "manager@demo.test")
    token = page_token(manager, "/reports/files")
    response = manager.post(
        "/reports/files",
        data={"csrf_token": token, "slug": "nope", "query": "status"},
        headers=headers,
    )
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Not a valid choice" in html and "query string" in html
    assert ("<html" in html) is not bool(headers)
    assert exports_of(app) == []


def running_export(app, demo, rows: int) -> int:
    with app.app_context(), tenant_context(demo["demo"]):
        export = ReportExport(
            tenant_id=demo["demo"],
            owner_id=demo["manager@demo.test"],
            slug="tickets",
            title="Ticket list",
            status="running",
            row_count=rows,
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        db.session.add(export)
        db.session.commit()
        return export.id


def test_progress_row_polls_while_running_with_htmx(app, demo):
    export_id = running_export(app, demo, 12345)
    manager = as_user(app, "manager@demo.test")
    response = manager.get(f"/reports/files/{export_id}", headers=HX)
    assert response.status_code == 200
    assert "HX-Request" in response.headers["Vary"]
    html = response.get_data(as_text=True)
    assert f'<tr id="export-{export_id}" data-status="running"' in html
    assert 'hx-trigger="every 1s"' in html and "<html" not in html
    assert "Running: 12,345 rows so far" in html and "<progress" in html


def test_progress_row_stops_polling_once_done(app, demo):
    export_id = running_export(app, demo, 10)
    with app.app_context(), system_context():
        db.session.execute(
            text(
                "UPDATE report_export SET status = 'done', storage_key = 'x/y.csv',"
                " filename = 'y.csv', size = 2048, finished_at = now() WHERE id = :e"
            ),
            {"e": export_id},
        )
        db.session.commit()
    html = (
        as_user(app, "manager@demo.test")
        .get(f"/reports/files/{export_id}", headers=HX)
        .get_data(as_text=True)
    )
    assert 'data-status="done"' in html
    assert "hx-trigger" not in html and "<progress" not in html
    assert f"/reports/files/{export_id}/download" in html and "2.0 kB" in html


def test_progress_without_htmx_is_a_whole_page(app, demo):
    export_id = running_export(app, demo, 7)
    response = as_user(app, "manager@demo.test").get(f"/reports/files/{export_id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<html" in html and "<h1>Ticket list</h1>" in html
    assert f'id="export-{export_id}"' in html and 'hx-trigger="every 1s"' in html


def test_the_files_page_lists_status_rows_size_and_expiry(app, demo):
    make_due(app, make_schedule(app, demo))
    run_job(app)
    (export,) = exports_of(app)
    html = as_user(app, "manager@demo.test").get("/reports/files").get_data(as_text=True)
    assert "<html" in html and "Export in the background" in html
    row = html[html.index(f'id="export-{export.id}"') :]
    row = row[: row.index("</tr>")]
    assert "Ready" in row and f"{export.row_count:,}" in row
    assert export.filename in row and "Download" in row
    assert f"{export.expires_at.astimezone(UTC):%Y-%m-%d %H:%M}" in row  # the demo tenant: UTC


def test_the_reports_index_links_to_schedules_and_files(app, demo):
    html = as_user(app, "manager@demo.test").get("/reports").get_data(as_text=True)
    assert 'href="/reports/schedules"' in html and 'href="/reports/files"' in html
    viewer = as_user(app, "viewer@demo.test").get("/reports").get_data(as_text=True)
    assert 'href="/reports/files"' not in viewer
