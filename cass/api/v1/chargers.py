"""/api/v1/chargers: the charger list with the web list's filters, and one charger's state."""

from __future__ import annotations

from typing import Any

from flask_login import current_user

from cass.api.v1.auth import allowed, api_blueprint
from cass.api.v1.charger_schemas import ChargerListArgs, ChargerPageSchema, ChargerSchema
from cass.api.v1.errors import ApiError, bad_cursor
from cass.models import Charger, User
from cass.services import charger_list, charger_page
from cass.services.charger_list import BadCursor, ChargerRow

bp = api_blueprint("api_chargers", "Chargers, their connectors' live states and faults.")

# The charger page's query for its timeline filtered to faults (the newest page of them).
FAULTS = charger_page.PageQuery(tl="faults")


def _actor() -> User:
    return current_user._get_current_object()  # type: ignore[no-any-return]


def _charger(ocpp_id: str) -> Charger:
    """Return the charger with this OCPP id that the caller may see, or raise 404."""
    charger = charger_list.visible_charger(_actor(), ocpp_id)
    if charger is None:
        raise ApiError(404, "E_NOT_FOUND", f"There is no charger {ocpp_id[:64]!r} for you to see.")
    return charger


def _row(row: ChargerRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "ocpp_id": row.ocpp_id,
        "manufacturer": row.manufacturer,
        "model": row.model,
        "serial": row.serial,
        "asset_tag": row.asset_tag,
        "firmware": row.firmware,
        "online": row.online,
        "last_seen": row.last_seen,
        "warranty_end": row.warranty_end,
        "registration": row.registration,
        "site": {"id": row.site_id, "name": row.site},
        "connectors": [
            {"connector_no": number, "status": status, "error_code": error}
            for number, status, error in row.connectors
        ],
        "faulted": row.faulted,
        "open_tickets": row.open_tickets,
    }


def _number(value: str | None) -> float | None:
    return None if value is None else float(value)


@bp.get("/chargers")
@allowed("chargers.view")
@bp.arguments(ChargerListArgs, location="query", as_kwargs=True)
@bp.response(200, ChargerPageSchema)
def list_chargers(**args: Any) -> dict[str, Any]:
    """List the chargers the caller may see, in OCPP-id order, with the web list's filters."""
    # The validated values, not request.args: the web's live-refresh `through` is no API input.
    query = charger_list.parse_query(args)
    try:
        page = charger_list.list_page(_actor(), query)
    except BadCursor as exc:
        raise bad_cursor() from exc
    return {"items": [_row(row) for row in page.rows], "next_after": page.next_after}


@bp.get("/chargers/<ocpp_id>")
@allowed("chargers.view")
@bp.response(200, ChargerSchema)
def get_charger(ocpp_id: str) -> dict[str, Any]:
    """Read one charger: site, model data, presence, connectors' live states, recent faults."""
    charger = _charger(ocpp_id)
    state = charger_page.live_state(_actor(), charger)
    faults = charger_page.timeline(charger, FAULTS)
    site = state.head.site
    return {
        "id": charger.id,
        "ocpp_id": charger.ocpp_id,
        "manufacturer": charger.manufacturer,
        "model": charger.model,
        "serial": charger.serial,
        "asset_tag": charger.asset_tag,
        "firmware": charger.firmware,
        "protocol": charger.ocpp_protocol,
        "install_date": charger.install_date,
        "warranty_end": charger.warranty_end,
        "registration": charger.registration,
        "online": charger.online,
        "last_seen": charger.last_seen,
        "site": {
            "id": site.id,
            "name": site.name,
            "address": site.address,
            "lat": _number(site.lat),
            "lon": _number(site.lon),
            "contact_name": site.contact_name,
            "contact_phone": site.contact_phone,
        },
        "vendor": (
            None
            if charger.vendor_id is None or state.head.vendor is None
            else {"id": charger.vendor_id, "name": state.head.vendor}
        ),
        "connectors": [
            {
                "connector_no": c.connector_no,
                "status": c.status,
                "error_code": c.error_code,
                "since": c.since,
            }
            for c in state.connectors
        ],
        "recent_faults": [
            {
                "id": e.id,
                "at": e.at,
                "kind": e.kind,
                "connector_no": e.connector_no,
                "status": e.status,
                "error_code": e.error_code,
                "info": e.info,
                "vendor_error_code": e.vendor_error_code,
            }
            for e in faults.rows
        ],
        "tickets": [
            {
                "key": t.key,
                "title": t.title,
                "status": t.status,
                "priority": t.priority,
                "updated_at": t.updated_at,
            }
            for t in state.tickets
        ],
    }
