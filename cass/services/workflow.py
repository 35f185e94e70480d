"""Workflow rules: WHEN an event AND every condition holds THEN the actions run, in order.

Events come from three places: the workflow worker (charger events the bridge wrote, and CSMS
events), the periodic offline check (chargers offline longer than a rule's N minutes), and the
ticket services (a ticket created or moved). Every evaluation of a rule, matched or not, becomes
a rule_run row with each action's result; a failing action is recorded there and never reaches
the caller.

Actions change tickets through the ticket services, as the system (no user), so history, audit
and live events happen as for a person. Tickets a rule opens carry a dedup key
("fault:<charger id>:<connector no>:<code>", "offline:<charger id>", "firmware:<charger id>");
the partial unique index on open tickets' keys makes "one open ticket per fault" race-free.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from flask import g
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, OperationalError

from cass import lifecycle
from cass.extensions import db
from cass.models import (
    Charger,
    Connector,
    CsmsEvent,
    RuleRun,
    Site,
    Ticket,
    User,
    Vendor,
    WorkflowRule,
)
from cass.models.tickets import CATEGORIES, PRIORITIES
from cass.services import tickets
from cass.services.worklogs import add_worklog
from cass.tenancy import current_tenant_id, scoped, tenant_context

log = logging.getLogger("cass.workflow")

CHARGER_EVENTS = ("connector_faulted", "connector_recovered", "charger_offline", "firmware_failed")
TICKET_EVENTS = ("ticket_created", "ticket_status_changed", "sla_warning", "sla_breach")

# Which condition keys each kind of event can be tested against.
CONDITION_KEYS: dict[str, tuple[str, ...]] = {
    "connector_faulted": ("site_ids", "models", "error_codes"),
    "connector_recovered": ("site_ids", "models", "error_codes"),
    "charger_offline": ("site_ids", "models", "offline_minutes"),
    "firmware_failed": ("site_ids", "models", "error_codes"),
    **{
        event: ("site_ids", "models", "priorities", "categories", "statuses")
        for event in TICKET_EVENTS
    },
}
ACTIONS = {
    "create_ticket": "Open a ticket",
    "assign": "Assign",
    "set_priority": "Set the priority",
    "add_worklog": "Add a worklog",
    "resolve_ticket": "Resolve the ticket",
    "notify": "Notify",
}
NOTIFY_TARGETS = {
    "assignee": "the assignee",
    "managers": "the after-service managers",
    "admins": "the admins",
    "site_contact": "the site contact",
}
# OCPP 1.6 FirmwareStatus and 2.0.1 FirmwareStatusEnumType values that mean "it failed".
FIRMWARE_FAILURES = frozenset(
    {"DownloadFailed", "InstallationFailed", "InstallVerificationFailed", "InvalidSignature"}
)
DEFAULT_CATEGORY = {
    "connector_faulted": "hardware",
    "connector_recovered": "hardware",
    "charger_offline": "connectivity",
    "firmware_failed": "firmware",
}
DEFAULT_TITLES = {
    "connector_faulted": "{charger} connector {connector} faulted: {fault}",
    "connector_recovered": "{charger} connector {connector} recovered: {status}",
    "charger_offline": "{charger} offline for {minutes} minutes",
    "firmware_failed": "Firmware update failed on {charger}: {status}",
}
DEFAULT_WORKLOGS = {
    "connector_recovered": "Charger recovered at {time}: connector {connector} {status}",
    "connector_faulted": "Connector {connector} reported {fault} at {time}",
    "charger_offline": "{charger} has been offline for {minutes} minutes ({time})",
    "firmware_failed": "Firmware update reported {status} at {time}",
}
MAX_DEPTH = 3  # rules triggered by rules' own ticket changes, at most this deep
PLACEHOLDER = re.compile(r"\{(\w+)\}")


class RuleError(ValueError):
    """A rule's conditions or actions cannot be used; the message says why."""


@dataclass(frozen=True)
class SystemActor:
    """Who the ticket services see when a rule acts: no user (history shows "System")."""

    id: None = None
    role: str = "admin"
    name: str = "Workflow"
    is_active: bool = True


SYSTEM = SystemActor()


