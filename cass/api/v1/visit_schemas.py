"""The API's site-visit shapes: the list's range and filters, a visit, booking and steps."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import ValidationError, fields, validate, validates_schema

from cass.api.v1.inputs import cursor, day, moment, text
from cass.api.v1.schemas import ID, CursorArgs, RefSchema
from cass.models.visits import VISIT_STATUSES
from cass.visits.panel import STEP_LABELS

# A list covers at most this many days: a year of visits, paged.
MAX_RANGE_DAYS = 366


class VisitListArgs(CursorArgs):
    """The visits overlapping a range of days in the tenant's zone (default: the next 7 days,
    today included), by start; a vendor's people see only their vendor's visits."""

    after = cursor()
    since = day("The first day (default: today)")
    until = day("The last day, included (default: 6 days after `since`)")
    engineer = fields.Integer(validate=ID, metadata={"description": "Engineer (user id)"})
    vendor = fields.Integer(validate=ID, metadata={"description": "Vendor id"})
    status = fields.String(validate=validate.OneOf(list(VISIT_STATUSES)))

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        since, until = data.get("since"), data.get("until")
        if since and until and until < since:
            raise ValidationError("The end is before the start.", "until")
        if since and until and (until - since).days >= MAX_RANGE_DAYS:
            raise ValidationError(f"Pick a range of at most {MAX_RANGE_DAYS} days.", "until")


class VisitTicketSchema(ma.Schema):
    """The visit's ticket."""

    id = fields.Integer(required=True)
    key = fields.String(required=True, metadata={"example": "DEMO-1042"})
    title = fields.String(required=True)


class VisitSiteSchema(ma.Schema):
    """Where the visit is."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)
    address = fields.String(required=True)
    directions = fields.String(
        required=True, allow_none=True, metadata={"description": "A map link, when placed"}
    )


class VisitSchema(ma.Schema):
    """A site visit: who, when, where, for which ticket, its status and check-ins."""

    id = fields.Integer(required=True)
    ticket = fields.Nested(VisitTicketSchema, required=True)
    engineer = fields.Nested(RefSchema, required=True, allow_none=True)
    vendor = fields.Nested(RefSchema, required=True, allow_none=True)
    site = fields.Nested(VisitSiteSchema, required=True, allow_none=True)
    charger = fields.String(required=True, allow_none=True, metadata={"description": "OCPP id"})
    starts_at = fields.DateTime(required=True)
    ends_at = fields.DateTime(required=True)
    status = fields.String(required=True, metadata={"example": "scheduled"})
    notes = fields.String(required=True)
    outside_hours = fields.Boolean(
        required=True, metadata={"description": "Booked outside working hours on purpose"}
    )
    checked_in_at = fields.DateTime(required=True, allow_none=True)
    checked_out_at = fields.DateTime(required=True, allow_none=True)
    steps = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "The statuses the caller may move it to now"},
    )
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)


class VisitPageSchema(ma.Schema):
    """One page of visits by start, and the cursor of the next (null on the last)."""

    items = fields.List(fields.Nested(VisitSchema), required=True)
    next_after = fields.String(required=True, allow_none=True)


class VisitBookSchema(ma.Schema):
    """A visit to book: an engineer or a vendor (or both), a start and an end (at most 24 h)."""

    engineer = fields.Integer(
        validate=ID, allow_none=True, load_default=None, metadata={"description": "User id"}
    )
    vendor = fields.Integer(
        validate=ID, allow_none=True, load_default=None, metadata={"description": "Vendor id"}
    )
    starts_at = moment("The start, with its offset", required=True)
    ends_at = moment("The end, with its offset", required=True)
    notes = text(2000, load_default="")
    override = fields.Boolean(
        load_default=False,
        metadata={"description": "Book outside the engineer's working hours"},
    )


class VisitStepSchema(ma.Schema):
    """A step of the visit: confirm, en route, check in (on_site), check out (done)…"""

    status = fields.String(required=True, validate=validate.OneOf(list(STEP_LABELS)))
