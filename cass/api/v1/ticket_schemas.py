"""The API's ticket shapes: list filters, rows, the whole ticket, and what may be sent."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from cass import lifecycle
from cass.api.v1.inputs import day, text
from cass.api.v1.schemas import ID, ChargerRefSchema, CursorArgs, RefSchema
from cass.models.tickets import CATEGORIES, CHANNELS, PRIORITIES
from cass.services.ticket_queries import MAX_Q, SORTS

API_CHANNELS = [c for c in CHANNELS if c != "ocpp-auto"]


class TicketListArgs(CursorArgs):
    """The list's filters, as on /tickets: repeat status or priority for several."""

    status = fields.List(
        fields.String(validate=validate.OneOf([*lifecycle.STATUSES, "open"])),
        metadata={"description": "Statuses; `open` means every open one."},
    )
    priority = fields.List(fields.String(validate=validate.OneOf(list(PRIORITIES))))
    category = fields.String(validate=validate.OneOf(list(CATEGORIES)))
    channel = fields.String(validate=validate.OneOf(list(CHANNELS)))
    site = fields.Integer(validate=ID, metadata={"description": "Site id"})
    vendor = fields.Integer(validate=ID, metadata={"description": "Assigned vendor id"})
    charger = text(64, 1, metadata={"description": "OCPP id"})
    assignee = fields.String(
        validate=validate.Regexp(r"^(me|none|[1-9][0-9]{0,17})$"),
        metadata={"description": "`me`, `none` or a user id"},
    )
    created_from = day("Created on or after this day (the tenant's zone)")
    created_to = day("Created on or before this day")
    updated_from = day("Updated on or after this day")
    updated_to = day("Updated on or before this day")
    q = text(
        MAX_Q,
        metadata={"description": "Words, a ticket key or number, a charger id, a phone number"},
    )
    sort = fields.String(validate=validate.OneOf(list(SORTS)), load_default="updated")
    dir = fields.String(validate=validate.OneOf(["asc", "desc"]))


class SlaSchema(ma.Schema):
    """One SLA clock of a ticket, as its page shows it."""

    clock = fields.String(required=True, metadata={"description": "response or resolution"})
    label = fields.String(required=True)
    state = fields.String(required=True, metadata={"description": "running, warning, breached…"})
    due_at = fields.DateTime(required=True, allow_none=True)


class _TicketCoreSchema(ma.Schema):
    """What a ticket always shows, in a list or whole."""

    id = fields.Integer(required=True)
    key = fields.String(required=True, metadata={"example": "DEMO-1042"})
    number = fields.Integer(required=True)
    title = fields.String(required=True)
    status = fields.String(required=True)
    priority = fields.String(required=True)
    category = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class TicketRowSchema(_TicketCoreSchema):
    """A ticket as the list shows it."""

    site = fields.String(required=True, allow_none=True, metadata={"description": "Site name"})
    charger = fields.String(required=True, allow_none=True, metadata={"description": "OCPP id"})
    assignee = fields.String(required=True, allow_none=True, metadata={"description": "User name"})
    vendor = fields.String(required=True, allow_none=True, metadata={"description": "Vendor name"})
    sla = fields.Nested(SlaSchema, required=True, allow_none=True)


class TicketPageSchema(ma.Schema):
    """One page of tickets and the cursor of the next (null on the last)."""

    items = fields.List(fields.Nested(TicketRowSchema), required=True)
    next_after = fields.String(required=True, allow_none=True)


class TicketSchema(_TicketCoreSchema):
    """A whole ticket. Send its `version` back with a change (optimistic locking)."""

    version = fields.Integer(required=True)
    description = fields.String(required=True)
    channel = fields.String(required=True)
    site = fields.Nested(RefSchema, required=True, allow_none=True)
    charger = fields.Nested(ChargerRefSchema, required=True, allow_none=True)
    connector = fields.Integer(required=True, allow_none=True, metadata={"description": "Number"})
    caller_name = fields.String(required=True, allow_none=True)
    caller_phone = fields.String(required=True, allow_none=True)
    caller_email = fields.String(required=True, allow_none=True)
    assignee = fields.Nested(RefSchema, required=True, allow_none=True)
    vendor = fields.Nested(RefSchema, required=True, allow_none=True)
    hold_reason = fields.String(required=True, allow_none=True)
    resolution_note = fields.String(required=True, allow_none=True)
    cancel_reason = fields.String(required=True, allow_none=True)
    resolved_at = fields.DateTime(required=True, allow_none=True)
    closed_at = fields.DateTime(required=True, allow_none=True)
    sla = fields.List(fields.Nested(SlaSchema), required=True)
    transitions = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "The transitions the caller may make now"},
    )