@dataclass
class Facts:
    """What a rule can see of one event."""

    event: str
    tenant_id: int
    at: datetime
    charger_id: int | None = None
    ocpp_id: str | None = None
    site_id: int | None = None
    site_name: str | None = None
    model: str | None = None
    charger_vendor_id: int | None = None
    connector_no: int | None = None
    status: str | None = None
    error_code: str | None = None
    info: str | None = None
    vendor_error_code: str | None = None
    minutes: int | None = None
    ticket_id: int | None = None
    priority: str | None = None
    category: str | None = None
    ticket_status: str | None = None
    previous_status: str | None = None
    charger_event_id: int | None = None
    csms_event_id: int | None = None

    @property
    def fault(self) -> str:
        """The fault's name: its error code, or the status when the code says NoError."""
        if self.error_code and self.error_code != "NoError":
            return self.error_code
        return self.status or "Faulted"

    def values(self) -> dict[str, str]:
        """Return what title, worklog and note templates may use."""
        at = self.at.astimezone(UTC) if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        return {
            "charger": self.ocpp_id or "",
            "connector": "" if self.connector_no is None else str(self.connector_no),
            "site": self.site_name or "",
            "model": self.model or "",
            "status": self.status or self.ticket_status or "",
            "error_code": self.error_code or "",
            "fault": self.fault,
            "info": self.info or "",
            "minutes": "" if self.minutes is None else str(self.minutes),
            "time": at.strftime("%Y-%m-%d %H:%M:%S UTC"),
        }


def fill(template: str, values: dict[str, str]) -> str:
    """Replace {name} placeholders that `values` knows; leave anything else as written."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def dedup_key(facts: Facts) -> str | None:
    """Return the key that keeps one open ticket per fault, offline spell or firmware failure."""
    who = facts.charger_id if facts.charger_id is not None else f"ocpp:{facts.ocpp_id}"
    if facts.event == "connector_faulted":
        return f"fault:{who}:{facts.connector_no or 0}:{facts.fault}"[:120]
    if facts.event == "charger_offline":
        return f"offline:{who}"[:120]
    if facts.event == "firmware_failed":
        return f"firmware:{who}"[:120]
    return None


def _related_prefix(facts: Facts) -> tuple[str, bool] | None:
    """Return (key, is_prefix) of the open tickets an event is about, if any."""
    if facts.event == "connector_recovered":
        who = facts.charger_id if facts.charger_id is not None else f"ocpp:{facts.ocpp_id}"
        return f"fault:{who}:{facts.connector_no or 0}:", True
    key = dedup_key(facts)
    return (key, False) if key else None


# -- conditions -------------------------------------------------------------------------------


def _listed(conditions: dict[str, Any], key: str) -> list[Any] | None:
    """Return a list condition, or None when it is absent or empty (no constraint)."""
    value = conditions.get(key)
    if value in (None, "", []):
        return None
    return value if isinstance(value, list) else [value]


def mismatch(conditions: dict[str, Any], facts: Facts) -> tuple[str, str] | None:
    """Return (condition, why) for the first condition the event fails, or None if all hold."""
    sites = _listed(conditions, "site_ids")
    if sites is not None and facts.site_id not in {int(s) for s in sites}:
        return "site_ids", "the site is not one of the rule's sites"
    models = _listed(conditions, "models")
    if models is not None and (facts.model or "").casefold() not in {
        str(m).casefold() for m in models
    }:
        return "models", f"model {facts.model or '(unknown)'} is not one of the rule's models"
    codes = _listed(conditions, "error_codes")
    if codes is not None:
        code = facts.error_code if facts.event != "firmware_failed" else facts.status
        if (code or "").casefold() not in {str(c).casefold() for c in codes}:
            return "error_codes", f"{code or 'no code'} is not one of the rule's error codes"
    for key, value, label in (
        ("priorities", facts.priority, "priority"),
        ("categories", facts.category, "category"),
        ("statuses", facts.ticket_status, "status"),
    ):
        wanted = _listed(conditions, key)
        if wanted is not None and value not in wanted:
            return key, f"{label} {value or '(none)'} is not one of the rule's"
    minutes = conditions.get("offline_minutes")
    if minutes not in (None, "") and (facts.minutes or 0) < int(minutes):
        return "offline_minutes", f"offline {facts.minutes or 0} of {int(minutes)} minutes"
    return None


# -- evaluation -------------------------------------------------------------------------------

# The rules whose actions caused the event being evaluated (so a rule never feeds itself).
_chain: ContextVar[tuple[int, ...]] = ContextVar("cass_workflow_chain", default=())


@dataclass
class _Rule:
    id: int
    name: str
    conditions: dict[str, Any]
    actions: list[dict[str, Any]]


@dataclass
class _Context:
    """One matched rule's run: the event, the tickets its actions work on, and whether to stop."""

    rule: _Rule
    facts: Facts
    ticket_ids: list[int] = field(default_factory=list)
    stop: str | None = None

    def tickets(self) -> list[Ticket]:
        rows = db.session.scalars(
            scoped(Ticket, Ticket.id.in_(self.ticket_ids)).order_by(Ticket.id)
        )
        return [t for t in rows if t.status in lifecycle.OPEN_STATUSES]


def _key(ticket: Ticket) -> str:
    return tickets.format_key(tickets.tenant_prefix(), ticket.number)


