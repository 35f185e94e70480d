"""SLA promises: business calendars, policies with their clocks, per-ticket clocks and events."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned
from cass.models.tickets import CATEGORIES, PRIORITIES, _in, _same_tenant_fk

CLOCKS = {
    "first_response": "First response",
    "resolution": "Resolution",
    "on_site": "On-site arrival",
    "vendor": "Vendor",
}
CLOCK_STATES = ("running", "paused", "warning", "breached", "met", "cancelled")
# States in which a clock still counts and the sweep looks at it.
LIVE_STATES = ("running", "warning", "breached")


class BusinessCalendar(TenantOwned, db.Model):
    """Open hours in a timezone (or 24/7) and holidays; a tenant's default, or a site's own."""

    __tablename__ = "business_calendar"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_business_calendar_tenant_id"),
        UniqueConstraint("tenant_id", "name", name="uq_business_calendar_name"),
        _same_tenant_fk("site_id", "site", "fk_business_calendar_site"),
        # One default calendar per tenant, and at most one calendar per site.
        Index(
            "uq_business_calendar_default",
            "tenant_id",
            unique=True,
            postgresql_where=text("is_default"),
        ),
        Index(
            "uq_business_calendar_site",
            "tenant_id",
            "site_id",
            unique=True,
            postgresql_where=text("site_id IS NOT NULL"),
        ),
    )

    name: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # Seven lists (Monday first) of [start_minute, end_minute] ranges of the local day.
    hours: Mapped[list] = mapped_column(JSONB, server_default=text("'[[],[],[],[],[],[],[]]'"))
    always_open: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    is_default: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    site_id: Mapped[int | None] = mapped_column(BigInteger)
    # Bumped on every change to the calendar or its holidays: the key of cached calendars.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CalendarHoliday(TenantOwned, db.Model):
    """A local date on which a calendar is closed all day."""

    __tablename__ = "calendar_holiday"
    __table_args__ = (
        _same_tenant_fk(
            "calendar_id", "business_calendar", "fk_calendar_holiday_calendar", "CASCADE"
        ),
        UniqueConstraint("calendar_id", "day", name="uq_calendar_holiday_day"),
    )

    calendar_id: Mapped[int] = mapped_column(BigInteger)
    day: Mapped[date] = mapped_column(Date)
    name: Mapped[str] = mapped_column(String(120), default="")


class SlaPolicy(TenantOwned, db.Model):
    """Promises for tickets of a priority, optionally narrowed to a site, category or model."""

    __tablename__ = "sla_policy"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_sla_policy_tenant_id"),
        CheckConstraint(_in("priority", PRIORITIES), name="ck_sla_policy_priority"),
        CheckConstraint(
            f"category IS NULL OR {_in('category', CATEGORIES)}", name="ck_sla_policy_category"
        ),
        _same_tenant_fk("site_id", "site", "fk_sla_policy_site", "CASCADE"),
        Index("ix_sla_policy_match", "tenant_id", "priority"),
    )

    name: Mapped[str] = mapped_column(String(120))
    priority: Mapped[str] = mapped_column(String(2))
    site_id: Mapped[int | None] = mapped_column(BigInteger)
    category: Mapped[str | None] = mapped_column(String(20))
    charger_model: Mapped[str | None] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SlaTarget(TenantOwned, db.Model):
    """One clock of a policy: its target, calendar, pausing statuses, warning and escalations."""

    __tablename__ = "sla_target"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id", name="uq_sla_target_tenant_id"),
        UniqueConstraint("policy_id", "clock", name="uq_sla_target_clock"),
        _same_tenant_fk("policy_id", "sla_policy", "fk_sla_target_policy", "CASCADE"),
        _same_tenant_fk("calendar_id", "business_calendar", "fk_sla_target_calendar"),
        CheckConstraint(_in("clock", CLOCKS), name="ck_sla_target_clock"),
        CheckConstraint("target_minutes > 0", name="ck_sla_target_minutes"),
        CheckConstraint("warn_percent BETWEEN 1 AND 99", name="ck_sla_target_warn"),
    )

    policy_id: Mapped[int] = mapped_column(BigInteger)
    clock: Mapped[str] = mapped_column(String(20))
    target_minutes: Mapped[int] = mapped_column(Integer)
    # None: the ticket's site calendar if it has one, else the tenant's default, else 24/7.
    calendar_id: Mapped[int | None] = mapped_column(BigInteger)
    pause_statuses: Mapped[list[str]] = mapped_column(
        ARRAY(String(20)), server_default=text("'{on_hold}'")
    )
    warn_percent: Mapped[int] = mapped_column(Integer, default=80, server_default="80")
    # [{"percent": 100, "notify_role": "as_manager"} | {"percent": 150, "raise_priority": true}
    #  | {"percent": 200, "reassign_user_id": 7} | {"percent": 100, "notify_user_id": 7}]
    escalations: Mapped[list] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))


class SlaClock(TenantOwned, db.Model):
    """A ticket's clock: when it started, when it is due, paused time earned, and its state."""

    __tablename__ = "sla_clock"
    tenant_fk = tenant_index = False  # fk_sla_clock_ticket implies it; the sweep updates in bulk
    __table_args__ = (
        UniqueConstraint("ticket_id", "clock", name="uq_sla_clock_ticket_clock"),
        _same_tenant_fk("ticket_id", "ticket", "fk_sla_clock_ticket", "CASCADE"),
        CheckConstraint(_in("clock", CLOCKS), name="ck_sla_clock_clock"),
        CheckConstraint(_in("state", CLOCK_STATES), name="ck_sla_clock_state"),
        # What the sweep scans: only clocks that can still warn, breach or escalate.
        Index("ix_sla_clock_warn", "warn_at", postgresql_where=text("state = 'running'")),
        Index(
            "ix_sla_clock_due", "due_at", postgresql_where=text("state IN ('running','warning')")
        ),
        Index(
            "ix_sla_clock_escalation",
            "next_escalation_at",
            postgresql_where=text("next_escalation_at IS NOT NULL"),
        ),
        # Reports: first responses in a date range (MTTA); stopped clocks only, which the sweep
        # never rewrites.
        Index(
            "ix_sla_clock_tenant_responded",
            "tenant_id",
            "stopped_at",
            postgresql_where=text(
                "clock = 'first_response' AND state IN ('met','breached')"
                " AND stopped_at IS NOT NULL"
            ),
        ),
        # The "at risk" view and the badges: a tenant's live clocks by due time.
        Index(
            "ix_sla_clock_tenant_due",
            "tenant_id",
            "due_at",
            postgresql_where=text("state IN ('running','warning','breached')"),
        ),
        # The dashboard's count of tickets at risk: only live clocks (a stopped clock keeps its
        # breached state, so the index above holds every breach ever), by ticket, so counting
        # distinct tickets needs no sort, with what the at-risk test reads.
        Index(
            "ix_sla_clock_tenant_live",
            "tenant_id",
            "ticket_id",
            postgresql_include=["due_at", "state"],
            postgresql_where=text(
                "stopped_at IS NULL AND state IN ('running','warning','breached')"
            ),
        ),
    )

    ticket_id: Mapped[int] = mapped_column(BigInteger)
    clock: Mapped[str] = mapped_column(String(20))
    target_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("sla_target.id", ondelete="SET NULL")
    )
    calendar_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("business_calendar.id", ondelete="SET NULL")
    )
    target_minutes: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Business time credited back for pauses (and for time between resolving and reopening).
    paused_seconds: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    paused_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(12), default="running", server_default="running")
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # How many escalation levels have fired, and when the next one is due.
    escalation_level: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_escalation_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SlaEvent(TenantOwned, db.Model):
    """Something that happened to a clock: started, paused, resumed, warning, breached, met…"""

    __tablename__ = "sla_event"
    tenant_fk = tenant_index = False  # fk_sla_event_ticket implies it; ix_sla_event_ticket leads
    __table_args__ = (
        _same_tenant_fk("ticket_id", "ticket", "fk_sla_event_ticket", "CASCADE"),
        Index("ix_sla_event_ticket", "tenant_id", "ticket_id", "id"),
    )

    ticket_id: Mapped[int] = mapped_column(BigInteger)
    clock: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    detail: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class JobRun(db.Model):
    """One run of a scheduler job: when, how many rows it touched, and its error if any."""

    __tablename__ = "job_run"
    __table_args__ = (Index("ix_job_run_job_started", "job", text("started_at DESC")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(60))
    runner: Mapped[str] = mapped_column(String(120), default="")
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    rows: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class Notification(TenantOwned, db.Model):
    """An outbox entry for one recipient and channel, delivered by the scheduler at most once."""

    __tablename__ = "notification"
    tenant_fk = False  # fk_notification_user implies it; the sweep queues in bulk
    __table_args__ = (
        _same_tenant_fk("user_id", "app_user", "fk_notification_user", "CASCADE"),
        CheckConstraint("channel IN ('email','in_app')", name="ck_notification_channel"),
        # The same news is queued once per recipient and channel, however often it is raised.
        Index(
            "uq_notification_dedup",
            "tenant_id",
            "user_id",
            "channel",
            "dedup_key",
            unique=True,
            postgresql_where=text("dedup_key IS NOT NULL"),
        ),
        # What delivery scans: emails not yet sent nor given up on, by when they may go.
        Index(
            "ix_notification_due",
            "next_attempt_at",
            postgresql_where=text("channel = 'email' AND sent_at IS NULL AND failed_at IS NULL"),
        ),
        # The bell: a user's in-app notifications, newest first.
        Index(
            "ix_notification_inbox",
            "tenant_id",
            "user_id",
            text("id DESC"),
            postgresql_where=text("channel = 'in_app'"),
        ),
    )

    user_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="", server_default="")
    link: Mapped[str | None] = mapped_column(String(300))
    ticket_id: Mapped[int | None] = mapped_column(BigInteger)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    dedup_key: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Not urgent: not before the recipient's calendar opens; retries push it back with backoff.
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
