"""The home page of each role."""

from __future__ import annotations

from flask import Blueprint, request
from flask_login import current_user
from werkzeug.wrappers import Response

from cass.permissions import requires
from cass.rendering import render
from cass.services import fleet

bp = Blueprint("main", __name__)


@bp.get("/")
@requires("home.view")
def home() -> Response:
    """Show the role's home page: the fleet and a charger lookup, or the vendor's card."""
    if current_user.role == "vendor":
        return render("main/vendor_home.html", vendor=current_user.vendor)
    query = request.args.get("q", "")
    return render(
        "main/home.html",
        "main/_charger_results.html",
        summary=fleet.fleet_summary(),
        query=query,
        results=fleet.search_chargers(query),
    )
