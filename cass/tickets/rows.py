"""The ticket list's rows as markup, and its links, made in Python.

A list page is 50 rows of eleven cells, and every live refresh of a list renders them again for
each viewer. Jinja looks up and escapes each of a row's twenty expressions one by one (~30 µs a
row); written here, a row is one f-string with only its free text escaped (~3 µs). The row
markup lives only here: `templates/tickets/_list_rows.html` calls `ticket_rows()`.

The table's links (itself, each sort, the CSV) are a dozen url_for calls over the same query
parameters: `list_links()` makes them once per query (and mount point).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from urllib.parse import urlencode

from flask import request, url_for
from markupsafe import Markup, escape

from cass.lifecycle import STATUS_LABELS
from cass.models.tickets import CATEGORIES, PRIORITIES
from cass.services.ticket_queries import SORTS, ListQuery, ListRow
from cass.sla.at_risk import sla_badge

try:  # markupsafe's escaping without the Markup object around it: this runs 300 times a page
    from markupsafe._speedups import _escape_inner as _e
except ImportError:  # pragma: no cover (markupsafe without its C extension)
    from markupsafe._native import _escape_inner as _e

# Escaped once: the labels are constants. A value outside them (a status added later, say)
# is escaped as it comes.
_STATUS = {
    status: Markup('<span class="badge status-{}">{}</span>').format(status, label)
    for status, label in STATUS_LABELS.items()
}
_PRIORITY = {
    priority: Markup('<span class="badge prio-{}">{}</span>').format(priority.lower(), priority)
    for priority in PRIORITIES
}
_CATEGORY = {category: str(escape(label)) for category, label in CATEGORIES.items()}
_NOBODY = '<span class="muted">—</span>'


def _badge(badges: dict[str, Markup], value: str, kind: str) -> str:
    found = badges.get(value)
    if found is None:
        found = Markup('<span class="badge {}-{}">{}</span>').format(kind, value.lower(), value)
    return str(found)


def ticket_rows(rows: Iterable[ListRow], bulk: bool) -> Markup:
    """Return the table rows of `rows`, with a selection checkbox each when `bulk`."""
    detail_start, detail_end = url_for("tickets.detail", key="KEY").rsplit("KEY", 1)
    detail_start, detail_end = _e(detail_start), _e(detail_end)
    html = []
    for t in rows:
        key = _e(t.key)
        if t.assignee:
            assignee = _e(t.assignee)
        elif t.vendor:
            assignee = f'{_e(t.vendor)} <small class="muted">vendor</small>'
        else:
            assignee = _NOBODY
        iso = t.updated_at.isoformat()
        select = (
            f'<td><input type="checkbox" name="ticket" value="{t.id}" form="bulk-form"'
            f' aria-label="Select {key}"></td>'
            if bulk
            else ""
        )
        category = _CATEGORY.get(t.category)
        # The most urgent clock as the board shows it: one markup for both (sla_badge).
        clock = (
            "<td></td>"
            if t.sla is None
            else f'<td data-clock="{_e(t.sla.clock)}">{sla_badge(t.sla)}</td>'
        )
        html.append(
            f'<tr id="ticket-{t.id}" data-list-row>{select}'
            f'<td><a href="{detail_start}{key}{detail_end}">{key}</a></td>'
            f"<td>{_e(t.title)}</td>"
            f"<td>{_badge(_STATUS, t.status, 'status')}</td>"
            f"<td>{_badge(_PRIORITY, t.priority, 'prio')}</td>"
            f"{clock}"
            f'<td class="optional">{_e(t.category) if category is None else category}</td>'
            f'<td class="optional">{_e(t.site or "")}</td>'
            f'<td class="optional">{_e(t.charger or "")}</td>'
            f"<td>{assignee}</td>"
            f'<td><time datetime="{iso}">{iso[:10]} {iso[11:16]}</time></td></tr>\n'
        )
    return Markup("".join(html))  # noqa: S704 (every value from the database is escaped above)


@dataclass(frozen=True)
class ListLinks:
    """The table's links for one query (without its cursor)."""

    here: str  # the list itself: the live refresh, "Reload the list"
    csv: str
    csv_excel: str  # the same CSV with a byte-order mark, which Excel needs to read UTF-8
    sort: dict[str, str]  # a click on each sortable column
    query_string: str  # the filters and sort, for the save-view form

    def more(self, after: str) -> str:
        """Return the link of the rows after the cursor `after` (as url_for would write it)."""
        return f"{self.here}{'&' if '?' in self.here else '?'}{urlencode({'after': after})}"


@lru_cache(maxsize=1024)
def _links(query: ListQuery, script_root: str) -> ListLinks:
    here = query.params(after=None)
    return ListLinks(
        here=url_for("tickets.index", **here),
        csv=url_for("ticket_export.tickets_csv", **here),
        csv_excel=url_for("ticket_export.tickets_csv", **here, bom=1),
        sort={name: url_for("tickets.index", **query.sort_params(name)) for name in SORTS},
        query_string=query.query_string(),
    )


def list_links(query: ListQuery) -> ListLinks:
    """Return the table's links for `query` (made once per query and mount point)."""
    # The notices do not count in a ListQuery's equality: only its filters and sort do.
    return _links(replace(query, after=None), request.script_root)
