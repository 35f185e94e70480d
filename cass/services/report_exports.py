"""Scheduled and background exports: report CSV files written by the scheduler into storage.

A schedule names a report (a key of `exports.TITLES`) with its page parameters and a timetable
(daily, weekly or monthly at a time of day, or a cron expression) in the tenant's timezone;
APScheduler's CronTrigger works out each next run. The scheduler's `report_exports` job queues
a `report_export` row for each due schedule (claimed with FOR UPDATE SKIP LOCKED), then writes
every queued export, "run now" and the files page's background exports included, as the
export's owner: in the owner's tenant, with the owner's role's view of the data.

A file is never published half-written. The rows go to a spool file on local disk first; only
when it is complete is it handed to storage in one `put` (a temporary file renamed into place,
or one S3 upload), and the row is marked done after that. The storage key is recorded before
the put, so a crash in between leaves a "running" row that the next run marks failed, deleting
whatever the put left. Retention deletes files and their rows when they expire.
"""

from __future__ import annotations

import logging
import os
import time as clock
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from flask import Flask, current_app, url_for
from sqlalchemy import delete, func, select, text, update
from werkzeug.datastructures import MultiDict

from cass.csv_download import (
    ROWS_PER_CHUNK,
    CopyExport,
    copy_chunks,
    tenant_zone,
    write_rows,
    zone_of,
)
from cass.extensions import db
from cass.models import ROLES, ReportExport, ReportSchedule, Tenant, User
from cass.permissions import can
from cass.services import exports, notifications
from cass.services.audit import audit
from cass.storage import get_storage, new_key, safe_filename
from cass.tenancy import current_tenant_id, scoped, tenant_context

log = logging.getLogger("cass.report_exports")

MAX_QUERY = 2000
# Cron schedules may not run more often than this: each run writes a whole report.
MIN_CRON_GAP = timedelta(minutes=15)
MAX_RETENTION_DAYS = 366
# Progress is written at most this often (seconds), from its own short transaction.
PROGRESS_EVERY = 0.5
# One job run writes queued exports for at most this long; the rest wait for the next run.
RUN_BUDGET_SECONDS = 300
FILES_SHOWN = 200
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# crontab weekday numbers (0 and 7 = Sunday) as APScheduler's names (its own numbers start
# at Monday = 0: a crontab "1-5" given to APScheduler 3 as is would mean Tuesday to Saturday).
_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NUMBERS = {name: n for n, name in enumerate(_CRON_DAYS[:7])}


class ScheduleError(ValueError):
    """A schedule that cannot be saved; the message says why, for the form."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class ExportRefused(RuntimeError):
    """The export's owner may no longer export (deactivated, or their role changed)."""


# --- timetables -----------------------------------------------------------------------------


def _crontab_weekdays(field_text: str) -> str:
    """Return a crontab weekday field as APScheduler weekday names (an explicit list)."""
    if field_text == "*":
        return "*"
    days: set[int] = set()
    for part in field_text.lower().split(","):
        spread, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"weekday step must be positive: {part!r}")
        if spread == "*":
            first, last = 0, 6
        else:
            low, _, high = spread.partition("-")
            first = _weekday_number(low)
            last = _weekday_number(high) if high else (6 if step_text else first)
            if last < first:
                raise ValueError(f"weekday range runs backwards: {part!r}")
        days.update(n % 7 for n in range(first, last + 1, step))
    return ",".join(_CRON_DAYS[n] for n in sorted(days))


def _weekday_number(value: str) -> int:
    if value in _DAY_NUMBERS:
        return _DAY_NUMBERS[value]
    if value.isascii() and value.isdigit() and int(value) <= 7:
        return int(value)
    raise ValueError(f"not a weekday: {value!r} (use 0-7 or sun-sat)")


