"""Error pages for 400/403/404/405/409/422/500: whole pages, or fragments for htmx."""

from __future__ import annotations

from flask import Flask, Response
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from cass.api.v1.errors import ApiError, error_response, from_http, is_api_request
from cass.extensions import db
from cass.rendering import render

MESSAGES = {
    400: ("Bad request", "The request could not be understood. Nothing was changed."),
    403: ("Not allowed", "Your role does not allow this."),
    404: ("Not found", "There is nothing here, or it is not yours to see."),
    405: ("Method not allowed", "This address does not take that kind of request."),
    413: ("Too large", "What you sent is larger than allowed. Nothing was changed."),
    500: ("Something went wrong", "The error is logged. Nothing was half-saved; please retry."),
}


def _error_page(code: int, detail: str | None = None) -> Response:
    """Render the error page (or fragment) for `code`."""
    title, message = MESSAGES.get(code, ("Error", "Something went wrong."))
    return render(
        "errors/error.html",
        "errors/_error.html",
        code,
        code=code,
        title=title,
        message=detail or message,
    )


def init_error_handlers(app: Flask) -> None:
    """Register the error handlers."""

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError) -> Response:
        db.session.rollback()
        return _error_page(
            400,
            "The form had expired or was not sent from this site. Nothing was changed; "
            "reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        db.session.rollback()
        if is_api_request():
            return error_response(from_http(error))
        if error.code is None or error.code < 400:
            return error  # type: ignore[return-value]
        response = _error_page(error.code)
        if error.code == 405 and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(InternalServerError)
    def _internal(error: InternalServerError) -> Response:
        db.session.rollback()
        if is_api_request():
            return error_response(ApiError(500))
        return _error_page(500)
