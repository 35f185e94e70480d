"""The ticket desk: list, board, detail, create, lifecycle, worklogs, attachments."""

from cass.tickets import board_routes, list_routes, routes  # noqa: F401  (they register on bp)
from cass.tickets.blueprint import bp
from cass.tickets.rows import list_links, ticket_rows

bp.add_app_template_global(ticket_rows)
bp.add_app_template_global(list_links)

__all__ = ["bp"]
