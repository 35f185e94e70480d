"""Sign-in, lockout and password changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import func, or_, select, text

from cass.extensions import db
from cass.models import LoginAttempt, User
from cass.models.users import new_session_token
from cass.services.passwords import hash_password, needs_rehash, verify_password
from cass.tenancy import bind_tenant

INVALID = "Invalid email or password."
LOCKED = "Too many failed sign-in attempts. Try again in {minutes} minutes."
MIN_PASSWORD = 10


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt: a user, or a message for the form."""

    user: User | None
    error: str | None = None


def _locked_out(email: str, ip: str) -> bool:
    """Return whether the account or the client address has too many recent failures."""
    window = timedelta(minutes=current_app.config["LOGIN_WINDOW_MINUTES"])
    since = datetime.now(UTC) - window
    row = db.session.execute(
        select(
            func.count().filter(LoginAttempt.email == email),
            func.count().filter(LoginAttempt.ip == ip),
        ).where(
            LoginAttempt.at >= since,
            LoginAttempt.succeeded.is_(False),
            or_(LoginAttempt.email == email, LoginAttempt.ip == ip),
        )
    ).one()
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    return row[0] >= limit or row[1] >= limit


def authenticate(email: str, password: str, ip: str) -> SignIn:
    """Check credentials with lockout; record the attempt; return the user or an error."""
    email = email.strip().lower()
    if _locked_out(email, ip):
        minutes = current_app.config["LOGIN_WINDOW_MINUTES"]
        return SignIn(None, LOCKED.format(minutes=minutes))
    # The lookup crosses tenants, so it goes through a SECURITY DEFINER function that
    # reveals only the id and tenant of one e-mail address.
    found = db.session.execute(
        text("SELECT id, tenant_id FROM cass_auth_user(:email)"), {"email": email}
    ).first()
    user = None
    if found is not None:
        db.session.rollback()
        bind_tenant(found.tenant_id)
        user = db.session.get(User, found.id)
    ok = verify_password(user.password_hash if user else None, password)
    ok = ok and user is not None and user.is_active
    db.session.add(LoginAttempt(email=email, ip=ip, succeeded=ok))
    if not ok:
        db.session.commit()
        bind_tenant(None)
        return SignIn(None, INVALID)
    assert user is not None
    user.last_login_at = datetime.now(UTC)
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    db.session.commit()
    return SignIn(user)


def change_password(user: User, current: str, new: str) -> str | None:
    """Set a new password after checking the current one; return an error message or None."""
    if not verify_password(user.password_hash, current):
        return "Your current password is not correct."
    user.password_hash = hash_password(new)
    # A new token signs every other session of this user out.
    user.session_token = new_session_token()
    db.session.commit()
    return None


def prune_login_attempts(older_than: timedelta = timedelta(days=7)) -> int:
    """Delete sign-in attempts older than `older_than`; return how many went."""
    cutoff = datetime.now(UTC) - older_than
    result = db.session.execute(LoginAttempt.__table__.delete().where(LoginAttempt.at < cutoff))
    db.session.commit()
    return result.rowcount or 0
