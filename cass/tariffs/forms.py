"""The tariff form: site, name, currency, three prices and the period it is in force."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask_wtf import FlaskForm
from wtforms import DateTimeLocalField, DecimalField, SelectField, StringField
from wtforms.validators import DataRequired, InputRequired, Length, Optional, ValidationError

from cass.admin.forms import _optional_int
from cass.services.tariffs import CURRENCIES, MAX_PRICE


def _price(form: FlaskForm, field: DecimalField) -> None:
    value = field.data
    try:
        if value is None or not value.is_finite():
            raise ValidationError("Enter a number.")
        if value < 0:
            raise ValidationError("A price cannot be negative.")
        if value > MAX_PRICE:
            raise ValidationError(f"At most {MAX_PRICE}.")
        if value != value.quantize(Decimal("0.0001")):
            raise ValidationError("At most 4 decimal places.")
    except InvalidOperation as exc:
        raise ValidationError("Enter a number.") from exc


def _currency(form: FlaskForm, field: StringField) -> None:
    field.data = (field.data or "").strip().upper()
    if field.data not in CURRENCIES:
        raise ValidationError("Use an ISO 4217 code such as EUR, GBP or USD.")


class TariffForm(FlaskForm):
    """A tariff of one site; times are wall-clock times at the site."""

    # The view resolves site ids in the tenant: a foreign id is a 404, not a choice error.
    site_id = SelectField(
        "Site",
        coerce=_optional_int,
        validate_choice=False,
        validators=[DataRequired("Choose a site.")],
    )
    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    currency = StringField(
        "Currency", default="EUR", validators=[DataRequired(), Length(max=3), _currency]
    )
    per_kwh = DecimalField(
        "Per kWh", places=None, default=Decimal(0), validators=[InputRequired(), _price]
    )
    per_minute = DecimalField(
        "Per minute", places=None, default=Decimal(0), validators=[InputRequired(), _price]
    )
    per_session = DecimalField(
        "Per session", places=None, default=Decimal(0), validators=[InputRequired(), _price]
    )
    valid_from = DateTimeLocalField(
        "Valid from", format=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"], validators=[InputRequired()]
    )
    valid_to = DateTimeLocalField(
        "Valid to (optional)",
        format=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        validators=[Optional()],
    )

    def set_site_choices(self, sites: list[Any]) -> None:
        """Offer the tenant's sites."""
        self.site_id.choices = [(None, "— choose —")] + [(s.id, s.name) for s in sites]

    def validate_valid_to(self, field: DateTimeLocalField) -> None:
        if field.data and self.valid_from.data and field.data <= self.valid_from.data:
            raise ValidationError("Must be after “Valid from”.")
