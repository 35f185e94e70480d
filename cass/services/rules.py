"""Workflow rules as admins keep them: list, create, change, enable, reorder; and their runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select, tuple_

from cass import lifecycle
from cass.extensions import db
from cass.models import RULE_EVENTS, Charger, RuleRun, Site, Ticket, User, Vendor, WorkflowRule
from cass.models.tickets import CATEGORIES, PRIORITIES
from cass.services.audit import audit
from cass.services.tickets import ASSIGNABLE_ROLES, format_key, tenant_prefix
from cass.services.workflow import (
    ACTIONS,
    CHARGER_EVENTS,
    CONDITION_KEYS,
    NOTIFY_TARGETS,
    RuleError,
)
from cass.tenancy import current_tenant_id, scoped

MAX_OFFLINE_MINUTES = 7 * 24 * 60
MAX_LIST_ITEMS = 50
EVENT_ORDER = {event: n for n, event in enumerate(RULE_EVENTS)}


def list_rules() -> list[WorkflowRule]:
    """Return the tenant's rules grouped by event, each group in evaluation order."""
    rules = db.session.scalars(
        scoped(WorkflowRule).order_by(WorkflowRule.position, WorkflowRule.id)
    )
    return sorted(rules, key=lambda r: EVENT_ORDER.get(r.event, len(EVENT_ORDER)))


def _names(stmt: Any) -> dict[int, str]:
    return {ident: name for ident, name in db.session.execute(stmt)}


@dataclass(frozen=True)
class Names:
    """The tenant's sites, users and vendors by id, to describe rules and runs."""

    sites: dict[int, str]
    users: dict[int, str]
    vendors: dict[int, str]


def names() -> Names:
    """Return the names rules may refer to."""
    tenant = current_tenant_id()
    return Names(
        sites=_names(select(Site.id, Site.name).where(Site.tenant_id == tenant)),
        users=_names(select(User.id, User.name).where(User.tenant_id == tenant)),
        vendors=_names(select(Vendor.id, Vendor.name).where(Vendor.tenant_id == tenant)),
    )


def _text_list(value: Any, key: str, limit: int) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"{key} must be a list of names.")
    items = [v.strip() for v in value if v.strip()]
    if len(items) > MAX_LIST_ITEMS or any(len(v) > limit for v in items):
        raise RuleError(f"{key}: at most {MAX_LIST_ITEMS} names of {limit} characters each.")
    return items


def _choices(value: Any, key: str, allowed: Any) -> list[str]:
    items = _text_list(value, key, 40)
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise RuleError(f"{key}: unknown {', '.join(unknown)}.")
    return items


def clean_conditions(event: str, conditions: dict[str, Any]) -> dict[str, Any]:
    """Return the conditions with empty ones dropped; raise RuleError on anything unusable."""
    allowed = CONDITION_KEYS[event]
    cleaned: dict[str, Any] = {}
    for key, value in conditions.items():
        if value in (None, "", []):
            continue
        if key not in allowed:
            raise RuleError(f"The condition {key} does not apply to “{RULE_EVENTS[event]}”.")
        if key == "site_ids":
            if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            ):
                raise RuleError("site_ids must be a list of site ids.")
            known = set(
                db.session.scalars(scoped(Site, Site.id.in_(value)).with_only_columns(Site.id))
            )
            if set(value) - known:
                raise RuleError("Some of the sites do not exist.")
            cleaned[key] = sorted(set(value))
        elif key in ("models", "error_codes"):
            cleaned[key] = _text_list(value, key, 80)
        elif key == "priorities":
            cleaned[key] = _choices(value, key, PRIORITIES)
        elif key == "categories":
            cleaned[key] = _choices(value, key, CATEGORIES)
        elif key == "statuses":
            cleaned[key] = _choices(value, key, lifecycle.STATUSES)
        elif key == "offline_minutes":
            if isinstance(value, bool) or not isinstance(value, int):
                raise RuleError("offline_minutes must be a whole number of minutes.")
            if not 1 <= value <= MAX_OFFLINE_MINUTES:
                raise RuleError(f"Offline minutes go from 1 to {MAX_OFFLINE_MINUTES}.")
            cleaned[key] = value
        if key in cleaned and cleaned[key] == []:
            del cleaned[key]
    if event == "charger_offline" and "offline_minutes" not in cleaned:
        raise RuleError("Say how many minutes offline the rule waits for.")
    return cleaned


