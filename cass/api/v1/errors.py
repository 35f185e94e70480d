"""One shape for every API error: {"error": "E_CODE", "message": "…", "details": {…}}."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from cass.extensions import db

PREFIX = "/api/v1/"

# The code and message of each HTTP error when nothing more specific is said.
CODES: dict[int, tuple[str, str]] = {
    400: ("E_BAD_REQUEST", "The request could not be understood."),
    401: ("E_UNAUTHORIZED", "Send a valid API token: Authorization: Bearer cass_…"),
    403: ("E_FORBIDDEN", "Your role does not allow this."),
    404: ("E_NOT_FOUND", "There is nothing here, or it is not yours to see."),
    405: ("E_METHOD_NOT_ALLOWED", "This address does not take that method."),
    406: ("E_NOT_ACCEPTABLE", "The API answers in JSON only."),
    409: ("E_CONFLICT", "Someone else changed it first."),
    413: ("E_TOO_LARGE", "The request body is too large."),
    415: ("E_UNSUPPORTED_MEDIA_TYPE", "Send the body as application/json."),
    422: ("E_VALIDATION", "The request has invalid values; nothing was changed."),
    429: ("E_RATE_LIMITED", "Too many calls with this token; wait and retry."),
    500: ("E_INTERNAL", "Something went wrong on our side; nothing was half-saved."),
}


class ApiError(Exception):
    """An API error with its status, code, message, details and extra headers."""

    def __init__(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        default_code, default_message = CODES.get(status, ("E_ERROR", "The request failed."))
        super().__init__(message or default_message)
        self.status = status
        self.code = code or default_code
        self.message = message or default_message
        self.details = details or {}
        self.headers = headers or {}


def bad_cursor() -> ApiError:
    """Return the error of an `after` that no list handed out (422)."""
    return ApiError(422, "E_BAD_CURSOR", "`after` is not a cursor this list handed out.")


def is_api_request() -> bool:
    """Return whether this request is for the JSON API (its errors are JSON too)."""
    return request.path.startswith(PREFIX)


def error_response(error: ApiError) -> Response:
    """Return the JSON answer for `error`, after rolling back whatever the request began."""
    db.session.rollback()
    response = jsonify({"error": error.code, "message": error.message, "details": error.details})
    response.status_code = error.status
    response.headers.update(error.headers)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="cass"'
    return response


def from_http(exc: HTTPException) -> ApiError:
    """Return the ApiError for a werkzeug/webargs HTTP error (routing, parsing, abort)."""
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    details: dict[str, Any] = {}
    message = None
    if "messages" in data:
        # webargs: {location: {field: [messages]}}.
        details = {"fields": data["messages"]}
    if status == 400 and "json" in details.get("fields", {}):
        # webargs: a body that does not parse as JSON.
        return ApiError(400, "E_INVALID_JSON", "The body is not valid JSON.")
    if status == 405 and getattr(exc, "valid_methods", None):
        headers = {"Allow": ", ".join(exc.valid_methods)}  # type: ignore[attr-defined]
        return ApiError(405, headers=headers)
    if status == 413:
        message = "The request body is too large."
    return ApiError(status, message=message, details=details, headers=data.get("headers") or {})