def cron_trigger(expr: str, tz: ZoneInfo) -> CronTrigger:
    """Return the trigger of a five-field crontab line; raise ScheduleError if it is not one."""
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"A cron expression has five fields (minute hour day month weekday); "
            f"this has {len(fields)}.",
            "cron",
        )
    minute, hour, day, month, weekday = fields
    if day != "*" and weekday != "*":
        # crontab runs when either matches, APScheduler only when both do: refuse the mix
        # rather than run on other days than the expression says.
        raise ScheduleError("Restrict the day of the month or the weekday, not both.", "cron")
    try:
        trigger = CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_crontab_weekdays(weekday),
            timezone=tz,
        )
    except ValueError as exc:
        raise ScheduleError(f"Not a valid cron expression: {exc}", "cron") from exc
    first = trigger.get_next_fire_time(None, datetime.now(UTC))
    if first is None:
        raise ScheduleError("This cron expression never runs.", "cron")
    # The shortest gap among the next runs (enough of them to see an hourly pattern's gaps).
    previous = first
    for _ in range(48):
        following = trigger.get_next_fire_time(
            previous, previous.astimezone(UTC) + timedelta(seconds=1)
        )
        if following is None:
            break
        if following - previous < MIN_CRON_GAP:
            raise ScheduleError(
                f"This runs more often than every {int(MIN_CRON_GAP.total_seconds() // 60)} "
                "minutes, which is the most a schedule may.",
                "cron",
            )
        previous = following
    return trigger


@dataclass
class Timetable:
    """When a schedule runs: its frequency and the fields that frequency uses."""

    frequency: str
    at_time: time | None = None
    weekday: int | None = None
    month_day: str | None = None
    cron: str | None = None

    def trigger(self, tz: ZoneInfo) -> CronTrigger:
        """Return the APScheduler trigger of this timetable in timezone `tz`."""
        if self.frequency == "cron":
            return cron_trigger((self.cron or "").strip(), tz)
        at = self.at_time or time(6, 0)
        if self.frequency == "daily":
            return CronTrigger(hour=at.hour, minute=at.minute, timezone=tz)
        if self.frequency == "weekly":
            return CronTrigger(
                day_of_week=self.weekday or 0, hour=at.hour, minute=at.minute, timezone=tz
            )
        if self.frequency == "monthly":
            return CronTrigger(
                day=self.month_day or "1", hour=at.hour, minute=at.minute, timezone=tz
            )
        raise ScheduleError(f"Unknown frequency {self.frequency!r}.", "frequency")

    def describe(self) -> str:
        """Return the timetable in words, e.g. "Weekly on Monday at 06:00"."""
        at = f"{self.at_time:%H:%M}" if self.at_time else ""
        if self.frequency == "daily":
            return f"Daily at {at}"
        if self.frequency == "weekly":
            return f"Weekly on {WEEKDAYS[self.weekday or 0]} at {at}"
        if self.frequency == "monthly":
            day = "the last day" if self.month_day == "last" else f"day {self.month_day}"
            return f"Monthly on {day} at {at}"
        return f"Cron “{self.cron}”"


def timetable_of(schedule: ReportSchedule) -> Timetable:
    """Return the schedule's timetable."""
    return Timetable(
        schedule.frequency, schedule.at_time, schedule.weekday, schedule.month_day, schedule.cron
    )


def next_run(timetable: Timetable, tz: ZoneInfo, after: datetime) -> datetime | None:
    """Return the first run of `timetable` strictly after `after` (in UTC), or None if none."""
    # Fire times fall on whole seconds: the first whole second after `after` may be one.
    # Arithmetic in UTC: aware local times add as wall times, which is wrong across a change.
    start = after.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
    trigger = timetable.trigger(tz)
    fire = trigger.get_next_fire_time(None, start)
    # When clocks go back, an hour's wall times come twice and the trigger fires at both; like
    # cron, a schedule runs once at a wall time, so its second coming is skipped.
    wall = after.astimezone(tz).replace(tzinfo=None)
    while fire is not None and fire.replace(tzinfo=None) <= wall:
        fire = trigger.get_next_fire_time(fire, fire.astimezone(UTC) + timedelta(seconds=1))
    return fire.astimezone(UTC) if fire is not None else None