class TicketFieldsSchema(ma.Schema):
    """The fields that may be set on a ticket."""

    title = text(200, 1)
    description = text(10_000)
    category = fields.String(validate=validate.OneOf(list(CATEGORIES)))
    priority = fields.String(validate=validate.OneOf(list(PRIORITIES)))
    caller_name = text(120, allow_none=True)
    caller_phone = text(40, allow_none=True)
    caller_email = fields.Email(validate=validate.Length(max=254), allow_none=True)


class TicketCreateSchema(TicketFieldsSchema):
    """A new ticket: a title and a category at least; a charger by OCPP id, if any."""

    title = text(200, 1, required=True)
    category = fields.String(required=True, validate=validate.OneOf(list(CATEGORIES)))
    priority = fields.String(validate=validate.OneOf(list(PRIORITIES)), load_default="P3")
    channel = fields.String(validate=validate.OneOf(API_CHANNELS), load_default="api")
    charger = text(64, 1, allow_none=True, metadata={"description": "OCPP id"})
    connector = fields.Integer(
        validate=validate.Range(min=0, max=1000),
        allow_none=True,
        metadata={"description": "Number"},
    )
    site = fields.Integer(validate=ID, allow_none=True, metadata={"description": "Site id"})


class TicketUpdateSchema(TicketFieldsSchema):
    """A change of fields, made only if the ticket is still at `version`."""

    version = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))


class AssignSchema(ma.Schema):
    """Who works the ticket: a user or a vendor (both null: nobody)."""

    version = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    user = fields.Integer(validate=ID, allow_none=True, load_default=None)
    vendor = fields.Integer(validate=ID, allow_none=True, load_default=None)


class TransitionSchema(ma.Schema):
    """A lifecycle move and the fields it requires (a resolution note to resolve…)."""

    name = fields.String(required=True, validate=validate.OneOf(list(lifecycle.BY_NAME)))
    version = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    note = text(5000, allow_none=True)
    hold_reason = fields.String(
        validate=validate.OneOf(list(lifecycle.HOLD_REASONS)), allow_none=True
    )
    resolution_note = text(5000, allow_none=True)
    cancel_reason = text(5000, allow_none=True)
    user = fields.Integer(
        validate=ID, allow_none=True, metadata={"description": "Assign to (user id)"}
    )
    vendor = fields.Integer(
        validate=ID, allow_none=True, metadata={"description": "Assign to (vendor id)"}
    )


class EventSchema(ma.Schema):
    """One change in a ticket's history."""

    id = fields.Integer(required=True)
    at = fields.DateTime(required=True)
    actor = fields.Nested(RefSchema, required=True, allow_none=True)
    kind = fields.String(
        required=True, metadata={"description": "created, status, field, assignment"}
    )
    field = fields.String(required=True, allow_none=True)
    from_value = fields.String(required=True, allow_none=True)
    to_value = fields.String(required=True, allow_none=True)
    note = fields.String(required=True, allow_none=True)


class WorklogSchema(ma.Schema):
    """A note on the ticket with time spent."""

    id = fields.Integer(required=True)
    author = fields.Nested(RefSchema, required=True, allow_none=True)
    body = fields.String(required=True)
    minutes = fields.Integer(required=True)
    customer_visible = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class WorklogCreateSchema(ma.Schema):
    """A new worklog."""

    body = text(10_000, 1, required=True)
    minutes = fields.Integer(validate=validate.Range(min=0, max=1440), load_default=0)
    customer_visible = fields.Boolean(load_default=False)


class AttachmentSchema(ma.Schema):
    """A file on the ticket (its bytes are downloaded in the web app)."""

    id = fields.Integer(required=True)
    filename = fields.String(required=True)
    content_type = fields.String(required=True)
    size = fields.Integer(required=True)
    worklog_id = fields.Integer(required=True, allow_none=True)
    uploaded_by = fields.Nested(RefSchema, required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
