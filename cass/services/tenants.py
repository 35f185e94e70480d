"""Create tenants (system context: these cross tenant boundaries)."""

from __future__ import annotations

import re

from sqlalchemy import select, text

from cass.extensions import db
from cass.models import Tenant, WorkflowRule
from cass.sla_defaults import seed_statements
from cass.workflow_defaults import DEFAULT_RULES

SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,39}$")
PREFIX = re.compile(r"^[A-Z][A-Z0-9]{1,9}$")


class TenantError(ValueError):
    """The tenant cannot be created as asked."""


def create_tenant(slug: str, name: str, key_prefix: str | None = None) -> Tenant:
    """Create a tenant with a unique slug; the ticket-key prefix defaults to the slug."""
    prefix = (key_prefix or slug.replace("-", "")[:10]).upper()
    if not SLUG.match(slug):
        raise TenantError("The slug takes 2-40 lowercase letters, digits and dashes.")
    if not PREFIX.match(prefix):
        raise TenantError("The key prefix takes 2-10 capital letters and digits, from a letter.")
    if not name.strip() or len(name) > 120:
        raise TenantError("The name takes 1-120 characters.")
    if db.session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None:
        raise TenantError(f"Tenant {slug} already exists.")
    tenant = Tenant(slug=slug, name=name.strip(), key_prefix=prefix)
    db.session.add(tenant)
    db.session.flush()
    for position, rule in enumerate(DEFAULT_RULES):
        db.session.add(WorkflowRule(tenant_id=tenant.id, position=position, **rule))
    for sql, params in seed_statements():
        db.session.execute(text(sql), {"tenant": tenant.id, **params})
    db.session.commit()
    return tenant


def tenant_by_slug(slug: str) -> Tenant | None:
    """Return the tenant with this slug, if any."""
    return db.session.scalar(select(Tenant).where(Tenant.slug == slug))
