"""The ticket desk: list, board, detail, create, lifecycle, worklogs, attachments."""

from cass.tickets import board_routes, list_routes, routes  # noqa: F401  (they register on bp)
from cass.tickets.blueprint import bp

__all__ = ["bp"]
