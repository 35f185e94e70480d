"""The API's report shapes: the reports offered, a report's parameters, and its table."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from cass.api.v1.inputs import day
from cass.api.v1.schemas import ID
from cass.models.tickets import CATEGORIES, PRIORITIES
from cass.services.reports import REPORTS
from cass.services.reports.base import MAX_DAYS

# Every grouping some report takes; which ones a report takes is in GET /api/v1/reports.
GROUPINGS = sorted({by for report in REPORTS.values() for by in report.groupings})


class ReportArgs(ma.Schema):
    """A report's parameters, as on its page: a range of days in the tenant's zone, a grouping,
    and the filters that report takes (others are ignored)."""

    start = day("The first day (default: `days` before `end`)")
    end = day("The last day, included (default: today)")
    days = fields.Integer(
        validate=validate.Range(min=1, max=MAX_DAYS),
        metadata={"description": "Without `start`: the last N days up to `end` (default 30)"},
    )
    by = fields.String(
        validate=validate.OneOf(GROUPINGS),
        metadata={"description": "The grouping (default: the report's first)"},
    )
    site = fields.Integer(validate=ID, metadata={"description": "Site id"})
    vendor = fields.Integer(validate=ID, metadata={"description": "Vendor id"})
    engineer = fields.Integer(validate=ID, metadata={"description": "Engineer (user id)"})
    priority = fields.String(validate=validate.OneOf(list(PRIORITIES)))
    category = fields.String(validate=validate.OneOf(list(CATEGORIES)))


class GroupingSchema(ma.Schema):
    """A way to group a report's rows."""

    by = fields.String(required=True)
    label = fields.String(required=True)


class ReportInfoSchema(ma.Schema):
    """A report the caller may read: what it tells, its filters and groupings."""

    slug = fields.String(required=True, metadata={"example": "tickets-by"})
    title = fields.String(required=True)
    summary = fields.String(required=True)
    filters = fields.List(
        fields.String(), required=True, metadata={"description": "The filters it takes"}
    )
    groupings = fields.List(
        fields.Nested(GroupingSchema),
        required=True,
        metadata={"description": "The groupings it takes; the first is the default"},
    )


class Cell(fields.Field):
    """A table cell: a number as a number, a day as YYYY-MM-DD, a label as text, or null."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        return value


def _cells(description: str, **kwargs: Any) -> fields.List:
    # OpenAPI 3.0 has no list of types: a cell is text (or null) or a number.
    any_cell = {"anyOf": [{"type": "string", "nullable": True}, {"type": "number"}]}
    return fields.List(Cell(metadata=any_cell), metadata={"description": description}, **kwargs)


class ColumnSchema(ma.Schema):
    """A column of the table."""

    key = fields.String(required=True)
    label = fields.String(required=True)
    kind = fields.String(
        required=True,
        metadata={"description": "text, period, int, number, hours, percent, kwh or money"},
    )


class AppliedSchema(ma.Schema):
    """The parameters the report ran with, defaults filled in."""

    start = fields.Date(required=True)
    end = fields.Date(required=True)
    zone = fields.String(required=True, metadata={"description": "The tenant's time zone"})
    by = fields.String(required=True)
    site = fields.Integer(required=True, allow_none=True)
    vendor = fields.Integer(required=True, allow_none=True)
    engineer = fields.Integer(required=True, allow_none=True)
    priority = fields.String(required=True, allow_none=True)
    category = fields.String(required=True, allow_none=True)


class ReportTableSchema(ma.Schema):
    """A report's table: its columns, rows in column order, and the totals row (or null)."""

    slug = fields.String(required=True)
    title = fields.String(required=True)
    parameters = fields.Nested(AppliedSchema, required=True)
    columns = fields.List(fields.Nested(ColumnSchema), required=True)
    rows = fields.List(_cells("A row, in column order"), required=True)
    totals = _cells("The totals row, when the report has one", required=True, allow_none=True)
    notes = fields.List(fields.String(), required=True)
