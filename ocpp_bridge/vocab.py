"""Words the bridge and the web share: command states, supported commands, event kinds.

A plain module with no imports from Flask or the database, so both processes can use it.
"""

from __future__ import annotations

import re

# charger_command.status: pending -> sent -> one of the final states (or expired while waiting).
COMMAND_STATES = ("pending", "sent", "accepted", "rejected", "failed", "timed_out", "expired")
COMMAND_OPEN_STATES = ("pending", "sent")

# The commands the web may queue, per protocol. Names are OCPP action names.
COMMANDS_16 = (
    "Reset",
    "UnlockConnector",
    "ChangeAvailability",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "GetConfiguration",
    "ChangeConfiguration",
    "ClearCache",
    "TriggerMessage",
    "UpdateFirmware",
    "GetDiagnostics",
    "DataTransfer",
)
COMMANDS_201 = (
    "Reset",
    "RequestStartTransaction",
    "RequestStopTransaction",
    "ChangeAvailability",
    "UnlockConnector",
    "TriggerMessage",
)
PROTOCOLS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}

# charger.registration: how the bridge answers a BootNotification.
REGISTRATIONS = ("accepted", "pending", "rejected")

# charger_event.kind
EVENT_KINDS = (
    "boot",
    "online",
    "offline",
    "status",
    "data_transfer",
    "security",
    "notify_event",
    "firmware",
    "diagnostics",
)

# Charge point ids: OCPP's CiString20/CiString48 identities, with no path or URL syntax.
CHARGE_POINT_ID_RE = re.compile(r"[A-Za-z0-9._:*+@-]{1,64}")

# The notification channel the bridge listens on for commands and ownership changes.
BRIDGE_CHANNEL = "cass_bridge"
