"""Navigation by role, offered to every template."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_login import current_user

from cass.lifecycle import STATUS_LABELS
from cass.models.tickets import CATEGORIES, CHANNELS, PRIORITIES
from cass.models.users import ROLE_LABELS
from cass.permissions import can

# (label, endpoint, query parameters, action); an entry shows only to roles allowed the action.
NAV = [
    ("Home", "main.home", {}, "home.view"),
    ("Tickets", "tickets.index", {}, "tickets.view"),
    ("My tickets", "tickets.index", {"assignee": "me"}, "tickets.work"),
    ("Board", "tickets.board", {}, "tickets.view"),
    ("At risk", "at_risk.index", {}, "tickets.view"),
    ("New ticket", "tickets.new", {}, "tickets.create"),
    ("Chargers", "chargers.index", {}, "chargers.view"),
    ("Sessions", "sessions.index", {}, "sessions.view"),
    ("Users", "admin.users", {}, "users.view"),
    ("Vendors", "admin.vendors", {}, "vendors.view"),
    ("Sites", "sites.index", {}, "sites.view"),
    ("Charger registry", "charger_admin.index", {}, "assets.view"),
    ("Tariffs", "tariffs.index", {}, "tariffs.view"),
    ("CSMS", "csms_admin.index", {}, "csms.manage"),
    ("Rules", "rules.index", {}, "rules.view"),
    ("SLA", "sla.index", {}, "sla.view"),
    ("Jobs", "jobs.index", {}, "jobs.view"),
    ("Audit", "admin.audit", {}, "audit.view"),
]


def init_navigation(app: Flask) -> None:
    """Offer `nav`, `can` and role labels to templates."""

    @app.context_processor
    def _nav() -> dict[str, Any]:
        role = current_user.role if current_user.is_authenticated else None
        items = [(label, ep, params) for label, ep, params, action in NAV if can(role, action)]
        return {
            "nav": items,
            "can": lambda action: can(role, action),
            "role_labels": ROLE_LABELS,
            "status_labels": STATUS_LABELS,
            "categories": CATEGORIES,
            "channels": CHANNELS,
            "priorities": PRIORITIES,
        }