# --- filters ---------------------------------------------------------------------------------


def normalize_query(raw: str) -> str:
    """Return the page parameters `raw` as a normalized query string; raise ScheduleError.

    Takes "status=open&priority=P1", the same with a leading "?", or a whole copied address
    ("https://…/tickets?status=open"), whose query part is kept.
    """
    raw = (raw or "").strip()
    if "?" in raw:
        raw = urlsplit(raw).query if "://" in raw or raw.startswith("/") else raw.split("?", 1)[1]
    raw = raw.split("#", 1)[0]
    if len(raw) > MAX_QUERY:
        raise ScheduleError(f"Filters are at most {MAX_QUERY} characters.", "query")
    try:
        pairs = parse_qsl(raw, keep_blank_values=False, strict_parsing=bool(raw))
    except ValueError as exc:
        raise ScheduleError(
            "Filters must look like a query string: name=value&name=value.", "query"
        ) from exc
    if any("\x00" in k or "\x00" in v for k, v in pairs):
        raise ScheduleError("Filters must not contain NUL characters.", "query")
    normalized = urlencode(pairs)
    if len(normalized) > MAX_QUERY:
        raise ScheduleError(f"Filters are at most {MAX_QUERY} characters.", "query")
    return normalized


def query_args(query: str) -> MultiDict[str, str]:
    """Return a stored query string as the page's request arguments."""
    return MultiDict(parse_qsl(query, keep_blank_values=False))


def check_slug(slug: str) -> str:
    """Return `slug` if it names an export, else raise ScheduleError."""
    if slug not in exports.TITLES:
        raise ScheduleError("Choose one of the reports.", "slug")
    return slug


# --- schedules (web, bound to the request's tenant) ----------------------------------------


@dataclass
class ScheduleData:
    """What the schedule form gives."""

    name: str
    slug: str
    query: str
    timetable: Timetable
    email_to: list[int] = field(default_factory=list)
    retention_days: int = 30
    active: bool = True


def list_schedules() -> list[tuple[ReportSchedule, User, ReportExport | None]]:
    """Return the tenant's schedules with their owners and latest exports, by name."""
    rows = db.session.execute(
        scoped(ReportSchedule)
        .add_columns(User)
        .join(User, User.id == ReportSchedule.owner_id)
        .order_by(func.lower(ReportSchedule.name), ReportSchedule.id)
    ).all()
    ids = [schedule.id for schedule, _ in rows]
    newest = (
        scoped(ReportExport, ReportExport.schedule_id.in_(ids))
        .with_only_columns(func.max(ReportExport.id))
        .group_by(ReportExport.schedule_id)
    )
    latest = {
        export.schedule_id: export
        for export in db.session.scalars(scoped(ReportExport, ReportExport.id.in_(newest)))
    }
    return [(schedule, owner, latest.get(schedule.id)) for schedule, owner in rows]


def may_edit(schedule: ReportSchedule, user: User) -> bool:
    """Return whether `user` may change the schedule: its owner, or an admin."""
    return user.role == "admin" or schedule.owner_id == user.id


def recipients() -> list[tuple[int, str]]:
    """Return the tenant's active users who may download files, as (id, label) choices."""
    roles = [role for role in ROLES if can(role, "reports.export")]
    users = db.session.scalars(
        scoped(User, User.is_active_flag.is_(True), User.role.in_(roles)).order_by(User.name)
    )
    return [(u.id, f"{u.name} <{u.email}>") for u in users]


def _snapshot(schedule: ReportSchedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "slug": schedule.slug,
        "query": schedule.query,
        "timetable": timetable_of(schedule).describe(),
        "email_to": list(schedule.email_to or []),
        "retention_days": schedule.retention_days,
        "active": schedule.active,
    }


