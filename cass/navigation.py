"""Navigation by role, offered to every template."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, has_request_context, request, url_for
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
    ("My visits", "visits.day", {}, "visits.work"),
    ("Dispatch", "visits.week", {}, "visits.book"),
    ("Chargers", "chargers.index", {}, "chargers.view"),
    ("Sessions", "sessions.index", {}, "sessions.view"),
    ("Reports", "reports.index", {}, "reports.view"),
    ("Users", "admin.users", {}, "users.view"),
    ("Vendors", "admin.vendors", {}, "vendors.view"),
    ("Sites", "sites.index", {}, "sites.view"),
    ("Charger registry", "charger_admin.index", {}, "assets.view"),
    ("Tariffs", "tariffs.index", {}, "tariffs.view"),
    ("CSMS", "csms_admin.index", {}, "csms.manage"),
    ("API tokens", "api_tokens.admin_index", {}, "api_tokens.manage"),
    ("Webhooks", "webhooks.index", {}, "webhooks.manage"),
    ("Rules", "rules.index", {}, "rules.view"),
    ("SLA", "sla.index", {}, "sla.view"),
    ("Jobs", "jobs.index", {}, "jobs.view"),
    ("Audit", "admin.audit", {}, "audit.view"),
]
EXTENSION_KEY = "cass_fixed_urls"


def fixed_url(endpoint: str, **values: str) -> str:
    """Return url_for(endpoint, **values), made once per app and mount point.

    For the links every page carries (navigation, stylesheet, scripts): they depend on the
    endpoint, these constant values and where the app is mounted (SCRIPT_NAME), nothing else;
    a page has a dozen and a half of them.
    """
    if not has_request_context():
        return url_for(endpoint, **values)
    urls = current_app.extensions.setdefault(EXTENSION_KEY, {})
    key = (request.script_root, endpoint, *sorted(values.items()))
    url = urls.get(key)
    if url is None:
        url = urls[key] = url_for(endpoint, **values)
    return url


def nav_items() -> dict[str, Any]:
    """Return the navigation of the signed-in user's role as `nav`: (label, endpoint, query
    parameters, URL) of each entry the role may use."""
    role = current_user.role if current_user.is_authenticated else None
    return {
        "nav": [
            (label, ep, params, fixed_url(ep, **params))
            for label, ep, params, action in NAV
            if can(role, action)
        ]
    }


def init_navigation(app: Flask) -> None:
    """Offer `nav_items()`, `can`, `fixed_url` and role labels to templates."""
    app.jinja_env.globals["fixed_url"] = fixed_url
    app.jinja_env.globals["nav_items"] = nav_items

    @app.context_processor
    def _nav() -> dict[str, Any]:
        role = current_user.role if current_user.is_authenticated else None
        return {
            "can": lambda action: can(role, action),
            "role_labels": ROLE_LABELS,
            "status_labels": STATUS_LABELS,
            "categories": CATEGORIES,
            "channels": CHANNELS,
            "priorities": PRIORITIES,
        }
