"""Events pushed by an operator's other CSMS: signature check, validation and recording.

The sender signs each request with the tenant's CSMS secret (HMAC-SHA256 over
"<timestamp>.<raw body>", see the README). An accepted event is stored once per event id in
`csms_event` with `handled_at` NULL: the workflow worker claims those rows and feeds them to
the tenant's rules, exactly as it does the bridge's charger events.

So that charger pages and uptime see what the other CSMS reports, every event also becomes a
`charger_event` of the bridge's kinds (status, online, offline, firmware; `data.source` =
"csms", `data.csms_event_id`), the connector's current status and the charger's firmware job.
The rules must see each event once, not twice, so exactly one of the two rows is left for the
worker (`cass.services.workflow.facts_for_csms_event` is the other half of this contract):

- connector_faulted, connector_recovered, status, firmware_status, and charger_offline with
  `offline_minutes`: the worker feeds the csms_event row to the rules, so the charger_event is
  written already handled;
- charger_offline without `offline_minutes`: the charger_event 'offline' is left unhandled,
  an offline spell that the worker's offline check follows, as for the bridge's; and
  charger_online: its charger_event 'online' is left unhandled, which ends that spell. The
  worker finds nothing to do with these csms_event rows and marks them handled.

The charger's `online` flag is left alone: it means "a bridge holds its socket", and the
bridge's sweep would undo it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from cass import live
from cass.extensions import db
from cass.models import Charger, ChargerEvent, Connector, CsmsEvent, FirmwareJob, Tenant
from cass.services.audit import audit
from cass.tenancy import system_context

# A request older (or newer) than this is refused: a captured request cannot be replayed later.
REPLAY_WINDOW = timedelta(minutes=5)
# Events dated further ahead than this are refused: they would sort after everything real.
FUTURE_SLACK = timedelta(minutes=5)
MAX_BODY_BYTES = 64 * 1024
SIGNATURE_PREFIX = "sha256="

KINDS = (
    "connector_faulted",
    "connector_recovered",
    "charger_offline",
    "charger_online",
    "firmware_status",
    "status",
)
# OCPP 1.6 and 2.0.1 connector statuses.
CONNECTOR_STATUSES = (
    "Available",
    "Preparing",
    "Charging",
    "SuspendedEVSE",
    "SuspendedEV",
    "Finishing",
    "Reserved",
    "Unavailable",
    "Faulted",
    "Occupied",
)
# OCPP 1.6 and 2.0.1 firmware statuses.
FIRMWARE_STATUSES = (
    "Idle",
    "Downloading",
    "Downloaded",
    "DownloadFailed",
    "DownloadScheduled",
    "DownloadPaused",
    "Installing",
    "Installed",
    "InstallationFailed",
    "InstallRebooting",
    "InstallScheduled",
    "InstallVerificationFailed",
    "InvalidSignature",
    "SignatureVerified",
)
# A firmware job in one of these states is over; a new report starts a new job.
FIRMWARE_FINAL = frozenset(
    {
        "Installed",
        "InstallationFailed",
        "DownloadFailed",
        "InvalidSignature",
        "InstallVerificationFailed",
        "rejected",
        "failed",
        "timed_out",
        "expired",
    }
)


class CsmsAuthError(Exception):
    """The request is not signed by the tenant it names (answered 401)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class CsmsEventError(Exception):
    """The event is unusable (answered 422); `fields` maps field names to what is wrong."""

    def __init__(self, code: str, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.fields = fields or {}


@dataclass(frozen=True)
class EventIn:
    """A validated event."""

    event_id: str
    kind: str
    ocpp_id: str
    connector_no: int | None
    error_code: str | None
    status: str | None
    occurred_at: datetime
    data: dict[str, Any] | None
    # How long a charger_offline has lasted when reported, if the sender says.
    offline_minutes: int | None = None


@dataclass(frozen=True)
class Recorded:
    """What recording an event did: its row id, and whether it was already there."""

    id: int
    duplicate: bool


def new_secret() -> str:
    """Return a fresh random secret (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Return the signature header value for a body sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return SIGNATURE_PREFIX + digest.hexdigest()


def authenticate(
    slug: str | None,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: datetime | None = None,
) -> int:
    """Return the id of the tenant whose secret signed `body`; raise CsmsAuthError if none did.

    The tenant is read across tenants (system context) because nothing is bound yet: the
    request names its tenant, and only that tenant's id and secret are read, to check the
    signature before anything else happens.
    """
    if not slug or not timestamp or not signature:
        raise CsmsAuthError(
            "missing_signature",
            "Send X-CASS-Tenant, X-CASS-Timestamp and X-CASS-Signature headers.",
        )
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise CsmsAuthError("bad_timestamp", "X-CASS-Timestamp must be Unix time in seconds.")
    now = now or datetime.now(UTC)
    if abs(now.timestamp() - int(timestamp)) > REPLAY_WINDOW.total_seconds():
        raise CsmsAuthError(
            "stale_timestamp",
            "X-CASS-Timestamp is more than 5 minutes from our clock; sign the request anew.",
        )
    with system_context():
        row = db.session.execute(
            select(Tenant.id, Tenant.csms_secret).where(Tenant.slug == slug[:40])
        ).first()
    tenant_id, secret = (row.id, row.csms_secret) if row else (None, None)
    # Unknown tenant, no secret or a wrong signature: one answer, after the same work.
    expected = sign(secret or "no secret", timestamp, body)
    matches = hmac.compare_digest(expected.encode(), signature.strip().lower().encode())
    if tenant_id is None or not secret or not matches:
        raise CsmsAuthError("bad_signature", "The signature does not match.")
    return int(tenant_id)


def _text(value: Any, name: str, limit: int, problems: dict[str, str], required: bool) -> Any:
    if value is None:
        if required:
            problems[name] = "required"
        return None
    if not isinstance(value, str) or not value.strip():
        problems[name] = "must be a non-empty string"
        return None
    if len(value) > limit:
        problems[name] = f"at most {limit} characters"
        return None
    return value.strip()


def parse_event(body: Any, now: datetime | None = None) -> EventIn:
    """Validate a decoded JSON body; raise CsmsEventError naming every field that is wrong."""
    if not isinstance(body, dict):
        raise CsmsEventError("invalid_event", "The body must be a JSON object.")
    problems: dict[str, str] = {}
    event_id = _text(body.get("event_id"), "event_id", 100, problems, True)
    kind = body.get("kind")
    if kind not in KINDS:
        problems["kind"] = "one of " + ", ".join(KINDS)
    ocpp_id = _text(body.get("ocpp_id"), "ocpp_id", 64, problems, True)
    connector_no = body.get("connector_no")
    if connector_no is not None and (
        isinstance(connector_no, bool)
        or not isinstance(connector_no, int)
        or not 0 <= connector_no <= 1000
    ):
        problems["connector_no"] = "an integer from 0 (the charger as a whole) to 1000"
        connector_no = None
    error_code = _text(body.get("error_code"), "error_code", 40, problems, False)
    status = body.get("status")
    if kind == "status" or (kind == "connector_recovered" and status is not None):
        if status not in CONNECTOR_STATUSES:
            problems["status"] = "one of " + ", ".join(CONNECTOR_STATUSES)
    elif kind == "firmware_status":
        if status not in FIRMWARE_STATUSES:
            problems["status"] = "one of " + ", ".join(FIRMWARE_STATUSES)
    elif kind == "connector_faulted" and status not in (None, "Faulted"):
        problems["status"] = "omit it, or send Faulted"
    elif kind in ("charger_offline", "charger_online") and status is not None:
        problems["status"] = f"not used with {kind}"
    occurred_at = None
    raw_at = body.get("occurred_at")
    if not isinstance(raw_at, str):
        problems["occurred_at"] = "required: an ISO 8601 time with a UTC offset"
    else:
        try:
            occurred_at = datetime.fromisoformat(raw_at.replace("Z", "+00:00"))
        except ValueError:
            problems["occurred_at"] = "not an ISO 8601 time"
        else:
            if occurred_at.tzinfo is None:
                problems["occurred_at"] = "needs a UTC offset (e.g. Z or +01:00)"
            elif occurred_at > (now or datetime.now(UTC)) + FUTURE_SLACK:
                problems["occurred_at"] = "is in the future"
    data = body.get("data")
    if data is not None and not isinstance(data, dict):
        problems["data"] = "must be a JSON object"
    offline_minutes = body.get("offline_minutes")
    if offline_minutes is None and isinstance(data, dict):
        offline_minutes = data.get("offline_minutes")
    if offline_minutes is not None and (
        isinstance(offline_minutes, bool)
        or not isinstance(offline_minutes, int)
        or offline_minutes < 0
    ):
        problems["offline_minutes"] = "a whole number of minutes, 0 or more"
    if problems:
        raise CsmsEventError("invalid_event", "Some fields are missing or wrong.", problems)
    assert occurred_at is not None
    return EventIn(
        event_id=event_id,
        kind=kind,
        ocpp_id=ocpp_id,
        connector_no=connector_no,
        error_code=error_code,
        status=status,
        occurred_at=occurred_at,
        data=data,
        offline_minutes=offline_minutes if kind == "charger_offline" else None,
    )


def record_event(tenant_id: int, event: EventIn, payload: dict[str, Any]) -> Recorded:
    """Store an event once per event id and apply it to the charger's history.

    A resent event id finds its row (the unique constraint decides, so two copies racing each
    other still make one row) and changes nothing. Runs bound to `tenant_id`.
    """
    charger = db.session.scalars(
        select(Charger).where(Charger.tenant_id == tenant_id, Charger.ocpp_id == event.ocpp_id)
    ).first()
    if charger is None:
        raise CsmsEventError(
            "unknown_charger",
            f"No charger {event.ocpp_id!r} in this tenant; add it to CASS, then resend.",
            {"ocpp_id": "unknown charger"},
        )
    inserted = db.session.scalar(
        insert(CsmsEvent)
        .values(
            tenant_id=tenant_id,
            event_id=event.event_id,
            kind=event.kind,
            ocpp_id=charger.ocpp_id,
            charger_id=charger.id,
            occurred_at=event.occurred_at,
            payload=payload,
        )
        .on_conflict_do_nothing(constraint="uq_csms_event_tenant_event")
        .returning(CsmsEvent.id)
    )
    if inserted is None:
        existing = db.session.scalar(
            select(CsmsEvent.id).where(
                CsmsEvent.tenant_id == tenant_id, CsmsEvent.event_id == event.event_id
            )
        )
        db.session.rollback()
        return Recorded(int(existing), duplicate=True)
    _apply(tenant_id, charger, event, inserted)
    db.session.commit()
    return Recorded(int(inserted), duplicate=False)


def rules_read_csms_row(event: EventIn) -> bool:
    """Return whether the workflow worker feeds this event to the rules from its csms_event
    row, so that its charger_event must be written already handled (see the module's note)."""
    if event.kind == "charger_online":
        return False
    if event.kind == "charger_offline":
        return event.offline_minutes is not None
    return True


def _apply(tenant_id: int, charger: Charger, event: EventIn, csms_event_id: int) -> None:
    """Write the event into the charger's history (already handled: see the module's note)."""
    source = {"source": "csms", "csms_event_id": csms_event_id, "event_id": event.event_id}
    if event.kind in ("charger_online", "charger_offline"):
        kind, status, error_code, connector_no = (
            event.kind.removeprefix("charger_"),
            None,
            None,
            None,
        )
    elif event.kind == "firmware_status":
        kind, status, error_code, connector_no = "firmware", event.status, None, None
        _follow_firmware(tenant_id, charger, event)
    else:
        kind, connector_no = "status", event.connector_no or 0
        if event.kind == "connector_faulted":
            status, error_code = "Faulted", event.error_code or "OtherError"
        elif event.kind == "connector_recovered":
            status, error_code = event.status or "Available", event.error_code or "NoError"
        else:
            status, error_code = event.status, event.error_code or "NoError"
        if connector_no > 0:
            _set_connector(tenant_id, charger, connector_no, status, error_code, event.occurred_at)
    info = (event.data or {}).get("info")
    db.session.add(
        ChargerEvent(
            tenant_id=tenant_id,
            charger_id=charger.id,
            connector_no=connector_no,
            at=event.occurred_at,
            kind=kind,
            status=status,
            error_code=error_code,
            info=str(info)[:500] if info is not None else None,
            data={**source, **({"data": event.data} if event.data else {})},
            # See the module's note: the rules see the event through one row only.
            handled_at=func.now() if rules_read_csms_row(event) else None,
        )
    )
    extra: dict[str, Any] = {"source": "csms"}
    if kind == "status":
        extra.update(connector=connector_no, status=status)
    elif kind in ("online", "offline"):
        extra["presence"] = kind
    live.notify(db.session, tenant_id, "charger", charger.ocpp_id, **extra)


def _set_connector(
    tenant_id: int,
    charger: Charger,
    connector_no: int,
    status: str,
    error_code: str,
    at: datetime,
) -> None:
    """Set the connector's current status, unless a later report already did."""
    stmt = insert(Connector).values(
        tenant_id=tenant_id,
        charger_id=charger.id,
        connector_no=connector_no,
        status=status,
        error_code=error_code,
        updated_at=at,
    )
    db.session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Connector.charger_id, Connector.connector_no],
            set_={
                "status": stmt.excluded.status,
                "error_code": stmt.excluded.error_code,
                "updated_at": stmt.excluded.updated_at,
            },
            where=Connector.updated_at <= stmt.excluded.updated_at,
        )
    )