def save_schedule(
    schedule: ReportSchedule | None, actor: User, data: ScheduleData
) -> ReportSchedule:
    """Create or change a schedule and work out its next run; raise ScheduleError."""
    check_slug(data.slug)
    query = normalize_query(data.query)
    if not 1 <= data.retention_days <= MAX_RETENTION_DAYS:
        raise ScheduleError(f"Keep files 1 to {MAX_RETENTION_DAYS} days.", "retention_days")
    tt = data.timetable
    if tt.frequency != "cron" and tt.at_time is None:
        raise ScheduleError("Choose a time of day.", "at_time")
    allowed = {ident for ident, _ in recipients()}
    now = datetime.now(UTC)
    upcoming = next_run(tt, tenant_zone(), now)  # raises ScheduleError for a bad cron
    before = _snapshot(schedule) if schedule is not None else None
    if schedule is None:
        schedule = ReportSchedule(tenant_id=current_tenant_id(), owner_id=actor.id)
        db.session.add(schedule)
    schedule.name = data.name.strip()[:120]
    schedule.slug = data.slug
    schedule.query = query
    schedule.frequency = tt.frequency
    cron = tt.frequency == "cron"
    schedule.cron = " ".join((tt.cron or "").split()) if cron else None
    schedule.at_time = None if cron else tt.at_time
    schedule.weekday = tt.weekday if tt.frequency == "weekly" else None
    schedule.month_day = tt.month_day if tt.frequency == "monthly" else None
    schedule.email_to = [ident for ident in dict.fromkeys(data.email_to) if ident in allowed]
    schedule.retention_days = data.retention_days
    schedule.active = data.active
    schedule.next_run_at = upcoming if data.active else None
    schedule.updated_at = now
    db.session.flush()
    audit(
        actor.id,
        "report_schedule",
        schedule.id,
        "update" if before else "create",
        before,
        _snapshot(schedule),
    )
    db.session.commit()
    return schedule


def delete_schedule(schedule: ReportSchedule, actor: User) -> None:
    """Delete a schedule; the files it made stay until they expire."""
    audit(actor.id, "report_schedule", schedule.id, "delete", _snapshot(schedule), None)
    db.session.delete(schedule)
    db.session.commit()


def _new_export(
    owner_id: int, slug: str, query: str, title: str, retention_days: int, **extra: Any
) -> ReportExport:
    return ReportExport(
        tenant_id=current_tenant_id(),
        owner_id=owner_id,
        slug=slug,
        query=query,
        title=title[:200],
        status="queued",
        retention_days=retention_days,
        expires_at=datetime.now(UTC) + timedelta(days=retention_days),
        **extra,
    )


def run_now(schedule: ReportSchedule, actor: User) -> ReportExport:
    """Queue an export of the schedule now, as its owner; its timetable is unchanged."""
    export = _new_export(
        schedule.owner_id,
        schedule.slug,
        schedule.query,
        schedule.name,
        schedule.retention_days,
        schedule_id=schedule.id,
        email_to=list(schedule.email_to or []),
    )
    db.session.add(export)
    db.session.flush()
    audit(actor.id, "report_schedule", schedule.id, "run", None, {"export": export.id})
    db.session.commit()
    return export


def request_export(actor: User, slug: str, query: str) -> ReportExport:
    """Queue a background export of report `slug` with `query`, as `actor`; raise ScheduleError."""
    check_slug(slug)
    export = _new_export(
        actor.id,
        slug,
        normalize_query(query),
        exports.TITLES[slug],
        current_app.config["CASS_EXPORT_RETENTION_DAYS"],
    )
    db.session.add(export)
    db.session.commit()
    return export


def list_files(limit: int = FILES_SHOWN) -> list[ReportExport]:
    """Return the tenant's export files, newest first."""
    return list(
        db.session.scalars(scoped(ReportExport).order_by(ReportExport.id.desc()).limit(limit))
    )


# --- the scheduler's jobs (system context) --------------------------------------------------


