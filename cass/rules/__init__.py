"""Workflow rules admin: the rules, and the record of their runs."""
