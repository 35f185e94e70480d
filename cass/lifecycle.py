"""The ticket lifecycle as data: statuses, transitions, who may make them, what they require.

Every other module asks this one; nothing else hard-codes a transition.
"""

from __future__ import annotations

from dataclasses import dataclass

STATUSES = (
    "new",
    "assigned",
    "in_progress",
    "on_hold",
    "resolved",
    "closed",
    "reopened",
    "cancelled",
)
STATUS_LABELS = {
    "new": "New",
    "assigned": "Assigned",
    "in_progress": "In progress",
    "on_hold": "On hold",
    "resolved": "Resolved",
    "closed": "Closed",
    "reopened": "Reopened",
    "cancelled": "Cancelled",
}
OPEN_STATUSES = ("new", "assigned", "in_progress", "on_hold", "reopened")
HOLD_REASONS = {
    "waiting_customer": "Waiting for customer",
    "waiting_parts": "Waiting for parts",
    "waiting_vendor": "Waiting for vendor",
}

MANAGE = frozenset({"admin", "as_manager"})
FIELD = frozenset({"admin", "as_manager", "as_engineer", "vendor"})
DESK = frozenset({"admin", "as_manager", "call_center"})


@dataclass(frozen=True)
class Transition:
    """One allowed move: its name, from which statuses, to which, by whom, needing what."""

    name: str
    label: str
    sources: frozenset[str]
    target: str
    roles: frozenset[str]
    requires: tuple[str, ...] = ()


TRANSITIONS: tuple[Transition, ...] = (
    Transition(
        "assign", "Assign", frozenset({"new", "reopened"}), "assigned", MANAGE, ("assignee",)
    ),
    Transition("start", "Start work", frozenset({"assigned", "reopened"}), "in_progress", FIELD),
    Transition(
        "hold",
        "Put on hold",
        frozenset({"assigned", "in_progress"}),
        "on_hold",
        FIELD,
        ("hold_reason",),
    ),
    Transition("resume", "Resume", frozenset({"on_hold"}), "in_progress", FIELD),
    Transition(
        "resolve", "Resolve", frozenset({"in_progress"}), "resolved", FIELD, ("resolution_note",)
    ),
    Transition("reopen", "Reopen", frozenset({"resolved"}), "reopened", DESK, ("note",)),
    Transition("close", "Close", frozenset({"resolved"}), "closed", DESK),
    Transition(
        "cancel", "Cancel", frozenset({"new", "assigned"}), "cancelled", DESK, ("cancel_reason",)
    ),
)
BY_NAME = {t.name: t for t in TRANSITIONS}


def allowed(status: str, role: str) -> list[Transition]:
    """Return the transitions `role` may make from `status`, in display order."""
    return [t for t in TRANSITIONS if status in t.sources and role in t.roles]


def find(name: str, status: str, role: str) -> Transition | None:
    """Return transition `name` if `role` may make it from `status`, else None."""
    transition = BY_NAME.get(name)
    if transition and status in transition.sources and role in transition.roles:
        return transition
    return None