def _enabled_rules(event: str, only: set[int] | None = None) -> list[_Rule]:
    stmt = scoped(WorkflowRule, WorkflowRule.event == event, WorkflowRule.enabled)
    if only is not None:
        stmt = stmt.where(WorkflowRule.id.in_(only))
    rows = db.session.scalars(stmt.order_by(WorkflowRule.position, WorkflowRule.id))
    # Plain copies: actions commit, which would expire ORM rows under our feet.
    return [_Rule(r.id, r.name, dict(r.conditions or {}), list(r.actions or [])) for r in rows]


def evaluate(facts: Facts, only: set[int] | None = None) -> list[int]:
    """Run the tenant's enabled rules for the event (`only` these ids, if given); return the
    ids of the rule runs recorded. Call it bound to the event's tenant."""
    if current_tenant_id() != facts.tenant_id:
        raise RuntimeError("evaluate() must run bound to the event's tenant")
    if len(_chain.get()) >= MAX_DEPTH:
        log.warning("workflow: %s not evaluated, rules nested %d deep", facts.event, MAX_DEPTH)
        return []
    return [_run_rule(rule, facts) for rule in _enabled_rules(facts.event, only)]


def _initial_tickets(facts: Facts) -> list[int]:
    """Return the open tickets an event is about: its own ticket, or those of its dedup key."""
    if facts.ticket_id is not None:
        return [facts.ticket_id]
    related = _related_prefix(facts)
    if related is None:
        return []
    key, is_prefix = related
    match = (
        Ticket.dedup_key.startswith(key, autoescape=True)
        if is_prefix
        else (Ticket.dedup_key == key)
    )
    stmt = scoped(Ticket, match, Ticket.status.in_(lifecycle.OPEN_STATUSES)).order_by(Ticket.id)
    return list(db.session.scalars(stmt.with_only_columns(Ticket.id)))


def _run_rule(rule: _Rule, facts: Facts) -> int:
    """Evaluate one rule, run its actions if it matches, and record the run."""
    outcome: list[dict[str, Any]] = []
    error: str | None = None
    matched = False
    ticket_id = facts.ticket_id
    chain = _chain.get()
    try:
        failed = mismatch(rule.conditions, facts)
    except (TypeError, ValueError) as exc:  # a hand-made condition of the wrong type
        failed, error = ("conditions", "unreadable"), f"conditions: {exc}"
    if rule.id in chain:
        outcome.append({"result": "not run: this rule's own action caused the event"})
    elif failed is not None:
        outcome.append({"condition": failed[0], "result": failed[1]})
    else:
        matched = True
        ctx = _Context(rule, facts, _initial_tickets(facts))
        token = _chain.set((*chain, rule.id))
        try:
            for action in rule.actions:
                name = action.get("do") if isinstance(action, dict) else None
                if ctx.stop is not None:
                    outcome.append({"do": name, "result": f"not run: {ctx.stop}"})
                    continue
                handler = _HANDLERS.get(name)  # type: ignore[arg-type]
                try:
                    if handler is None:
                        raise RuleError(f"unknown action {name!r}")
                    result = handler(action, ctx)
                except Exception as exc:  # recorded, never raised: the caller must go on
                    db.session.rollback()
                    message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                    if not isinstance(exc, (RuleError, tickets.TicketError)):
                        log.exception("workflow: rule %s action %s failed", rule.id, name)
                    result = f"failed: {message}"
                    error = error or f"{name}: {message}"
                    ctx.stop = "an earlier action failed"
                outcome.append({"do": name, "result": result})
        finally:
            _chain.reset(token)
        ticket_id = ctx.ticket_ids[0] if ctx.ticket_ids else ticket_id
    run = RuleRun(
        tenant_id=facts.tenant_id,
        rule_id=rule.id,
        event=facts.event,
        charger_event_id=facts.charger_event_id,
        csms_event_id=facts.csms_event_id,
        charger_id=facts.charger_id,
        ticket_id=ticket_id,
        matched=matched,
        outcome=outcome,
        error=error,
    )
    db.session.add(run)
    try:
        db.session.commit()
    except Exception:  # e.g. the rule was deleted meanwhile; its run has nowhere to go
        db.session.rollback()
        log.exception("workflow: could not record the run of rule %s", rule.id)
        return 0
    return run.id


# -- actions ----------------------------------------------------------------------------------


def _open_by_key(key: str) -> Ticket | None:
    return db.session.scalars(
        scoped(Ticket, Ticket.dedup_key == key, Ticket.status.in_(lifecycle.OPEN_STATUSES))
    ).first()


