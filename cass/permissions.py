"""Who may do what: one table of data (action -> roles), enforced by one decorator."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import abort
from flask_login import current_user, login_required

F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = frozenset({"admin", "as_manager", "call_center", "as_engineer", "vendor", "viewer"})
STAFF = ALL_ROLES - {"vendor"}

# The single source of truth for role rules; the access-matrix test reads it too.
PERMISSIONS: dict[str, frozenset[str]] = {
    "home.view": ALL_ROLES,
    "account.change_password": ALL_ROLES,
    # A secret iCalendar URL of one's own site visits (/account/calendar).
    "visits.feed": frozenset({"admin", "as_manager", "as_engineer", "vendor"}),
    "users.view": frozenset({"admin"}),
    "users.manage": frozenset({"admin"}),
    "vendors.view": frozenset({"admin", "as_manager"}),
    "vendors.manage": frozenset({"admin"}),
    "tickets.view": ALL_ROLES,
    # "My tickets": for the people who get tickets assigned (a navigation entry, no route).
    "tickets.work": frozenset({"admin", "as_manager", "as_engineer"}),
    "tickets.create": frozenset({"admin", "as_manager", "call_center", "as_engineer"}),
    "tickets.edit": ALL_ROLES - {"viewer"},
    "tickets.assign": frozenset({"admin", "as_manager"}),
    "tickets.transition": ALL_ROLES - {"viewer"},
    "tickets.worklog": ALL_ROLES - {"viewer"},
    "tickets.attach": ALL_ROLES - {"viewer"},
    "tickets.bulk": frozenset({"admin", "as_manager"}),
    # Downloads of whole lists and reports (CSV, PDF): managers and admins (issue 7).
    "tickets.export": frozenset({"admin", "as_manager"}),
    # Site visits (issue 8): everyone sees visits (a vendor's people only their vendor's), the
    # dispatchers book and move them, the engineer or vendor on the visit takes its steps.
    "visits.view": ALL_ROLES,
    "visits.book": frozenset({"admin", "as_manager"}),
    "visits.work": frozenset({"admin", "as_manager", "as_engineer", "vendor"}),
    "views.save": ALL_ROLES,
    "views.share": frozenset({"admin", "as_manager"}),
    "audit.view": frozenset({"admin"}),
    # Workflow rules (/admin/rules) and the record of every evaluation (/admin/rules/runs).
    "rules.view": frozenset({"admin"}),
    "rules.manage": frozenset({"admin"}),
    # Vendors see only the chargers they service or have tickets on (cass.services.charger_list).
    "chargers.view": ALL_ROLES,
    "chargers.command": frozenset({"admin", "as_manager", "as_engineer"}),
    # The OCPP message log as a file (CSV, JSON Lines) for a support case with a manufacturer.
    # Not a list report (tickets.export), but evidence for a charger: besides managers and
    # admins, the engineers and the vendors' people who work the charger and raise the case.
    # They see the same frames on the charger page already; vendors only of the chargers they
    # may see (404 otherwise), and no site-wide file (that needs sites.view too).
    "messages.export": frozenset({"admin", "as_manager", "as_engineer", "vendor"}),
    # Sites (/sites): everyone on the desk reads addresses and contacts; admins change them.
    "sites.view": STAFF,
    "sites.manage": frozenset({"admin"}),
    # The charger registry (/admin/chargers): asset data, vendor, key, registration, CSV.
    "assets.view": frozenset({"admin", "as_manager"}),
    "assets.manage": frozenset({"admin"}),
    # Charging sessions (/sessions): id tags, energy, duration and cost; its CSV, like every
    # download of a whole list, for managers and admins (issue 7).
    "sessions.view": STAFF,
    "sessions.export": frozenset({"admin", "as_manager"}),
    # Tariffs per site (/admin/tariffs): the desk reads prices; admins set them.
    "tariffs.view": STAFF,
    "tariffs.manage": frozenset({"admin"}),
    # SLA calendars and policies (/admin/sla): managers read the promises; admins set them.
    "sla.view": frozenset({"admin", "as_manager"}),
    "sla.manage": frozenset({"admin"}),
    # The scheduler's job runs (/admin/jobs).
    "jobs.view": frozenset({"admin"}),
    # Reports and the dashboard's figures (/reports); their CSV and PDF downloads, and the
    # scheduled exports that write those files on a timetable (/reports/schedules, /reports/files).
    "reports.view": frozenset({"admin", "as_manager", "viewer"}),
    "reports.export": frozenset({"admin", "as_manager"}),
    "reports.schedule": frozenset({"admin", "as_manager"}),
    # The secret that signs events from the tenant's other CSMS (/admin/csms).
    "csms.manage": frozenset({"admin"}),
    # Personal API tokens (/account/api-tokens): anyone signed in makes their own, since a token
    # never does more than its user's role; admins revoke anyone's (/admin/api-tokens).
    "api_tokens.own": ALL_ROLES,
    "api_tokens.manage": frozenset({"admin"}),
    # Outbound webhooks (/admin/webhooks): endpoints, their secrets, test events, delivery log.
    "webhooks.manage": frozenset({"admin"}),
}


def can(role: str | None, action: str) -> bool:
    """Return whether `role` may perform `action`."""
    return role is not None and role in PERMISSIONS[action]


def requires(action: str) -> Callable[[F], F]:
    """Let only signed-in users whose role may perform `action` into the view (else 403)."""
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}")

    def decorator(view: F) -> F:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not can(current_user.role, action):
                abort(403)
            return view(*args, **kwargs)

        wrapped.required_action = action  # type: ignore[attr-defined]
        return wrapped  # type: ignore[return-value]

    return decorator
