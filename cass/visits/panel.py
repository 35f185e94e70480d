"""What visit pages and the ticket's visits panel show: rows with names, times in the tenant's
zone, and the forms; who sees which visits (a vendor's people only their vendor's)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from flask_login import current_user
from sqlalchemy import ColumnElement, Select, select

from cass.bounds import DAY_RANGE, parse_day
from cass.csv_download import tenant_zone
from cass.extensions import db
from cass.models import Charger, Site, Ticket, User, Vendor, Visit
from cass.models.visits import VISIT_STATUSES
from cass.permissions import can
from cass.services import tickets, visits
from cass.tenancy import current_tenant_id
from cass.visits.forms import VisitForm

# The steps offered from each status (on_site is the check-in, done the check-out).
STEPS = {
    "scheduled": ("confirmed", "en_route", "on_site", "no_access", "cancelled"),
    "confirmed": ("en_route", "on_site", "no_access", "cancelled"),
    "en_route": ("on_site", "no_access", "cancelled"),
    "on_site": ("done",),
}
STEP_LABELS = {
    "confirmed": "Confirm",
    "en_route": "En route",
    "on_site": "Check in",
    "done": "Check out",
    "no_access": "No access",
    "cancelled": "Cancel",
}


@dataclass
class VisitRow:
    """A visit as pages show it."""

    visit: Visit
    who: str
    ticket_key: str
    ticket_title: str
    site: str
    address: str
    charger: str
    directions: str | None
    starts: datetime  # in the tenant's zone
    ends: datetime

    @property
    def status_label(self) -> str:
        return VISIT_STATUSES[self.visit.status]

    @property
    def steps(self) -> list[tuple[str, str]]:
        """Return the status steps the current user may take, as (status, label)."""
        if not may_work(self.visit):
            return []
        steps = STEPS.get(self.visit.status, ())
        if not can(current_user.role, "visits.book"):
            steps = tuple(s for s in steps if s != "cancelled")
        return [(s, STEP_LABELS[s]) for s in steps]


def visible() -> Select[tuple[Visit]]:
    """Return a select of the visits the current user may see."""
    query = select(Visit).where(Visit.tenant_id == current_tenant_id())
    if current_user.role == "vendor":
        query = query.where(Visit.vendor_id == current_user.vendor_id)
    return query


def overlapping(start: datetime, end: datetime) -> list[ColumnElement[bool]]:
    """Return the conditions of the visits overlapping [start, end).

    A visit lasts at most visits.LONGEST, so one overlapping the range starts after
    `start - LONGEST`: that lower bound lets (tenant_id, starts_at) read only the range's
    visits instead of every earlier one (migration 0022).
    """
    return [
        Visit.starts_at < end,
        Visit.ends_at > start,
        Visit.starts_at > start - visits.LONGEST,
    ]


def may_work(visit: Visit) -> bool:
    """Tell whether the current user may move the visit through its steps."""
    if not can(current_user.role, "visits.work"):
        return False
    if can(current_user.role, "visits.book"):
        return True
    if current_user.role == "vendor":
        return visit.vendor_id is not None and visit.vendor_id == current_user.vendor_id
    return visit.engineer_id == current_user.id


def rows(query: Select[tuple[Visit]]) -> list[VisitRow]:
    """Return the visits of `query` with their people, tickets, sites and chargers named."""
    zone = tenant_zone()
    found = db.session.execute(
        select(Visit, User.name, Vendor.name, Ticket, Site, Charger.ocpp_id)
        .join(Ticket, Ticket.id == Visit.ticket_id)
        .outerjoin(User, User.id == Visit.engineer_id)
        .outerjoin(Vendor, Vendor.id == Visit.vendor_id)
        .outerjoin(Site, Site.id == Visit.site_id)
        .outerjoin(Charger, Charger.id == Ticket.charger_id)
        .where(Visit.id.in_(query.with_only_columns(Visit.id).scalar_subquery()))
        .order_by(Visit.starts_at, Visit.id)
    ).all()
    prefix = tickets.tenant_prefix()
    out = []
    for visit, engineer, vendor, ticket, site, charger in found:
        directions = None
        if site is not None and site.lat is not None and site.lon is not None:
            directions = f"https://www.openstreetmap.org/directions?to={site.lat}%2C{site.lon}"
        out.append(
            VisitRow(
                visit=visit,
                who=" · ".join(n for n in (engineer, vendor) if n),
                ticket_key=tickets.format_key(prefix, ticket.number),
                ticket_title=ticket.title,
                site=site.name if site else "",
                address=(site.address or "") if site else "",
                charger=charger or "",
                directions=directions,
                starts=visit.starts_at.astimezone(zone),
                ends=visit.ends_at.astimezone(zone),
            )
        )
    return out


def visit_form(formdata: Any = None) -> VisitForm:
    """Return the booking form with this tenant's engineers and vendors to pick from."""
    form = VisitForm(formdata=formdata)
    form.assignee.choices = [("", "— pick —"), *tickets.assignee_choices()]
    return form


def ticket_panel(ticket: Ticket) -> dict[str, Any]:
    """Return what the ticket's visits panel shows: its visits and, for dispatchers, a form."""
    return {
        "visit_rows": rows(visible().where(Visit.ticket_id == ticket.id)),
        "visit_form": visit_form() if can(current_user.role, "visits.book") else None,
        "visit_problem": None,
        "tz": tenant_zone(),
    }


def local_day(value: str | None) -> tuple[date, str | None]:
    """Return the date `value` names (YYYY-MM-DD), or today in the tenant's zone and a notice
    saying why `value` was ignored (none when it was empty)."""
    value = (value or "").strip()
    try:
        return parse_day(value), None
    except ValueError:
        today = datetime.now(tenant_zone()).date()
        if not value:
            return today, None
        return today, f"Ignored “{value[:40]}”: use a day like 2026-11-28, {DAY_RANGE}."


def day_bounds(first: date, days: int) -> tuple[datetime, datetime]:
    """Return the instants of midnight on `first` and `days` days later, in the tenant's zone."""
    zone = tenant_zone()
    start = datetime.combine(first, time(), zone)
    return start, datetime.combine(first + timedelta(days=days), time(), zone)
