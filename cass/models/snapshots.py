"""Report snapshots: each report's additive figures per local day, kept so long ranges read them.

A report's daily figures for one variant (its zone, grouping and filters) are stored per day and
group key (`report_snapshot`); `report_snapshot_span` says which days a variant holds, and when
it was last asked for; `report_snapshot_dirty` lists the days a late change made stale (written
by triggers on the tables the reports read, migrations 0014 and 0024), recomputed by the nightly
job. `site_load` holds each site's load per quarter hour for the peak-load pages, kept by the
same job, days and marks (its span is the `site-load` row of `report_snapshot_span`).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from cass.extensions import db


class _Variant:
    """The key columns a report variant's rows share: the tenant, the report, the variant."""

    @declared_attr
    def tenant_id(cls) -> Mapped[int]:
        return mapped_column(
            BigInteger, ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True, sort_order=-3
        )

    # First in the table, so the primary key reads tenant, report, variant, then day and key.
    report: Mapped[str] = mapped_column(String(40), primary_key=True, sort_order=-2)
    variant: Mapped[str] = mapped_column(Text, primary_key=True, sort_order=-1)


class ReportSnapshot(_Variant, db.Model):
    """One report variant's figures for one local day and group key."""

    __tablename__ = "report_snapshot"

    # No identity column: the natural key is the primary key, and a read is a range of it.
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    # The report's measures in its own order (counts, sums of seconds, minutes, money).
    figures: Mapped[list] = mapped_column(ARRAY(Numeric))


class ReportSnapshotSpan(_Variant, db.Model):
    """The days [first_day, last_day] a report variant holds, and when it was last asked for."""

    __tablename__ = "report_snapshot_span"

    # Both unset until the nightly job first fills the variant.
    first_day: Mapped[date | None] = mapped_column(Date)
    last_day: Mapped[date | None] = mapped_column(Date)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    built_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ReportSnapshotDirty(db.Model):
    """A day of a tenant whose snapshots a late change made stale (one row per change)."""

    __tablename__ = "report_snapshot_dirty"
    __table_args__ = (Index("ix_report_snapshot_dirty_tenant_day", "tenant_id", "day"),)

    # Rows are only added and deleted, never updated: the job deletes exactly the rows it saw,
    # so a mark written while it recomputes survives for the next run.
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("tenant.id", ondelete="CASCADE"))
    day: Mapped[date] = mapped_column(Date)


class SiteLoad(db.Model):
    """A site's load in one quarter hour: mean power and energy of its chargers together."""

    __tablename__ = "site_load"
    # The primary key serves a site's range; this one the tenant's sites together over a range
    # (the peak-load report without a site filter), which would otherwise read every quarter the
    # tenant has.
    __table_args__ = (Index("ix_site_load_tenant_q", "tenant_id", "q"),)

    tenant_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    # The chargers' site when the job computed the quarter (0: chargers without a site). No
    # foreign key: a moved or deleted site's quarters are marked stale and recomputed instead.
    site_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    q: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    w: Mapped[float] = mapped_column(Float)
    wh: Mapped[float] = mapped_column(Float)
