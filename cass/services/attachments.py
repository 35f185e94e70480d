"""Attachments: files on a ticket; bytes in storage, metadata in Postgres."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import BinaryIO

from flask import current_app

from cass.extensions import db
from cass.models import Attachment, Ticket, User, Worklog
from cass.services.tickets import TicketError, save_change
from cass.storage import ALLOWED_TYPES, SNIFF_BYTES, get_storage, new_key, sniff_allowed
from cass.tenancy import scoped


def max_bytes() -> int:
    """Return the upload size limit in bytes (CASS_MAX_UPLOAD_MB, 20 MB by default)."""
    return int(current_app.config["CASS_MAX_UPLOAD_MB"]) * 1024 * 1024


def check_upload(stream: BinaryIO, filename: str) -> tuple[str, int, str]:
    """Return (filename, size, content type) of an acceptable upload, else raise TicketError."""
    filename = (filename or "").strip()[:255]
    if not filename:
        raise TicketError("The file has no name.")
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    if size > max_bytes():
        raise TicketError(
            f"The file is too large: {size / 1048576:.1f} MB, the limit is "
            f"{current_app.config['CASS_MAX_UPLOAD_MB']} MB."
        )
    if size == 0:
        raise TicketError("The file is empty.")
    content_type = sniff_allowed(stream.read(SNIFF_BYTES), filename, ALLOWED_TYPES)
    stream.seek(0)
    if content_type is None:
        allowed = ", ".join(sorted({ext.lstrip(".") for ext in ALLOWED_TYPES}))
        raise TicketError(f"This type of file is not allowed. Allowed: {allowed}.")
    return filename, size, content_type


def attach(
    ticket: Ticket, actor: User, stream: BinaryIO, filename: str, worklog: Worklog | None = None
) -> Attachment:
    """Store a file for the ticket, checking size and type by its bytes; all or nothing."""
    filename, size, content_type = check_upload(stream, filename)
    key = new_key(ticket.tenant_id, filename)
    storage = get_storage(current_app)
    storage.put(key, stream, content_type, size)
    attachment = Attachment(
        tenant_id=ticket.tenant_id,
        ticket_id=ticket.id,
        uploaded_by_id=actor.id,
        worklog_id=worklog.id if worklog else None,
        filename=filename,
        content_type=content_type,
        size=size,
        storage_key=key,
    )
    db.session.add(attachment)
    ticket.updated_at = datetime.now(UTC)
    try:
        save_change(ticket)
    except BaseException:
        # The row did not land, so the bytes must not stay behind either.
        storage.delete(key)
        raise
    return attachment


def attachment_of(ticket: Ticket, attachment_id: int) -> Attachment | None:
    """Return the ticket's attachment with this id, if any."""
    return db.session.scalars(
        scoped(Attachment, Attachment.id == attachment_id, Attachment.ticket_id == ticket.id)
    ).first()
