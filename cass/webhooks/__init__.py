"""Outbound webhooks admin (/admin/webhooks)."""
