"""Forms of the SLA admin: a calendar, a holiday, an iCal import, a policy and the preview."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DateField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from cass import lifecycle
from cass.admin.forms import _optional_int as optional_int
from cass.models import CLOCKS
from cass.models.tickets import CATEGORIES, PRIORITIES


class CalendarForm(FlaskForm):
    """A business calendar: its hours in a timezone, or 24/7; the default, or a site's own."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    timezone = StringField("Timezone", default="UTC", validators=[DataRequired(), Length(max=64)])
    hours = TextAreaField(
        "Open hours",
        default="mon-fri 08:00-18:00",
        validators=[Length(max=2000)],
        description="One clause per line or “;”: days and ranges, e.g. "
        "“mon-fri 08:00-12:00 13:00-17:00; sat 09:00-13:00”.",
    )
    always_open = BooleanField("Open 24/7 (the hours are ignored)")
    is_default = BooleanField("The tenant's default calendar")
    site_id = SelectField(
        "Only for site", coerce=optional_int, validate_choice=False, validators=[Optional()]
    )

    def set_site_choices(self, sites: list[tuple[int, str]]) -> None:
        """Offer the tenant's sites."""
        self.site_id.choices = [(None, "— any site —"), *sites]


class HolidayForm(FlaskForm):
    """One day off."""

    day = DateField("Date", validators=[DataRequired("Give a date.")])
    name = StringField("Name", validators=[Length(max=120)])


class IcalForm(FlaskForm):
    """An .ics file whose all-day events become holidays."""

    file = FileField("iCal file (.ics)", validators=[FileRequired("Choose an .ics file.")])


PAUSE_CHOICES = [(s, lifecycle.STATUS_LABELS[s]) for s in lifecycle.OPEN_STATUSES]


class PolicyForm(FlaskForm):
    """A policy and, per clock, its target, calendar, pausing statuses, warning and escalations."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    priority = SelectField("Priority", choices=list(PRIORITIES.items()))
    site_id = SelectField(
        "Site (optional)", coerce=optional_int, validate_choice=False, validators=[Optional()]
    )
    category = SelectField(
        "Category (optional)",
        choices=[("", "— any —"), *CATEGORIES.items()],
        validators=[Optional()],
    )
    charger_model = StringField("Charger model (optional)", validators=[Length(max=120)])
    active = BooleanField("Active", default=True)

    def set_choices(self, sites: list[tuple[int, str]], calendars: list[Any]) -> None:
        """Offer the tenant's sites and calendars."""
        self.site_id.choices = [(None, "— any site —"), *sites]
        calendar_choices = [(None, "The ticket's (site's or default)")] + [
            (c.id, c.name) for c in calendars
        ]
        for clock in CLOCKS:
            self[f"{clock}_calendar"].choices = calendar_choices

    def clock_fields(self, clock: str) -> list[Any]:
        """Return the fields of one clock, in display order."""
        return [
            self[f"{clock}_{part}"]
            for part in ("minutes", "calendar", "pause", "warn", "escalations")
        ]


# One group of fields per clock, added to the class so WTForms sees them as declared fields.
for _clock, _label in CLOCKS.items():
    setattr(
        PolicyForm,
        f"{_clock}_minutes",
        IntegerField(
            f"{_label}: target in business minutes (empty: no such promise)",
            validators=[Optional(), NumberRange(1, 525_600)],
        ),
    )
    setattr(
        PolicyForm,
        f"{_clock}_calendar",
        SelectField(
            "Calendar", coerce=optional_int, validate_choice=False, validators=[Optional()]
        ),
    )
    setattr(
        PolicyForm,
        f"{_clock}_pause",
        SelectMultipleField("Paused while", choices=PAUSE_CHOICES, default=["on_hold"]),
    )
    setattr(
        PolicyForm,
        f"{_clock}_warn",
        IntegerField("Warn at % of target", default=80, validators=[NumberRange(1, 99)]),
    )
    setattr(
        PolicyForm,
        f"{_clock}_escalations",
        TextAreaField(
            "Escalations",
            validators=[Length(max=2000)],
            description="One per line: “100% notify as_manager”, “150% raise priority”, "
            "“200% reassign someone@example.com”.",
        ),
    )


class PreviewForm(FlaskForm):
    """What a would-be ticket is promised (a GET form)."""

    class Meta:
        csrf = False

    priority = SelectField("Priority", choices=list(PRIORITIES.items()), default="P2")
    # One of the tenant's sites: an id that is not (one above the bigint range, say) is a form
    # error, not a select Postgres refuses.
    site_id = SelectField("Site", coerce=optional_int, validators=[Optional()])
    category = SelectField("Category", choices=list(CATEGORIES.items()), default="hardware")
