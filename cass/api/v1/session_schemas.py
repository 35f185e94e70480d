"""The API's charging-session shapes: the list's filters and a session with energy and cost."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import ValidationError, fields, validate, validates_schema

from cass.api.v1.inputs import cursor, day, text
from cass.api.v1.schemas import ID, CursorArgs
from cass.services.charging_sessions import STATES


class SessionListArgs(CursorArgs):
    """The list's filters, as on /sessions: days are UTC, both ends included."""

    after = cursor()
    site = fields.Integer(validate=ID, metadata={"description": "Site id"})
    charger = text(64, 1, metadata={"description": "OCPP id (any case; no wildcards)"})
    id_tag = text(36, 1, metadata={"description": "The RFID card or app token, exactly"})
    since = day("Started on or after this day (UTC)")
    until = day("Started on or before this day (UTC)")
    state = fields.String(
        validate=validate.OneOf(STATES),
        metadata={"description": "open (still charging) or closed"},
    )

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("since") and data.get("until") and data["until"] < data["since"]:
            raise ValidationError("The end is before the start.", "until")


class SessionSchema(ma.Schema):
    """A charging session (an OCPP transaction) with its energy, duration and cost."""

    id = fields.Integer(required=True, metadata={"description": "The OCPP transaction id"})
    charger = fields.String(required=True, metadata={"description": "OCPP id"})
    connector_no = fields.Integer(required=True)
    site = fields.String(required=True, metadata={"description": "Site name"})
    id_tag = fields.String(required=True, allow_none=True)
    started_at = fields.DateTime(required=True)
    stopped_at = fields.DateTime(
        required=True, allow_none=True, metadata={"description": "Null while charging"}
    )
    stop_reason = fields.String(required=True, allow_none=True)
    duration_s = fields.Integer(required=True, allow_none=True)
    energy_wh = fields.Integer(required=True, allow_none=True)
    energy_kwh = fields.Float(required=True, allow_none=True)
    cost = fields.Float(
        required=True,
        allow_none=True,
        metadata={"description": "In `currency`, from the site's tariff; null when unpriced"},
    )
    currency = fields.String(required=True, allow_none=True)
    tariff = fields.String(required=True, allow_none=True, metadata={"description": "Its name"})


class SessionPageSchema(ma.Schema):
    """One page of sessions, newest first, and the cursor of the next (null on the last)."""

    items = fields.List(fields.Nested(SessionSchema), required=True)
    next_after = fields.String(required=True, allow_none=True)