def _describe(facts: Facts, rule: _Rule) -> str:
    v = facts.values()
    lines = [f"Opened by the workflow rule “{rule.name}”."]
    if facts.event == "connector_faulted":
        lines.append(
            f"{v['charger']} reported connector {v['connector']} {v['status']} "
            f"({v['error_code']}) at {v['time']}."
        )
    elif facts.event == "charger_offline":
        lines.append(f"{v['charger']} has been offline for {v['minutes']} minutes ({v['time']}).")
    elif facts.event == "firmware_failed":
        lines.append(f"{v['charger']} reported firmware status {v['status']} at {v['time']}.")
    else:
        lines.append(f"{v['charger']} reported {v['status']} at {v['time']}.")
    if facts.info:
        lines.append(f"Info: {facts.info}")
    if facts.vendor_error_code:
        lines.append(f"Vendor error code: {facts.vendor_error_code}")
    if facts.csms_event_id is not None:
        lines.append("Reported by the operator's CSMS.")
    return "\n".join(lines)


def _create_ticket(action: dict[str, Any], ctx: _Context) -> str:
    facts = ctx.facts
    if facts.event not in CHARGER_EVENTS:
        raise RuleError("tickets are opened only for charger events")
    key = dedup_key(facts) or f"{facts.event}:{facts.charger_id or facts.ocpp_id}"
    category = action.get("category") or DEFAULT_CATEGORY[facts.event]
    priority = action.get("priority") or "P2"
    if category not in CATEGORIES or priority not in PRIORITIES:
        raise RuleError(f"unknown category {category!r} or priority {priority!r}")
    existing = _open_by_key(key)
    if existing is None:
        charger = db.session.get(Charger, facts.charger_id) if facts.charger_id else None
        connector = None
        if charger is not None and facts.connector_no:
            connector = db.session.scalars(
                scoped(
                    Connector,
                    Connector.charger_id == charger.id,
                    Connector.connector_no == facts.connector_no,
                )
            ).first()
        title = fill(action.get("title") or DEFAULT_TITLES[facts.event], facts.values())
        new = tickets.NewTicket(
            title=title.strip()[:200] or DEFAULT_TITLES[facts.event],
            category=category,
            priority=priority,
            channel="ocpp-auto",
            description=_describe(facts, ctx.rule),
            charger=charger,
            connector=connector,
            dedup_key=key,
        )
        try:
            ticket = tickets.create(SYSTEM, new)  # type: ignore[arg-type]
        except IntegrityError as exc:
            # Someone opened the same key's ticket since we looked: theirs is the one.
            db.session.rollback()
            if "uq_ticket_open_dedup" not in str(exc.orig):
                raise
            existing = _open_by_key(key)
            if existing is None:
                raise
        else:
            ctx.ticket_ids = [ticket.id]
            return f"opened {_key(ticket)}"
    ctx.ticket_ids = [existing.id]
    ctx.stop = f"{_key(existing)} was already open"
    return f"not opened: {_key(existing)} is open for the same {key.split(':')[0]}"


def _assignee(action: dict[str, Any], facts: Facts) -> tuple[User | None, Vendor | None, str]:
    if action.get("user_id"):
        user = db.session.scalars(scoped(User, User.id == int(action["user_id"]))).first()
        if user is None:
            raise RuleError("the rule's user does not exist")
        return user, None, user.name
    vendor_id = action.get("vendor_id")
    if action.get("to") == "charger_vendor":
        vendor_id = facts.charger_vendor_id
        if vendor_id is None:
            raise RuleError("the charger has no vendor")
    if not vendor_id:
        raise RuleError("the rule names nobody to assign to")
    vendor = db.session.scalars(scoped(Vendor, Vendor.id == int(vendor_id))).first()
    if vendor is None:
        raise RuleError("the rule's vendor does not exist")
    return None, vendor, vendor.name


def _assign(action: dict[str, Any], ctx: _Context) -> str:
    targets = ctx.tickets()
    if not targets:
        return "nothing to do: no open ticket"
    user, vendor, name = _assignee(action, ctx.facts)
    done = []
    for ticket in targets:
        if ticket.status in lifecycle.BY_NAME["assign"].sources:
            tickets.transition(ticket, SYSTEM, "assign", None, {"user": user, "vendor": vendor})  # type: ignore[arg-type]
        else:
            tickets.assign(ticket, SYSTEM, None, user, vendor)  # type: ignore[arg-type]
        done.append(_key(ticket))
    return f"assigned {', '.join(done)} to {name}"


def _set_priority(action: dict[str, Any], ctx: _Context) -> str:
    priority = action.get("priority")
    if priority not in PRIORITIES:
        raise RuleError(f"unknown priority {priority!r}")
    targets = ctx.tickets()
    if not targets:
        return "nothing to do: no open ticket"
    done = []
    for ticket in targets:
        old = ticket.priority
        tickets.update_fields(ticket, SYSTEM, None, {"priority": priority})  # type: ignore[arg-type]
        done.append(f"{_key(ticket)} {old} → {priority}" if old != priority else _key(ticket))
    return "priority " + ", ".join(done)


