"""Scheduled exports: the timetables managers set for a report, and the CSV files they produce."""

from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    Time,
    UniqueConstraint,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned
from cass.models.tickets import _in, _same_tenant_fk

FREQUENCIES = {
    "daily": "Daily",
    "weekly": "Weekly",
    "monthly": "Monthly",
    "cron": "Cron expression",
}
# queued → running → done | failed; a file exists in storage only for "done".
EXPORT_STATES = ("queued", "running", "done", "failed")
# The day of the month a monthly schedule runs: 1-28 exist in every month, "last" is the last.
MONTH_DAYS = (*(str(day) for day in range(1, 29)), "last")


class ReportSchedule(TenantOwned, db.Model):
    """A report with its filters, exported as CSV on a timetable in the tenant's timezone."""

    __tablename__ = "report_schedule"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_report_schedule_tenant_id"),
        _same_tenant_fk("owner_id", "app_user", "fk_report_schedule_owner", "CASCADE"),
        CheckConstraint(_in("frequency", FREQUENCIES), name="ck_report_schedule_frequency"),
        CheckConstraint("frequency <> 'cron' OR cron IS NOT NULL", name="ck_report_schedule_cron"),
        CheckConstraint("weekday BETWEEN 0 AND 6", name="ck_report_schedule_weekday"),
        CheckConstraint(_in("month_day", MONTH_DAYS), name="ck_report_schedule_month_day"),
        CheckConstraint("retention_days BETWEEN 1 AND 366", name="ck_report_schedule_retention"),
        # What the scheduler scans for: active schedules by when they are due.
        Index("ix_report_schedule_due", "next_run_at", postgresql_where=text("active")),
    )

    # The export runs as this user: with their role's view of the tenant's data.
    owner_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(120))
    # A key of cass.services.exports.TITLES.
    slug: Mapped[str] = mapped_column(String(40))
    # The report page's parameters as a normalized query string, e.g. "status=open&priority=P1".
    query: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    frequency: Mapped[str] = mapped_column(String(10))
    # Daily, weekly and monthly: the local time of day; weekly: the weekday (0 = Monday);
    # monthly: the day of the month ("1" to "28" or "last").
    at_time: Mapped[time | None] = mapped_column(Time)
    weekday: Mapped[int | None] = mapped_column(SmallInteger)
    month_day: Mapped[str | None] = mapped_column(String(4))
    # A five-field crontab line (minute hour day month weekday, 0 or 7 = Sunday).
    cron: Mapped[str | None] = mapped_column(String(120))
    # Users of the tenant who get an e-mail with a link when a file is ready.
    email_to: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), default=list, server_default=text("'{}'::bigint[]")
    )
    retention_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # None while inactive; the scheduler moves it on each time it queues a run.
    next_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ReportExport(TenantOwned, db.Model):
    """One CSV file of a report: queued, written by the scheduler, kept until it expires."""

    __tablename__ = "report_export"
    tenant_index = False  # ix_report_export_list leads with tenant_id
    __table_args__ = (
        _same_tenant_fk("owner_id", "app_user", "fk_report_export_owner", "CASCADE"),
        CheckConstraint(_in("status", EXPORT_STATES), name="ck_report_export_status"),
        CheckConstraint(
            "status <> 'done' OR storage_key IS NOT NULL", name="ck_report_export_stored"
        ),
        # The files page: a tenant's files, newest first.
        Index("ix_report_export_list", "tenant_id", text("id DESC")),
        # The queue the scheduler claims from, oldest first.
        Index("ix_report_export_queued", "id", postgresql_where=text("status = 'queued'")),
        # What retention scans.
        Index("ix_report_export_expires", "expires_at"),
    )

    # A schedule's deletion keeps the files it made until they expire.
    schedule_id: Mapped[int | None] = mapped_column(
        BigInteger,
        ForeignKey("report_schedule.id", ondelete="SET NULL", name="fk_report_export_schedule"),
        index=True,
    )
    # Who the export runs as: the schedule's owner, or whoever asked for it.
    owner_id: Mapped[int] = mapped_column(BigInteger)
    slug: Mapped[str] = mapped_column(String(40))
    query: Mapped[str] = mapped_column(String(2000), default="", server_default="")
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10), default="queued", server_default="queued")
    # Data rows written so far (the header not counted): the progress of a running export.
    row_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    size: Mapped[int | None] = mapped_column(BigInteger)
    filename: Mapped[str | None] = mapped_column(String(200))
    # Set just before the file is published, so that an interrupted publish can be undone.
    storage_key: Mapped[str | None] = mapped_column(String(1024))
    error: Mapped[str | None] = mapped_column(Text)
    email_to: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), default=list, server_default=text("'{}'::bigint[]")
    )
    retention_days: Mapped[int] = mapped_column(Integer, default=30, server_default="30")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When retention deletes the file and this row.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
