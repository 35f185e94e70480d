"""The ticket board: a kanban by status; cards move by the transitions the user may make."""

from __future__ import annotations

from flask_login import current_user
from werkzeug.wrappers import Response

from cass import lifecycle
from cass.permissions import requires
from cass.rendering import render
from cass.services import tickets
from cass.services.board import board as board_columns
from cass.tickets.blueprint import bp


def board_context() -> dict[str, object]:
    """Return what the board and its fragment render."""
    return {
        "columns": board_columns(current_user),
        "prefix": tickets.tenant_prefix(),
        "moves_for": lambda status: lifecycle.allowed(status, current_user.role),
    }


@bp.get("/board")
@requires("tickets.view")
def board() -> Response:
    """Show open tickets as a kanban by status."""
    return render("tickets/board.html", "tickets/_board.html", **board_context())
