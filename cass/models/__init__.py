"""Typed SQLAlchemy models, one module per area; importing this registers them all."""

from cass.models.assets import Charger, Connector, Site
from cass.models.ocpp import (
    ChargerCommand,
    ChargerEvent,
    ChargerModelSetting,
    ChargingSession,
    DataTransferRule,
    DiagnosticsRequest,
    FirmwareJob,
    IdTag,
    MeterValue,
    OcppMessage,
)
from cass.models.tenancy import Tenant, TenantOwned
from cass.models.tickets import Attachment, AuditLog, SavedView, Ticket, TicketEvent, Worklog
from cass.models.users import ROLES, LoginAttempt, User
from cass.models.vendors import Vendor

__all__ = [
    "ROLES",
    "Attachment",
    "AuditLog",
    "Charger",
    "ChargerCommand",
    "ChargerEvent",
    "ChargerModelSetting",
    "ChargingSession",
    "Connector",
    "DataTransferRule",
    "DiagnosticsRequest",
    "FirmwareJob",
    "IdTag",
    "LoginAttempt",
    "MeterValue",
    "OcppMessage",
    "SavedView",
    "Site",
    "Tenant",
    "TenantOwned",
    "Ticket",
    "TicketEvent",
    "User",
    "Vendor",
    "Worklog",
]