def run_due(now: datetime | None = None, budget: float = RUN_BUDGET_SECONDS) -> int:
    """Queue the due schedules' exports and write queued exports; return how many files were
    written (system context)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    now = now or datetime.now(UTC)
    _clean_spool(app)
    _recover_interrupted()
    queue_due(now)
    written = 0
    deadline = clock.monotonic() + budget
    while clock.monotonic() < deadline:
        claimed = _claim()
        if claimed is None:
            break
        written += _run_one(app, *claimed)
    return written


def queue_due(now: datetime) -> int:
    """Queue an export for each active schedule due at `now` and move its next run on; return
    how many were queued (system context)."""
    due = db.session.execute(
        select(ReportSchedule, Tenant.timezone)
        .join(Tenant, Tenant.id == ReportSchedule.tenant_id)
        .where(ReportSchedule.active.is_(True), ReportSchedule.next_run_at <= now)
        .order_by(ReportSchedule.next_run_at)
        .limit(500)
        .with_for_update(of=ReportSchedule, skip_locked=True)
    ).all()
    for schedule, tz_name in due:
        db.session.add(
            ReportExport(
                tenant_id=schedule.tenant_id,
                schedule_id=schedule.id,
                owner_id=schedule.owner_id,
                slug=schedule.slug,
                query=schedule.query,
                title=schedule.name,
                status="queued",
                email_to=list(schedule.email_to or []),
                retention_days=schedule.retention_days,
                expires_at=now + timedelta(days=schedule.retention_days),
            )
        )
        schedule.last_run_at = now
        # Runs missed while the scheduler was down collapse into this one.
        try:
            schedule.next_run_at = next_run(timetable_of(schedule), zone_of(tz_name), now)
        except ScheduleError:
            schedule.active, schedule.next_run_at = False, None
        if schedule.next_run_at is None:
            schedule.active = False
    db.session.commit()
    return len(due)


_CLAIM_SQL = text(
    """
    UPDATE report_export e SET status = 'running', started_at = now(), row_count = 0
    FROM (
        SELECT id FROM report_export WHERE status = 'queued'
        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
    ) next
    WHERE e.id = next.id
    RETURNING e.id, e.tenant_id
    """
)


def _claim() -> tuple[int, int] | None:
    """Mark the oldest queued export running and return its id and tenant (committed)."""
    row = db.session.execute(_CLAIM_SQL).first()
    db.session.commit()
    return (row[0], row[1]) if row else None


def _run_one(app: Flask, export_id: int, tenant_id: int) -> int:
    """Write one claimed export; return 1 if its file was published, else 0."""
    # A context of its own: a fresh session and `g` (per-tenant caches must not carry over).
    with app.app_context(), tenant_context(tenant_id):
        try:
            write_export(export_id)
        except Exception as exc:
            log.exception("export %s failed", export_id)
            db.session.rollback()
            _fail(export_id, exc)
            return 0
    return 1


def write_export(export_id: int) -> None:
    """Write the export's file as its owner and publish it (bound to the export's tenant)."""
    export = db.session.get(ReportExport, export_id)
    if export is None:
        raise LookupError(f"export {export_id} is gone")
    owner = db.session.get(User, export.owner_id)
    if owner is None or not owner.is_active or not can(owner.role, "reports.export"):
        raise ExportRefused(f"{owner.email if owner else 'The owner'} may no longer export.")
    tz = tenant_zone()  # the export's: write_export runs bound to its tenant
    stamp = datetime.now(UTC).astimezone(tz)
    filename = safe_filename(f"{export.title}-{stamp:%Y-%m-%d-%H%M}.csv")
    source = exports.export_rows(owner, export.slug, query_args(export.query))
    spool = spool_dir(current_app._get_current_object())  # type: ignore[attr-defined]
    spool.mkdir(parents=True, exist_ok=True)
    part = spool / f"export-{export_id}-{uuid.uuid4().hex}.csv.part"
    try:
        rows, size = spool_csv(source, part, lambda n: _progress(export_id, n))
        key = new_key(export.tenant_id, filename)
        _record_key(export_id, key)
        with part.open("rb") as stream:
            get_storage(current_app).put(key, stream, "text/csv", size)
    finally:
        part.unlink(missing_ok=True)
    finished = datetime.now(UTC)
    export.status = "done"
    export.row_count, export.size = rows, size
    export.filename, export.storage_key = filename, key
    export.finished_at = finished
    export.expires_at = finished + timedelta(days=export.retention_days)
    _queue_emails(export, tz)
    db.session.commit()


def spool_dir(app: Flask) -> Path:
    """Return the local folder where exports are written before they are published."""
    return Path(app.instance_path) / "export-spool"


def _clean_spool(app: Flask) -> None:
    """Remove spool files left by a crash: under the job's lock no other export is writing."""
    folder = spool_dir(app)
    if folder.is_dir():
        for leftover in folder.glob("export-*.part"):
            leftover.unlink(missing_ok=True)


