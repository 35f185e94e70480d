"""/api/v1/docs: the API reference, Swagger UI over /api/v1/openapi.json, from vendored files."""

from __future__ import annotations

from flask import Blueprint, render_template
from werkzeug.wrappers import Response

from cass.security import CSP

bp = Blueprint("api_reference", __name__, url_prefix="/api/v1")

# Swagger UI sets inline style attributes as it draws; everything else stays as strict.
DOCS_CSP = CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


@bp.get("/docs")
def docs() -> Response:
    """Show the API reference (anyone may read it; calls need a token)."""
    response = Response(render_template("api/docs.html"), mimetype="text/html")
    response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
