"""Site visits: an engineer's or a vendor's appointment at a site for a ticket."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Index,
    String,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ExcludeConstraint
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned
from cass.models.tickets import _in, _same_tenant_fk

# scheduled → confirmed → en_route → on_site → done; cancelled or no_access end it otherwise.
VISIT_STATUSES = {
    "scheduled": "Scheduled",
    "confirmed": "Confirmed",
    "en_route": "En route",
    "on_site": "On site",
    "done": "Done",
    "cancelled": "Cancelled",
    "no_access": "No access",
}
# A cancelled visit frees its time; every other one holds it (a visit without access took it).
HOLDS_TIME = "status <> 'cancelled'"
# An engineer's visit as a range on one number line per engineer (engineer id * 10^12 seconds,
# plus the epoch seconds), so that a plain range exclusion (GiST, built in: no btree_gist, which
# the embedded server lacks) keeps one engineer's visits apart: cass_visit_slot, migration 0016.
VISIT_SLOT = "cass_visit_slot(engineer_id, starts_at, ends_at)"


class Visit(TenantOwned, db.Model):
    """An appointment at a site for a ticket, with an engineer or a vendor, and its check-ins."""

    __tablename__ = "visit"
    __table_args__ = (
        _same_tenant_fk("ticket_id", "ticket", "fk_visit_ticket", "CASCADE"),
        _same_tenant_fk("engineer_id", "app_user", "fk_visit_engineer"),
        _same_tenant_fk("vendor_id", "vendor", "fk_visit_vendor"),
        _same_tenant_fk("site_id", "site", "fk_visit_site"),
        CheckConstraint(_in("status", VISIT_STATUSES), name="ck_visit_status"),
        CheckConstraint("ends_at > starts_at", name="ck_visit_times"),
        CheckConstraint(
            "engineer_id IS NOT NULL OR vendor_id IS NOT NULL", name="ck_visit_assignee"
        ),
        # No double booking: one engineer's visits that hold time never overlap.
        ExcludeConstraint(
            (text(VISIT_SLOT), "&&"),
            name="ex_visit_engineer_overlap",
            using="gist",
            where=text(f"engineer_id IS NOT NULL AND {HOLDS_TIME}"),
        ),
        Index("ix_visit_ticket", "ticket_id", "starts_at"),
        # The tenant's visits by start, for no engineer or vendor in particular: the dispatcher's
        # week, the API's list (migration 0022).
        Index("ix_visit_tenant_starts", "tenant_id", "starts_at"),
        Index("ix_visit_engineer_starts", "tenant_id", "engineer_id", "starts_at"),
        Index("ix_visit_vendor_starts", "tenant_id", "vendor_id", "starts_at"),
    )

    ticket_id: Mapped[int] = mapped_column(BigInteger)
    engineer_id: Mapped[int | None] = mapped_column(BigInteger)
    vendor_id: Mapped[int | None] = mapped_column(BigInteger)
    site_id: Mapped[int | None] = mapped_column(BigInteger)
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(12), default="scheduled", server_default="scheduled")
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    # Booked outside the engineer's working hours on purpose.
    outside_hours: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_out_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
