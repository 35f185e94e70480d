"""Commands to chargers: validate, queue for the bridge, list and cancel.

A command is a charger_command row. The bridge instance holding the charger's socket hears
`cmd:<charger id>` on `cass_bridge` (delivered when the queuing transaction commits), sends the
command and stores the outcome; a charger that is offline gets it when it reconnects, unless it
expired first. Payloads are OCPP's camelCase JSON, checked here against the protocol's schema,
so a command that the bridge could not send is refused before anything is written.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import abort
from jsonschema.exceptions import ValidationError as SchemaError
from jsonschema.exceptions import best_match
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, MessageType, _validate_payload, get_validator
from sqlalchemy import func, text, update

from cass import live
from cass.extensions import db
from cass.models import Charger, ChargerCommand, DiagnosticsRequest, FirmwareJob, User
from cass.tenancy import current_tenant_id, scoped
from ocpp_bridge.vocab import BRIDGE_CHANNEL, COMMANDS_16, COMMANDS_201

DEFAULT_EXPIRY = timedelta(hours=1)
MAX_EXPIRY = timedelta(days=30)
MAX_PAYLOAD_BYTES = 16_000
_NOTIFY_SQL = text("SELECT pg_notify(:channel, :payload)")
_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
}


class CommandError(ValueError):
    """The command cannot be queued; the message is shown to the user (422)."""


def protocol_of(charger: Charger) -> str:
    """Return the OCPP version a charger speaks ("1.6" unless it last connected with 2.0.1)."""
    return "2.0.1" if charger.ocpp_protocol == "ocpp2.0.1" else "1.6"


def allowed_commands(charger: Charger) -> tuple[str, ...]:
    """Return the command names that may be queued for this charger."""
    return COMMANDS_201 if protocol_of(charger) == "2.0.1" else COMMANDS_16


def _own(charger: Charger) -> None:
    """Refuse a charger of another tenant as if it did not exist (RLS would refuse it too)."""
    tenant = current_tenant_id()
    if tenant is None or charger.tenant_id != tenant:
        abort(404)


def _field(path: Any) -> str:
    """Return a payload path as people write it: chargingSchedulePeriod[0].limit."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _readable(action: str, error: SchemaError) -> str:
    """Turn a JSON-schema error into a sentence a service-desk user can act on."""
    where = _field(error.absolute_path)
    name = f'"{where}"' if where else f"The {action} payload"
    check = error.validator
    if check == "required" and isinstance(error.instance, dict):
        missing = [f for f in error.validator_value if f not in error.instance]
        field = _field([*error.absolute_path, missing[0] if missing else "?"])
        return f'{action} needs a value for "{field}".'
    if check == "type":
        expected = error.validator_value
        words = (
            " or ".join(_TYPE_WORDS.get(t, t) for t in expected)
            if isinstance(expected, list)
            else _TYPE_WORDS.get(expected, expected)
        )
        return f"{name} must be {words}."
    if check == "enum":
        return f"{name} must be one of: {', '.join(map(str, error.validator_value))}."
    if check == "maxLength":
        return f"{name} is too long ({error.validator_value} characters at most)."
    if check == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {})
        extra = ", ".join(f'"{k}"' for k in error.instance if k not in known)
        return f"{action} has no field {extra}." if not where else f"{name} has no field {extra}."
    if check in ("minimum", "maximum"):
        word = "at least" if check == "minimum" else "at most"
        return f"{name} must be {word} {error.validator_value}."
    if check == "multipleOf":
        return f"{name} must be a multiple of {error.validator_value}."
    if check in ("minItems", "maxItems"):
        word = "at least" if check == "minItems" else "at most"
        return f"{name} must have {word} {error.validator_value} entries."
    return f"{name}: {error.message}"


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _check_formats(action: str, schema: dict[str, Any], payload: dict[str, Any]) -> None:
    """Check the top-level date-time and URI fields, which the schema validator lets through."""
    for key, spec in schema.get("properties", {}).items():
        value = payload.get(key)
        if not isinstance(value, str):
            continue
        if spec.get("format") == "date-time" and ("T" not in value or _parse_time(value) is None):
            raise CommandError(
                f'"{key}" must be a date and time such as 2026-12-01T08:00:00Z, not "{value}".'
            )
        if spec.get("format") == "uri":
            parts = urlsplit(value)
            if not (parts.scheme and parts.netloc):
                raise CommandError(
                    f'"{key}" must be a full URL such as ftp://files.example.com/fw.bin.'
                )


