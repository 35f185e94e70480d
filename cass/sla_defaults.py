"""The calendars and SLA policies every tenant starts with (admins edit them afterwards).

Plain data and the SQL that seeds it, so the migration that introduced SLAs and the tenant
service seed the same ones: business hours Monday to Friday 08:00-18:00 (the default calendar),
a 24/7 calendar that P1 promises run on, and one policy per priority.
"""

from __future__ import annotations

import json
from typing import Any

OFFICE_HOURS = [[[480, 1080]]] * 5 + [[], []]
DEFAULT_CALENDARS: list[dict[str, Any]] = [
    {"name": "Business hours", "hours": OFFICE_HOURS, "always_open": False, "is_default": True},
    {"name": "24/7", "hours": [[]] * 7, "always_open": True, "is_default": False},
]
MANAGERS = {"percent": 100, "notify_role": "as_manager"}
# (priority, first response, on-site, resolution) in minutes; calendar None = the ticket's own.
_TERMS = [
    ("P1", "24/7", 15, 120, 240),
    ("P2", None, 30, 480, 600),
    ("P3", None, 120, None, 1800),
    ("P4", None, 480, None, 3000),
]
DEFAULT_POLICIES: list[dict[str, Any]] = [
    {
        "name": f"{priority} standard",
        "priority": priority,
        "targets": [
            {"clock": clock, "minutes": minutes, "calendar": cal, "escalations": escalations}
            for clock, minutes, escalations in (
                ("first_response", first, []),
                ("on_site", on_site, []),
                ("resolution", resolution, [MANAGERS]),
                ("vendor", resolution, [MANAGERS]),
            )
            if minutes
        ],
    }
    for priority, cal, first, on_site, resolution in _TERMS
]


# Parameters are cast: psycopg sends them untyped, and one used twice must get one type.
_CALENDAR_SQL = """
INSERT INTO business_calendar (tenant_id, name, timezone, hours, always_open, is_default)
SELECT t.id, CAST(:name AS text), 'UTC', CAST(:hours AS jsonb), CAST(:always_open AS boolean),
       CAST(:is_default AS boolean)
FROM tenant t
WHERE t.id = coalesce(CAST(:tenant AS bigint), t.id)
  AND NOT EXISTS (
      SELECT 1 FROM business_calendar c WHERE c.tenant_id = t.id
      AND (c.name = CAST(:name AS text) OR (CAST(:is_default AS boolean) AND c.is_default)))
"""
_POLICY_SQL = """
INSERT INTO sla_policy (tenant_id, name, priority)
SELECT t.id, CAST(:name AS text), CAST(:priority AS text)
FROM tenant t
WHERE t.id = coalesce(CAST(:tenant AS bigint), t.id)
  AND NOT EXISTS (
      SELECT 1 FROM sla_policy p
      WHERE p.tenant_id = t.id AND p.priority = CAST(:priority AS text))
"""
_TARGET_SQL = """
INSERT INTO sla_target (tenant_id, policy_id, clock, target_minutes, calendar_id, escalations)
SELECT p.tenant_id, p.id, CAST(:clock AS text), CAST(:minutes AS integer),
       (SELECT c.id FROM business_calendar c
        WHERE c.tenant_id = p.tenant_id AND c.name = CAST(:calendar AS text)),
       CAST(:escalations AS jsonb)
FROM sla_policy p
WHERE p.name = CAST(:policy AS text)
  AND p.tenant_id = coalesce(CAST(:tenant AS bigint), p.tenant_id)
  AND NOT EXISTS (
      SELECT 1 FROM sla_target x WHERE x.policy_id = p.id AND x.clock = CAST(:clock AS text))
"""


def seed_statements() -> list[tuple[str, dict[str, Any]]]:
    """Return SQL (with parameters) giving tenant :tenant, or every tenant when NULL, the defaults.

    Each statement skips what a tenant already has, so running them twice adds nothing.
    """
    statements: list[tuple[str, dict[str, Any]]] = [
        (_CALENDAR_SQL, {**cal, "hours": json.dumps(cal["hours"])}) for cal in DEFAULT_CALENDARS
    ]
    for policy in DEFAULT_POLICIES:
        statements.append((_POLICY_SQL, {"name": policy["name"], "priority": policy["priority"]}))
        statements += [
            (
                _TARGET_SQL,
                {
                    "policy": policy["name"],
                    "clock": target["clock"],
                    "minutes": target["minutes"],
                    "calendar": target["calendar"],
                    "escalations": json.dumps(target["escalations"]),
                },
            )
            for target in policy["targets"]
        ]
    return statements
