"""Absolute links that leave the portal (invites), built from PORTAL_BASE_URL, and the check
that keeps ?next= redirects on this site."""

from __future__ import annotations

from flask import current_app, url_for

from portal.config import local_base_url


def invite_url(token: str) -> str:
    """The link a guest opens: PORTAL_BASE_URL, else the server's own loopback address
    (config.check_base_url allows nothing else), never the request's Host header."""
    config = current_app.config
    base = config["BASE_URL"] or local_base_url(config)
    with current_app.test_request_context():  # the path alone, whatever the request says
        return base + url_for("join.landing", token=token)


def observer_url(token: str) -> str:
    """A hearing's observer link, built as invite_url is."""
    config = current_app.config
    base = config["BASE_URL"] or local_base_url(config)
    with current_app.test_request_context():
        return base + url_for("join.observer", token=token)


def is_local_path(target: str | None) -> bool:
    """Whether a redirect target is a path on this site, not another site. Besides "//host",
    browsers read "/\\host" as "//host" and drop tabs and newlines ("/<tab>/host"), so
    backslashes and control characters are refused too."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return False
    return not any(ch == "\\" or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target)
