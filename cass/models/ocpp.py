"""What chargers tell the bridge and what the bridge sends them.

The bridge (`ocpp_bridge`) writes these tables with plain psycopg; the models describe them for
the web and keep the migrations honest.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    Numeric,
    Sequence,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from cass.extensions import db
from cass.models.tenancy import TenantOwned
from ocpp_bridge.vocab import COMMAND_STATES, EVENT_KINDS

# A connector fault: a status report that says Faulted or names an error (the charger page's
# "faults only", the workflow rules and the reports read them so).
FAULT_PREDICATE = (
    "kind = 'status' AND (status = 'Faulted' OR coalesce(error_code, 'NoError') <> 'NoError')"
)

# Partitions of ocpp_message are named ocpp_message_YYYYMMDD and made at run time.
OCPP_MESSAGE_PARTITION_RE = r"^ocpp_message_\d{8}$"
# Transaction ids come from one sequence, so they are unique across tenants and instances.
TRANSACTION_ID_SEQ = Sequence("charging_session_id_seq", start=1)


def include_in_migrations(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Leave the message log's daily partitions out of autogenerate: they are made at run time."""
    return not (
        type_ == "table" and reflected and name and re.match(OCPP_MESSAGE_PARTITION_RE, name)
    )


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN (" + ",".join(f"'{v}'" for v in values) + ")"


def _charger_fk(name: str) -> ForeignKeyConstraint:
    return ForeignKeyConstraint(
        ["tenant_id", "charger_id"],
        ["charger.tenant_id", "charger.id"],
        name=name,
        ondelete="CASCADE",
    )


class ChargerEvent(TenantOwned, db.Model):
    """A change in a charger's life: boot, online/offline, connector status, fault, report."""

    __tablename__ = "charger_event"
    __table_args__ = (
        _charger_fk("fk_charger_event_charger"),
        CheckConstraint(_in("kind", EVENT_KINDS), name="ck_charger_event_kind"),
        Index("ix_charger_event_charger_at", "charger_id", text("at DESC")),
        # Reports: a tenant's faults in a date range; only fault rows, so the bridge's other
        # events cost it nothing. The predicate is the reports' (cass.services.reports.chargers).
        Index(
            "ix_charger_event_tenant_faults",
            "tenant_id",
            "at",
            # Counted per charger and code from the index alone (migration 0015).
            postgresql_include=["charger_id", "error_code"],
            postgresql_where=text(FAULT_PREDICATE),
        ),
        # Uptime: a charger's online/offline events by time, read from the index alone (the
        # tenant too, for row security): the last before a period and those in it.
        Index(
            "ix_charger_event_presence",
            "charger_id",
            "at",
            "id",
            postgresql_include=["kind", "tenant_id"],
            postgresql_where=text("kind IN ('online', 'offline')"),
        ),
        # The workflow worker's queue: events that may trigger rules, not yet evaluated.
        Index(
            "ix_charger_event_unhandled",
            "id",
            postgresql_where=text(
                "handled_at IS NULL AND kind IN ('status','offline','online','firmware')"
            ),
        ),
    )

    charger_id: Mapped[int] = mapped_column(BigInteger)
    # 0 is the charger as a whole; NULL when the event is not about a connector.
    connector_no: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str | None] = mapped_column(String(40))
    error_code: Mapped[str | None] = mapped_column(String(50))
    info: Mapped[str | None] = mapped_column(String(500))
    vendor_error_code: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict | None] = mapped_column(JSONB)
    # Set once the workflow rules have seen it.
    handled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MeterValue(TenantOwned, db.Model):
    """One sampled value of a charger's meter, inside or outside a transaction."""

    __tablename__ = "meter_value"
    __table_args__ = (
        _charger_fk("fk_meter_value_charger"),
        Index("ix_meter_value_charger_at", "charger_id", "at"),
        Index("ix_meter_value_transaction", "transaction_id"),
        # Peak load (cass.services.peak_load): a site's samples as index-only range scans per
        # charger; a fleet's rows lie one to a heap page (migration 0023).
        Index(
            "ix_meter_value_load",
            "charger_id",
            "at",
            postgresql_include=["tenant_id", "connector_no", "measurand", "phase", "unit", "value"],
            postgresql_where=text(
                "measurand IN ('Power.Active.Import', 'Energy.Active.Import.Register') "
                "AND value IS NOT NULL"
            ),
        ),
    )

    charger_id: Mapped[int] = mapped_column(BigInteger)
    connector_no: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[int | None] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    measurand: Mapped[str] = mapped_column(String(60))
    phase: Mapped[str | None] = mapped_column(String(10))
    unit: Mapped[str | None] = mapped_column(String(20))
    context: Mapped[str | None] = mapped_column(String(30))
    location: Mapped[str | None] = mapped_column(String(20))
    value: Mapped[float | None] = mapped_column(Double)
    # The value as sent when it is not a number (signed data).
    raw: Mapped[str | None] = mapped_column(Text)


