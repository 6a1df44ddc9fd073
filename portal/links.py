"""Absolute links that leave the portal (invites), honouring PORTAL_BASE_URL behind a proxy."""

from __future__ import annotations

from flask import current_app, url_for


def invite_url(token: str) -> str:
    base = current_app.config["BASE_URL"]
    if base:
        return base + url_for("join.landing", token=token)
    return url_for("join.landing", token=token, _external=True)
