"""Navigation by role, offered to every template."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_login import current_user

from cass.models.users import ROLE_LABELS
from cass.permissions import can

# (label, endpoint, action); an entry shows only to roles allowed the action.
NAV = [
    ("Home", "main.home", "home.view"),
    ("Users", "admin.users", "users.view"),
    ("Vendors", "admin.vendors", "vendors.view"),
]


def init_navigation(app: Flask) -> None:
    """Offer `nav`, `can` and role labels to templates."""

    @app.context_processor
    def _nav() -> dict[str, Any]:
        role = current_user.role if current_user.is_authenticated else None
        items = [(label, endpoint) for label, endpoint, action in NAV if can(role, action)]
        return {"nav": items, "can": lambda action: can(role, action), "role_labels": ROLE_LABELS}
