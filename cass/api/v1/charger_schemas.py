"""The API's charger shapes: the list's filters and rows, and one charger with its live state."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from cass.api.v1.inputs import cursor, text
from cass.api.v1.schemas import ID, CursorArgs, RefSchema
from cass.services.charger_list import CONNECTOR_STATUSES, MAX_Q, MAX_TEXT


class ChargerListArgs(CursorArgs):
    """The list's filters, as on /chargers; `after` is the last OCPP id of the previous page."""

    after = cursor()
    q = text(
        MAX_Q,
        metadata={"description": "Part of the OCPP id, serial, asset tag, site name or address"},
    )
    site = fields.Integer(validate=ID, metadata={"description": "Site id"})
    online = fields.String(validate=validate.OneOf(["yes", "no"]))
    connector = fields.String(
        validate=validate.OneOf(CONNECTOR_STATUSES),
        metadata={"description": "Some connector is in this status now"},
    )
    faulted = fields.Boolean(metadata={"description": "Some connector is Faulted now"})
    model = text(MAX_TEXT, 1)
    firmware = text(MAX_TEXT, 1)
    warranty = fields.String(validate=validate.OneOf(["expired", "active"]))


class ConnectorRowSchema(ma.Schema):
    """A connector as the list shows it."""

    connector_no = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"example": "Available"})
    error_code = fields.String(required=True, allow_none=True, metadata={"example": "NoError"})


class ChargerRowSchema(ma.Schema):
    """A charger as the list shows it."""

    id = fields.Integer(required=True)
    ocpp_id = fields.String(required=True, metadata={"example": "DEMO-CP-0001"})
    manufacturer = fields.String(required=True, allow_none=True)
    model = fields.String(required=True, allow_none=True)
    serial = fields.String(required=True, allow_none=True)
    asset_tag = fields.String(required=True, allow_none=True)
    firmware = fields.String(required=True, allow_none=True)
    online = fields.Boolean(required=True)
    last_seen = fields.DateTime(required=True, allow_none=True)
    warranty_end = fields.Date(required=True, allow_none=True)
    registration = fields.String(
        required=True, metadata={"description": "accepted, pending or rejected"}
    )
    site = fields.Nested(RefSchema, required=True)
    connectors = fields.List(fields.Nested(ConnectorRowSchema), required=True)
    faulted = fields.Boolean(required=True, metadata={"description": "A connector is Faulted"})
    open_tickets = fields.Integer(
        required=True, metadata={"description": "Open tickets on it that the caller may see"}
    )


class ChargerPageSchema(ma.Schema):
    """One page of chargers in OCPP-id order and the cursor of the next (null on the last)."""

    items = fields.List(fields.Nested(ChargerRowSchema), required=True)
    next_after = fields.String(required=True, allow_none=True)


class SiteSchema(ma.Schema):
    """The charger's site, with its position and contact."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    address = fields.String(required=True, allow_none=True)
    lat = fields.Float(required=True, allow_none=True)
    lon = fields.Float(required=True, allow_none=True)
    contact_name = fields.String(required=True, allow_none=True)
    contact_phone = fields.String(required=True, allow_none=True)


class ConnectorStateSchema(ma.Schema):
    """A connector now; number 0 is the charger as a whole (its last charger-wide status)."""

    connector_no = fields.Integer(required=True)
    status = fields.String(required=True, allow_none=True, metadata={"example": "Charging"})
    error_code = fields.String(required=True, allow_none=True, metadata={"example": "NoError"})
    since = fields.DateTime(
        required=True, allow_none=True, metadata={"description": "When it last changed"}
    )


class FaultSchema(ma.Schema):
    """A fault the charger reported: a Faulted status or an error code."""

    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    kind = fields.String(required=True)
    connector_no = fields.Integer(required=True, allow_none=True)
    status = fields.String(required=True, allow_none=True)
    error_code = fields.String(required=True, allow_none=True)
    info = fields.String(required=True, allow_none=True)
    vendor_error_code = fields.String(required=True, allow_none=True)


class ChargerTicketSchema(ma.Schema):
    """One of the charger's tickets that the caller may see."""

    key = fields.String(required=True, metadata={"example": "DEMO-1042"})
    title = fields.String(required=True)
    status = fields.String(required=True)
    priority = fields.String(required=True)
    updated_at = fields.DateTime(required=True)


class ChargerSchema(ma.Schema):
    """A charger: boot and asset data, site, presence, connectors' live states, recent faults
    and its latest tickets."""

    id = fields.Integer(required=True)
    ocpp_id = fields.String(required=True, metadata={"example": "DEMO-CP-0001"})
    manufacturer = fields.String(required=True, allow_none=True)
    model = fields.String(required=True, allow_none=True)
    serial = fields.String(required=True, allow_none=True)
    asset_tag = fields.String(required=True, allow_none=True)
    firmware = fields.String(required=True, allow_none=True)
    protocol = fields.String(
        required=True, allow_none=True, metadata={"description": "ocpp1.6 or ocpp2.0.1"}
    )
    install_date = fields.Date(required=True, allow_none=True)
    warranty_end = fields.Date(required=True, allow_none=True)
    registration = fields.String(required=True)
    online = fields.Boolean(required=True)
    last_seen = fields.DateTime(required=True, allow_none=True)
    site = fields.Nested(SiteSchema, required=True)
    vendor = fields.Nested(
        RefSchema,
        required=True,
        allow_none=True,
        metadata={"description": "The vendor servicing it"},
    )
    connectors = fields.List(fields.Nested(ConnectorStateSchema), required=True)
    recent_faults = fields.List(
        fields.Nested(FaultSchema),
        required=True,
        metadata={"description": "The newest faults, newest first (at most 25)"},
    )
    tickets = fields.List(
        fields.Nested(ChargerTicketSchema),
        required=True,
        metadata={"description": "The latest tickets on it, last updated first (at most 10)"},
    )
