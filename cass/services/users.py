"""Create, edit, deactivate and reactivate the tenant's users."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from cass.extensions import db
from cass.models import User, Vendor
from cass.models.users import new_session_token
from cass.services.passwords import hash_password
from cass.tenancy import current_tenant_id, scoped


class UserError(ValueError):
    """A rule about users was broken; the message is shown to the admin."""


def list_users() -> list[User]:
    """Return the tenant's users, active first, by name."""
    return list(
        db.session.scalars(scoped(User).order_by(User.is_active_flag.desc(), User.name, User.id))
    )


def _check_vendor(role: str, vendor: Vendor | None) -> int | None:
    """Return the vendor id a user of `role` keeps; vendor users need one."""
    if role == "vendor":
        if vendor is None:
            raise UserError("A vendor user needs a vendor.")
        return vendor.id
    return None


def _active_admins(exclude_id: int) -> int:
    """Count the tenant's other active admins."""
    return (
        db.session.scalar(
            select(func.count()).select_from(
                scoped(
                    User, User.role == "admin", User.is_active_flag, User.id != exclude_id
                ).subquery()
            )
        )
        or 0
    )


def create_user(email: str, name: str, role: str, password: str, vendor: Vendor | None) -> User:
    """Create an active user of the current tenant."""
    user = User(
        tenant_id=current_tenant_id(),
        email=email.strip().lower(),
        name=name.strip(),
        role=role,
        vendor_id=_check_vendor(role, vendor),
        password_hash=hash_password(password),
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError as exc:
        # E-mail is unique across tenants; other tenants' users are invisible here, so the
        # constraint, not a query, is what finds the clash.
        db.session.rollback()
        raise UserError("A user with this email already exists.") from exc
    return user


def update_user(user: User, actor: User, name: str, role: str, vendor: Vendor | None) -> User:
    """Change a user's name, role and vendor, keeping at least one active admin."""
    if user.role == "admin" and role != "admin" and _active_admins(user.id) == 0:
        raise UserError("The tenant needs at least one active admin.")
    user.vendor_id = _check_vendor(role, vendor)
    user.name = name.strip()
    user.role = role
    db.session.commit()
    return user


def set_active(user: User, actor: User, active: bool) -> User:
    """Deactivate (signing out every session) or reactivate a user; never hard-delete."""
    if not active:
        if user.id == actor.id:
            raise UserError("You cannot deactivate your own account.")
        if user.role == "admin" and _active_admins(user.id) == 0:
            raise UserError("The tenant needs at least one active admin.")
        user.session_token = new_session_token()
    user.is_active_flag = active
    db.session.commit()
    return user
