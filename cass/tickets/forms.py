"""Ticket forms: quick create, field edit, transitions, assignment, worklogs."""

from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    EmailField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional

from cass.lifecycle import HOLD_REASONS
from cass.models.tickets import CATEGORIES, CHANNELS, PRIORITIES
from cass.widgets import Select, TextArea


def _optional_id(value: object) -> int | None:
    """Coerce a posted id to int, None when empty; garbage becomes -1 (a 404 in the view)."""
    if value in (None, "", "None"):
        return None
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return -1


class TicketFieldsForm(FlaskForm):
    """The fields an agent fills in and anyone working the ticket may edit."""

    title = StringField("Title", validators=[DataRequired(), Length(max=200)])
    description = TextAreaField("Description", validators=[Optional(), Length(max=10_000)])
    category = SelectField("Category", choices=list(CATEGORIES.items()))
    priority = SelectField("Priority", choices=list(PRIORITIES.items()), default="P3")
    caller_name = StringField("Caller name", validators=[Optional(), Length(max=120)])
    caller_phone = StringField("Caller phone", validators=[Optional(), Length(max=40)])
    caller_email = EmailField("Caller email", validators=[Optional(), Email(), Length(max=254)])


class TicketCreateForm(TicketFieldsForm):
    """Quick create: the fields, the channel, and the charger picked by lookup."""

    channel = SelectField(
        "Channel", choices=[(k, v) for k, v in CHANNELS.items() if k != "ocpp-auto"]
    )
    charger_id = HiddenField(filters=[_optional_id])
    connector_id = SelectField("Connector", coerce=_optional_id, validate_choice=False)


class TicketEditForm(TicketFieldsForm):
    """Edit with the version the user saw, so a concurrent change is not overwritten."""

    version = HiddenField(validators=[DataRequired()])


class TransitionForm(FlaskForm):
    """A lifecycle move; which extra fields count depends on the transition."""

    version = HiddenField(validators=[DataRequired()])
    assignee = SelectField("Assign to", validate_choice=False, widget=Select())
    # The service checks the reason, so a missing one gets its message, not "Not a valid choice".
    hold_reason = SelectField(
        "Reason", choices=[("", "— choose —"), *HOLD_REASONS.items()], validate_choice=False
    )
    resolution_note = TextAreaField("Resolution note", validators=[Length(max=5000)])
    cancel_reason = TextAreaField("Reason to cancel", validators=[Length(max=5000)])
    note = TextAreaField("Note", validators=[Length(max=5000)])


class AssignForm(FlaskForm):
    """Assign to a user (`user:ID`) or a vendor (`vendor:ID`), or nobody."""

    version = HiddenField(validators=[DataRequired()])
    # Its own id: the transition form on the same page has an "assignee" field too.
    assignee = SelectField("Assignee", validate_choice=False, id="assignment", widget=Select())


class WorklogForm(FlaskForm):
    """A note with time spent; internal unless marked for the customer."""

    body = TextAreaField("Worklog", validators=[DataRequired(), Length(max=10_000)])
    minutes = IntegerField(
        "Minutes spent", default=0, validators=[Optional(), NumberRange(min=0, max=1440)]
    )
    customer_visible = BooleanField("Visible to the customer")
    photo = FileField("Attach a file")


class AttachmentForm(FlaskForm):
    """One file for the ticket."""

    file = FileField("File", validators=[FileRequired()])


class BulkForm(FlaskForm):
    """A bulk action on the selected tickets (ids in `ticket`, read by the view)."""

    # Rendered on every load of the list page: the faster widgets.
    action = SelectField("Action", validate_choice=False, widget=Select())
    assignee = SelectField("Assign to", validate_choice=False, widget=Select())
    priority = SelectField(
        "Priority",
        choices=[("", "—"), *PRIORITIES.items()],
        validate_choice=False,
        widget=Select(),
    )
    hold_reason = SelectField(
        "Hold reason",
        choices=[("", "—"), *HOLD_REASONS.items()],
        validate_choice=False,
        widget=Select(),
    )
    resolution_note = TextAreaField(
        "Resolution note", validators=[Length(max=5000)], widget=TextArea()
    )
    cancel_reason = TextAreaField(
        "Reason to cancel", validators=[Length(max=5000)], widget=TextArea()
    )
    note = TextAreaField("Note", validators=[Length(max=5000)], widget=TextArea())
