"""Notifications: an outbox of in-app and e-mail messages, delivered by the scheduler.

Each e-mail is claimed (its next attempt pushed out by a lease) and committed before it is
sent, then marked sent; two schedulers never take the same row, and a failure retries with
backoff. Its Message-ID is fixed by the row, so a resend after a crash between sending and
recording is recognisable as the same message. Non-urgent e-mails wait for the recipient's
calendar (their own, else the tenant's default) to open.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from flask import current_app, url_for
from sqlalchemy import func, select, text, update
from sqlalchemy.dialects.postgresql import insert

from cass.extensions import db
from cass.models import Notification, Ticket, User
from cass.tenancy import current_tenant_id

log = logging.getLogger("cass.notifications")

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 8
BACKOFF_CAP = timedelta(hours=1)


def queue(
    user_id: int,
    kind: str,
    subject: str,
    body: str = "",
    *,
    ticket_id: int | None = None,
    urgent: bool = False,
    dedup_key: str | None = None,
    channels: tuple[str, ...] = ("in_app", "email"),
) -> None:
    """Queue a message to a user of the current tenant on each channel, once per dedup key."""
    rows = [
        {
            "tenant_id": current_tenant_id(),
            "user_id": user_id,
            "channel": channel,
            "kind": kind,
            "subject": subject[:200],
            "body": body,
            "ticket_id": ticket_id,
            "urgent": urgent,
            "dedup_key": dedup_key,
        }
        for channel in channels
    ]
    db.session.execute(insert(Notification).values(rows).on_conflict_do_nothing())
    if "in_app" in channels:
        ring(current_tenant_id(), user_id)


def ring(tenant_id: int, user_id: int) -> None:
    """Tell the user's open pages to refresh the bell (delivered on commit)."""
    from cass import live

    live.notify(db.session, tenant_id, f"bell-{user_id}", user_id)


def unread_count(user: User) -> int:
    """Return how many in-app notifications the user has not read."""
    return db.session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.tenant_id == user.tenant_id,
            Notification.user_id == user.id,
            Notification.channel == "in_app",
            Notification.read_at.is_(None),
        )
    )


def inbox(user: User, limit: int = 30) -> list[Notification]:
    """Return the user's latest in-app notifications."""
    return list(
        db.session.scalars(
            select(Notification)
            .where(
                Notification.tenant_id == user.tenant_id,
                Notification.user_id == user.id,
                Notification.channel == "in_app",
            )
            .order_by(Notification.id.desc())
            .limit(limit)
        )
    )


def mark_read(user: User) -> int:
    """Mark every in-app notification of the user read; return how many were unread."""
    result = db.session.execute(
        update(Notification)
        .where(
            Notification.tenant_id == user.tenant_id,
            Notification.user_id == user.id,
            Notification.channel == "in_app",
            Notification.read_at.is_(None),
        )
        .values(read_at=func.now())
    )
    db.session.commit()
    return result.rowcount or 0


@dataclass
class SmtpTarget:
    """Where SMTP_URL says to send mail: smtp:// (STARTTLS when offered) or smtps://."""

    host: str
    port: int
    secure: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://…")
        secure = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if secure else 25),
            secure=secure,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def connect(self) -> smtplib.SMTP:
        if self.secure:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                self.host, self.port, timeout=10, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=10)
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
        if self.username:
            smtp.login(self.username, self.password or "")
        return smtp


# Claim the e-mails that may go now, with a lease, skipping rows another scheduler holds.
CLAIM_SQL = """
UPDATE notification n SET next_attempt_at = :now + make_interval(secs => :lease),
       attempts = n.attempts + 1
FROM (
    SELECT id FROM notification
    WHERE channel = 'email' AND sent_at IS NULL AND failed_at IS NULL
      AND next_attempt_at <= :now
    ORDER BY next_attempt_at
    LIMIT :limit
    FOR UPDATE SKIP LOCKED
) due
WHERE n.id = due.id
RETURNING n.id
"""


def deliver_due(now: datetime | None = None, limit: int = 100) -> int:
    """Send the e-mails that are due; return how many were sent (system context)."""
    now = now or datetime.now(UTC)
    url = current_app.config.get("SMTP_URL") or ""
    ids = [
        r[0]
        for r in db.session.execute(
            text(CLAIM_SQL), {"now": now, "lease": LEASE.total_seconds(), "limit": limit}
        )
    ]
    db.session.commit()
    if not ids:
        return 0
    if not url:
        log.warning("%d e-mails waiting: SMTP_URL is not set", len(ids))
        return 0
    target = SmtpTarget.parse(url)
    sent = 0
    smtp: smtplib.SMTP | None = None
    try:
        for note in db.session.scalars(select(Notification).where(Notification.id.in_(ids))):
            user = db.session.get(User, note.user_id)
            if user is None or not user.is_active:
                note.failed_at, note.last_error = now, "recipient inactive"
                continue
            opens = _opens_for(user, note, now)
            if opens > now:
                # Not urgent and outside the recipient's hours: wait, without using an attempt.
                note.next_attempt_at, note.attempts = opens, note.attempts - 1
                continue
            try:
                smtp = smtp or target.connect()
                smtp.send_message(_message(note, user))
            except (OSError, smtplib.SMTPException) as exc:
                _retry(note, now, exc)
                smtp = None
                continue
            note.sent_at = datetime.now(UTC)
            sent += 1
            db.session.commit()  # recorded at once: a later failure cannot resend this one
    finally:
        db.session.commit()
        if smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.quit()
    return sent


def _retry(note: Notification, now: datetime, exc: Exception) -> None:
    note.last_error = f"{type(exc).__name__}: {exc}"[:500]
    if note.attempts >= MAX_ATTEMPTS:
        note.failed_at = now
        log.error("e-mail %s given up after %d attempts: %s", note.id, note.attempts, exc)
        return
    note.next_attempt_at = now + min(timedelta(minutes=2 ** (note.attempts - 1)), BACKOFF_CAP)
    log.warning("e-mail %s failed (attempt %d): %s", note.id, note.attempts, exc)


def _opens_for(user: User, note: Notification, now: datetime) -> datetime:
    if note.urgent:
        return now
    from cass.services import sla

    calendar_id = user.calendar_id or db.session.scalar(
        text(
            "SELECT id FROM business_calendar WHERE tenant_id = :t AND is_default"
            " AND site_id IS NULL"
        ),
        {"t": user.tenant_id},
    )
    calendar = sla.calendar(calendar_id)
    return calendar.next_open(now) if calendar.has_open_hours else now


def _message(note: Notification, user: User) -> EmailMessage:
    config = current_app.config
    message = EmailMessage()
    message["From"] = config["CASS_MAIL_FROM"]
    message["To"] = user.email
    message["Subject"] = note.subject
    # The same row always gives the same Message-ID: a resend is the same message.
    message["Message-ID"] = f"<cass-notification-{note.id}@{_domain(config['CASS_MAIL_FROM'])}>"
    lines = [note.body]
    ticket = db.session.get(Ticket, note.ticket_id) if note.ticket_id else None
    if ticket is not None:
        from cass.services.tickets import format_key

        prefix = db.session.scalar(
            text("SELECT key_prefix FROM tenant WHERE id = :t"), {"t": ticket.tenant_id}
        )
        with current_app.test_request_context(base_url=config["CASS_BASE_URL"]):
            key = format_key(prefix, ticket.number)
            lines.append(url_for("tickets.detail", key=key, _external=True))
    message.set_content("\n\n".join(line for line in lines if line))
    return message


def _domain(sender: str) -> str:
    return sender.rsplit("@", 1)[-1].strip(" >") or "cass"
