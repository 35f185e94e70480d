"""What can be exported as CSV, by name: the ticket list and every report.

One entry point for the download routes and the scheduled exports alike, so a schedule's file
holds exactly what the page's "Download CSV" gives for the same parameters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from cass.models import User
from cass.services import ticket_queries

# slug -> title; the reports add theirs (cass.services.reports registers on import).
TITLES: dict[str, str] = {"tickets": "Ticket list"}


class UnknownExport(LookupError):
    """No export has that name."""


def export_rows(actor: User, slug: str, args: Mapping[str, Any]) -> Iterator[list[str]]:
    """Yield the CSV rows (header first) of export `slug` with the page's parameters `args`."""
    if slug == "tickets":
        query = replace(ticket_queries.parse_list_query(args), after=None)
        return ticket_queries.export_rows(actor, query)
    raise UnknownExport(slug)
