"""Forms for the tenant admin: users and vendors."""

from __future__ import annotations

from typing import Any

import email_validator
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from cass.models.users import ROLE_LABELS
from cass.services.auth import MIN_PASSWORD

# The demo tenants (and many staging setups) use the reserved .test domain for addresses.
if "test" in email_validator.SPECIAL_USE_DOMAIN_NAMES:
    email_validator.SPECIAL_USE_DOMAIN_NAMES.remove("test")


def _optional_int(value: Any) -> int | None:
    """Coerce a select's value to an id, or None for the empty choice."""
    if value in (None, "", "None"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1  # never an id: the view answers 404, as for a foreign tenant's id


class UserEditForm(FlaskForm):
    """Name, role and vendor of a user."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    role = SelectField("Role", choices=list(ROLE_LABELS.items()))
    # The view resolves vendor ids in the tenant: a foreign id is a 404, not a choice error.
    vendor_id = SelectField("Vendor", coerce=_optional_int, validate_choice=False)

    def set_vendor_choices(self, vendors: list[Any]) -> None:
        """Offer the tenant's vendors (and "none")."""
        self.vendor_id.choices = [(None, "— none —")] + [(v.id, v.name) for v in vendors]


class UserCreateForm(UserEditForm):
    """A new user: e-mail and first password too."""

    email = EmailField("Email", validators=[DataRequired(), Email(), Length(max=254)])
    password = PasswordField(
        "First password", validators=[DataRequired(), Length(min=MIN_PASSWORD, max=200)]
    )


class VendorForm(FlaskForm):
    """A vendor's name and contact details."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    contact_email = EmailField("Contact email", validators=[Optional(), Email(), Length(max=254)])
    phone = StringField("Phone", validators=[Optional(), Length(max=40)])
    is_active = BooleanField("Active", default=True)


class ConfirmForm(FlaskForm):
    """An empty form: CSRF only, for one-button actions."""
