"""Typed SQLAlchemy models, one module per area; importing this registers them all."""

from cass.models.api_tokens import TOKEN_SCOPES, ApiToken
from cass.models.assets import Charger, Connector, Site
from cass.models.calendar_feeds import CalendarFeed
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
from cass.models.operations import CsmsEvent, Tariff
from cass.models.reports import ReportExport, ReportSchedule
from cass.models.sla import (
    CLOCKS,
    BusinessCalendar,
    CalendarHoliday,
    JobRun,
    Notification,
    SlaClock,
    SlaEvent,
    SlaPolicy,
    SlaTarget,
)
from cass.models.snapshots import ReportSnapshot, ReportSnapshotDirty, ReportSnapshotSpan, SiteLoad
from cass.models.tenancy import Tenant, TenantOwned
from cass.models.tickets import Attachment, AuditLog, SavedView, Ticket, TicketEvent, Worklog
from cass.models.users import ROLES, LoginAttempt, User
from cass.models.vendors import Vendor
from cass.models.visits import VISIT_STATUSES, Visit
from cass.models.webhooks import WEBHOOK_EVENTS, WebhookDelivery, WebhookEndpoint
from cass.models.workflow import RULE_EVENTS, RuleRun, WorkflowRule

__all__ = [
    "CLOCKS",
    "ROLES",
    "RULE_EVENTS",
    "TOKEN_SCOPES",
    "VISIT_STATUSES",
    "WEBHOOK_EVENTS",
    "ApiToken",
    "Attachment",
    "AuditLog",
    "BusinessCalendar",
    "CalendarFeed",
    "CalendarHoliday",
    "Charger",
    "ChargerCommand",
    "ChargerEvent",
    "ChargerModelSetting",
    "ChargingSession",
    "Connector",
    "CsmsEvent",
    "DataTransferRule",
    "DiagnosticsRequest",
    "FirmwareJob",
    "IdTag",
    "JobRun",
    "LoginAttempt",
    "MeterValue",
    "Notification",
    "OcppMessage",
    "ReportExport",
    "ReportSchedule",
    "ReportSnapshot",
    "ReportSnapshotDirty",
    "ReportSnapshotSpan",
    "RuleRun",
    "SavedView",
    "Site",
    "SiteLoad",
    "SlaClock",
    "SlaEvent",
    "SlaPolicy",
    "SlaTarget",
    "Tariff",
    "Tenant",
    "TenantOwned",
    "Ticket",
    "TicketEvent",
    "User",
    "Vendor",
    "Visit",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WorkflowRule",
    "Worklog",
]
