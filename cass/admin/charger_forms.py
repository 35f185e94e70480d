"""Forms for the admin's charger registry: create, edit, registration, CSV import."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import DateField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import TextInput

from cass.admin.forms import _optional_int
from cass.services.charger_admin import (
    MAX_CONNECTORS,
    MAX_KEY_LENGTH,
    TEXT_MAX,
    ocpp_id_problem,
)
from ocpp_bridge.keys import MIN_KEY_LENGTH
from ocpp_bridge.vocab import REGISTRATIONS

REGISTRATION_CHOICES = [(state, state.capitalize()) for state in REGISTRATIONS]


def _ocpp_id(form: FlaskForm, field: Any) -> None:
    problem = ocpp_id_problem((field.data or "").strip())
    if problem:
        raise ValidationError(problem)


def _text(label: str) -> StringField:
    return StringField(label, validators=[Optional(), Length(max=TEXT_MAX)])


class ChargerForm(FlaskForm):
    """A charger's identity, place, asset data, vendor and registration; optionally a new key."""

    ocpp_id = StringField("OCPP id", validators=[DataRequired(), _ocpp_id])
    # The view resolves site and vendor ids in the tenant: a foreign id is a 404.
    site_id = SelectField("Site", coerce=_optional_int, validate_choice=False)
    manufacturer = _text("Manufacturer")
    model = _text("Model")
    serial = _text("Serial")
    asset_tag = _text("Asset tag")
    firmware = _text("Firmware")
    install_date = DateField("Install date", validators=[Optional()])
    warranty_end = DateField("Warranty end", validators=[Optional()])
    vendor_id = SelectField("Vendor responsible", coerce=_optional_int, validate_choice=False)
    registration = SelectField("Registration", choices=REGISTRATION_CHOICES)
    key = PasswordField(
        "New key (leave blank to keep)",
        validators=[Optional(), Length(min=MIN_KEY_LENGTH, max=MAX_KEY_LENGTH)],
        render_kw={"autocomplete": "new-password"},
    )

    def set_choices(self, sites: list[tuple[int, str]], vendors: list[Any]) -> None:
        """Offer the tenant's sites and vendors (and "none" for the vendor)."""
        self.site_id.choices = [(None, "— choose a site —"), *sites]
        self.vendor_id.choices = [(None, "— none —")] + [(v.id, v.name) for v in vendors]

    def validate_site_id(self, field: Any) -> None:
        if field.data is None:
            raise ValidationError("Choose a site.")

    def validate_warranty_end(self, field: Any) -> None:
        start = self.install_date.data
        if field.data and start and field.data < start:
            raise ValidationError("The warranty cannot end before the install date.")


class ChargerCreateForm(ChargerForm):
    """A new charger: its key is required, and it can get its connectors at once."""

    key = PasswordField(
        "Key (OCPP password)",
        validators=[DataRequired(), Length(min=MIN_KEY_LENGTH, max=MAX_KEY_LENGTH)],
        render_kw={"autocomplete": "new-password"},
    )
    connectors = IntegerField(
        "Connectors",
        default=2,
        validators=[InputRequired(), NumberRange(min=0, max=MAX_CONNECTORS)],
        widget=TextInput(),
        render_kw={"inputmode": "numeric"},
    )


class RegistrationForm(FlaskForm):
    """Accept, hold or reject a charger."""

    registration = SelectField("Registration", choices=REGISTRATION_CHOICES)


class ImportForm(FlaskForm):
    """A CSV file of chargers."""

    file = FileField("CSV file", validators=[FileRequired("Choose a CSV file.")])