def _add_worklog(action: dict[str, Any], ctx: _Context) -> str:
    targets = ctx.tickets()
    if not targets:
        return "nothing to do: no open ticket"
    template = action.get("body") or DEFAULT_WORKLOGS.get(
        ctx.facts.event, "Workflow rule “{rule}”: {event} at {time}"
    )
    values = ctx.facts.values() | {"rule": ctx.rule.name, "event": ctx.facts.event}
    body = fill(template, values)
    for ticket in targets:
        add_worklog(ticket, SYSTEM, body, 0, bool(action.get("customer_visible")))  # type: ignore[arg-type]
    return f"worklog on {', '.join(_key(t) for t in targets)}: {body[:120]}"


def _resolve_ticket(action: dict[str, Any], ctx: _Context) -> str:
    """Close the loop: resolve what was worked on; cancel what nobody had started."""
    targets = ctx.tickets()
    if not targets:
        return "nothing to do: no open ticket"
    values = ctx.facts.values()
    note = (
        fill(
            action.get("note") or "Resolved automatically: {charger} reported {status} at {time}.",
            values,
        ).strip()[:5000]
        or "Resolved automatically."
    )
    done = []
    for ticket in targets:
        # The lifecycle resolves only tickets in progress: walk there by its own moves.
        if ticket.status in ("new", "assigned"):
            tickets.transition(ticket, SYSTEM, "cancel", None, {"cancel_reason": note})  # type: ignore[arg-type]
            done.append(f"cancelled {_key(ticket)} (work had not started)")
            continue
        if ticket.status == "on_hold":
            tickets.transition(ticket, SYSTEM, "resume", None)  # type: ignore[arg-type]
        elif ticket.status == "reopened":
            tickets.transition(ticket, SYSTEM, "start", None)  # type: ignore[arg-type]
        tickets.transition(ticket, SYSTEM, "resolve", None, {"resolution_note": note})  # type: ignore[arg-type]
        done.append(f"resolved {_key(ticket)}")
    return "; ".join(done)


def _notify(action: dict[str, Any], ctx: _Context) -> str:
    # Recorded only: sending (the notification outbox) comes with the notifications issue.
    to = action.get("to") or "managers"
    about = ", ".join(_key(t) for t in ctx.tickets()) or ctx.facts.ocpp_id or ctx.facts.event
    return f"recorded, not sent: notify {NOTIFY_TARGETS.get(to, to)} about {about}"


_HANDLERS: dict[str, Callable[[dict[str, Any], _Context], str]] = {
    "create_ticket": _create_ticket,
    "assign": _assign,
    "set_priority": _set_priority,
    "add_worklog": _add_worklog,
    "resolve_ticket": _resolve_ticket,
    "notify": _notify,
}


# -- facts from events ------------------------------------------------------------------------


def _with_charger(facts: Facts) -> Facts:
    """Fill in the charger's OCPP id, site, model and vendor."""
    if facts.charger_id is None:
        return facts
    row = db.session.execute(
        select(Charger.ocpp_id, Charger.site_id, Charger.model, Charger.vendor_id, Site.name)
        .join(Site, Site.id == Charger.site_id)
        .where(Charger.id == facts.charger_id, Charger.tenant_id == facts.tenant_id)
    ).first()
    if row is not None:
        facts.ocpp_id, facts.site_id, facts.model, facts.charger_vendor_id, facts.site_name = row
    return facts


def is_fault(status: str | None, error_code: str | None) -> bool:
    """Return whether a connector status reports a fault."""
    return status == "Faulted" or bool(error_code and error_code != "NoError")


_PREVIOUS_STATUS_SQL = text(
    "SELECT status, error_code FROM charger_event "
    "WHERE charger_id = :charger AND connector_no = :no AND kind = 'status' "
    "AND id < :id ORDER BY at DESC, id DESC LIMIT 1"
)


def facts_for_charger_event(row: dict[str, Any]) -> Facts | None:
    """Return the rule event a charger_event row is (None when it is none)."""
    kind, status, code = row["kind"], row.get("status"), row.get("error_code")
    base = {
        "tenant_id": row["tenant_id"],
        "at": row["at"],
        "charger_id": row["charger_id"],
        "connector_no": row.get("connector_no"),
        "status": status,
        "error_code": code,
        "info": row.get("info"),
        "vendor_error_code": row.get("vendor_error_code"),
        "charger_event_id": row["id"],
    }
    if kind == "firmware":
        if status not in FIRMWARE_FAILURES:
            return None
        return _with_charger(Facts("firmware_failed", **base))
    if kind != "status":
        return None
    if is_fault(status, code):
        return _with_charger(Facts("connector_faulted", **base))
    previous = db.session.execute(
        _PREVIOUS_STATUS_SQL,
        {"charger": row["charger_id"], "no": row.get("connector_no"), "id": row["id"]},
    ).first()
    if previous is None or not is_fault(previous.status, previous.error_code):
        return None
    # Conditions on error codes match the fault that ended.
    base["error_code"] = previous.error_code
    return _with_charger(Facts("connector_recovered", **base))


