"""Stream rows as a CSV download, a chunk at a time, without a cap on how many."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from flask import Response, stream_with_context

ROWS_PER_CHUNK = 500


def csv_download(rows: Iterable[Iterable[Any]], name: str) -> Response:
    """Return a streamed `<name>-<date>.csv` attachment of `rows` (header row included)."""

    def generate() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for n, row in enumerate(rows, 1):
            writer.writerow(row)
            if n % ROWS_PER_CHUNK == 0:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()

    # The generator runs after the view returns: stream_with_context keeps the request's
    # context (g.tenant_id, which binds RLS on each transaction, and the user) alive until the
    # last row, and the server-side cursor stays inside that one bound transaction.
    response = Response(stream_with_context(generate()), mimetype="text/csv")
    stamp = datetime.now(UTC).date().isoformat()
    response.headers["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Accel-Buffering"] = "no"  # let a proxy pass rows on as they come
    return response
