"""Forms for scheduled exports and background exports."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TimeField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)
from wtforms.widgets import CheckboxInput, ListWidget

from cass.models import ReportSchedule
from cass.models.reports import FREQUENCIES, MONTH_DAYS
from cass.services import exports, report_exports
from cass.services.report_exports import MAX_QUERY, MAX_RETENTION_DAYS, WEEKDAYS, Timetable

QUERY_HINT = (
    "The report page's filters as a query string, e.g. status=open&priority=P1; "
    "pasting the page's whole address works too. Empty: everything."
)


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class ExportFields(FlaskForm):
    """A report and its filters."""

    slug = SelectField("Report", validators=[DataRequired()])
    query = StringField(
        "Filters", validators=[Optional(), Length(max=MAX_QUERY)], description=QUERY_HINT
    )

    def set_reports(self, titles: dict[str, str]) -> None:
        """Offer the reports that can be exported (they register when their module loads)."""
        self.slug.choices = list(titles.items())

    def validate_query(self, field: StringField) -> None:
        try:
            field.data = report_exports.normalize_query(field.data or "")
        except report_exports.ScheduleError as exc:
            raise ValidationError(str(exc)) from exc
        wrong = exports.problems(self.slug.data or "", MultiDict(parse_qsl(field.data)))
        if wrong:
            raise ValidationError("These filters do not make the report: " + "; ".join(wrong))


class ExportForm(ExportFields):
    """Start a background export of a report."""


class ScheduleForm(ExportFields):
    """A schedule: which report, with which filters, when, for whom, kept how long."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    frequency = SelectField("Runs", choices=list(FREQUENCIES.items()), default="daily")
    at_time = TimeField("At (tenant time)", validators=[Optional()], default=None)
    weekday = SelectField("On (weekly)", choices=list(enumerate(WEEKDAYS)), coerce=int, default=0)
    month_day = SelectField(
        "Day of the month (monthly)",
        choices=[(day, "Last day" if day == "last" else day) for day in MONTH_DAYS],
        default="1",
    )
    cron = StringField(
        "Cron expression",
        # No Optional(): it would stop validation before validate_cron can ask for one.
        validators=[Length(max=120)],
        description="minute hour day month weekday, e.g. 30 7 * * 1-5 (weekdays at 07:30); "
        "0 or 7 is Sunday. At most every 15 minutes.",
    )
    email_to = MultiCheckboxField("E-mail a link to", coerce=int)
    retention_days = IntegerField(
        "Keep files (days)",
        validators=[InputRequired(), NumberRange(1, MAX_RETENTION_DAYS)],
    )
    active = BooleanField("Active", default=True)

    def timetable(self) -> Timetable:
        """Return the timetable the form describes."""
        return Timetable(
            frequency=self.frequency.data,
            at_time=self.at_time.data,
            weekday=self.weekday.data,
            month_day=self.month_day.data,
            cron=(self.cron.data or "").strip() or None,
        )

    def validate_at_time(self, field: TimeField) -> None:
        if self.frequency.data != "cron" and field.data is None:
            raise ValidationError("Choose a time of day.")

    def validate_cron(self, field: StringField) -> None:
        if self.frequency.data != "cron":
            return
        if not (field.data or "").strip():
            raise ValidationError("Write a cron expression.")
        try:
            # The timezone does not change whether an expression is valid.
            report_exports.cron_trigger(field.data.strip(), ZoneInfo("UTC"))
        except report_exports.ScheduleError as exc:
            raise ValidationError(str(exc)) from exc

    def load(self, schedule: ReportSchedule) -> None:
        """Fill the form from a saved schedule."""
        self.name.data = schedule.name
        self.slug.data = schedule.slug
        self.query.data = schedule.query
        self.frequency.data = schedule.frequency
        self.at_time.data = schedule.at_time
        self.weekday.data = schedule.weekday or 0
        self.month_day.data = schedule.month_day or "1"
        self.cron.data = schedule.cron or ""
        self.email_to.data = list(schedule.email_to or [])
        self.retention_days.data = schedule.retention_days
        self.active.data = schedule.active

    def data_for_service(self) -> dict[str, Any]:
        """Return the fields as ScheduleData's keyword arguments."""
        return {
            "name": self.name.data,
            "slug": self.slug.data,
            "query": self.query.data or "",
            "timetable": self.timetable(),
            "email_to": list(self.email_to.data or []),
            "retention_days": self.retention_days.data,
            "active": self.active.data,
        }


class ConfirmForm(FlaskForm):
    """A button that changes something (delete, run now): only the CSRF token."""