def _clean_action(event: str, action: Any) -> dict[str, Any]:
    if not isinstance(action, dict) or action.get("do") not in ACTIONS:
        raise RuleError(f"Unknown action: {action!r:.60}.")
    do = action["do"]
    extra = set(action) - {"do"}
    out: dict[str, Any] = {"do": do}

    def text(key: str, limit: int) -> None:
        value = action.get(key)
        if value in (None, ""):
            return
        if not isinstance(value, str) or len(value) > limit:
            raise RuleError(f"{ACTIONS[do]}: {key} takes at most {limit} characters.")
        if value.strip():
            out[key] = value.strip()

    if do == "create_ticket":
        if event not in CHARGER_EVENTS:
            raise RuleError("Only charger events open tickets (a ticket event has its ticket).")
        extra -= {"category", "priority", "title"}
        if action.get("category") not in CATEGORIES or action.get("priority") not in PRIORITIES:
            raise RuleError("Open a ticket: choose its category and priority.")
        out.update(category=action["category"], priority=action["priority"])
        text("title", 200)
    elif do == "assign":
        extra -= {"user_id", "vendor_id", "to"}
        targets = [k for k in ("user_id", "vendor_id", "to") if action.get(k) not in (None, "")]
        if len(targets) != 1:
            raise RuleError("Assign: choose one user, one vendor or the charger's vendor.")
        key = targets[0]
        value = action[key]
        if key == "to":
            if value != "charger_vendor":
                raise RuleError("Assign: unknown target.")
        elif isinstance(value, bool) or not isinstance(value, int):
            raise RuleError("Assign: the user or vendor is an id.")
        elif key == "user_id":
            user = db.session.scalars(scoped(User, User.id == value)).first()
            if user is None or not user.is_active or user.role not in ASSIGNABLE_ROLES:
                raise RuleError("Assign: that user cannot work tickets.")
        else:
            vendor = db.session.scalars(scoped(Vendor, Vendor.id == value)).first()
            if vendor is None or not vendor.is_active:
                raise RuleError("Assign: that vendor does not exist or is inactive.")
        out[key] = value
    elif do == "set_priority":
        extra -= {"priority"}
        if action.get("priority") not in PRIORITIES:
            raise RuleError("Set the priority: choose a priority.")
        out["priority"] = action["priority"]
    elif do == "add_worklog":
        extra -= {"body", "customer_visible"}
        text("body", 2000)
        if action.get("customer_visible"):
            out["customer_visible"] = True
    elif do == "resolve_ticket":
        extra -= {"note"}
        text("note", 1000)
    elif do == "notify":
        extra -= {"to"}
        if action.get("to") not in NOTIFY_TARGETS:
            raise RuleError("Notify: choose whom.")
        out["to"] = action["to"]
    if extra:
        raise RuleError(f"{ACTIONS[do]}: unknown settings {', '.join(sorted(extra))}.")
    return out


def clean_actions(event: str, actions: list[Any]) -> list[dict[str, Any]]:
    """Return the actions as stored; raise RuleError on anything unusable."""
    if not isinstance(actions, list) or not actions:
        raise RuleError("Choose at least one action.")
    if len(actions) > 10:
        raise RuleError("A rule takes at most 10 actions.")
    return [_clean_action(event, action) for action in actions]


def _snapshot(rule: WorkflowRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "event": rule.event,
        "conditions": rule.conditions,
        "actions": rule.actions,
        "enabled": rule.enabled,
        "position": rule.position,
    }


def save_rule(
    rule: WorkflowRule | None,
    actor: User,
    *,
    name: str,
    event: str,
    enabled: bool,
    conditions: dict[str, Any],
    actions: list[Any],
) -> WorkflowRule:
    """Create a rule (when `rule` is None, last in its event's order) or change one."""
    name = name.strip()
    if not name or len(name) > 120:
        raise RuleError("A rule needs a name of at most 120 characters.")
    if event not in RULE_EVENTS:
        raise RuleError("Choose when the rule runs.")
    conditions = clean_conditions(event, conditions)
    actions = clean_actions(event, actions)
    before = _snapshot(rule) if rule is not None else None
    if rule is None:
        last = db.session.scalar(
            select(func.max(WorkflowRule.position)).where(
                WorkflowRule.tenant_id == current_tenant_id()
            )
        )
        rule = WorkflowRule(tenant_id=current_tenant_id(), position=(last or 0) + 1)
        db.session.add(rule)
    elif rule.event != event:
        # It joins the end of its new event's order.
        last = db.session.scalar(
            select(func.max(WorkflowRule.position)).where(
                WorkflowRule.tenant_id == current_tenant_id(), WorkflowRule.event == event
            )
        )
        rule.position = (last or 0) + 1
    rule.name, rule.event, rule.enabled = name, event, enabled
    rule.conditions, rule.actions = conditions, actions
    rule.updated_at = datetime.now(UTC)
    db.session.flush()
    action = "create" if before is None else "update"
    audit(actor.id, "workflow_rule", rule.id, action, before, _snapshot(rule))
    db.session.commit()
    return rule


def set_enabled(rule: WorkflowRule, actor: User, enabled: bool) -> WorkflowRule:
    """Enable or disable a rule (a disabled rule is not evaluated at all)."""
    if rule.enabled != enabled:
        before = _snapshot(rule)
        rule.enabled = enabled
        rule.updated_at = datetime.now(UTC)
        action = "enable" if enabled else "disable"
        audit(actor.id, "workflow_rule", rule.id, action, before, _snapshot(rule))
    db.session.commit()
    return rule