def validate_command(charger: Charger, action: str, payload: Any) -> dict[str, Any]:
    """Return the payload as plain JSON if `action` may be sent to the charger; else raise."""
    version = protocol_of(charger)
    action = (action or "").strip()
    if action not in COMMANDS_16 + COMMANDS_201:
        raise CommandError(f'"{action}" is not a command CASS can send to chargers.')
    if action not in allowed_commands(charger):
        raise CommandError(f"{action} cannot be sent to an OCPP {version} charger.")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise CommandError(f"The {action} payload must be an object of OCPP fields.")
    try:
        encoded = json.dumps(payload, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CommandError(f"The {action} payload is not plain JSON ({exc}).") from exc
    if len(encoded) > MAX_PAYLOAD_BYTES:
        raise CommandError(f"The {action} payload is too large.")
    payload = json.loads(encoded)
    # The library's own check first: for a few 1.6 actions it parses floats as Decimal and
    # caches that validator, which a plain get_validator() call made first would spoil.
    call = Call(str(uuid.uuid4()), action, copy.deepcopy(payload))
    try:
        _validate_payload(call, version)
    except OCPPError as exc:
        validator = get_validator(MessageType.Call, action, version)
        error = best_match(validator.iter_errors(call.payload))
        cause = (exc.details or {}).get("cause") or exc.description
        raise CommandError(_readable(action, error) if error else str(cause)) from exc
    _check_formats(action, get_validator(MessageType.Call, action, version).schema, payload)
    return payload


def queue_command(
    charger: Charger,
    action: str,
    payload: dict[str, Any] | None,
    *,
    user: User | None = None,
    expires_in: timedelta = DEFAULT_EXPIRY,
) -> ChargerCommand:
    """Queue a command for the charger, wake the bridge that holds it, and commit."""
    _own(charger)
    if charger.registration == "rejected":
        raise CommandError("This charger's registration was rejected; accept it first.")
    if not timedelta(0) < expires_in <= MAX_EXPIRY:
        raise CommandError("A command may wait for its charger for up to 30 days.")
    action = (action or "").strip()
    payload = validate_command(charger, action, payload)
    command = ChargerCommand(
        tenant_id=charger.tenant_id,
        charger_id=charger.id,
        action=action,
        payload=payload,
        status="pending",
        expires_at=datetime.now(UTC) + expires_in,
        created_by_id=user.id if user is not None else None,
    )
    db.session.add(command)
    db.session.flush()
    if action == "UpdateFirmware":
        db.session.add(
            FirmwareJob(
                tenant_id=charger.tenant_id,
                charger_id=charger.id,
                command_id=command.id,
                location=payload["location"],
                retrieve_at=_parse_time(payload["retrieveDate"]),
            )
        )
    elif action == "GetDiagnostics":
        db.session.add(
            DiagnosticsRequest(
                tenant_id=charger.tenant_id,
                charger_id=charger.id,
                command_id=command.id,
                location=payload["location"],
            )
        )
    # Both notifications are delivered at commit, so the bridge never looks before the row
    # is visible.
    db.session.execute(_NOTIFY_SQL, {"channel": BRIDGE_CHANNEL, "payload": f"cmd:{charger.id}"})
    live.notify(db.session, charger.tenant_id, "command", str(command.id))
    db.session.commit()
    return command


def list_commands(charger: Charger, limit: int = 50) -> list[ChargerCommand]:
    """Return the charger's commands, newest first."""
    _own(charger)
    stmt = (
        scoped(ChargerCommand, ChargerCommand.charger_id == charger.id)
        .order_by(ChargerCommand.id.desc())
        .limit(max(1, min(limit, 500)))
    )
    return list(db.session.scalars(stmt))


def cancel_command(command: ChargerCommand, *, user: User | None = None) -> ChargerCommand:
    """Withdraw a command the bridge has not sent yet (it ends 'expired', marked cancelled)."""
    tenant = current_tenant_id()
    if tenant is None or command.tenant_id != tenant:
        abort(404)
    who = f" by {user.email}" if user is not None else ""
    # One conditional UPDATE: if the bridge claimed the command meanwhile, nothing matches.
    cancelled = db.session.execute(
        update(ChargerCommand)
        .where(
            ChargerCommand.id == command.id,
            ChargerCommand.tenant_id == tenant,
            ChargerCommand.status == "pending",
        )
        .values(status="expired", finished_at=func.now(), error=f"cancelled{who}"[:500])
        .returning(ChargerCommand.id)
        .execution_options(synchronize_session=False)
    ).first()
    if cancelled is None:
        db.session.rollback()
        raise CommandError("Only a command that has not been sent yet can be cancelled.")
    for model in (FirmwareJob, DiagnosticsRequest):
        db.session.execute(
            update(model)
            .where(model.tenant_id == tenant, model.command_id == command.id)
            .values(status="cancelled", updated_at=func.now())
            .execution_options(synchronize_session=False)
        )
    live.notify(db.session, tenant, "command", str(command.id))
    db.session.commit()
    db.session.refresh(command)
    return command


def command_by_id(ident: Any) -> ChargerCommand | None:
    """Return the tenant's command with this id, if any."""
    try:
        ident = int(ident)
    except (TypeError, ValueError):
        return None
    return db.session.scalars(scoped(ChargerCommand, ChargerCommand.id == ident)).first()
