"""Workflow rules admin (/admin/rules): list, create, edit, enable, reorder; and their runs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.bounds import DAY_RANGE, parse_day, parse_id, parse_moment
from cass.models import RULE_EVENTS, WorkflowRule
from cass.permissions import requires
from cass.rendering import render, wants_fragment
from cass.rules.forms import MoveForm, RuleForm, ToggleForm
from cass.services import rules as rule_service
from cass.services import tickets
from cass.services.workflow import ACTIONS, RuleError
from cass.tenancy import get_or_404

bp = Blueprint("rules", __name__, url_prefix="/admin/rules")


def _list_context() -> dict[str, Any]:
    known = rule_service.names()
    rules = rule_service.list_rules()
    # Whether each rule is first / last of its event's rules (nowhere to move it).
    edges: dict[int, tuple[bool, bool]] = {}
    for n, rule in enumerate(rules):
        first = n == 0 or rules[n - 1].event != rule.event
        last = n == len(rules) - 1 or rules[n + 1].event != rule.event
        edges[rule.id] = (first, last)
    return {
        "rules": rules,
        "edges": edges,
        "known": known,
        "describe_conditions": rule_service.describe_conditions,
        "describe_actions": rule_service.describe_actions,
        "event_labels": RULE_EVENTS,
        "toggle_form": ToggleForm(),
        "move_form": MoveForm(),
    }


@bp.get("")
@requires("rules.view")
def index() -> Response:
    """List the tenant's rules, by event, in the order they are evaluated."""
    return render("rules/index.html", **_list_context())


def _form(rule: WorkflowRule | None) -> Response:
    """Show and save the rule form (a new rule when `rule` is None)."""
    form = RuleForm()
    form.set_choices(rule_service.names().sites, tickets.assignee_choices())
    if rule is not None and not form.is_submitted():
        form.load(rule)
    error = None
    if form.validate_on_submit():
        try:
            saved = rule_service.save_rule(
                rule,
                current_user,
                name=form.name.data,
                event=form.event.data,
                enabled=form.enabled.data,
                conditions=form.conditions(),
                actions=form.actions(),
            )
        except RuleError as exc:
            error = str(exc)
        else:
            flash(f"Rule “{saved.name}” saved.", "success")
            return redirect(url_for("rules.index"), 303)
    return render(
        "rules/form.html",
        status=422 if form.is_submitted() else 200,
        form=form,
        rule=rule,
        error=error,
        event_labels=RULE_EVENTS,
    )


@bp.route("/new", methods=["GET", "POST"])
@requires("rules.manage")
def new() -> Response:
    """Create a rule."""
    return _form(None)


@bp.route("/<int:rule_id>/edit", methods=["GET", "POST"])
@requires("rules.manage")
def edit(rule_id: int) -> Response:
    """Change a rule's name, event, conditions and actions."""
    return _form(get_or_404(WorkflowRule, rule_id))


@bp.post("/<int:rule_id>/toggle")
@requires("rules.manage")
def toggle(rule_id: int) -> Response:
    """Enable or disable a rule; htmx gets its row back."""
    rule = get_or_404(WorkflowRule, rule_id)
    form = ToggleForm()
    if not form.validate_on_submit():
        return render("rules/index.html", "rules/_table.html", 422, **_list_context())
    rule_service.set_enabled(rule, current_user, form.enabled.data == "on")
    if wants_fragment():
        context = _list_context()
        return render("rules/_row.html", rule=rule, **context)
    flash(f"Rule “{rule.name}” {'enabled' if rule.enabled else 'disabled'}.", "success")
    return redirect(url_for("rules.index"), 303)


@bp.post("/<int:rule_id>/move")
@requires("rules.manage")
def move(rule_id: int) -> Response:
    """Move a rule earlier or later among its event's rules; htmx gets the table back."""
    rule = get_or_404(WorkflowRule, rule_id)
    form = MoveForm()
    if not form.validate_on_submit():
        return render("rules/index.html", "rules/_table.html", 422, **_list_context())
    rule_service.move(rule, current_user, form.direction.data)
    if wants_fragment():
        return render("rules/_table.html", **_list_context())
    return redirect(url_for("rules.index"), 303)


def _run_filters(args: Any) -> tuple[rule_service.RunFilters, list[str]]:
    """Read the run filters from the query string; return them and what was not understood."""
    problems: list[str] = []

    def as_date(name: str) -> date | None:
        raw = args.get(name, "").strip()
        if not raw:
            return None
        try:
            return parse_day(raw)
        except ValueError:
            problems.append(f"“{raw[:20]}” is not a date (use YYYY-MM-DD, {DAY_RANGE}).")
            return None

    rule_id = None
    if args.get("rule"):
        try:
            rule_id = parse_id(args["rule"])
        except ValueError:
            problems.append("Unknown rule.")
    matched = {"yes": True, "no": False}.get(args.get("matched", ""))
    if args.get("matched") and matched is None:
        problems.append("Matched is yes or no.")
    filters = rule_service.RunFilters(
        rule_id=rule_id, matched=matched, since=as_date("since"), until=as_date("until")
    )
    return filters, problems


def _cursor(args: Any) -> tuple[datetime, int] | None:
    at, _, ident = args.get("after", "").partition("|")
    try:
        return parse_moment(at), parse_id(ident)
    except ValueError:
        return None


@bp.get("/runs")
@requires("rules.view")
def runs() -> Response:
    """Show every evaluation of the rules and what each action did, newest first."""
    filters, problems = _run_filters(request.args)
    rows = rule_service.list_runs(filters, _cursor(request.args))
    more = None
    if len(rows) == 50:
        last = rows[-1]
        more = url_for(
            "rules.runs",
            **{k: v for k, v in request.args.items() if k != "after"},
            after=f"{last.at.isoformat()}|{last.id}",
        )
    fragment = "rules/_runs_rows.html" if request.args.get("after") else "rules/_runs_table.html"
    return render(
        "rules/runs.html",
        fragment,
        422 if problems else 200,
        rows=rows,
        rule_names={r.id: r.name for r in rule_service.list_rules()},
        chargers=rule_service.charger_names({r.charger_id for r in rows if r.charger_id}),
        # The charger pages are another blueprint's; link to them once they are served.
        charger_pages="chargers.detail" in current_app.view_functions,
        keys=rule_service.ticket_keys({r.ticket_id for r in rows if r.ticket_id}),
        problems=problems,
        more=more,
        args=request.args,
        event_labels=RULE_EVENTS,
        action_labels=ACTIONS,
    )
