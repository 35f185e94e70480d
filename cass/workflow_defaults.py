"""The workflow rules every tenant starts with (admins edit them afterwards).

Plain data, so the tenant service and the migration that introduced rules seed the same ones.
"""

from __future__ import annotations

from typing import Any

DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "A connector fault opens a ticket",
        "event": "connector_faulted",
        "conditions": {},
        "actions": [{"do": "create_ticket", "category": "hardware", "priority": "P2"}],
    },
    {
        "name": "Recovery is noted on the fault's ticket",
        "event": "connector_recovered",
        "conditions": {},
        # Add {"do": "resolve_ticket"} to close the loop without a person.
        "actions": [{"do": "add_worklog"}],
    },
    {
        "name": "A charger offline for 15 minutes opens a ticket",
        "event": "charger_offline",
        "conditions": {"offline_minutes": 15},
        "actions": [{"do": "create_ticket", "category": "connectivity", "priority": "P2"}],
    },
    {
        "name": "A failed firmware update opens a ticket",
        "event": "firmware_failed",
        "conditions": {},
        "actions": [{"do": "create_ticket", "category": "firmware", "priority": "P3"}],
    },
]
