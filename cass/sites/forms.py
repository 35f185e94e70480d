"""The site form: name, address, position, time zone and the site's contact."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import DecimalField, EmailField, StringField
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, ValidationError
from wtforms.widgets import TextInput

import cass.admin.forms  # noqa: F401  (lets the reserved .test domain through Email())
from cass.services.sites import NAME_MAX, is_timezone


def _known_timezone(form: FlaskForm, field: Any) -> None:
    if field.data and not is_timezone(field.data.strip()):
        raise ValidationError("Not a known time zone (e.g. Europe/London).")


class SiteForm(FlaskForm):
    """A site's fields; latitude and longitude go together."""

    name = StringField("Name", validators=[DataRequired(), Length(max=NAME_MAX)])
    address = StringField("Address", validators=[Optional(), Length(max=300)])
    lat = DecimalField(
        "Latitude",
        places=6,
        validators=[Optional(), NumberRange(min=-90, max=90)],
        widget=TextInput(),  # a plain text box: no spinner stepping through coordinates
        render_kw={"inputmode": "decimal"},
    )
    lon = DecimalField(
        "Longitude",
        places=6,
        validators=[Optional(), NumberRange(min=-180, max=180)],
        widget=TextInput(),
        render_kw={"inputmode": "decimal"},
    )
    timezone = StringField(
        "Time zone",
        default="UTC",
        validators=[DataRequired(), Length(max=64), _known_timezone],
        render_kw={"list": "timezones", "autocomplete": "off"},
    )
    contact_name = StringField("Contact name", validators=[Optional(), Length(max=120)])
    contact_phone = StringField("Contact phone", validators=[Optional(), Length(max=40)])
    contact_email = EmailField("Contact email", validators=[Optional(), Email(), Length(max=254)])

    def validate(self, extra_validators: Any = None) -> bool:
        """Validate the fields, then refuse half a position."""
        valid = super().validate(extra_validators)
        if valid and (self.lat.data is None) != (self.lon.data is None):
            missing = self.lat if self.lat.data is None else self.lon
            missing.errors.append("Give both latitude and longitude, or neither.")
            return False
        return valid