class ChargingSession(db.Model):
    """A transaction on a connector; its id is the OCPP 1.6 transactionId."""

    __tablename__ = "charging_session"
    __table_args__ = (
        _charger_fk("fk_charging_session_charger"),
        # A resent StartTransaction finds its session instead of opening a second one.
        UniqueConstraint(
            "charger_id", "connector_no", "started_at", name="uq_charging_session_start"
        ),
        # OCPP 2.0.1 chargers name their transactions themselves.
        UniqueConstraint("charger_id", "transaction_ref", name="uq_charging_session_ref"),
        UniqueConstraint("tenant_id", "id", name="uq_charging_session_tenant_id"),
        Index("ix_charging_session_charger_started", "charger_id", text("started_at DESC")),
        # Reports: a tenant's sessions in a date range.
        Index("ix_charging_session_tenant_started", "tenant_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger,
        TRANSACTION_ID_SEQ,
        server_default=TRANSACTION_ID_SEQ.next_value(),
        primary_key=True,
    )
    tenant_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("tenant.id", ondelete="CASCADE"), index=True
    )
    charger_id: Mapped[int] = mapped_column(BigInteger)
    connector_no: Mapped[int] = mapped_column(Integer)
    transaction_ref: Mapped[str | None] = mapped_column(String(36))
    id_tag: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    meter_start: Mapped[int | None] = mapped_column(BigInteger)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meter_stop: Mapped[int | None] = mapped_column(BigInteger)
    stop_reason: Mapped[str | None] = mapped_column(String(40))
    energy_wh: Mapped[int | None] = mapped_column(BigInteger)
    reservation_id: Mapped[int | None] = mapped_column(Integer)
    # Computed when the session stops, from the site's tariff in force at its start.
    tariff_id: Mapped[int | None] = mapped_column(BigInteger)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 4))
    currency: Mapped[str | None] = mapped_column(String(3))


class IdTag(TenantOwned, db.Model):
    """An RFID card or app token a charger may authorize, per tenant."""

    __tablename__ = "id_tag"
    __table_args__ = (
        UniqueConstraint("tenant_id", "id_tag", name="uq_id_tag_tenant_tag"),
        CheckConstraint(
            _in("status", ("Accepted", "Blocked", "Expired", "Invalid")), name="ck_id_tag_status"
        ),
    )

    id_tag: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(10), default="Accepted", server_default="Accepted")
    expiry_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    parent_id_tag: Mapped[str | None] = mapped_column(String(36))


class DataTransferRule(TenantOwned, db.Model):
    """How the bridge answers a DataTransfer for a vendor id (and message id, when set)."""

    __tablename__ = "data_transfer_rule"
    __table_args__ = (
        UniqueConstraint("tenant_id", "vendor_id", "message_id", name="uq_data_transfer_rule"),
        CheckConstraint(
            _in("status", ("Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId")),
            name="ck_data_transfer_rule_status",
        ),
    )

    vendor_id: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="Accepted", server_default="Accepted")
    response_data: Mapped[str | None] = mapped_column(Text)


class ChargerModelSetting(TenantOwned, db.Model):
    """Per charger model: accept payloads that break the OCPP schema (known bad firmware)."""

    __tablename__ = "charger_model_setting"
    __table_args__ = (
        UniqueConstraint("tenant_id", "manufacturer", "model", name="uq_charger_model_setting"),
    )

    manufacturer: Mapped[str] = mapped_column(String(80))
    model: Mapped[str] = mapped_column(String(80))
    lenient_schema: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ChargerCommand(TenantOwned, db.Model):
    """A command queued for a charger; the bridge holding its socket sends it."""

    __tablename__ = "charger_command"
    __table_args__ = (
        _charger_fk("fk_charger_command_charger"),
        CheckConstraint(_in("status", COMMAND_STATES), name="ck_charger_command_status"),
        # The bridge's queue: the open commands of a charger, oldest first.
        Index(
            "ix_charger_command_open",
            "charger_id",
            "id",
            postgresql_where=text("status IN ('pending','sent')"),
        ),
        Index("ix_charger_command_charger_created", "charger_id", text("created_at DESC")),
    )

    charger_id: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    status: Mapped[str] = mapped_column(String(12), default="pending", server_default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    message_id: Mapped[str | None] = mapped_column(String(36))
    result: Mapped[dict | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(String(500))
    created_by_id: Mapped[int | None] = mapped_column(BigInteger)


class FirmwareJob(TenantOwned, db.Model):
    """An UpdateFirmware sent to a charger, followed by its FirmwareStatusNotifications."""

    __tablename__ = "firmware_job"
    __table_args__ = (
        _charger_fk("fk_firmware_job_charger"),
        Index("ix_firmware_job_charger", "charger_id", text("id DESC")),
    )

    charger_id: Mapped[int] = mapped_column(BigInteger)
    command_id: Mapped[int | None] = mapped_column(BigInteger)
    location: Mapped[str] = mapped_column(String(512))
    retrieve_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(30), default="pending", server_default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DiagnosticsRequest(TenantOwned, db.Model):
    """A GetDiagnostics sent to a charger, followed by its DiagnosticsStatusNotifications."""

    __tablename__ = "diagnostics_request"
    __table_args__ = (
        _charger_fk("fk_diagnostics_request_charger"),
        Index("ix_diagnostics_request_charger", "charger_id", text("id DESC")),
    )

    charger_id: Mapped[int] = mapped_column(BigInteger)
    command_id: Mapped[int | None] = mapped_column(BigInteger)
    location: Mapped[str] = mapped_column(String(512))
    file_name: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(30), default="pending", server_default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OcppMessage(db.Model):
    """Every OCPP-J frame in and out, partitioned by day (ocpp_message_YYYYMMDD)."""

    __tablename__ = "ocpp_message"
    __table_args__ = (
        CheckConstraint("direction IN ('in','out')", name="ck_ocpp_message_direction"),
        Index("ix_ocpp_message_charger_at", "charger_id", "at"),
        {"postgresql_partition_by": "RANGE (at)"},
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    charger_id: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(3))
    message_type: Mapped[int | None] = mapped_column(SmallInteger)
    message_id: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str | None] = mapped_column(String(60))
    payload: Mapped[dict | list | str | None] = mapped_column(JSONB)
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_description: Mapped[str | None] = mapped_column(Text)