def _payload(payload: dict[str, Any], *names: str) -> Any:
    """Return the first of `names` the event's body (or its `data` object) carries."""
    data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
    for source in (payload, data):
        for name in names:
            if source.get(name) not in (None, ""):
                return source[name]
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None


# The status before a CSMS-reported one: its own charger_event row (written already handled by
# the CSMS service, see cass.services.csms_events) does not count.
_PREVIOUS_CSMS_STATUS_SQL = text(
    "SELECT status, error_code FROM charger_event "
    "WHERE charger_id = :charger AND connector_no = :no AND kind = 'status' "
    "AND at <= :at AND coalesce(data->>'csms_event_id', '') <> :csms "
    "ORDER BY at DESC, id DESC LIMIT 1"
)


def facts_for_csms_event(row: dict[str, Any]) -> Facts | None:
    """Return the rule event a csms_event row is (None when it is none).

    Kinds (cass.services.csms_events): connector_faulted, connector_recovered, status (a
    fault or a recovery by its status), firmware_status (a failure status), charger_offline
    (only with data.offline_minutes: otherwise an offline spell is a charger_event 'offline'
    that the offline check follows) and charger_online (none).
    """
    kind = row["kind"]
    payload = row.get("payload") if isinstance(row.get("payload"), dict) else {}
    charger_id = row.get("charger_id")
    if charger_id is None and row.get("ocpp_id"):
        charger_id = db.session.scalar(
            select(Charger.id).where(
                Charger.tenant_id == row["tenant_id"], Charger.ocpp_id == row["ocpp_id"]
            )
        )
    status = _payload(payload, "status")
    code = _payload(payload, "error_code", "errorCode")
    facts = Facts(
        "",
        tenant_id=row["tenant_id"],
        at=row.get("occurred_at") or row.get("received_at") or datetime.now(UTC),
        charger_id=charger_id,
        ocpp_id=row.get("ocpp_id"),
        status=str(status) if status is not None else None,
        error_code=str(code) if code is not None else None,
        info=_payload(payload, "info"),
        vendor_error_code=_payload(payload, "vendor_error_code", "vendorErrorCode"),
        csms_event_id=row["id"],
    )
    if kind in ("connector_faulted", "connector_recovered", "status"):
        facts.connector_no = _int(_payload(payload, "connector_no", "connectorId")) or 0
    if kind == "connector_faulted" or (kind == "status" and is_fault(facts.status, code)):
        facts.event = "connector_faulted"
        facts.status = facts.status or "Faulted"
        facts.error_code = facts.error_code or "OtherError"
    elif kind in ("connector_recovered", "status"):
        previous = db.session.execute(
            _PREVIOUS_CSMS_STATUS_SQL,
            {
                "charger": charger_id,
                "no": facts.connector_no,
                "at": facts.at,
                "csms": str(row["id"]),
            },
        ).first()
        was_faulted = previous is not None and is_fault(previous.status, previous.error_code)
        if kind == "status" and not was_faulted:
            return None
        facts.event = "connector_recovered"
        facts.status = facts.status or "Available"
        facts.error_code = previous.error_code if was_faulted else facts.error_code
    elif kind == "firmware_status" and facts.status in FIRMWARE_FAILURES:
        facts.event = "firmware_failed"
    elif kind == "charger_offline" and _int(_payload(payload, "offline_minutes")) is not None:
        facts.event = "charger_offline"
        facts.minutes = _int(_payload(payload, "offline_minutes"))
    else:
        return None
    return _with_charger(facts)


# -- claiming events --------------------------------------------------------------------------

