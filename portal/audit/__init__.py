"""Audit trail: hash-chained events for every sign-in, change and admin action."""
