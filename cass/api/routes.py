"""POST /api/v1/csms/events: signed by the tenant's CSMS secret, not by a session.

No cookie, session or CSRF token takes part (the blueprint is CSRF-exempt): the HMAC signature
over the timestamp and the raw body is the authentication. Answers are JSON.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, jsonify, request
from werkzeug.wrappers import Response

from cass.services import csms_events
from cass.tenancy import bind_tenant

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _has_nul(value: Any) -> bool:
    """Return whether any string in the document holds U+0000 (Postgres jsonb refuses it)."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _error(status: int, code: str, message: str, **extra: Any) -> Response:
    response = jsonify({"error": code, "message": message, **extra})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'CASS-HMAC-SHA256 realm="csms"'
    return response


@bp.post("/csms/events")
def csms_event() -> Response:
    """Record one event from the tenant's other CSMS: 202 when new, 200 when already known."""
    if (request.content_length or 0) > csms_events.MAX_BODY_BYTES:
        return _error(413, "too_large", f"At most {csms_events.MAX_BODY_BYTES} bytes.")
    body = request.get_data(cache=False)
    if len(body) > csms_events.MAX_BODY_BYTES:
        return _error(413, "too_large", f"At most {csms_events.MAX_BODY_BYTES} bytes.")
    try:
        tenant_id = csms_events.authenticate(
            request.headers.get("X-CASS-Tenant"),
            request.headers.get("X-CASS-Timestamp"),
            request.headers.get("X-CASS-Signature"),
            body,
        )
    except csms_events.CsmsAuthError as exc:
        return _error(401, exc.code, str(exc))
    bind_tenant(tenant_id)
    try:
        payload = json.loads(body, parse_constant=_reject_constant)
        has_nul = _has_nul(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return _error(422, "invalid_json", "The body is not JSON.")
    if has_nul:
        return _error(422, "invalid_json", "Strings may not contain U+0000.")
    try:
        event = csms_events.parse_event(payload)
        recorded = csms_events.record_event(tenant_id, event, payload)
    except csms_events.CsmsEventError as exc:
        return _error(422, exc.code, str(exc), fields=exc.fields)
    response = jsonify(
        {"id": recorded.id, "event_id": event.event_id, "duplicate": recorded.duplicate}
    )
    response.status_code = 200 if recorded.duplicate else 202
    return response