# The next unhandled charger event whose charger has no earlier one pending (so a charger's
# events are evaluated in order: the fault before its recovery), that nobody else holds.
_CLAIM_CHARGER_EVENT = text(
    """
SELECT e.id, e.tenant_id, e.charger_id, e.connector_no, e.at, e.kind, e.status, e.error_code,
       e.info, e.vendor_error_code
FROM charger_event e
WHERE e.handled_at IS NULL AND e.kind IN ('status', 'online', 'firmware')
  AND NOT EXISTS (
    SELECT 1 FROM charger_event p
    WHERE p.handled_at IS NULL AND p.kind IN ('status', 'online', 'firmware')
      AND p.charger_id = e.charger_id AND p.id < e.id)
ORDER BY e.id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED
"""
)
_MARK_CHARGER_EVENT = text("UPDATE charger_event SET handled_at = now() WHERE id = :id")
# Back online: the offline spell is over, and no offline rule will look at it any more.
_END_OFFLINE_SPELL = text(
    "UPDATE charger_event SET handled_at = now() "
    "WHERE charger_id = :charger AND kind = 'offline' AND handled_at IS NULL AND id < :id"
)
_CSMS_COLUMNS = "e.id, e.tenant_id, e.kind, e.ocpp_id, e.charger_id, e.occurred_at, e.received_at, "
_CLAIM_CSMS_EVENT = text(
    f"""
SELECT {_CSMS_COLUMNS} e.payload
FROM csms_event e
WHERE e.handled_at IS NULL
  AND NOT EXISTS (
    SELECT 1 FROM csms_event p
    WHERE p.handled_at IS NULL AND p.tenant_id = e.tenant_id
      AND p.ocpp_id IS NOT DISTINCT FROM e.ocpp_id AND p.id < e.id)
ORDER BY e.id
LIMIT 1
FOR UPDATE OF e SKIP LOCKED
"""  # noqa: S608 (constant text)
)
_CLAIM_CSMS_EVENT_BY_ID = text(
    f"SELECT {_CSMS_COLUMNS} e.payload FROM csms_event e "  # noqa: S608 (constant text)
    "WHERE e.id = :id AND e.handled_at IS NULL FOR UPDATE SKIP LOCKED"
)
_MARK_CSMS_EVENT = text("UPDATE csms_event SET handled_at = now() WHERE id = :id")


@contextmanager
def _bound_to(tenant_id: int) -> Iterator[None]:
    """Run the block bound to `tenant_id`: as it is when already so bound, else in its context."""
    if current_tenant_id() == tenant_id and not g.get("db_system"):
        yield
    else:
        with tenant_context(tenant_id):
            yield


def _feed(make_facts: Callable[[dict[str, Any]], Facts | None], row: dict[str, Any]) -> list[int]:
    with _bound_to(row["tenant_id"]):
        facts = make_facts(row)
        return evaluate(facts) if facts is not None else []


def process_next_charger_event() -> bool:
    """Claim one unhandled charger event, feed it to the rules and mark it handled; return
    whether there was one. Several workers may run this at once: each event is taken once."""
    # The claim's own connection (the owning role) holds the row lock while the rules run in
    # the session, whose actions commit as they go; the event is marked in the claim's commit.
    with db.engine.connect() as claim:
        row = claim.execute(_CLAIM_CHARGER_EVENT).mappings().first()
        if row is None:
            return False
        try:
            if row["kind"] == "online":
                claim.execute(_END_OFFLINE_SPELL, {"charger": row["charger_id"], "id": row["id"]})
            else:
                _feed(facts_for_charger_event, dict(row))
        except OperationalError:
            raise  # the database is in trouble: the event stays unhandled for the next try
        except Exception:
            # A poison event must not block the queue; what failed is in the log.
            log.exception("workflow: charger event %s failed; marked handled", row["id"])
        claim.execute(_MARK_CHARGER_EVENT, {"id": row["id"]})
        claim.commit()
    return True


def _process_csms(statement: Any, params: dict[str, Any]) -> list[int] | None:
    with db.engine.connect() as claim:
        row = claim.execute(statement, params).mappings().first()
        if row is None:
            return None
        runs: list[int] = []
        try:
            runs = _feed(facts_for_csms_event, dict(row))
        except OperationalError:
            raise
        except Exception:
            log.exception("workflow: CSMS event %s failed; marked handled", row["id"])
        claim.execute(_MARK_CSMS_EVENT, {"id": row["id"]})
        claim.commit()
    return runs


def process_next_csms_event() -> bool:
    """Claim one unhandled CSMS event, feed it to the rules and mark it handled; return whether
    there was one."""
    return _process_csms(_CLAIM_CSMS_EVENT, {}) is not None


def handle_csms_event(event: CsmsEvent | int) -> list[int] | None:
    """Feed a committed CSMS event to its tenant's rules once; return the ids of the rule runs
    recorded, or None when it was already handled or another worker is handling it."""
    event_id = event if isinstance(event, int) else event.id
    if isinstance(event, CsmsEvent) and current_tenant_id() not in (None, event.tenant_id):
        raise RuntimeError("handle_csms_event() got another tenant's event")
    return _process_csms(_CLAIM_CSMS_EVENT_BY_ID, {"id": event_id})