def csv_chunks(source: Iterable[Any] | CopyExport) -> Iterator[tuple[bytes, int]]:
    """Yield an export's output as CSV bytes, in chunks, each with how many records it ends.

    Rows of cells are written by the downloads' own writer (csv_download.write_rows), so that
    a file holds the bytes its download gives; CSV already written (bytes or str chunks, or a
    CopyExport that Postgres writes) is passed on as it is.
    """
    if isinstance(source, CopyExport):
        source = copy_chunks(source)
    batch: list[Any] = []
    quotes = 0  # quote characters seen in written chunks: a newline inside quotes is a cell's
    for item in source:
        if not isinstance(item, bytes | str):
            batch.append(item)
            if len(batch) == ROWS_PER_CHUNK:
                yield write_rows(batch).encode(), len(batch)
                batch.clear()
            continue
        if batch:
            yield write_rows(batch).encode(), len(batch)
            batch.clear()
        chunk = item.encode() if isinstance(item, str) else item
        ends = 0
        for n, piece in enumerate(chunk.split(b"\n")):
            if n and quotes % 2 == 0:
                ends += 1
            quotes += piece.count(b'"')
        yield chunk, ends
    if batch:
        yield write_rows(batch).encode(), len(batch)


def spool_csv(
    source: Iterable[Any], path: Path, progress: Callable[[int], None]
) -> tuple[int, int]:
    """Write the export's CSV to `path` and sync it to disk; return (data rows, bytes)."""
    records = size = 0
    reported = clock.monotonic()
    with path.open("wb") as out:
        for chunk, ends in csv_chunks(source):
            out.write(chunk)
            records += ends
            size += len(chunk)
            if clock.monotonic() - reported >= PROGRESS_EVERY:
                progress(max(records - 1, 0))
                reported = clock.monotonic()
        out.flush()
        os.fsync(out.fileno())
    return max(records - 1, 0), size  # the header is not a data row


def _progress(export_id: int, rows: int) -> None:
    """Record how many rows a running export has written (its own transaction, seen at once)."""
    with db.engine.begin() as conn:
        conn.execute(
            update(ReportExport)
            .where(ReportExport.id == export_id, ReportExport.status == "running")
            .values(row_count=rows)
        )


def _record_key(export_id: int, key: str) -> None:
    """Record the key a file is about to be published under, so a crash can be undone."""
    with db.engine.begin() as conn:
        conn.execute(
            update(ReportExport).where(ReportExport.id == export_id).values(storage_key=key)
        )


def _fail(export_id: int, exc: Exception) -> None:
    """Mark an export failed, deleting anything published under its key (own transaction)."""
    message = str(exc) if isinstance(exc, ExportRefused) else f"{type(exc).__name__}: {exc}"
    with db.engine.begin() as conn:
        row = conn.execute(
            select(ReportExport.storage_key, ReportExport.schedule_id, ReportExport.retention_days)
            .where(ReportExport.id == export_id)
            .with_for_update()
        ).first()
        if row is None:
            return
        key, schedule_id, keep = row
        key = _unpublish(key)
        now = datetime.now(UTC)
        conn.execute(
            update(ReportExport)
            .where(ReportExport.id == export_id)
            .values(
                status="failed",
                error=message[:2000],
                storage_key=key,
                finished_at=now,
                expires_at=now + timedelta(days=keep),
            )
        )
        if isinstance(exc, ExportRefused) and schedule_id is not None:
            # It would fail the same way every time: stop it until someone looks at it.
            conn.execute(
                update(ReportSchedule)
                .where(ReportSchedule.id == schedule_id)
                .values(active=False, next_run_at=None)
            )


