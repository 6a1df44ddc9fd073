"""Guests' e-mail: writing each queued message (portal.outbox) and sending it over SMTP."""
