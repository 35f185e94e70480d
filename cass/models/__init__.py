"""Typed SQLAlchemy models, one module per area; importing this registers them all."""

from cass.models.assets import Charger, Connector, Site
from cass.models.tenancy import Tenant, TenantOwned
from cass.models.users import ROLES, LoginAttempt, User
from cass.models.vendors import Vendor

__all__ = [
    "ROLES",
    "Charger",
    "Connector",
    "LoginAttempt",
    "Site",
    "Tenant",
    "TenantOwned",
    "User",
    "Vendor",
]
