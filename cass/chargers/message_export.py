"""The OCPP message log as a download: CSV (the shared rules, written by COPY) or JSON Lines.

The views sit with their pages (cass/chargers/routes.py, cass/sites/routes.py); this holds what
both answer with, so a charger's file and a site's file are made the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime

from flask import Response, stream_with_context
from werkzeug.wrappers import Response as BaseResponse

from cass.csv_download import csv_download
from cass.models import Charger, Site
from cass.services import message_log
from cass.services.message_log import BadExport, MessageFilter

FORMATS = ("csv", "jsonl")
LINES_PER_CHUNK = 200  # JSON Lines per chunk handed to the server
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(label: str, flt: MessageFilter) -> str:
    """Return the file's name without date and extension: messages-<who>-<range>."""
    return _UNSAFE.sub("_", f"messages-{label}-{flt.span_label()}")


def refuse(bad: BadExport) -> BaseResponse:
    """Answer filters an export cannot take: 422 naming each, as the report downloads do."""
    return Response("\n".join(bad.notices) + "\n", 422, mimetype="text/plain")


def download(target: Charger | Site, flt: MessageFilter, label: str, fmt: str) -> BaseResponse:
    """Return the streamed download of `target`'s frames matching `flt` in format `fmt`."""
    name = file_name(label, flt)
    if fmt == "csv":
        return csv_download(message_log.csv_export(target, flt), name)
    return _jsonl_download(message_log.jsonl_lines(target, flt), name)


def _jsonl_download(lines: Iterator[str], name: str) -> BaseResponse:
    """Return a streamed `<name>-<date>.jsonl` attachment of `lines`, headed as csv_download
    heads its files."""

    def generate() -> Iterator[bytes]:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= LINES_PER_CHUNK:
                yield "".join(batch).encode()
                batch.clear()
        yield "".join(batch).encode()

    # As csv_download: the request's context (the tenant binding RLS, the user) lives until
    # the last line, and the server-side cursor stays inside that one transaction.
    response = Response(stream_with_context(generate()), mimetype="application/x-ndjson")
    response.charset = "utf-8"
    stamp = datetime.now(UTC).date().isoformat()
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.jsonl"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response
