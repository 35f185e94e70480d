"""Visit forms: book (on the ticket), move (on the week), a status step (on the day)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateTimeLocalField, HiddenField, SelectField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, Optional

from cass.widgets import Select, TextArea

LENGTHS = [
    ("30", "30 minutes"),
    ("60", "1 hour"),
    ("90", "1½ hours"),
    ("120", "2 hours"),
    ("180", "3 hours"),
    ("240", "4 hours"),
    ("480", "8 hours"),
]
LOCAL = "%Y-%m-%dT%H:%M"


class VisitForm(FlaskForm):
    """Book a visit: who, when (the tenant's local time), how long, notes, override hours."""

    assignee = SelectField(
        "Engineer or vendor", validate_choice=False, id="visit-assignee", widget=Select()
    )
    starts_at = DateTimeLocalField("Starts", format=LOCAL, validators=[InputRequired()])
    minutes = SelectField("Length", choices=LENGTHS, default="120", widget=Select())
    notes = TextAreaField("Notes", validators=[Optional(), Length(max=2000)], widget=TextArea())
    override = BooleanField("Book outside working hours")


class MoveForm(FlaskForm):
    """Move a visit to another start (same length), or another length."""

    starts_at = DateTimeLocalField("New start", format=LOCAL, validators=[InputRequired()])
    week = HiddenField()
    override = BooleanField("Outside working hours")


class StatusForm(FlaskForm):
    """One step of a visit: en route, check in, check out, no access, cancel."""

    status = HiddenField(validators=[DataRequired()])
