"""Remote-operation forms: one per OCPP command, each building its payload.

The forms check what a person can get wrong in a form (a missing id tag, a bad URL, a number
out of range); charger_commands.validate_command then checks the payload against the OCPP
schema of the charger's protocol, so nothing the bridge could not send is queued. Every form
carries `confirmed`: the first valid POST shows what is about to be sent, the second sends it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask_wtf import FlaskForm
from wtforms import (
    DateTimeLocalField,
    Field,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    URLField,
)
from wtforms.validators import URL, DataRequired, Length, NumberRange, Optional, ValidationError

TIME_FORMAT = "%Y-%m-%dT%H:%M"
# Where chargers fetch firmware and send diagnostics: OCPP leaves it to the charger; these are
# the schemes chargers commonly take.
URL_SCHEMES = ("http", "https", "ftp", "ftps", "sftp")
TRIGGERS_16 = (
    "StatusNotification",
    "Heartbeat",
    "MeterValues",
    "BootNotification",
    "FirmwareStatusNotification",
    "DiagnosticsStatusNotification",
)
TRIGGERS_201 = (
    "StatusNotification",
    "Heartbeat",
    "MeterValues",
    "BootNotification",
    "TransactionEvent",
    "FirmwareStatusNotification",
    "LogStatusNotification",
)
ID_TOKEN_TYPES = ("ISO14443", "ISO15693", "Central", "eMAID", "KeyCode", "Local", "MacAddress")


def _utc(value: datetime | None) -> str | None:
    """Return a datetime-local value (read as UTC) in OCPP's form, 2026-12-01T02:00:00Z."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _int(value: Any) -> int | None:
    """Coerce a select's value to int; empty is None, garbage -1 (refused by its choices)."""
    if value in (None, "", "None"):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


class CommandForm(FlaskForm):
    """A remote operation: its OCPP action, what the page says about it, and its payload."""

    action = ""
    title = ""
    help = ""
    # Operations that interrupt charging or change the charger for good get a red button.
    disruptive = False

    confirmed = HiddenField(default="")

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        """Fill the choices that depend on the charger (its connectors, running sessions)."""

    def payload(self) -> dict[str, Any]:
        """Return the OCPP payload (camelCase), for a validated form."""
        return {}

    def fields_shown(self) -> list[Field]:
        """Return the fields a person fills in (not the token or the confirmation flag)."""
        return [f for f in self if f.name not in ("csrf_token", "confirmed")]

    def summary(self) -> list[tuple[str, str]]:
        """Return (label, value) of each filled-in field, for the confirmation step."""
        out = []
        for f in self.fields_shown():
            value = f.data
            if isinstance(f, SelectField):
                value = dict((str(k), v) for k, v in f.choices).get(str(f.data), f.data)
            if isinstance(value, datetime):
                value = value.strftime("%Y-%m-%d %H:%M UTC")
            if value not in (None, ""):
                out.append((str(f.label.text), str(value)))
        return out


# --- OCPP 1.6 -------------------------------------------------------------------------------


class Reset16(CommandForm):
    action, title = "Reset", "Reset"
    help = "Restart the charger. A hard reset reboots it; running sessions stop."
    disruptive = True
    type = SelectField(
        "Type",
        choices=[("Soft", "Soft: restart the software"), ("Hard", "Hard: reboot the unit")],
        id="cmd-type",
    )

    def payload(self) -> dict[str, Any]:
        return {"type": self.type.data}


class UnlockConnector16(CommandForm):
    action, title = "UnlockConnector", "Unlock connector"
    help = "Release a cable stuck in the socket; a session on it stops."
    disruptive = True
    connectorId = SelectField("Connector", coerce=_int, id="cmd-connector")

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        self.connectorId.choices = [(n, f"Connector {n}") for n in connectors]

    def payload(self) -> dict[str, Any]:
        return {"connectorId": self.connectorId.data}


class ChangeAvailability16(CommandForm):
    action, title = "ChangeAvailability", "Change availability"
    help = "Take the charger or one connector out of service (Inoperative), or back in."
    connectorId = SelectField("Connector", coerce=_int, id="cmd-connector")
    type = SelectField(
        "Availability",
        choices=[("Inoperative", "Inoperative: out of service"), ("Operative", "Operative")],
        id="cmd-type",
    )

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        self.connectorId.choices = [(0, "The whole charger")] + [
            (n, f"Connector {n}") for n in connectors
        ]

    def payload(self) -> dict[str, Any]:
        return {"connectorId": self.connectorId.data, "type": self.type.data}


class RemoteStart16(CommandForm):
    action, title = "RemoteStartTransaction", "Remote start"
    help = "Start a session for a driver's id tag, e.g. when their card is not read."
    idTag = StringField("Id tag", validators=[DataRequired(), Length(max=20)], id="cmd-id-tag")
    connectorId = SelectField("Connector", coerce=_int, validators=[Optional()], id="cmd-connector")

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        self.connectorId.choices = [(None, "Any free connector")] + [
            (n, f"Connector {n}") for n in connectors
        ]

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"idTag": self.idTag.data.strip()}
        if self.connectorId.data:
            out["connectorId"] = self.connectorId.data
        return out


