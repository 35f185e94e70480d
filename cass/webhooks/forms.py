"""Forms of the webhooks admin: an endpoint, its active flag."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, StringField, ValidationError
from wtforms.validators import AnyOf, DataRequired, Length

from cass.models.webhooks import WEBHOOK_EVENTS
from cass.rules.forms import MultiCheckboxField
from cass.services.webhooks import WebhookError, check_url


class EndpointForm(FlaskForm):
    """URL, description, subscribed events and whether the endpoint is active."""

    url = StringField(
        "URL", validators=[DataRequired(), Length(max=500)], render_kw={"inputmode": "url"}
    )
    description = StringField("Description", validators=[Length(max=200)])
    events = MultiCheckboxField("Events", choices=list(WEBHOOK_EVENTS.items()))
    active = BooleanField("Active", default=True)

    def validate_url(self, field: StringField) -> None:
        """Accept only http:// and https:// URLs with a host."""
        try:
            field.data = check_url(field.data or "")
        except WebhookError as exc:
            raise ValidationError(str(exc)) from exc

    def validate_events(self, field: MultiCheckboxField) -> None:
        """Require at least one event."""
        if not field.data:
            raise ValidationError("Choose at least one event.")


class ActiveForm(FlaskForm):
    """Enable ("on") or disable ("off") an endpoint."""

    active = HiddenField(validators=[AnyOf(["on", "off"])])