def drain(limit: int = 10_000) -> int:
    """Process unhandled charger and CSMS events until none is left (or `limit`); return how
    many were processed."""
    done = 0
    while done < limit:
        progressed = False
        if process_next_charger_event():
            done, progressed = done + 1, True
        if process_next_csms_event():
            done, progressed = done + 1, True
        if not progressed:
            break
    return done


# -- the offline check ------------------------------------------------------------------------

# Offline spells (unhandled 'offline' events) with something to do: the spell has ended (the
# charger is back), or some enabled charger_offline rule's N minutes have passed without a run
# for this spell, or every such rule has had its turn. The rule_run rows are the per-rule marks;
# handled_at marks the spell done.
# A rule's offline_minutes as a number (0 when absent; a value that is no number counts as 0).
_MINUTES = (
    "CASE WHEN r.conditions->>'offline_minutes' ~ '^[0-9]{1,6}$' "
    "THEN (r.conditions->>'offline_minutes')::int ELSE 0 END"
)
_OFFLINE_SPELLS = text(
    f"""
SELECT e.id, e.tenant_id, e.charger_id, e.at, x.ended, x.due, x.complete,
       floor(extract(epoch FROM now() - e.at) / 60)::int AS minutes
FROM charger_event e
JOIN charger c ON c.id = e.charger_id
CROSS JOIN LATERAL (
  SELECT
    c.online OR EXISTS (
      SELECT 1 FROM charger_event o
      WHERE o.charger_id = e.charger_id AND o.kind = 'online' AND o.at >= e.at AND o.id > e.id
    ) AS ended,
    ARRAY(
      SELECT r.id FROM workflow_rule r
      WHERE r.tenant_id = e.tenant_id AND r.event = 'charger_offline' AND r.enabled
        AND {_MINUTES} * 60
            <= extract(epoch FROM now() - e.at)
        AND NOT EXISTS (
          SELECT 1 FROM rule_run rr WHERE rr.rule_id = r.id AND rr.charger_event_id = e.id)
      ORDER BY r.position, r.id
    ) AS due,
    NOT EXISTS (
      SELECT 1 FROM workflow_rule r
      WHERE r.tenant_id = e.tenant_id AND r.event = 'charger_offline' AND r.enabled
        AND {_MINUTES} * 60
            > extract(epoch FROM now() - e.at)
    ) AS complete
) x
WHERE e.handled_at IS NULL AND e.kind = 'offline'
  AND (x.ended OR x.complete OR cardinality(x.due) > 0)
ORDER BY e.id
LIMIT :limit
FOR UPDATE OF e SKIP LOCKED
"""  # noqa: S608 (constant text)
)


def check_offline(limit: int = 500) -> int:
    """Evaluate charger_offline rules for chargers offline at least their N minutes (each rule
    once per offline spell); return how many spells were looked at. Runs across tenants."""
    looked = 0
    with db.engine.connect() as claim:
        spells = claim.execute(_OFFLINE_SPELLS, {"limit": limit}).mappings().all()
        for spell in spells:
            looked += 1
            if not spell["ended"] and spell["due"]:
                try:
                    with tenant_context(spell["tenant_id"]):
                        facts = _with_charger(
                            Facts(
                                "charger_offline",
                                tenant_id=spell["tenant_id"],
                                at=spell["at"],
                                charger_id=spell["charger_id"],
                                minutes=spell["minutes"],
                                charger_event_id=spell["id"],
                            )
                        )
                        evaluate(facts, only=set(spell["due"]))
                except Exception:
                    log.exception("workflow: offline spell %s failed", spell["id"])
            if spell["ended"] or spell["complete"]:
                claim.execute(_MARK_CHARGER_EVENT, {"id": spell["id"]})
        claim.commit()
    return looked


# -- ticket events ----------------------------------------------------------------------------


def ticket_event(ticket: Ticket, event: str, previous_status: str | None = None) -> None:
    """Run the rules for a ticket event (the ticket services call this after their commit);
    never raises: a rule's failure is recorded in its run, anything else only logged."""
    tenant_id = ticket.tenant_id
    try:
        with _bound_to(tenant_id):
            if not _enabled_rules(event):
                return
            facts = _with_charger(
                Facts(
                    event,
                    tenant_id=tenant_id,
                    at=datetime.now(UTC),
                    charger_id=ticket.charger_id,
                    ticket_id=ticket.id,
                    priority=ticket.priority,
                    category=ticket.category,
                    ticket_status=ticket.status,
                    previous_status=previous_status,
                )
            )
            # A ticket without a charger still has its own site.
            facts.site_id = ticket.site_id if ticket.site_id is not None else facts.site_id
            evaluate(facts)
    except Exception:
        db.session.rollback()
        log.exception("workflow: rules for %s of ticket %s failed", event, ticket.id)