class RemoteStop16(CommandForm):
    action, title = "RemoteStopTransaction", "Remote stop"
    help = "Stop a running session by its transaction id."
    disruptive = True
    transactionId = IntegerField(
        "Transaction id",
        validators=[DataRequired(), NumberRange(min=1, max=2**31 - 1)],
        id="cmd-transaction",
    )

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        if self.transactionId.data is None and not self.is_submitted() and open_sessions:
            self.transactionId.data = open_sessions[0]

    def payload(self) -> dict[str, Any]:
        return {"transactionId": self.transactionId.data}


class GetConfiguration16(CommandForm):
    action, title = "GetConfiguration", "Get configuration"
    help = "Read configuration keys; leave the keys empty to read them all."
    keys = StringField(
        "Keys (comma-separated)", validators=[Optional(), Length(max=2000)], id="cmd-keys"
    )

    def key_list(self) -> list[str]:
        """Return the keys asked for, in order, without blanks or repeats."""
        seen: list[str] = []
        for part in (self.keys.data or "").split(","):
            key = part.strip()
            if key and key not in seen:
                seen.append(key)
        return seen

    def payload(self) -> dict[str, Any]:
        keys = self.key_list()
        return {"key": keys} if keys else {}


class ChangeConfiguration16(CommandForm):
    action, title = "ChangeConfiguration", "Change configuration"
    help = "Set one configuration key; some take effect only after a reset."
    key = StringField("Key", validators=[DataRequired(), Length(max=50)], id="cmd-key")
    value = StringField("Value", validators=[DataRequired(), Length(max=500)], id="cmd-value")

    def payload(self) -> dict[str, Any]:
        return {"key": self.key.data.strip(), "value": self.value.data}


class TriggerMessage16(CommandForm):
    action, title = "TriggerMessage", "Trigger a message"
    help = "Ask the charger to send a message now, e.g. its status."
    requestedMessage = SelectField(
        "Message", choices=[(m, m) for m in TRIGGERS_16], id="cmd-message"
    )
    connectorId = SelectField("Connector", coerce=_int, validators=[Optional()], id="cmd-connector")

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        self.connectorId.choices = [(None, "Not about a connector")] + [
            (n, f"Connector {n}") for n in connectors
        ]

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requestedMessage": self.requestedMessage.data}
        if self.connectorId.data:
            out["connectorId"] = self.connectorId.data
        return out


def _now_minute() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0)


class UpdateFirmware16(CommandForm):
    action, title = "UpdateFirmware", "Update firmware"
    help = "The charger downloads the firmware from the URL from the given time and installs it."
    disruptive = True
    location = URLField(
        "Firmware URL",
        validators=[DataRequired(), URL(require_tld=False, schemes=URL_SCHEMES), Length(max=512)],
        id="cmd-location",
    )
    retrieveDate = DateTimeLocalField(
        "Retrieve from (UTC)", format=TIME_FORMAT, default=_now_minute, id="cmd-retrieve"
    )
    retries = IntegerField(
        "Retries", validators=[Optional(), NumberRange(min=0, max=100)], id="cmd-retries"
    )
    retryInterval = IntegerField(
        "Retry interval (s)",
        validators=[Optional(), NumberRange(min=0, max=86_400)],
        id="cmd-retry-interval",
    )

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "location": self.location.data.strip(),
            "retrieveDate": _utc(self.retrieveDate.data or _now_minute()),
        }
        for name in ("retries", "retryInterval"):
            if getattr(self, name).data is not None:
                out[name] = getattr(self, name).data
        return out


class GetDiagnostics16(CommandForm):
    action, title = "GetDiagnostics", "Get diagnostics"
    help = "The charger uploads a diagnostics file to the URL (e.g. ftp://…)."
    location = URLField(
        "Upload URL",
        validators=[DataRequired(), URL(require_tld=False, schemes=URL_SCHEMES), Length(max=512)],
        id="cmd-location",
    )
    startTime = DateTimeLocalField(
        "From (UTC)", format=TIME_FORMAT, validators=[Optional()], id="cmd-start"
    )
    stopTime = DateTimeLocalField(
        "To (UTC)", format=TIME_FORMAT, validators=[Optional()], id="cmd-stop"
    )
    retries = IntegerField(
        "Retries", validators=[Optional(), NumberRange(min=0, max=100)], id="cmd-retries"
    )
    retryInterval = IntegerField(
        "Retry interval (s)",
        validators=[Optional(), NumberRange(min=0, max=86_400)],
        id="cmd-retry-interval",
    )

    def validate_stopTime(self, field: Field) -> None:
        if field.data and self.startTime.data and field.data <= self.startTime.data:
            raise ValidationError("“To” must be after “From”.")

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"location": self.location.data.strip()}
        for name in ("startTime", "stopTime"):
            if getattr(self, name).data:
                out[name] = _utc(getattr(self, name).data)
        for name in ("retries", "retryInterval"):
            if getattr(self, name).data is not None:
                out[name] = getattr(self, name).data
        return out


