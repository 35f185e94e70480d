"""The JSON API (/api/v1) for integrations: bearer tokens, one error shape, OpenAPI from code.

flask-smorest validates each call's input with the marshmallow schemas in this package, shapes
its output with them, and builds /api/v1/openapi.json from the same schemas and views.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from cass.api.v1.errors import ApiError, error_response, from_http
from cass.api.v1.schemas import ErrorSchema


class CassApi(Api):
    """flask-smorest's Api with our error shape, which leaves the web's error pages alone."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self) -> None:
        # flask-smorest would answer every HTTP error of the whole app in JSON; cass.errors
        # sends only the API's to handle_http_exception.
        pass

    def handle_http_exception(self, error: HTTPException) -> Response:  # type: ignore[override]
        """Answer an HTTP error raised in the API in the one error shape."""
        return error_response(from_http(error))


SPEC = {
    "info": {
        "description": (
            "The CASS JSON API. Authenticate with a personal API token (Account → API "
            "tokens): `Authorization: Bearer cass_…`. The token's user, role and tenant "
            "apply exactly as in the web app; a read token may only GET. Errors are "
            '`{"error": "E_CODE", "message": "…", "details": {…}}`. Each token may make '
            "CASS_API_RATE_LIMIT calls per CASS_API_RATE_WINDOW seconds; beyond, 429 with "
            "Retry-After. Lists are paged by cursor: pass `next_after` as `after`."
        )
    },
    "components": {
        "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearerAuth": []}],
}


def init_api(app: Flask) -> None:
    """Register the API's blueprints, its spec and docs, its token check and error answers."""
    from cass.api.v1 import chargers, docs, reports, sessions, tickets, visits
    from cass.extensions import csrf

    api = CassApi(app, spec_kwargs=SPEC)
    app.extensions["cass_api"] = api
    for blueprint in (tickets.bp, chargers.bp, sessions.bp, visits.bp, reports.bp):
        api.register_blueprint(blueprint)
        # Bearer tokens, not cookies: no cross-site request can carry one.
        csrf.exempt(blueprint)
    app.register_blueprint(docs.bp)

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> Response:
        return error_response(error)


def spec_document(app: Flask) -> dict[str, Any]:
    """Return the app's OpenAPI document."""
    return app.extensions["cass_api"].spec.to_dict()