def move(rule: WorkflowRule, actor: User, direction: str) -> bool:
    """Move a rule one place earlier ("up") or later ("down") among its event's rules; return
    whether it moved."""
    if direction not in ("up", "down"):
        raise RuleError("Move up or down.")
    group = list(
        db.session.scalars(
            scoped(WorkflowRule, WorkflowRule.event == rule.event)
            .order_by(WorkflowRule.position, WorkflowRule.id)
            .with_for_update()
        )
    )
    index = group.index(rule)
    other = index - 1 if direction == "up" else index + 1
    if not 0 <= other < len(group):
        db.session.commit()
        return False
    before = _snapshot(rule)
    positions = sorted({r.position for r in group})
    if len(positions) < len(group):  # ties: give the group distinct places first
        base = group[0].position
        for n, item in enumerate(group):
            item.position = base + n
    group[index].position, group[other].position = group[other].position, group[index].position
    audit(actor.id, "workflow_rule", rule.id, "move", before, _snapshot(rule))
    db.session.commit()
    return True


# -- describing rules -------------------------------------------------------------------------


def describe_conditions(rule: WorkflowRule, known: Names) -> list[str]:
    """Return one line per condition, in words."""
    c = rule.conditions or {}
    lines = []
    if c.get("site_ids"):
        lines.append("site " + ", ".join(known.sites.get(s, f"#{s}") for s in c["site_ids"]))
    if c.get("models"):
        lines.append("model " + ", ".join(c["models"]))
    if c.get("error_codes"):
        lines.append("error code " + ", ".join(c["error_codes"]))
    if c.get("priorities"):
        lines.append("priority " + ", ".join(c["priorities"]))
    if c.get("categories"):
        lines.append("category " + ", ".join(CATEGORIES.get(x, x) for x in c["categories"]))
    if c.get("statuses"):
        lines.append(
            "status " + ", ".join(lifecycle.STATUS_LABELS.get(x, x) for x in c["statuses"])
        )
    if c.get("offline_minutes"):
        lines.append(f"offline for {c['offline_minutes']} minutes")
    return lines


def describe_actions(rule: WorkflowRule, known: Names) -> list[str]:
    """Return one line per action, in words."""
    lines = []
    for action in rule.actions or []:
        do = action.get("do") if isinstance(action, dict) else None
        label = ACTIONS.get(do, str(do))  # type: ignore[arg-type]
        if do == "create_ticket":
            label += f" ({CATEGORIES.get(action.get('category'), '?')}, {action.get('priority')})"
        elif do == "assign":
            if action.get("user_id"):
                label += " to " + known.users.get(action["user_id"], f"user #{action['user_id']}")
            elif action.get("vendor_id"):
                vendor = known.vendors.get(action["vendor_id"], f"vendor #{action['vendor_id']}")
                label += f" to {vendor}"
            else:
                label += " to the charger's vendor"
        elif do == "set_priority":
            label = f"Set the priority to {action.get('priority')}"
        elif do == "notify":
            label += " " + NOTIFY_TARGETS.get(action.get("to"), "?") + " (recorded only for now)"
        lines.append(label)
    return lines


def charger_names(ids: set[int]) -> dict[int, str]:
    """Return the OCPP ids of these chargers of the tenant."""
    if not ids:
        return {}
    return _names(
        scoped(Charger, Charger.id.in_(ids)).with_only_columns(Charger.id, Charger.ocpp_id)
    )


def ticket_keys(ids: set[int]) -> dict[int, str]:
    """Return the keys (e.g. DEMO-1042) of these tickets of the tenant."""
    if not ids:
        return {}
    prefix = tenant_prefix()
    stmt = scoped(Ticket, Ticket.id.in_(ids)).with_only_columns(Ticket.id, Ticket.number)
    return {ident: format_key(prefix, number) for ident, number in db.session.execute(stmt)}


# -- runs -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunFilters:
    """What the admin filters rule runs by."""

    rule_id: int | None = None
    matched: bool | None = None
    since: date | None = None
    until: date | None = None


def list_runs(
    filters: RunFilters, after: tuple[datetime, int] | None = None, limit: int = 50
) -> list[RuleRun]:
    """Return rule runs, newest first, keyset-paginated by (at, id)."""
    stmt = scoped(RuleRun)
    if filters.rule_id is not None:
        stmt = stmt.where(RuleRun.rule_id == filters.rule_id)
    if filters.matched is not None:
        stmt = stmt.where(RuleRun.matched.is_(filters.matched))
    if filters.since:
        stmt = stmt.where(RuleRun.at >= datetime.combine(filters.since, time.min, UTC))
    if filters.until:
        stmt = stmt.where(
            RuleRun.at < datetime.combine(filters.until, time.min, UTC) + timedelta(days=1)
        )
    if after is not None:
        stmt = stmt.where(tuple_(RuleRun.at, RuleRun.id) < tuple_(*after))
    stmt = stmt.order_by(RuleRun.at.desc(), RuleRun.id.desc()).limit(limit)
    return list(db.session.scalars(stmt))