def _follow_firmware(tenant_id: int, charger: Charger, event: EventIn) -> None:
    """Move the charger's open firmware job to the reported status, or start a job.

    As the bridge does for FirmwareStatusNotification, the charger's latest job follows; a
    report after the latest job ended (or with no job at all) is an update the other CSMS
    started, so it becomes a new job. "Idle" with no open job is only an event.
    """
    assert event.status is not None
    job = db.session.scalars(
        select(FirmwareJob)
        .where(FirmwareJob.tenant_id == tenant_id, FirmwareJob.charger_id == charger.id)
        .order_by(FirmwareJob.id.desc())
        .limit(1)
        .with_for_update()
    ).first()
    if job is not None and job.status not in FIRMWARE_FINAL:
        job.status = event.status
        job.updated_at = func.now()
        return
    if event.status == "Idle":
        return
    data = event.data or {}
    location = data.get("location")
    db.session.add(
        FirmwareJob(
            tenant_id=tenant_id,
            charger_id=charger.id,
            location=str(location)[:512] if location else "(reported by the external CSMS)",
            retrieve_at=event.occurred_at,
            status=event.status,
        )
    )


def secret_status(tenant_id: int) -> tuple[str, bool]:
    """Return the tenant's slug (the X-CASS-Tenant value) and whether it has a CSMS secret
    (without one, the endpoint refuses every event)."""
    row = db.session.execute(
        select(Tenant.slug, Tenant.csms_secret).where(Tenant.id == tenant_id)
    ).one()
    return row.slug, bool(row.csms_secret)


def rotate_secret(tenant_id: int, actor_id: int) -> str:
    """Give the tenant a new CSMS secret and return it (to show once); the old one stops
    working at once."""
    tenant = db.session.get(Tenant, tenant_id)
    assert tenant is not None
    before = {"csms_secret": "set" if tenant.csms_secret else "unset"}
    secret = new_secret()
    tenant.csms_secret = secret
    audit(actor_id, "tenant", tenant_id, "rotate_csms_secret", before, {"csms_secret": "new"})
    db.session.commit()
    return secret


def remove_secret(tenant_id: int, actor_id: int) -> None:
    """Remove the tenant's CSMS secret: the endpoint then refuses every event."""
    tenant = db.session.get(Tenant, tenant_id)
    assert tenant is not None
    if tenant.csms_secret:
        tenant.csms_secret = None
        audit(actor_id, "tenant", tenant_id, "remove_csms_secret", {"csms_secret": "set"}, None)
    db.session.commit()
