"""The form that makes an API token."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from flask_wtf import FlaskForm
from wtforms import DateField, RadioField, StringField
from wtforms.validators import DataRequired, Length, Optional, ValidationError

from cass.models.api_tokens import TOKEN_SCOPES
from cass.services.api_tokens import MAX_NAME


class TokenForm(FlaskForm):
    """A new token's name, scope and optional last day."""

    name = StringField("Name", validators=[DataRequired("Name the token."), Length(max=MAX_NAME)])
    scope = RadioField("Scope", choices=list(TOKEN_SCOPES.items()), default="read")
    expires_on = DateField("Valid until (UTC date, optional)", validators=[Optional()])

    def validate_expires_on(self, field: DateField) -> None:
        """Refuse a last day that is already over."""
        if field.data is not None and field.data < datetime.now(UTC).date():
            raise ValidationError("Choose today or a later day.")

    def expires_at(self) -> datetime | None:
        """Return when the token stops working: the end of its last day, UTC."""
        last: date | None = self.expires_on.data
        if last is None:
            return None
        return datetime.combine(last, datetime.min.time(), UTC) + timedelta(days=1)
