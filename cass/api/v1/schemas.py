"""Schemas shared by every part of the API: the error body, references to other rows, pages."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from cass.api.v1.inputs import cursor

MAX_ID = 2**63 - 1  # bigint
# Positive ids that fit a bigint: anything else is a 422, not a database error.
ID = validate.Range(min=1, max=MAX_ID)


class ErrorSchema(ma.Schema):
    """Every error: a stable code to branch on, a sentence for people, and details."""

    error = fields.String(
        required=True,
        metadata={"description": "Stable code, e.g. E_NOT_FOUND", "example": "E_VALIDATION"},
    )
    message = fields.String(required=True, metadata={"description": "What went wrong, for people"})
    details = fields.Dict(
        required=True,
        metadata={"description": 'More about it, e.g. {"fields": {"json": {"title": [...]}}}'},
    )


class RefSchema(ma.Schema):
    """Another row, by id and name."""

    id = fields.Integer(required=True)
    name = fields.String(required=True)


class ChargerRefSchema(ma.Schema):
    """A charger, by id and OCPP id."""

    id = fields.Integer(required=True)
    ocpp_id = fields.String(required=True)


class CursorArgs(ma.Schema):
    """Keyset pagination: the `next_after` of the previous page."""

    after = cursor()
