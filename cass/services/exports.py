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
    if slug in reports.REPORTS:
        return reports.csv_rows(slug, args)
    raise UnknownExport(slug)


def problems(slug: str, args: Mapping[str, Any]) -> list[str]:
    """Return what is wrong with `args` as the parameters of export `slug` (nothing: fine).

    The ticket list drops what it does not understand, as its page does; a report refuses bad
    filters, so a schedule says so when it is saved rather than failing at every run.
    """
    report = reports.REPORTS.get(slug)
    if report is None:
        return []
    try:
        reports.parse_filters(report, args, "UTC")
    except reports.BadFilters as bad:
        return [f"{field}: {message}" for field, message in bad.errors.items()]
    return []


# Last, so that TITLES exists when the reports register their titles in it.
from cass.services import reports  # noqa: E402