def _unpublish(key: str | None) -> str | None:
    """Delete what may have been stored under `key`; return the key if that failed, else None."""
    if key is None:
        return None
    try:
        get_storage(current_app).delete(key)
    except Exception:
        log.exception("could not delete %s; retention will try again", key)
        return key
    return None


def _recover_interrupted() -> int:
    """Mark exports left running by a crash failed and delete any file they published.

    The job holds its advisory lock, so no export is being written anywhere right now.
    """
    stale = db.session.execute(
        select(ReportExport.id, ReportExport.storage_key, ReportExport.retention_days)
        .where(ReportExport.status == "running")
        .with_for_update(skip_locked=True)
    ).all()
    now = datetime.now(UTC)
    for export_id, key, keep in stale:
        db.session.execute(
            update(ReportExport)
            .where(ReportExport.id == export_id)
            .values(
                status="failed",
                error="Interrupted: the scheduler stopped while writing this file.",
                storage_key=_unpublish(key),
                finished_at=now,
                expires_at=now + timedelta(days=keep),
            )
        )
    db.session.commit()
    return len(stale)


def _queue_emails(export: ReportExport, tz: ZoneInfo) -> None:
    """Queue an e-mail with the download link to each recipient who may still download it."""
    wanted = list(dict.fromkeys(export.email_to or []))
    if not wanted:
        return
    people = db.session.scalars(
        select(User).where(User.tenant_id == export.tenant_id, User.id.in_(wanted))
    )
    config = current_app.config
    # The scheduler has no request: the link's host comes from CASS_BASE_URL.
    with current_app.test_request_context(base_url=config["CASS_BASE_URL"]):
        link = url_for("report_schedules.download", export_id=export.id, _external=True)
    expires = export.expires_at.astimezone(tz)
    body = (
        f"{export.title} is ready: {export.filename}, {export.row_count:,} rows.\n"
        f"Download it (you will be asked to sign in) until {expires:%Y-%m-%d %H:%M %Z}:\n{link}"
    )
    for person in people:
        if person.is_active and can(person.role, "reports.export"):
            # Urgent: the schedule's own time is when its people asked to hear of it, so the
            # e-mail does not wait for their business hours.
            notifications.queue(
                person.id,
                "report_export",
                f"Export ready: {export.title}",
                body,
                urgent=True,
                dedup_key=f"report_export:{export.id}",
                channels=("email",),
            )


def apply_retention(now: datetime | None = None, limit: int = 1000) -> int:
    """Delete expired export files and their rows; return how many (system context)."""
    now = now or datetime.now(UTC)
    expired = db.session.execute(
        select(ReportExport.id, ReportExport.storage_key)
        .where(ReportExport.expires_at <= now, ReportExport.status.in_(("done", "failed")))
        .order_by(ReportExport.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    gone = []
    for export_id, key in expired:
        if key is not None and _unpublish(key) is not None:
            continue  # the file is still there: keep its row, so the next run tries again
        gone.append(export_id)
    if gone:
        db.session.execute(delete(ReportExport).where(ReportExport.id.in_(gone)))
    db.session.commit()
    return len(gone)


def progress_label(export: ReportExport) -> str:
    """Return a short account of the export's state for its row, e.g. "Running: 1,200 rows"."""
    if export.status == "queued":
        return "Queued"
    if export.status == "running":
        return f"Running: {export.row_count:,} rows so far"
    if export.status == "done":
        return "Ready"
    return "Failed"


def is_pending(export: ReportExport) -> bool:
    """Return whether the export is still queued or running (its row keeps polling)."""
    return export.status in ("queued", "running")


def titles() -> Mapping[str, str]:
    """Return the exports that may be scheduled, by slug."""
    return exports.TITLES
