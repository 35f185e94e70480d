"""Forms for workflow rules: conditions and actions as fields, never as raw JSON."""

from __future__ import annotations

from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.validators import AnyOf, DataRequired, Length, NumberRange, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from cass.lifecycle import STATUS_LABELS
from cass.models import RULE_EVENTS, WorkflowRule
from cass.models.tickets import CATEGORIES, PRIORITIES
from cass.services.rules import MAX_OFFLINE_MINUTES
from cass.services.workflow import ACTIONS, CHARGER_EVENTS, CONDITION_KEYS, NOTIFY_TARGETS

# The actions in the order a rule made here runs them (as cass.services.workflow lists them).
ACTION_ORDER = tuple(ACTIONS)
CONDITION_LABELS = {
    "site_ids": "Sites",
    "models": "Charger models",
    "error_codes": "Error codes",
    "priorities": "Ticket priorities",
    "categories": "Ticket categories",
    "statuses": "Ticket statuses",
    "offline_minutes": "Offline for at least",
}


class MultiCheckboxField(SelectMultipleField):
    """Several choices as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


def _names(value: str | None) -> list[str]:
    """Split a comma-separated list of names."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


class RuleForm(FlaskForm):
    """A rule: when, under which conditions, and what to do."""

    name = StringField("Name", validators=[DataRequired(), Length(max=120)])
    event = SelectField("When", choices=list(RULE_EVENTS.items()))
    enabled = BooleanField("Enabled", default=True)

    site_ids = SelectMultipleField("Sites", coerce=int)
    models = StringField(
        "Charger models",
        validators=[Optional(), Length(max=800)],
        description="Comma-separated, e.g. “Terra 54, Wallbox Pro”.",
    )
    error_codes = StringField(
        "Error codes",
        validators=[Optional(), Length(max=800)],
        description="Comma-separated, e.g. GroundFailure, OverCurrentFailure; for firmware "
        "failures the status, e.g. InstallationFailed.",
    )
    priorities = MultiCheckboxField("Ticket priorities", choices=list(PRIORITIES.items()))
    categories = MultiCheckboxField("Ticket categories", choices=list(CATEGORIES.items()))
    statuses = MultiCheckboxField("Ticket statuses", choices=list(STATUS_LABELS.items()))
    offline_minutes = IntegerField(
        "Offline for at least (minutes)",
        validators=[Optional(), NumberRange(1, MAX_OFFLINE_MINUTES)],
    )

    create_ticket = BooleanField("Open a ticket")
    ticket_category = SelectField("Category", choices=list(CATEGORIES.items()), default="hardware")
    ticket_priority = SelectField("Priority", choices=list(PRIORITIES.items()), default="P2")
    ticket_title = StringField(
        "Title",
        validators=[Optional(), Length(max=200)],
        description="Optional; may use {charger}, {connector}, {site}, {fault}, {status}, "
        "{minutes}.",
    )
    assign = BooleanField("Assign")
    assignee = SelectField("To", choices=[], default="charger_vendor")
    set_priority = BooleanField("Set the priority")
    new_priority = SelectField("Priority", choices=list(PRIORITIES.items()), default="P1")
    add_worklog = BooleanField("Add a worklog")
    worklog_body = TextAreaField(
        "Text",
        validators=[Optional(), Length(max=2000)],
        description="Optional; may use {charger}, {connector}, {status}, {time}.",
    )
    worklog_public = BooleanField("Visible to the customer")
    resolve_ticket = BooleanField("Resolve the ticket")
    resolve_note = StringField(
        "Resolution note",
        validators=[Optional(), Length(max=1000)],
        description="A ticket nobody has started is cancelled with this note instead.",
    )
    notify = BooleanField("Notify")
    notify_to = SelectField("Whom", choices=list(NOTIFY_TARGETS.items()), default="managers")

    def set_choices(self, sites: dict[int, str], assignees: list[tuple[str, str]]) -> None:
        """Offer the tenant's sites and the people and vendors tickets can go to."""
        self.site_ids.choices = sorted(sites.items(), key=lambda item: item[1])
        self.assignee.choices = [("charger_vendor", "The charger's vendor"), *assignees]

    def load(self, rule: WorkflowRule) -> None:
        """Fill the fields from a stored rule (on GET)."""
        c = rule.conditions or {}
        self.name.data, self.event.data, self.enabled.data = rule.name, rule.event, rule.enabled
        self.site_ids.data = list(c.get("site_ids") or [])
        self.models.data = ", ".join(c.get("models") or [])
        self.error_codes.data = ", ".join(c.get("error_codes") or [])
        self.priorities.data = list(c.get("priorities") or [])
        self.categories.data = list(c.get("categories") or [])
        self.statuses.data = list(c.get("statuses") or [])
        self.offline_minutes.data = c.get("offline_minutes")
        for action in rule.actions or []:
            do = action.get("do")
            if do in ACTION_ORDER:
                getattr(self, do).data = True
            if do == "create_ticket":
                self.ticket_category.data = action.get("category")
                self.ticket_priority.data = action.get("priority")
                self.ticket_title.data = action.get("title", "")
            elif do == "assign":
                if action.get("user_id"):
                    self.assignee.data = f"user:{action['user_id']}"
                elif action.get("vendor_id"):
                    self.assignee.data = f"vendor:{action['vendor_id']}"
                else:
                    self.assignee.data = "charger_vendor"
            elif do == "set_priority":
                self.new_priority.data = action.get("priority")
            elif do == "add_worklog":
                self.worklog_body.data = action.get("body", "")
                self.worklog_public.data = bool(action.get("customer_visible"))
            elif do == "resolve_ticket":
                self.resolve_note.data = action.get("note", "")
            elif do == "notify":
                self.notify_to.data = action.get("to")

    def validate(self, extra_validators: Any = None) -> bool:
        """Check the fields, then that each condition and action fits the chosen event."""
        ok = super().validate(extra_validators)
        event = self.event.data
        if event not in RULE_EVENTS:
            return False
        applies = CONDITION_KEYS[event]
        for key in CONDITION_LABELS:
            field = getattr(self, key)
            if key not in applies and field.data not in (None, "", []):
                field.errors = [*field.errors, f"Does not apply to “{RULE_EVENTS[event]}”."]
                ok = False
        if event == "charger_offline" and not self.offline_minutes.data:
            self.offline_minutes.errors = [*self.offline_minutes.errors, "Required for this event."]
            ok = False
        if not any(getattr(self, do).data for do in ACTION_ORDER):
            self.create_ticket.errors = [*self.create_ticket.errors, "Choose at least one action."]
            ok = False
        if self.create_ticket.data and event not in CHARGER_EVENTS:
            self.create_ticket.errors = [
                *self.create_ticket.errors,
                "Only charger events open tickets; a ticket event already has its ticket.",
            ]
            ok = False
        return ok

    def conditions(self) -> dict[str, Any]:
        """Return the conditions to store (the keys that apply, when set)."""
        applies = CONDITION_KEYS[self.event.data]
        values: dict[str, Any] = {
            "site_ids": list(self.site_ids.data or []),
            "models": _names(self.models.data),
            "error_codes": _names(self.error_codes.data),
            "priorities": list(self.priorities.data or []),
            "categories": list(self.categories.data or []),
            "statuses": list(self.statuses.data or []),
            "offline_minutes": self.offline_minutes.data,
        }
        return {k: v for k, v in values.items() if k in applies and v not in (None, [])}

    def actions(self) -> list[dict[str, Any]]:
        """Return the actions to store, in ACTION_ORDER."""
        out: list[dict[str, Any]] = []
        if self.create_ticket.data:
            action = {
                "do": "create_ticket",
                "category": self.ticket_category.data,
                "priority": self.ticket_priority.data,
            }
            if (self.ticket_title.data or "").strip():
                action["title"] = self.ticket_title.data.strip()
            out.append(action)
        if self.assign.data:
            kind, _, ident = (self.assignee.data or "").partition(":")
            if kind == "charger_vendor":
                out.append({"do": "assign", "to": "charger_vendor"})
            else:
                out.append({"do": "assign", f"{kind}_id": int(ident)})
        if self.set_priority.data:
            out.append({"do": "set_priority", "priority": self.new_priority.data})
        if self.add_worklog.data:
            action = {"do": "add_worklog"}
            if (self.worklog_body.data or "").strip():
                action["body"] = self.worklog_body.data.strip()
            if self.worklog_public.data:
                action["customer_visible"] = True
            out.append(action)
        if self.resolve_ticket.data:
            action = {"do": "resolve_ticket"}
            if (self.resolve_note.data or "").strip():
                action["note"] = self.resolve_note.data.strip()
            out.append(action)
        if self.notify.data:
            out.append({"do": "notify", "to": self.notify_to.data})
        return out


class ToggleForm(FlaskForm):
    """Enable ("on") or disable ("off") a rule."""

    enabled = HiddenField(validators=[AnyOf(["on", "off"])])


class MoveForm(FlaskForm):
    """Move a rule up or down its event's order."""

    direction = HiddenField(validators=[AnyOf(["up", "down"])])