class ClearCache16(CommandForm):
    action, title = "ClearCache", "Clear cache"
    help = "Empty the charger's cache of authorized id tags."


# --- OCPP 2.0.1 -----------------------------------------------------------------------------


class Reset201(CommandForm):
    action, title = "Reset", "Reset"
    help = "Restart the charging station, now or once it is idle."
    disruptive = True
    type = SelectField(
        "When",
        choices=[("OnIdle", "When idle"), ("Immediate", "Immediately: sessions stop")],
        id="cmd-type",
    )

    def payload(self) -> dict[str, Any]:
        return {"type": self.type.data}


class RequestStart201(CommandForm):
    action, title = "RequestStartTransaction", "Remote start"
    help = "Start a transaction for a driver's id token."
    idToken = StringField("Id token", validators=[DataRequired(), Length(max=36)], id="cmd-id-tag")
    tokenType = SelectField(
        "Token type", choices=[(t, t) for t in ID_TOKEN_TYPES], id="cmd-token-type"
    )
    evseId = SelectField("EVSE", coerce=_int, validators=[Optional()], id="cmd-connector")

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        self.evseId.choices = [(None, "Any EVSE")] + [(n, f"EVSE {n}") for n in connectors]

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "idToken": {"idToken": self.idToken.data.strip(), "type": self.tokenType.data},
            # Echoed in the charger's TransactionEvent; unique enough per request.
            "remoteStartId": int(datetime.now(UTC).timestamp()) % 2_000_000_000,
        }
        if self.evseId.data:
            out["evseId"] = self.evseId.data
        return out


class RequestStop201(CommandForm):
    action, title = "RequestStopTransaction", "Remote stop"
    help = "Stop a transaction by the id the charging station gave it."
    disruptive = True
    transactionId = StringField(
        "Transaction id", validators=[DataRequired(), Length(max=36)], id="cmd-transaction"
    )

    def payload(self) -> dict[str, Any]:
        return {"transactionId": self.transactionId.data.strip()}


class ChangeAvailability201(CommandForm):
    action, title = "ChangeAvailability", "Change availability"
    help = "Take the station or one EVSE out of service (Inoperative), or back in."
    evse = SelectField("EVSE", coerce=_int, id="cmd-connector")
    operationalStatus = SelectField(
        "Availability",
        choices=[("Inoperative", "Inoperative: out of service"), ("Operative", "Operative")],
        id="cmd-type",
    )

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        self.evse.choices = [(0, "The whole station")] + [(n, f"EVSE {n}") for n in connectors]

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"operationalStatus": self.operationalStatus.data}
        if self.evse.data:
            out["evse"] = {"id": self.evse.data}
        return out


class UnlockConnector201(CommandForm):
    action, title = "UnlockConnector", "Unlock connector"
    help = "Release a cable stuck in an EVSE's connector."
    disruptive = True
    evseId = SelectField("EVSE", coerce=_int, id="cmd-connector")

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        self.evseId.choices = [(n, f"EVSE {n}") for n in connectors]

    def payload(self) -> dict[str, Any]:
        return {"evseId": self.evseId.data, "connectorId": 1}


class TriggerMessage201(CommandForm):
    action, title = "TriggerMessage", "Trigger a message"
    help = "Ask the charging station to send a message now, e.g. its status."
    requestedMessage = SelectField(
        "Message", choices=[(m, m) for m in TRIGGERS_201], id="cmd-message"
    )
    evse = SelectField("EVSE", coerce=_int, validators=[Optional()], id="cmd-connector")

    def prepare(self, connectors: list[int], open_sessions: list[int]) -> None:
        self.evse.choices = [(None, "Not about an EVSE")] + [(n, f"EVSE {n}") for n in connectors]

    def payload(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requestedMessage": self.requestedMessage.data}
        if self.evse.data:
            out["evse"] = {"id": self.evse.data}
        return out


# The forms offered per protocol, in the order the page lists them.
FORMS: dict[str, dict[str, type[CommandForm]]] = {
    "1.6": {
        form.action: form
        for form in (
            Reset16,
            TriggerMessage16,
            UnlockConnector16,
            ChangeAvailability16,
            RemoteStart16,
            RemoteStop16,
            GetConfiguration16,
            ChangeConfiguration16,
            ClearCache16,
            UpdateFirmware16,
            GetDiagnostics16,
        )
    },
    "2.0.1": {
        form.action: form
        for form in (
            Reset201,
            TriggerMessage201,
            UnlockConnector201,
            ChangeAvailability201,
            RequestStart201,
            RequestStop201,
        )
    },
}


class CancelCommandForm(FlaskForm):
    """Withdraw a command not sent yet (the CSRF token only)."""
